"""`harness chaos` and Chaos Toolkit's own `chaos` CLI as a user runs them: files, exit codes, cleanup after
an interrupt, a time limit or a crash, a stack left as it was found."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests._children import reap

from ._run import FAST_TOPOLOGY, harness

ROOT = Path(__file__).parents[2]
EXPERIMENTS = Path(__file__).parent / "experiments"


@pytest.fixture
def fast_topology(tmp_path: Path) -> Path:
    path = tmp_path / "fast.toml"
    path.write_text(FAST_TOPOLOGY)
    return path


_SPAWNED: list[subprocess.Popen[bytes]] = []  # by `spawn` in the running test; reaped when it ends


@pytest.fixture(autouse=True)
def _every_child_reaped() -> Iterator[None]:
    """Whatever `spawn` started is waited for when the test ends, however it ends: a run that ignored its
    signal or never showed the expected line is killed, not left running past the test, unwaited."""
    yield
    while _SPAWNED:
        reap(_SPAWNED.pop())


def spawn(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, out: Path
) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        process = subprocess.Popen(
            list(args),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )
    _SPAWNED.append(process)
    return process


def wait_for(path: Path, text: str, process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} did not appear within {within:g}s:\n{path.read_text(errors='replace')}")


@contextmanager
def harness_up(workdir: Path, topology: Path) -> Iterator[dict[str, object]]:
    """A `harness up` in ``workdir``; yields its state file once it is up; SIGTERM at the end."""
    up = spawn(
        sys.executable,
        "-m",
        "harness",
        "up",
        "--workdir",
        str(workdir),
        "--topology",
        str(topology),
        "--status-interval",
        "1",
        out=workdir.parent / "up.out",
    )
    try:
        state = workdir / "stack.json"
        wait_for(workdir.parent / "up.out", "running; Ctrl-C stops everything", up)
        yield json.loads(state.read_text())
    finally:
        up.send_signal(signal.SIGTERM)
        reap(up, grace=30)


def toxics(state: dict[str, object]) -> dict[str, list[str]]:
    """Toxics per proxy, read from the running fault proxy."""
    [toxiproxy] = [i for i in state["instances"] if i["name"] == "toxiproxy"]  # type: ignore[attr-defined]
    proxies = httpx.get(f"{toxiproxy['url']}/proxies", timeout=5.0, trust_env=False).json()
    return {name: [t["name"] for t in proxy["toxics"]] for name, proxy in proxies.items() if proxy["toxics"]}


def chaos_cli(tmp_path: Path) -> list[str]:
    """Chaos Toolkit's CLI, installed with the harness: no version check (no network), no user settings."""
    chaos = shutil.which("chaos", path=str(Path(sys.executable).parent))
    assert chaos is not None, "the chaos CLI is installed with the harness"
    return [chaos, "--no-version-check", "--no-log-file", "--settings", str(tmp_path / "no-settings.yaml")]


@pytest.mark.behaviour("harness.chaos_cli", "harness.exit_codes")
class TestBadInput:
    def test_a_file_without_description_is_one_line_naming_the_file(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"title": "no description", "method": []}))
        done = harness("chaos", "validate", str(bad))
        assert done.returncode == 2
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"harness: error: {bad}: ")
        assert "description" in line

    def test_an_unknown_instance_is_named_with_the_known_ones(self, tmp_path: Path) -> None:
        experiment = json.loads((EXPERIMENTS / "long-toxic.json").read_text())
        experiment["method"][0]["provider"]["arguments"]["instance"] = "users-9"
        path = tmp_path / "unknown.json"
        path.write_text(json.dumps(experiment))
        done = harness("chaos", "run", str(path), "--report", str(tmp_path / "report"))
        assert done.returncode == 2
        assert (
            "instance: no instance named 'users-9'; known: notifications-1, orchestrator-1, registry"
            in done.stderr
        )
        assert not (tmp_path / "report" / "stack").exists()  # refused before any process started

    def test_a_remote_target_is_refused_unless_allowed(self, tmp_path: Path) -> None:
        experiment = json.loads((EXPERIMENTS / "long-toxic.json").read_text())
        experiment["method"].append(
            {
                "type": "probe",
                "name": "remote",
                "provider": {"type": "http", "url": "http://192.0.2.10:8080/health"},
            }
        )
        path = tmp_path / "remote.json"
        path.write_text(json.dumps(experiment))
        done = harness("chaos", "validate", str(path))
        assert done.returncode == 2
        assert (
            "method[1]: http://192.0.2.10:8080/health is not a loopback URL; pass --allow-remote"
            in done.stderr
        )
        allowed = harness(
            "chaos", "validate", str(path), "--allow-remote"
        )  # validation only: nothing is sent
        assert allowed.returncode == 0, allowed.stderr


