"""Benchmark: does abuse of the fault proxy's HTTP API stall the traffic it proxies?

The proxy (``harness toxiproxy``), a keep-alive HTTP upstream and one proxied stream each run in their own
process. The stream sends one request at a time over one keep-alive connection and records when each
response arrives. After a quiet period, this process sends a burst of large (15 MiB, with a length and
chunked), deeply nested (5,000 levels) and costly malformed (1 MiB) bodies to the API from several
connections at once. Figures: the largest and the p99 gap between responses before and during the burst,
next to the target (largest gap during the burst < 50 ms).

With ``--hog`` the same measurement runs twice, first on the machine as it is, then with ``stress-ng``
spinning on one core (a busy CI runner), and both figures are printed next to the target.

    python -m benchmarks.bench_api_stall [--quiet 3] [--rounds 5] [--concurrency 4] [--hog]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.bench_proxy import REQUEST, RESPONSE, upstream_process
from harness.faults import ToxiproxyClient, ToxiproxyProcess

TARGET_MS = 50.0
MIB = 1 << 20
HOG = "stress-ng"


# -- the stream process ------------------------------------------------------------------------------------
def _stream(port: int, ready: Path, out: Path) -> None:
    """Request after request over one proxied keep-alive connection until SIGTERM; then write the times."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    answers: list[float] = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not stopping.is_set():
            sock.sendall(REQUEST)
            received = 0
            while received < len(RESPONSE):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the proxied stream was closed")
                received += len(chunk)
            answers.append(time.monotonic())
            if len(answers) == 1:
                ready.write_text("ready")
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(repr(t) for t in answers))
    os.replace(tmp, out)


@contextmanager
def stream_process(port: int, workdir: Path) -> Iterator[Path]:
    """The stream in its own process; yields the file its response times are in once it has stopped."""
    ready, out = workdir / "stream.ready", workdir / "stream.times"
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_api_stall",
        "--stream",
        str(port),
        str(ready),
        str(out),
    ]
    process = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the stream process did not start")
            time.sleep(0.02)
        yield out
    finally:
        process.terminate()
        process.wait(20)


# -- the hog -----------------------------------------------------------------------------------------------
@contextmanager
def cpu_hog(limit: float) -> Iterator[None]:
    """stress-ng spinning on one core while the block runs, stopped with its worker however the block ends;
    ``limit`` seconds is its own timeout, in case this process is killed before it can stop it."""
    process = subprocess.Popen(
        [HOG, "--cpu", "1", "--timeout", f"{limit:.0f}s", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the worker it forks is stopped with it
    )
    try:
        time.sleep(1.0)  # the worker is spinning before the measurement starts
        if process.poll() is not None:
            raise RuntimeError(f"{HOG} exited at once with status {process.returncode}")
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # not yet waited for, so the group id is still ours
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- the burst ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Abuse:
    """One kind of bad request: where it goes, its body, and the status the proxy should answer."""

    name: str
    path: str
    body: bytes
    chunked: bool
    expected: int


def abuses(proxy: str) -> list[Abuse]:
    huge = b'{"name":"huge","upstream":"127.0.0.1:1","pad":"' + b"x" * (15 * MIB) + b'"}'
    costly = b"[" + b"0," * (MIB // 2 - 1)  # scanned to the end, then "unexpected EOF"
    entries = b'{"name":"p","upstream":"127.0.0.1:1","listen":"127.0.0.1:0"},'
    populate = b"[" + entries * ((MIB - 2) // len(entries)) + b"{"  # truncated after thousands of entries
    long_name = b'{"name":"' + b"n" * (MIB - 64) + b'","upstream":"127.0.0.1:1"}'
    return [
        Abuse("15 MiB body", "/proxies", huge, chunked=False, expected=413),
        Abuse("15 MiB chunked body", "/populate", huge, chunked=True, expected=413),
        Abuse("5,000 nested arrays", "/proxies", b"[" * 5000, chunked=False, expected=400),
        Abuse(
            "5,000 nested objects", f"/proxies/{proxy}/toxics", b'{"a":' * 5000, chunked=False, expected=400
        ),
        Abuse("1 MiB unterminated array", "/proxies", costly, chunked=False, expected=400),
        Abuse("1 MiB truncated populate", "/populate", populate, chunked=False, expected=400),
        Abuse("1 MiB proxy name", "/proxies", long_name, chunked=False, expected=400),
        Abuse("1 MiB of invalid UTF-8", "/proxies", b"\xff" * (MIB - 1), chunked=False, expected=400),
    ]


def send(api: httpx.Client, abuse: Abuse) -> int:
    if abuse.chunked:
        chunks = iter([abuse.body[i : i + MIB] for i in range(0, len(abuse.body), MIB)])
        return api.post(abuse.path, content=chunks).status_code
    return api.post(abuse.path, content=abuse.body).status_code


def burst(url: str, kinds: list[Abuse], rounds: int, concurrency: int) -> collections.Counter[str]:
    """Every kind of abuse ``rounds`` times, from ``concurrency`` connections at once; counts outcomes.

    One client for the whole burst: a client per request spent 25 ms of CPU building its SSL context, a
    second of CPU per burst taken from the cores the proxy and its traffic share, unrelated to the proxy.
    """
    outcomes: collections.Counter[str] = collections.Counter()
    api = httpx.Client(base_url=url, timeout=120.0, trust_env=False)
    with api, ThreadPoolExecutor(max_workers=concurrency) as pool:
        work = [(kind, pool.submit(send, api, kind)) for _ in range(rounds) for kind in kinds]
        for kind, future in work:
            status = future.result()
            outcomes[
                f"{status}" if status == kind.expected else f"{kind.name}: {status}, not {kind.expected}"
            ] += 1
    return outcomes


# -- figures -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gaps:
    responses: int
    largest_ms: float
    p99_ms: float

    @classmethod
    def between(cls, answers: list[float], start: float, end: float) -> Gaps:
        """Gaps between consecutive responses in [start, end], the window's edges included."""
        times = [start, *(t for t in answers if start < t < end), end]
        gaps = sorted((later - earlier) * 1000 for earlier, later in itertools.pairwise(times))
        return cls(len(times) - 2, gaps[-1], gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))])


