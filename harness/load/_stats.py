"""Locust's output read into typed results: the final statistics (``--json-file``), the stats history
(``_stats_history.csv``, one row a second, read while the run goes on) and the failures (``_failures.csv``).

Final figures come from the JSON file, which Locust writes once at shutdown with every request counted;
its CSV files are rewritten once a second and can miss the last second. Percentiles are computed from
Locust's response-time histogram exactly as Locust computes them (its ``calculate_response_time_percentile``),
so they carry Locust's rounding: exact milliseconds below 100 ms, two significant digits above.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import EnvironmentUnavailable

PERCENTILES = (0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _LocustEntry(BaseModel):
    """One entry of Locust's ``--json-file`` (the keys this harness reads; Locust may add more)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    method: str | None = None
    start_time: float
    last_request_timestamp: float | None = None
    num_requests: int
    num_none_requests: int = 0
    num_failures: int
    total_response_time: float
    max_response_time: float
    min_response_time: float | None = None
    response_times: dict[int, int]


class EndpointStats(_Model):
    """What Locust measured for one request name (or ``Aggregated`` for all), times in milliseconds."""

    method: str
    name: str
    requests: int
    failures: int
    average_ms: float | None
    min_ms: float | None
    max_ms: float | None
    percentiles_ms: dict[str, float] = Field(description="'50%' .. '100%', Locust's rounding")
    rate: float = Field(description="completed requests per second, from the start to the last request")
    seconds: float
    start_wall: float = Field(description="Unix time Locust's statistics began (the load's start)")

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def percentile(self, q: float) -> float | None:
        return self.percentiles_ms.get(percentile_label(q))


class FailureRow(_Model):
    method: str
    name: str
    error: str
    occurrences: int


class HistoryRow(_Model):
    """One row of the aggregated stats history: Locust's state at ``timestamp`` (whole seconds)."""

    timestamp: int
    users: int
    requests: int  # since the start
    failures: int
    p50_ms: float | None  # over Locust's trailing window (about 10 s)
    p95_ms: float | None
    p99_ms: float | None


class LocustStats(_Model):
    total: EndpointStats
    endpoints: list[EndpointStats]
    failures: list[FailureRow]
    history: list[HistoryRow]


def percentile_label(q: float) -> str:
    """Locust's column name of a percentile: 0.95 -> '95%', 0.999 -> '99.9%'."""
    return f"{q * 100:.4f}".rstrip("0").rstrip(".") + "%"


def response_time_percentile(histogram: Mapping[int, int], requests: int, q: float) -> float | None:
    """Locust's own percentile over its rounded histogram (``stats.calculate_response_time_percentile``)."""
    if requests <= 0 or not histogram:
        return None
    wanted = int(requests * q)
    seen = 0
    for value in sorted(histogram, reverse=True):
        seen += histogram[value]
        if requests - seen <= wanted:
            return float(value)
    return 0.0


def _endpoint(method: str, name: str, entries: list[_LocustEntry]) -> EndpointStats:
    histogram: Counter[int] = Counter()
    for entry in entries:
        histogram.update(entry.response_times)
    requests = sum(e.num_requests for e in entries)
    timed = requests - sum(e.num_none_requests for e in entries)
    start = min((e.start_time for e in entries), default=0.0)
    last = max((e.last_request_timestamp or e.start_time for e in entries), default=start)
    seconds = max(0.0, last - start)
    minimums = [e.min_response_time for e in entries if e.min_response_time is not None]
    return EndpointStats(
        method=method,
        name=name,
        requests=requests,
        failures=sum(e.num_failures for e in entries),
        average_ms=sum(e.total_response_time for e in entries) / timed if timed > 0 else None,
        min_ms=min(minimums) if minimums else None,
        max_ms=max((e.max_response_time for e in entries), default=None) if requests else None,
        percentiles_ms={
            percentile_label(q): value
            for q in PERCENTILES
            if (value := response_time_percentile(histogram, timed, q)) is not None
        },
        rate=requests / seconds if seconds > 0 else 0.0,
        seconds=round(seconds, 3),
        start_wall=start,
    )


def read_final_stats(path: Path) -> tuple[EndpointStats, list[EndpointStats]]:
    """The aggregate and each endpoint from Locust's ``--json-file``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries = [_LocustEntry.model_validate(item) for item in raw]
    except FileNotFoundError as exc:
        raise EnvironmentUnavailable(f"Locust wrote no statistics ({path} is missing)") from exc
    except (ValueError, TypeError, ValidationError) as exc:
        raise EnvironmentUnavailable(f"Locust's statistics in {path} cannot be read: {exc}") from exc
    endpoints = [_endpoint(e.method or "", e.name, [e]) for e in entries]
    endpoints.sort(key=lambda e: (e.name, e.method))
    return _endpoint("", "Aggregated", entries), endpoints


def read_failures(path: Path) -> list[FailureRow]:
    """Locust's failures by request and error (as of its last CSV write)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [
        FailureRow(
            method=row["Method"], name=row["Name"], error=row["Error"], occurrences=int(row["Occurrences"])
        )
        for row in csv.DictReader(io.StringIO(text))
    ]


def _number(value: str) -> float | None:
    return None if value in ("", "N/A") else float(value)


def parse_history(lines: Iterable[str], header: list[str]) -> list[HistoryRow]:
    """The aggregated rows among complete CSV lines of ``_stats_history.csv`` (``header``: its columns)."""
    rows = []
    for values in csv.reader(lines):
        if len(values) != len(header):
            continue
        row = dict(zip(header, values, strict=True))
        if row["Name"] != "Aggregated":
            continue
        rows.append(
            HistoryRow(
                timestamp=int(row["Timestamp"]),
                users=int(row["User Count"]),
                requests=int(row["Total Request Count"]),
                failures=int(row["Total Failure Count"]),
                p50_ms=_number(row["50%"]),
                p95_ms=_number(row["95%"]),
                p99_ms=_number(row["99%"]),
            )
        )
    return rows


class HistoryTail:
    """Reads the rows Locust appended to its stats history since the last call (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: list[str] | None = None
        self.rows: list[HistoryRow] = []
        self._offset = 0
        self._partial = ""

    def read(self) -> list[HistoryRow]:
        """The new aggregated rows (also kept in ``rows``)."""
        try:
            with self.path.open(encoding="utf-8") as source:
                source.seek(self._offset)
                chunk = source.read()
                self._offset = source.tell()
        except FileNotFoundError:
            return []
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for the rest
        if self.header is None and lines:
            self.header = next(csv.reader([lines.pop(0)]))
        if self.header is None:
            return []
        new = parse_history(lines, self.header)
        self.rows += new
        return new
