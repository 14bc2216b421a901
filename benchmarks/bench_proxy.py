"""Benchmark: the embedded Toxiproxy server with no toxic against a direct connection, in one run.

The upstream (a keep-alive HTTP responder and a bulk sender) and the proxy (``harness toxiproxy``) each run
in their own process; load comes from ``wrk`` when it is installed, else from a Python load process.
Figures: keep-alive requests/s with p50/p99, new-connection latency, MB/s of a bulk transfer, and the CPU
seconds the proxy process used. No assertion: the ratios are what docs/toxiproxy.md records.

    python -m benchmarks.bench_proxy [--rounds 3] [--duration 5] [--connections 16] [--bulk-mib 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from harness.faults import ToxiproxyClient, ToxiproxyProcess

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
CHUNK = 1 << 20
T = TypeVar("T")


# -- the upstream process ----------------------------------------------------------------------------------
class _Responder(asyncio.Protocol):
    """Answers every request head with a 5-byte response; pipelined requests included."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        count = self.pending.count(b"\r\n\r\n")
        if count:
            self.pending = self.pending[self.pending.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)


async def _bulk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads ``<bytes>\\n`` and sends that many bytes, then closes."""
    remaining = int(await reader.readline())
    block = b"x" * CHUNK
    while remaining > 0:
        writer.write(block[: min(remaining, CHUNK)])
        remaining -= min(remaining, CHUNK)
        await writer.drain()
    writer.close()


async def _serve_upstream(port_file: Path) -> None:
    loop = asyncio.get_running_loop()
    http = await loop.create_server(_Responder, "127.0.0.1", 0, backlog=4096)
    bulk = await asyncio.start_server(_bulk, "127.0.0.1", 0)
    ports = f"{http.sockets[0].getsockname()[1]} {bulk.sockets[0].getsockname()[1]}"
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(ports)
    os.replace(tmp, port_file)
    await asyncio.Event().wait()


@contextmanager
def upstream_process(workdir: Path) -> Iterator[tuple[int, int]]:
    port_file = workdir / "upstream.ports"
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_proxy", "--serve-upstream", str(port_file)]
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the upstream process did not start")
            time.sleep(0.02)
        http_port, bulk_port = (int(p) for p in port_file.read_text().split())
        yield http_port, bulk_port
    finally:
        process.terminate()
        process.wait(10)


# -- measurements ------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class KeepAlive:
    rps: float
    p50_ms: float
    p99_ms: float


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def keepalive_wrk(port: int, duration: float, connections: int) -> KeepAlive:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        f"http://127.0.0.1:{port}/",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    if p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    if rps_match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return KeepAlive(float(rps_match.group(1)), _ms(*p50.groups()), _ms(*p99.groups()))


def _python_load(port: int, duration: float, connections: int, out: Path) -> None:
    """The load process when wrk is missing: one connection per thread, one request at a time."""
    import threading

    latencies: list[float] = []
    stop = time.monotonic() + duration

    def worker() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while time.monotonic() < stop:
                began = time.perf_counter()
                sock.sendall(REQUEST)
                received = 0
                while received < len(RESPONSE):
                    received += len(sock.recv(65536))
                latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)
    p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
    out.write_text(f"{len(latencies) / elapsed} {p50 * 1000} {p99 * 1000}")


def keepalive_python(port: int, duration: float, connections: int, workdir: Path) -> KeepAlive:
    out = workdir / f"load-{port}.txt"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_proxy",
            "--load",
            str(port),
            str(duration),
            str(connections),
            str(out),
        ],
        check=True,
    )
    rps, p50, p99 = (float(x) for x in out.read_text().split())
    return KeepAlive(rps, p50, p99)


def new_connection_latency(port: int, count: int) -> tuple[float, float]:
    """p50 and p99 ms of connect + one request + response + close."""
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(REQUEST)
            received = 0
            while received < len(RESPONSE):
                received += len(sock.recv(65536))
        latencies.append(time.perf_counter() - began)
    ordered = sorted(latencies)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000


def bulk_mb_per_s(port: int, size: int) -> float:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        began = time.perf_counter()
        sock.sendall(f"{size}\n".encode())
        received = 0
        while received < size:
            got = sock.recv_into(view)
            if not got:
                raise RuntimeError(f"bulk transfer ended after {received} of {size} bytes")
            received += got
        return size / (time.perf_counter() - began) / 1e6


# -- the run -----------------------------------------------------------------------------------------------
def measured(pid: int, action: Callable[[], T]) -> tuple[T, float]:
    """The action's result and the CPU seconds process ``pid`` spent meanwhile."""
    before = cpu_seconds(pid)
    result = action()
    return result, cpu_seconds(pid) - before


