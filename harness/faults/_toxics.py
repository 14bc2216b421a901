"""The seven Toxiproxy toxics, each frozen attributes with a ``pipe`` coroutine that sees its link only
through ``StubIO``, so the logic is tested with a fake stub and a virtual clock, without sockets."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Protocol

from harness.faults._gojson import GoField, GoStruct, Kind
from harness.faults._limits import BYTES, KB_PER_SECOND, MICROSECONDS, MILLISECONDS, Bound


class Signal(Enum):
    """What ``StubIO.recv`` returns besides a chunk."""

    EOF = "eof"  # the source closed: pass the close on (or delay it)
    INTERRUPTED = "interrupted"  # the toxic was updated or removed: return now, dropping nothing
    TIMEOUT = "timeout"  # the ``until`` deadline passed before anything arrived


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes read from the source and the loop time they were read (latency is relative to it)."""

    data: bytes
    timestamp: float


@dataclass
class ToxicState:
    """State a toxic keeps across restarts on the same link (limit_data counts bytes already let through)."""

    transmitted: int = 0


class StubIO(Protocol):
    """One toxic's view of its link: an input queue, an output, a clock and the server's random source."""

    rng: random.Random
    state: ToxicState

    def now(self) -> float: ...

    async def recv(self, until: float | None = None) -> Chunk | Signal: ...

    def unrecv(self, item: Chunk | Signal) -> None: ...

    def send(self, chunk: Chunk) -> None: ...

    async def sleep_until(self, deadline: float) -> bool:
        """Wait until ``deadline`` (loop time); False if interrupted first."""
        ...

    def close(self, *, reset: bool = False) -> None:
        """End this direction: pass EOF on (``reset``: close the connection with a TCP RST)."""
        ...


@dataclass(frozen=True)
class Toxic:
    """Base of the toxic attribute sets; field order is the JSON order of ``attributes``."""

    type_name: ClassVar[str]
    go_name: ClassVar[str]  # the Go struct name, as it appears in decode error messages
    go_types: ClassVar[dict[str, str]]
    bounds: ClassVar[dict[str, Bound]]  # what the server accepts, stricter than Toxiproxy (see _limits)
    closes_on_removal: ClassVar[bool] = False  # Toxiproxy's CleanupToxic: removing it closes the link
    per_request: ClassVar[bool] = False  # an HTTP toxic: the connection's HTTP layer applies it, no stage

    async def pipe(self, io: StubIO) -> None:
        raise NotImplementedError

    @classmethod
    def layout(cls) -> GoStruct:
        """The attributes as a Go struct, for decoding request bodies with Go's rules and messages."""
        fields = tuple(
            GoField(
                f.name, Kind.STRING if cls.go_types[f.name] == "string" else Kind.INT, cls.go_types[f.name]
            )
            for f in dataclasses.fields(cls)
        )
        return GoStruct(cls.go_name, f"toxics.{cls.go_name}", fields)

    def refusal(self) -> str | None:
        """Why these attributes are refused (the first attribute out of range), or None."""
        for name, value in self.attributes().items():
            bound = self.bounds.get(name)
            refusal = bound.refusal(name, value) if bound is not None and isinstance(value, int) else None
            if refusal is not None:
                return refusal
        return None

    def attributes(self) -> dict[str, int | str]:
        """The attributes in JSON order: integers, and the strings of the HTTP toxics."""
        return {
            f.name: value if isinstance(value := getattr(self, f.name), str) else int(value)
            for f in dataclasses.fields(self)
        }


async def noop(io: StubIO) -> None:
    """Pass everything through; what a link runs for a toxic whose toxicity draw missed."""
    while True:
        item = await io.recv()
        if item is Signal.INTERRUPTED:
            return
        if isinstance(item, Chunk):
            io.send(item)
        else:
            io.close()
            return


def latency_delay(latency: int, jitter: int, rng: random.Random) -> float:
    """Seconds to delay one chunk: ``latency`` ms plus a uniform integer jitter in [-jitter, jitter) ms."""
    delay = latency
    if jitter > 0:
        delay += rng.randrange(2 * jitter) - jitter
    return delay / 1000.0


