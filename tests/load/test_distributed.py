"""Locust's own distribution: a master with two `harness load worker` processes on loopback, and every
Locust process ending with the run, also when the harness running it is killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs installed
import pytest

from harness.load import Distribution, run_load
from harness.stack import Stack
from tests._children import child_env

from .conftest import run

SHORT = """
title = "user reads for four seconds"
[target]
kind = "user_reads"
[load]
users = 2
duration = 4
rate_per_user = 2
"""

LONG = """
title = "user reads for five minutes"
[target]
kind = "user_reads"
[load]
users = 4
duration = 300
rate_per_user = 2
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_harness(*args: str, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "harness", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **child_env()},
        )


def load_run_with_two_workers(
    profile: Path, stack: Stack, report: Path, *, out: Path
) -> subprocess.Popen[bytes]:
    """`harness load run PROFILE --processes 2` on the level's stack, its output in ``out``."""
    attach = ("--attach", str(stack.workdir), "--report", str(report))
    return spawn_harness("load", "run", str(profile), *attach, "--processes", "2", out=out)


def locust_pids(marker: str) -> set[int]:
    """Live Locust processes whose command line names ``marker`` (the run's report folder)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if state != "Z" and "locust" in words and any(marker in w for w in words):
            found.add(int(entry.name))
    return found


def wait_until(condition: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.behaviour("load.distributed")
class TestMasterAndWorkers:
    def test_a_master_and_two_workers_on_loopback_share_the_load(self, stack: Stack, tmp_path: Path) -> None:
        """Two `harness load worker` processes connect; the master's run holds its thresholds with both, and
        the workers end with it."""
        port = free_port()
        workers = [
            spawn_harness(
                "load",
                "worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(port),
                out=tmp_path / f"worker-{n}.log",
            )
            for n in (1, 2)
        ]
        try:
            distribution = Distribution(master=True, expect_workers=2, port=port, workers_wait=30.0)
            outcome = run(
                "user-reads-distributed.toml", stack, tmp_path / "report", distribution=distribution
            )
            assert outcome.exit_code == 0, outcome.failed
            assert outcome.results.locust.workers == 2
            assert outcome.results.total.requests > 100
            for worker in workers:
                assert worker.wait(timeout=20) == 0
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        for n in (1, 2):
            print((tmp_path / f"worker-{n}.log").read_text())


@pytest.mark.behaviour("load.distributed")
class TestNoLocustOutlivesTheRun:
    def test_killing_the_harness_ends_locust_and_its_forked_workers(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        """`harness load run --processes 2` killed with SIGKILL early in a 5-minute load: its master and both
        workers exit within seconds, not when the load would have ended."""
        report = tmp_path / "killed"
        profile = tmp_path / "long.toml"
        profile.write_text(LONG)
        process = load_run_with_two_workers(profile, stack, report, out=tmp_path / "harness.log")
        try:
            assert wait_until(lambda: len(locust_pids(str(report))) >= 3, within=30.0), (
                tmp_path / "harness.log"
            ).read_text()
            print(f"locust processes before the kill: {sorted(locust_pids(str(report)))}")
            process.send_signal(signal.SIGKILL)
            process.wait()
            assert wait_until(lambda: not locust_pids(str(report)), within=15.0), sorted(
                locust_pids(str(report))
            )
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for pid in locust_pids(str(report)):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.behaviour("load.distributed")
class TestForkedWorkersStayOnLoopback:
    def test_two_runs_at_once_each_get_a_master_port_on_loopback(self, stack: Stack, tmp_path: Path) -> None:
        """Two `harness load run --processes 2` at the same time both finish (Locust's master no longer takes
        a fixed port, so the second does not collide), and each master listens on 127.0.0.1 only."""
        profile = tmp_path / "short.toml"
        profile.write_text(SHORT)
        reports = [tmp_path / f"run-{n}" for n in (1, 2)]
        runs = [
            load_run_with_two_workers(profile, stack, report, out=tmp_path / f"run-{n}.log")
            for n, report in enumerate(reports, start=1)
        ]
        listening: dict[int, set[tuple[str, int]]] = {}
        try:
            while any(run.poll() is None for run in runs) and len(listening) < 2:
                for n, report in enumerate(reports):
                    for pid in locust_pids(str(report)):
                        addresses = _listening(pid)
                        if addresses:
                            listening[n] = addresses
                time.sleep(0.1)
            codes = [run.wait(timeout=90) for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait()
        for n in (1, 2):
            print(f"run {n}:", (tmp_path / f"run-{n}.log").read_text())
        print(f"masters listening on: {listening}")
        assert codes == [0, 0]
        assert len(listening) == 2, "each run's Locust master was seen listening"
        hosts = {host for addresses in listening.values() for host, _port in addresses}
        assert hosts == {"127.0.0.1"}
        assert listening[0].isdisjoint(listening[1])

    def test_a_master_port_taken_before_locust_binds_it_is_replaced(
        self, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The port the OS offered is taken by another listener before Locust binds it: Locust is started
        again on another port, the run finishes, and its log says why it started twice."""
        from harness.load import _locust

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            offers = iter([int(taken.getsockname()[1])])
            monkeypatch.setattr(_locust, "free_port", lambda: next(offers, None) or free_port())
            profile = tmp_path / "short.toml"
            profile.write_text(SHORT)
            outcome = run_load(
                profile,
                report_dir=tmp_path / "report",
                stack=stack,
                distribution=Distribution(processes=2),
                progress=print,
            )
        log = (tmp_path / "report" / "locust.log").read_text()
        print(log[-2000:])
        assert outcome.exit_code == 0, outcome.failed
        assert "was taken before Locust bound it; starting Locust again on another (attempt 2 of 3)" in log


def _listening(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses process ``pid`` listens on (none if it has gone)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return set()
    return {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