def run(args: argparse.Namespace, workdir: Path) -> list[tuple[str, str, str, str]]:
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    load = "wrk" if use_wrk else "python load process"

    def keepalive(port: int) -> KeepAlive:
        if use_wrk:
            return keepalive_wrk(port, args.duration, args.connections)
        return keepalive_python(port, args.duration, args.connections, workdir)

    with upstream_process(workdir) as (http_port, bulk_port), ToxiproxyProcess(workdir=workdir) as server:
        assert server.pid is not None
        pid = server.pid
        with ToxiproxyClient(server.url) as client:
            http_proxy = client.create_proxy("bench_http", f"127.0.0.1:{http_port}").port
            bulk_proxy = client.create_proxy("bench_bulk", f"127.0.0.1:{bulk_port}").port
        keepalive(http_port), keepalive(http_proxy)  # warm-up: page cache, socket buffers, allocator
        # Rounds alternate direct and proxied, so load from elsewhere on the machine hits both alike.
        direct_ka, proxied_ka, ka_cpu = [], [], 0.0
        for _ in range(args.rounds):
            direct_ka.append(keepalive(http_port))
            result, cpu = measured(pid, lambda: keepalive(http_proxy))
            proxied_ka.append(result)
            ka_cpu += cpu
        d50, d99 = new_connection_latency(http_port, args.connects)
        (p50, p99), conn_cpu = measured(pid, lambda: new_connection_latency(http_proxy, args.connects))
        size = args.bulk_mib << 20
        direct_mb, proxied_mb, bulk_cpu = [], [], 0.0
        for _ in range(args.rounds):
            direct_mb.append(bulk_mb_per_s(bulk_port, size))
            mb, cpu = measured(pid, lambda: bulk_mb_per_s(bulk_proxy, size))
            proxied_mb.append(mb)
            bulk_cpu += cpu
    direct, proxied = _median_run(direct_ka), _median_run(proxied_ka)
    direct_bulk, proxied_bulk = statistics.median(direct_mb), statistics.median(proxied_mb)
    rounds = f"median of {args.rounds} x {args.duration:g}s"
    ka = f"keep-alive requests/s ({load}, {args.connections} connections, {rounds})"
    return [
        (ka, f"{direct.rps:,.0f}", f"{proxied.rps:,.0f}", f"{proxied.rps / direct.rps:.2f}x"),
        (
            "keep-alive p50 / p99 ms (median run)",
            f"{direct.p50_ms:.2f} / {direct.p99_ms:.2f}",
            f"{proxied.p50_ms:.2f} / {proxied.p99_ms:.2f}",
            "",
        ),
        (
            f"new connection + 1 request, p50 / p99 ms ({args.connects} connections)",
            f"{d50:.3f} / {d99:.3f}",
            f"{p50:.3f} / {p99:.3f}",
            f"+{p50 - d50:.3f} ms",
        ),
        (
            f"bulk MB/s ({args.bulk_mib} MiB, median of {args.rounds})",
            f"{direct_bulk:,.0f}",
            f"{proxied_bulk:,.0f}",
            f"{proxied_bulk / direct_bulk:.2f}x",
        ),
        (
            "proxy CPU s (all keep-alive runs / connects / all bulk runs)",
            "",
            f"{ka_cpu:.2f} / {conn_cpu:.2f} / {bulk_cpu:.2f}",
            "",
        ),
    ]


def _median_run(runs: list[KeepAlive]) -> KeepAlive:
    return sorted(runs, key=lambda run: run.rps)[len(runs) // 2]


def report(rows: list[tuple[str, str, str, str]]) -> None:
    python = sys.version.split()[0]
    print(f"\nembedded Toxiproxy, no toxic, vs direct ({os.cpu_count()} cores, Python {python})\n")
    print("| measure | direct | through proxy | ratio |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/proxied rounds")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of keep-alive load per round")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--connects", type=int, default=500, help="new connections for the connect latency")
    parser.add_argument("--bulk-mib", type=int, default=1024, help="MiB of the bulk transfer")
    parser.add_argument(
        "--python-load", action="store_true", help="use the Python load process even with wrk"
    )
    parser.add_argument("--serve-upstream", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        import uvloop

        uvloop.run(_serve_upstream(args.serve_upstream))
    elif args.load:
        port, duration, connections, out = args.load
        _python_load(int(port), float(duration), int(connections), Path(out))
    else:
        # SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C, so the child processes are stopped.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
        with tempfile.TemporaryDirectory(prefix="bench-proxy-") as workdir:
            report(run(args, Path(workdir)))


if __name__ == "__main__":
    main()