def run(args: argparse.Namespace, workdir: Path) -> tuple[Gaps, Gaps, float, collections.Counter[str]]:
    with upstream_process(workdir) as (http_port, _), ToxiproxyProcess(workdir=workdir) as server:
        with ToxiproxyClient(server.url) as client:
            proxy = client.create_proxy("stall_stream", f"127.0.0.1:{http_port}")
        kinds = abuses(proxy.name)
        with stream_process(proxy.port, workdir) as times_file:
            quiet_began = time.monotonic()
            time.sleep(args.quiet)  # the quiet window the burst is compared with
            burst_began = time.monotonic()
            outcomes = burst(server.url, kinds, args.rounds, args.concurrency)
            burst_ended = time.monotonic()
        answers = [float(line) for line in times_file.read_text().split()]
    before = Gaps.between(answers, quiet_began, burst_began)
    during = Gaps.between(answers, burst_began, burst_ended)
    return before, during, burst_ended - burst_began, outcomes


@dataclass(frozen=True)
class Measurement:
    """One run of the benchmark: the gaps before and during the burst, and what the machine was doing."""

    condition: str  # "quiet" or "one core hogged"
    before: Gaps
    during: Gaps
    seconds: float
    outcomes: collections.Counter[str]
    load: float  # the 1-minute load average when the run began

    @property
    def verdict(self) -> str:
        return "met" if self.during.largest_ms < TARGET_MS else "MISSED"


def measure(args: argparse.Namespace, condition: str) -> Measurement:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-api-stall-") as workdir:
        before, during, seconds, outcomes = run(args, Path(workdir))
    return Measurement(condition, before, during, seconds, outcomes, load)


def report(measurement: Measurement, args: argparse.Namespace) -> None:
    before, during = measurement.before, measurement.during
    requests = sum(measurement.outcomes.values())
    kinds = f"{args.rounds} x 8 kinds, {args.concurrency} at a time"
    answers = dict(sorted(measurement.outcomes.items()))
    print(f"\n{measurement.condition} (load average {measurement.load:.2f} when it began)")
    print(f"burst: {requests} API requests ({kinds}) in {measurement.seconds:.1f} s; answers {answers}\n")
    print("| measure | before the burst | during the burst | target |")
    print("| --- | --- | --- | --- |")
    print(f"| stream responses | {before.responses:,} | {during.responses:,} |  |")
    print(f"| largest gap ms | {before.largest_ms:.1f} | {during.largest_ms:.1f} | < {TARGET_MS:.0f} |")
    print(f"| p99 gap ms | {before.p99_ms:.2f} | {during.p99_ms:.2f} |  |")


def summary(measurements: list[Measurement]) -> None:
    figures = ", ".join(f"{m.condition} {m.during.largest_ms:.1f} ms ({m.verdict})" for m in measurements)
    print(f"\nlargest gap during the burst (target < {TARGET_MS:.0f} ms): {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds of stream before the burst")
    parser.add_argument("--rounds", type=int, default=5, help="times each kind of bad request is sent")
    parser.add_argument("--concurrency", type=int, default=4, help="API connections sending at once")
    parser.add_argument(
        "--hog", action="store_true", help=f"measure again with {HOG} spinning on one core (Debian's {HOG})"
    )
    parser.add_argument("--stream", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream:
        port, ready, out = args.stream
        _stream(int(port), Path(ready), Path(out))
        return
    if args.hog and shutil.which(HOG) is None:
        sys.exit(f"bench_api_stall: --hog needs {HOG} on PATH (Debian: apt-get install {HOG})")
    # SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C, so the child processes are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    python = sys.version.split()[0]
    print(f"embedded Toxiproxy, one proxied keep-alive stream ({os.cpu_count()} cores, Python {python})")
    measurements = [measure(args, "quiet")]
    report(measurements[0], args)
    if args.hog:
        with cpu_hog(limit=args.quiet + 300):
            measurements.append(measure(args, "one core hogged"))
        report(measurements[1], args)
    summary(measurements)


if __name__ == "__main__":
    main()
