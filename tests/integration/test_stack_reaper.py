"""Nothing the stack started outlives it, by any route: a normal stop takes a service's forked workers and
grandchildren down and continues a frozen one; SIGKILL of the harness leaves the stack's reaper to end every
process group, frozen or deaf to SIGTERM; and when the reaper died too, the next command on the workdir ends
what is left (identity checked: a recycled pid is never killed) and says so in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # Locust's dependency; no stubs installed
import pytest

from harness.stack import OwnServiceTopology, Stack, Topology
from harness.stack._custody import end_abandoned
from harness.stack._state import PROCESSES_FILE, GroupRecord, StackProcesses
from harness.stack._topology import SERVICE_KINDS, RegistryTopology, ServiceTopology
from tests._children import reap, reaped

SERVICE = Path(__file__).with_name("_forking_service.py")
FAST = RegistryTopology(ttl=1.0, check_interval=0.2, check_timeout=0.3, check_failures=2)
NO_REFERENCE = {kind: ServiceTopology(instances=0) for kind in SERVICE_KINDS}
GONE_WITHIN = 15.0  # the reaper's grace (3 s) for a service deaf to SIGTERM, and a busy machine's slack


def own_topology(pids: Path, *flags: str, proxies: bool = True) -> Topology:
    """The registry and one instance of the forking service, with ``flags``."""
    command = ["{python}", str(SERVICE), "--port", "{port}", "--pids", str(pids), *flags]
    return Topology(registry=FAST, proxies=proxies, startup_timeout=60.0,
                    services={**NO_REFERENCE, "forker": OwnServiceTopology(command=command)})  # fmt: skip


def topology_file(path: Path, pids: Path, *flags: str, users: int = 0) -> Path:
    """The same as a TOML file for the CLI (``users`` reference instances beside it)."""
    command = ", ".join(json.dumps(part) for part in ["{python}", str(SERVICE), "--port", "{port}",
                                                       "--pids", str(pids), *flags])  # fmt: skip
    path.write_text(
        "[registry]\nttl = 1.0\ncheck_interval = 0.2\ncheck_timeout = 0.3\ncheck_failures = 2\n"
        f"[services.users]\ninstances = {users}\nheartbeat_interval = 0.3\n"
        "[services.notifications]\ninstances = 0\n[services.orchestrator]\ninstances = 0\n"
        f"[services.forker]\ncommand = [{command}]\n"
    )
    return path


def recorded(pids: Path, count: int, *, within: float = 30.0) -> dict[str, psutil.Process]:
    """The processes the forking service recorded, by role, once ``count`` of them have."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        lines = pids.read_text().splitlines() if pids.exists() else []
        if len(lines) >= count:
            return {role: psutil.Process(int(pid)) for role, pid in (line.split() for line in lines)}
        time.sleep(0.05)
    raise AssertionError(f"the service recorded {pids.read_text() if pids.exists() else 'nothing'}")


def of_state(workdir: Path) -> dict[str, psutil.Process]:
    """Every process the state file lists, by name."""
    state = json.loads((workdir / "stack.json").read_text())
    return {item["name"]: psutil.Process(item["pid"]) for item in state["instances"] if item["pid"]}


def alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running()) and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def all_gone(processes: dict[str, psutil.Process], *, within: float = GONE_WITHIN) -> float:
    """Seconds until none of ``processes`` runs; an AssertionError naming the survivors after ``within``."""
    began = time.monotonic()
    while any(alive(p) for p in processes.values()):
        if time.monotonic() - began > within:
            left = {name: p.pid for name, p in processes.items() if alive(p)}
            for process in processes.values():  # not left to the session: named here, then ended
                if alive(process):
                    process.kill()
            raise AssertionError(f"still running {within:g}s on: {left}")
        time.sleep(0.05)
    return time.monotonic() - began


def wait_for_file(
    path: Path, process: subprocess.Popen[bytes], *, text: str = "", within: float = 90.0
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} (with {text!r}) did not appear within {within:g}s (exit {process.poll()})")