@dataclass(frozen=True)
class LatencyToxic(Toxic):
    type_name: ClassVar[str] = "latency"
    go_name: ClassVar[str] = "LatencyToxic"
    go_types: ClassVar[dict[str, str]] = {"latency": "int64", "jitter": "int64"}
    bounds: ClassVar[dict[str, Bound]] = {"latency": MILLISECONDS, "jitter": MILLISECONDS}
    latency: int = 0
    jitter: int = 0

    async def pipe(self, io: StubIO) -> None:
        while True:
            item = await io.recv()
            if item is Signal.INTERRUPTED:
                return
            if not isinstance(item, Chunk):
                io.close()
                return
            due = item.timestamp + latency_delay(self.latency, self.jitter, io.rng)
            if not await io.sleep_until(due):
                io.send(item)  # interrupted: never drop data on the floor
                return
            # The new timestamp is when it left, so a second latency toxic adds its delay on top.
            io.send(Chunk(item.data, due))


@dataclass(frozen=True)
class BandwidthToxic(Toxic):
    type_name: ClassVar[str] = "bandwidth"
    go_name: ClassVar[str] = "BandwidthToxic"
    go_types: ClassVar[dict[str, str]] = {"rate": "int64"}
    bounds: ClassVar[dict[str, Bound]] = {"rate": KB_PER_SECOND}
    rate: int = 0  # KB/s, which is bytes per millisecond

    async def pipe(self, io: StubIO) -> None:
        free_at = io.now()  # when the throttled link is free to send again
        while True:
            item = await io.recv()
            if item is Signal.INTERRUPTED:
                return
            if not isinstance(item, Chunk):
                io.close()
                return
            if self.rate <= 0:
                io.send(item)
                continue
            # Idle time earns no credit, but the schedule is absolute, so timer lateness does not add up.
            free_at = max(free_at, item.timestamp)
            data = item.data
            for start, end, due in bandwidth_schedule(len(data), self.rate, free_at):
                if not await io.sleep_until(due):
                    io.send(Chunk(data[start:], item.timestamp))
                    return
                io.send(Chunk(data[start:end], item.timestamp))
                free_at = due


def bandwidth_schedule(length: int, rate: int, free_at: float) -> list[tuple[int, int, float]]:
    """Split ``length`` bytes into pieces of at most 100 ms at ``rate`` bytes/ms, each with its send time.

    Like Toxiproxy, a piece is released when the link has had time to carry it (``len / rate`` ms after the
    previous one), so a 100 KB/s link delivers 200 KB in 2 s.
    """
    piece = max(rate * 100, 1)
    schedule = []
    due = free_at
    for start in range(0, length, piece):
        end = min(start + piece, length)
        due += (end - start) / rate / 1000.0
        schedule.append((start, end, due))
    return schedule


@dataclass(frozen=True)
class SlowCloseToxic(Toxic):
    type_name: ClassVar[str] = "slow_close"
    go_name: ClassVar[str] = "SlowCloseToxic"
    go_types: ClassVar[dict[str, str]] = {"delay": "int64"}
    bounds: ClassVar[dict[str, Bound]] = {"delay": MILLISECONDS}
    delay: int = 0

    async def pipe(self, io: StubIO) -> None:
        while True:
            item = await io.recv()
            if item is Signal.INTERRUPTED:
                return
            if isinstance(item, Chunk):
                io.send(item)
                continue
            if not await io.sleep_until(io.now() + self.delay / 1000.0):
                io.unrecv(Signal.EOF)  # the restarted (or next) stage must still see the close
                return
            io.close()
            return


@dataclass(frozen=True)
class TimeoutToxic(Toxic):
    type_name: ClassVar[str] = "timeout"
    go_name: ClassVar[str] = "TimeoutToxic"
    go_types: ClassVar[dict[str, str]] = {"timeout": "int64"}
    bounds: ClassVar[dict[str, Bound]] = {"timeout": MILLISECONDS}
    closes_on_removal: ClassVar[bool] = True
    timeout: int = 0  # ms; 0 holds the data forever

    async def pipe(self, io: StubIO) -> None:
        while True:
            # As in Toxiproxy, the countdown starts again whenever data arrives (and is swallowed).
            until = io.now() + self.timeout / 1000.0 if self.timeout > 0 else None
            item = await io.recv(until)
            if item is Signal.INTERRUPTED:
                return
            if item is Signal.TIMEOUT or item is Signal.EOF:
                io.close()
                return


