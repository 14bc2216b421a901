"""Benchmark: the most requests per second Locust can offer from one process (FastHttpUser, no wait between
requests) against the echo service on this machine, and from two (``--processes 2``).

Each round is a real ``harness load run`` of a profile aimed at an echo instance's URL (thresholds only,
no stack). Next to the rate it prints the CPU each side used (cores: CPU seconds per wall second, from
/proc), so it says which side was the limit: a Locust process near one core is at its capacity; an echo
instance near one core means the figure is the service's, and Locust could offer more.

    python -m benchmarks.bench_locust [--users 32] [--duration 10] [--processes 1 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from pathlib import Path

from harness.load import Distribution, run_load
from harness.stack import ProcessSpec, ServiceProcess

PROFILE = """
title = "echo at full speed"
[target]
kind = "http"
url = "{url}"
path = "/echo?msg=x"
[load]
users = {users}
spawn_rate = {users}
duration = {duration}
"""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of one process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def locust_pids(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "locust" in argv and marker in argv:
                found.append(int(entry.name))
    return found


class CpuWatch:
    """Samples the CPU seconds of the run's Locust processes and of the echo instance every 0.2 s."""

    def __init__(self, marker: str, echo_pid: int) -> None:
        self.marker, self.echo_pid = marker, echo_pid
        self.locust: dict[int, float] = {}
        self.echo_start = cpu_seconds(echo_pid)
        self.echo_end = self.echo_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> CpuWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for pid in locust_pids(self.marker):
                self.locust[pid] = max(self.locust.get(pid, 0.0), cpu_seconds(pid))
            self.echo_end = cpu_seconds(self.echo_pid)


def measure(echo: ServiceProcess, processes: int, users: int, duration: float, folder: Path) -> str:
    report = folder / f"processes-{processes}"
    profile = folder / f"echo-{processes}.toml"
    profile.write_text(PROFILE.format(url=echo.url, users=users, duration=duration))
    assert echo.pid is not None
    with CpuWatch(str(report), echo.pid) as watch:
        outcome = run_load(profile, report_dir=report, distribution=Distribution(processes=processes))
    total = outcome.results.total
    seconds = total.seconds or duration
    locust_cores = sum(watch.locust.values()) / seconds
    echo_cores = (watch.echo_end - watch.echo_start) / seconds
    return (
        f"processes {processes}: {total.rate:7.0f} req/s offered and answered ({total.requests} requests, "
        f"{total.failures} failed), p50 {total.percentile(0.5):g} ms, p95 {total.percentile(0.95):g} ms; "
        f"CPU: Locust {locust_cores:.2f} cores over {len(watch.locust)} process(es), "
        f"echo {echo_cores:.2f} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-locust-") as scratch,
        ServiceProcess(ProcessSpec("bench-echo", "echo"), workdir=Path(scratch) / "echo") as echo,
    ):
        print(
            f"echo instance {echo.url} (pid {echo.pid}); {args.users} users, no wait, "
            f"{args.duration:g} s per round"
        )
        for processes in args.processes:
            print(measure(echo, processes, args.users, args.duration, Path(scratch)), flush=True)


if __name__ == "__main__":
    main()