def harness_up(workdir: Path, topology: Path, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "harness", "up", "--workdir", str(workdir), "--topology", str(topology)],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)  # fmt: skip


@pytest.mark.behaviour("harness.up", "harness.own_services")
class TestANormalStop:
    @pytest.mark.parametrize("flags", [("--fork",), ("--fork", "--escape")], ids=["in-group", "escaped"])
    def test_a_forking_service_leaves_no_worker_or_grandchild(
        self, tmp_path: Path, flags: tuple[str, ...]
    ) -> None:
        """The service's worker holds its port, the grandchild only lives (or left for a session of its
        own): a stop ends all three, not only the process the stack started."""
        pids = tmp_path / "forker.pids"
        with Stack(own_topology(pids, *flags), tmp_path / "run") as stack:
            processes = recorded(pids, 3)
            assert set(processes) == {"service", "worker", "grandchild"}
        assert all_gone(processes, within=2.0) < 2.0
        assert not stack.processes["forker-1"].is_running()

    def test_a_frozen_service_is_continued_and_stopped(self, tmp_path: Path) -> None:
        """SIGSTOP on the whole group (service, worker, grandchild): the stop continues and ends each."""
        pids = tmp_path / "forker.pids"
        with Stack(own_topology(pids, "--fork"), tmp_path / "run") as stack:
            processes = recorded(pids, 3)
            pid = stack.processes["forker-1"].pid
            assert pid is not None
            os.killpg(pid, signal.SIGSTOP)
        all_gone(processes, within=10.0)


@pytest.mark.behaviour("harness.up")
class TestAKilledHarness:
    def test_a_service_deaf_to_sigterm_ends_when_harness_up_is_sigkilled(self, tmp_path: Path) -> None:
        """SIGKILL of `harness up`: the service, its worker and grandchild ignore SIGTERM; all end anyway."""
        pids = tmp_path / "forker.pids"
        workdir = tmp_path / "run"
        topology = topology_file(tmp_path / "topology.toml", pids, "--fork", "--ignore-term")
        with reaped(harness_up(workdir, topology, tmp_path / "up.out")) as up:
            wait_for_file(workdir / "stack.json", up)
            processes = {**recorded(pids, 3), **of_state(workdir)}
            up.kill()
            up.wait()
        took = all_gone(processes)
        print(f"\nall {len(processes)} processes gone {took:.2f}s after SIGKILL of harness up")

    def test_a_frozen_instance_ends_when_chaos_run_is_sigkilled(self, tmp_path: Path) -> None:
        """SIGKILL of `harness chaos run` while it holds users-2 frozen (SIGSTOP) on its own stack: every
        process ends; `harness chaos cleanup` on that workdir then says the stack is gone, exit 0."""
        topology = topology_file(tmp_path / "topology.toml", tmp_path / "forker.pids", users=2)
        experiment = tmp_path / "freeze.json"
        experiment.write_text(json.dumps(FREEZE))
        report = tmp_path / "report"
        out = tmp_path / "run.out"
        with out.open("wb") as sink:
            run = subprocess.Popen(
                [sys.executable, "-m", "harness", "chaos", "run", str(experiment),
                 "--topology", str(topology), "--report", str(report)],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
            )  # fmt: skip
        with reaped(run):
            wait_for_file(out, run, text="fault on: ")
            processes = of_state(report / "stack")
            assert processes["users-2"].status() == psutil.STATUS_STOPPED
            run.kill()
            run.wait()
        took = all_gone(processes)
        print(f"\nall {len(processes)} processes gone {took:.2f}s after SIGKILL of harness chaos run")
        cleaned = harness("chaos", "cleanup", "--workdir", str(report / "stack"))
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        assert "gone" in cleaned.stdout
        again = harness("chaos", "cleanup", "--workdir", str(report / "stack"))
        assert (again.returncode, again.stdout.strip()) == (0, "nothing to clean up"), again.stderr