@dataclass(frozen=True)
class ResetPeerToxic(Toxic):
    type_name: ClassVar[str] = "reset_peer"
    go_name: ClassVar[str] = "ResetToxic"
    go_types: ClassVar[dict[str, str]] = {"timeout": "int64"}
    bounds: ClassVar[dict[str, Bound]] = {"timeout": MILLISECONDS}
    timeout: int = 0  # ms after the first data (or the close) before the RST

    async def pipe(self, io: StubIO) -> None:
        item = await io.recv()
        if item is Signal.INTERRUPTED:
            return
        if await io.sleep_until(io.now() + self.timeout / 1000.0):
            io.close(reset=True)


def slice_bounds(length: int, average: int, variation: int, rng: random.Random) -> list[tuple[int, int]]:
    """Toxiproxy's slicer split of ``length`` bytes: halve until pieces are about ``average`` bytes.

    Unlike Go, the split point is kept strictly inside the range, so odd attributes (negative sizes, a
    variation larger than half the piece) still terminate and cover every byte exactly once, in order.
    """
    bounds: list[tuple[int, int]] = []
    pending = [(0, length)]
    while pending:
        start, end = pending.pop()
        if (end - start) - average <= variation or end - start <= 1:
            if end > start:
                bounds.append((start, end))
            continue
        mid = start + (end - start) // 2
        if variation > 0:
            mid += rng.randrange(2 * variation) - variation
        mid = min(max(mid, start + 1), end - 1)
        pending.append((mid, end))
        pending.append((start, mid))
    return bounds


@dataclass(frozen=True)
class SlicerToxic(Toxic):
    type_name: ClassVar[str] = "slicer"
    go_name: ClassVar[str] = "SlicerToxic"
    go_types: ClassVar[dict[str, str]] = {"average_size": "int", "size_variation": "int", "delay": "int"}
    bounds: ClassVar[dict[str, Bound]] = {
        "average_size": BYTES,
        "size_variation": BYTES,
        "delay": MICROSECONDS,
    }
    average_size: int = 0
    size_variation: int = 0
    delay: int = 0  # microseconds between slices

    async def pipe(self, io: StubIO) -> None:
        while True:
            item = await io.recv()
            if item is Signal.INTERRUPTED:
                return
            if not isinstance(item, Chunk):
                io.close()
                return
            data = item.data
            for start, end in slice_bounds(len(data), self.average_size, self.size_variation, io.rng):
                io.send(Chunk(data[start:end], item.timestamp))
                if not await io.sleep_until(io.now() + self.delay / 1e6):
                    if end < len(data):
                        io.send(Chunk(data[end:], item.timestamp))
                    return


@dataclass(frozen=True)
class LimitDataToxic(Toxic):
    type_name: ClassVar[str] = "limit_data"
    go_name: ClassVar[str] = "LimitDataToxic"
    go_types: ClassVar[dict[str, str]] = {"bytes": "int64"}
    bounds: ClassVar[dict[str, Bound]] = {"bytes": BYTES}
    bytes: int = 0

    async def pipe(self, io: StubIO) -> None:
        while True:
            item = await io.recv()
            if item is Signal.INTERRUPTED:
                return
            if not isinstance(item, Chunk):
                io.close()
                return
            allowed = item.data[: max(self.bytes - io.state.transmitted, 0)]
            if allowed:
                io.send(Chunk(allowed, item.timestamp))
                io.state.transmitted += len(allowed)
            if self.bytes - io.state.transmitted <= 0:
                io.close()
                return


TOXICS: dict[str, type[Toxic]] = {
    kind.type_name: kind
    for kind in (
        LatencyToxic,
        BandwidthToxic,
        SlowCloseToxic,
        TimeoutToxic,
        ResetPeerToxic,
        SlicerToxic,
        LimitDataToxic,
    )
}