@pytest.mark.behaviour("harness.chaos_cli")
def test_plain_chaos_run_starts_and_stops_its_own_stack(tmp_path: Path, fast_topology: Path) -> None:
    """`chaos run FILE`: the control declared in the file starts a stack, judges the method, cleans up,
    stops the stack; the journal carries the harness's section."""
    workdir = tmp_path / "stack"
    env = {"HARNESS_TOPOLOGY": str(fast_topology), "HARNESS_WORKDIR": str(workdir)}
    experiment = ROOT / "chaos_experiments" / "08-reset-peer-per-connection.json"
    done = subprocess.run(
        [*chaos_cli(tmp_path), "run", str(experiment)],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "completed"
    assert not journal["deviated"]
    assert [e["held"] for e in journal["harness"]["expectations"]] == [True, True]
    assert journal["harness"]["cleanup"]["left"] == []
    assert journal["harness"]["steady_state_after_cleanup"]["steady_state_met"]
    assert not (workdir / "stack.json").exists()  # the stack it started is stopped


@pytest.mark.behaviour("harness.chaos_cli", "harness.exit_codes", "harness.signals")
@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["int", "term"])
def test_a_signal_cleans_up_and_exits_with_its_code(
    tmp_path: Path, fast_topology: Path, sent: signal.Signals, code: int
) -> None:
    """SIGINT or SIGTERM while a toxic is applied: the toxic is removed, the hypothesis is checked again,
    exit 130 or 143."""
    out = tmp_path / "run.out"
    run = spawn(
        sys.executable,
        "-m",
        "harness",
        "chaos",
        "run",
        str(EXPERIMENTS / "long-toxic.json"),
        "--topology",
        str(fast_topology),
        "--report",
        str(tmp_path / "report"),
        out=out,
    )
    wait_for(out, "fault on: latency latency=300 on users-2", run)
    run.send_signal(sent)
    assert run.wait(timeout=60) == code, out.read_text()
    journal = json.loads((tmp_path / "report" / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert journal["harness"]["cleanup"]["removed"] == ["latency latency=300 on users-2"]
    assert journal["harness"]["steady_state_after_cleanup"]["steady_state_met"]
    assert f"interrupted by {sent.name}; everything started was stopped" in out.read_text()


@pytest.mark.behaviour("harness.chaos_cli")
def test_max_time_stops_the_run_cleanly(tmp_path: Path, fast_topology: Path) -> None:
    done = harness(
        "chaos",
        "run",
        str(EXPERIMENTS / "long-toxic.json"),
        "--topology",
        str(fast_topology),
        "--report",
        str(tmp_path / "report"),
        "--max-time",
        "3",
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stopped at --max-time" in done.stderr
    journal = json.loads((tmp_path / "report" / "journal.json").read_text())
    assert journal["harness"]["timed_out"]
    assert journal["harness"]["cleanup"]["removed"] == ["latency latency=300 on users-2"]


@pytest.mark.behaviour("harness.chaos_cli")
class TestOnARunningStack:
    def test_a_crashed_run_is_cleaned_up_from_its_ledger(self, tmp_path: Path, fast_topology: Path) -> None:
        """SIGKILL `harness chaos run --attach` while its toxic is on: `harness chaos cleanup` removes it."""
        workdir = tmp_path / "up"
        with harness_up(workdir, fast_topology) as state:
            out = tmp_path / "run.out"
            run = spawn(
                sys.executable,
                "-m",
                "harness",
                "chaos",
                "run",
                str(EXPERIMENTS / "long-toxic.json"),
                "--attach",
                str(workdir),
                "--report",
                str(tmp_path / "report"),
                out=out,
            )
            wait_for(out, "fault on: latency latency=300 on users-2", run)
            assert toxics(state) == {"users-2": ["slow-users-2"]}
            run.kill()
            run.wait(timeout=10)
            assert toxics(state) == {"users-2": ["slow-users-2"]}  # nobody cleaned up: the run was killed
            cleaned = harness("chaos", "cleanup", "--workdir", str(workdir))
            assert cleaned.returncode == 0, cleaned.stderr
            assert "removed latency latency=300 on users-2" in cleaned.stdout
            assert toxics(state) == {}
            again = harness("chaos", "cleanup", "--workdir", str(workdir))
            assert again.stdout.strip() == "nothing to clean up"

    def test_what_cleanup_cannot_undo_is_exit_3_saying_what_is_left(
        self, tmp_path: Path, fast_topology: Path
    ) -> None:
        """On an attached stack a killed instance belongs to its own harness: the run says it is left down."""
        workdir = tmp_path / "up"
        with harness_up(workdir, fast_topology):
            done = harness(
                "chaos",
                "run",
                str(EXPERIMENTS / "kill-users-2.json"),
                "--attach",
                str(workdir),
                "--report",
                str(tmp_path / "report"),
                timeout=120,
            )
        assert done.returncode == 3, done.stdout + done.stderr
        assert "cleanup could not restore the stack" in done.stderr
        assert "users-2" in done.stderr


@pytest.mark.behaviour("harness.chaos_cli")
def test_chaos_discover_lists_the_extension(tmp_path: Path) -> None:
    done = subprocess.run(
        [*chaos_cli(tmp_path), "discover", "--no-install", "--no-system-info", "resilience-harness"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    discovery = json.loads((tmp_path / "discovery.json").read_text())
    names = {a["name"] for a in discovery["activities"]}
    assert {"add_toxic", "kill_instance", "start_traffic", "breaker_conforms", "traffic_share"} <= names


@pytest.mark.behaviour("harness.chaos_cli", "harness.exit_codes", "harness.verdicts")
def test_a_fault_the_proxy_refuses_stops_the_run_with_its_reason(tmp_path: Path, fast_topology: Path) -> None:
    """A toxic the proxy refuses (a negative latency) stops the run there, exit 2, with the proxy's own
    reason; the probe after it is never judged, so the run is never "held" on a fault that never was."""
    done = harness(
        "chaos", "run", str(EXPERIMENTS / "refused-toxic.json"), "--topology", str(fast_topology),
        "--report", str(tmp_path / "report"), timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "could not be applied, so the run stopped" in done.stderr
    assert "-3000" in done.stderr
    journal = json.loads((tmp_path / "report" / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert [e["probe"] for e in journal["harness"]["expectations"]] == []
    assert journal["harness"]["cleanup"]["left"] == []