FREEZE = {
    "title": "users-2 frozen, then a long pause (for SIGKILL of the run)",
    "description": "The reaper test kills this run while users-2 is stopped.",
    "controls": [{"name": "harness", "provider": {"type": "python", "module": "harness.chaos.control"}}],
    "steady-state-hypothesis": {
        "title": "users-2 is listed",
        "probes": [{"type": "probe", "name": "users-2 is listed", "tolerance": True,
                    "provider": {"type": "python", "module": "harness.chaos.probes", "func": "registry_lists",
                                 "arguments": {"service": "users", "instance": "users-2"}}}],
    },
    "method": [{"type": "action", "name": "freeze users-2", "pauses": {"after": 120},
                "provider": {"type": "python", "module": "harness.chaos.actions", "func": "stop_instance",
                             "arguments": {"instance": "users-2"}}}],
}  # fmt: skip


@pytest.fixture
def dead_run(tmp_path: Path) -> Iterator[tuple[Path, dict[str, psutil.Process]]]:
    """A `harness up` SIGKILLed with its reaper: its forking service, deaf to SIGTERM, is left running.
    Yields the workdir and what was left."""
    pids = tmp_path / "forker.pids"
    workdir = tmp_path / "run"
    topology = topology_file(tmp_path / "topology.toml", pids, "--fork", "--ignore-term")
    with reaped(harness_up(workdir, topology, tmp_path / "up.out")) as up:
        wait_for_file(workdir / "stack.json", up)
        left = {**recorded(pids, 3), "service-of-state": of_state(workdir)["forker-1"]}
        reaper = json.loads((workdir / PROCESSES_FILE).read_text())["reaper_pid"]
        os.kill(reaper, signal.SIGKILL)
        up.kill()
        up.wait()
    time.sleep(1.0)  # what the death signal (SIGTERM, ignored) would have ended has ended by now
    assert all(alive(p) for p in left.values()), "nothing was left: the case is not reproduced"
    try:
        yield workdir, left
    finally:
        for process in left.values():
            if alive(process):
                process.kill()


@pytest.mark.behaviour("harness.up")
class TestTheNextCommand:
    def test_harness_up_ends_what_a_dead_run_left_and_says_so(
        self, tmp_path: Path, dead_run: tuple[Path, dict[str, psutil.Process]]
    ) -> None:
        workdir, left = dead_run
        up = harness("up", "--workdir", str(workdir), "--topology", str(tmp_path / "topology.toml"),
                     "--for", "0")  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        said = [line for line in up.stdout.splitlines() if "ended" in line and "dead harness" in line]
        assert len(said) == 1, up.stdout
        all_gone(left, within=1.0)

    def test_chaos_cleanup_ends_what_a_dead_run_left_and_says_so(
        self, dead_run: tuple[Path, dict[str, psutil.Process]]
    ) -> None:
        workdir, left = dead_run
        cleaned = harness("chaos", "cleanup", "--workdir", str(workdir))
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        assert "ended" in cleaned.stdout, cleaned.stdout
        assert "dead harness" in cleaned.stdout, cleaned.stdout
        all_gone(left, within=1.0)

    def test_a_recycled_pid_is_never_killed(self, tmp_path: Path) -> None:
        """The file names a live process of someone else's (a pid recycled since): it is left alone."""
        stranger = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
        with reaped(stranger):
            dead = subprocess.Popen(["true"])
            dead.wait()
            StackProcesses(harness_pid=dead.pid, harness_started=1, token="t" * 16, reaper_pid=dead.pid,
                           reaper_started=1, groups=[GroupRecord(name="users-1", pgid=stranger.pid,
                                                                 started=1)]).write(tmp_path)  # fmt: skip
            (tmp_path / "stack.json").write_text("{}")
            ended = end_abandoned(tmp_path)
            assert ended is not None
            assert ended.processes == 0
            assert stranger.poll() is None
            assert not (tmp_path / PROCESSES_FILE).exists()
        assert reap(stranger) == -signal.SIGKILL
