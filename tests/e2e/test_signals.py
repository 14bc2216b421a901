"""Any run stops on a signal, at any moment, cleanly: SIGINT or SIGTERM sent when a phase's progress line
appears, plus a seeded random delay inside the phase, ends the command within 10 s with 130 or 143, and
nothing it started is left running (every process the run started carries a token in its environment,
looked for in /proc afterwards), and a run with a report folder says there that it was interrupted.

Two offsets per command here; ``ci/signal-sweep.sh`` runs more (``HARNESS_SIGNAL_OFFSETS=20``) on demand
and nightly, with the seed printed so a failure can be replayed (``HARNESS_SIGNAL_SEED``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._children import reap

from ._run import FAST_TOPOLOGY

ROOT = Path(__file__).parents[2]
EXPERIMENTS = Path(__file__).parent / "experiments"
OFFSETS = int(os.environ.get("HARNESS_SIGNAL_OFFSETS", "2"))
SEED = int(os.environ.get("HARNESS_SIGNAL_SEED", "17"))
STOP_WITHIN = 10.0
PROFILE = """
title = "orders for a signal to interrupt"
[target]
kind = "orders"
[load]
users = 4
duration = 30
rate_per_user = 2
[[faults.windows]]
name = "slow-users-2"
start = 1
end = 25
fault = { kind = "latency", instance = "users-2", attributes = { latency = 200 } }
"""


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]
    phases: tuple[tuple[str, float], ...]
    """(progress line that opens the phase, the most seconds to wait inside it before the signal)"""


def commands(tmp: Path) -> dict[str, Command]:
    topology = str(tmp / "fast.toml")
    report = str(tmp / "report")
    return {
        "run": Command("run", ("run", "--topology", topology, "--report", report),
                       (("[1/4] starting the stack", 1.5), ("[2/4] verifying every contract", 3.0),
                        ("[3/4] chaos experiment", 6.0), ("[4/4] load run", 4.0))),
        "up": Command("up", ("up", "--topology", topology, "--workdir", str(tmp / "up")),
                      (("starting the stack in", 1.5), ("running; Ctrl-C stops", 2.0))),
        "chaos": Command("chaos", ("chaos", "run", str(EXPERIMENTS / "long-toxic.json"),
                                   "--topology", topology, "--report", report),
                         (("starting the stack in", 1.5), ("fault on: latency", 2.0))),
        "load": Command("load", ("load", "run", str(tmp / "profile.toml"), "--topology", topology,
                                 "--report", report, "--processes", "2"),
                        (("starting the stack in", 1.5), ("load started:", 4.0))),
        "check-saga": Command("check-saga", ("check", "saga", "--orders", "400", "--kills", "2", "--seed",
                                             "3", "--report", report, "--workdir", str(tmp / "saga")),
                              (("fault windows over", 3.0),)),
        "pyramid": Command("pyramid", ("pyramid", "--levels", "unit", "--report", report),
                           (("unit: running tests/unit", 3.0),)),
    }  # fmt: skip


def cases() -> Iterator[object]:
    """OFFSETS cases per command: phases in turn, SIGINT and SIGTERM in turn, delays from the seed."""
    draw = random.Random(SEED)
    names = commands(Path("/nonexistent"))
    for name, command in names.items():
        for index in range(OFFSETS):
            phase, longest = command.phases[index % len(command.phases)]
            sent = (signal.SIGINT, signal.SIGTERM)[index % 2]
            delay = round(draw.uniform(0.0, longest), 2)
            yield pytest.param(name, phase, delay, sent, id=f"{name}-{index}-{sent.name}-{delay}s")


def survivors(token: str) -> list[str]:
    """Processes (not zombies) whose environment carries the run's token."""
    found = []
    needle = f"HARNESS_SIGNAL_TOKEN={token}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
                found.append(f"{entry.name} {command!r}")
        except OSError:  # gone meanwhile, or a zombie
            continue
    return found


@pytest.mark.behaviour("harness.signals", "harness.exit_codes")
@pytest.mark.parametrize(("name", "phase", "delay", "sent"), list(cases()))
def test_a_signal_in_any_phase_stops_the_run_cleanly(
    tmp_path: Path, name: str, phase: str, delay: float, sent: signal.Signals
) -> None:
    (tmp_path / "fast.toml").write_text(FAST_TOPOLOGY)
    (tmp_path / "profile.toml").write_text(PROFILE)
    command = commands(tmp_path)[name]
    token = uuid.uuid4().hex
    out = tmp_path / "out.txt"
    print(f"seed {SEED}: {name}, {sent.name} {delay} s after {phase!r}")
    with out.open("wb") as sink:
        run = subprocess.Popen(
            [sys.executable, "-m", "harness", *command.args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "HARNESS_SIGNAL_TOKEN": token},
        )
    try:
        deadline = time.monotonic() + 120
        while phase not in (shown := out.read_text(errors="replace")):
            assert run.poll() is None, f"ended before {phase!r}:\n{shown}"
            assert time.monotonic() < deadline, f"{phase!r} did not appear:\n{shown}"
            time.sleep(0.02)
        time.sleep(delay)
        sent_at = time.monotonic()
        run.send_signal(sent)
        try:
            code = run.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            shown = out.read_text(errors="replace")
            pytest.fail(f"still running {STOP_WITHIN:g} s after {sent.name}:\n{shown}")
        took = time.monotonic() - sent_at
        shown = out.read_text(errors="replace")
        print(shown[-3000:])
        print(f"exit {code} {took:.2f} s after {sent.name}")
        assert code == 128 + sent, shown[-3000:]
        left = survivors(token)
        assert left == [], left
        assert "Traceback" not in shown
        if "--report" in command.args:
            said = json.loads((tmp_path / "report" / "interrupted.json").read_text())
            print(f"interrupted.json: {said}")
            assert said["signal"] == sent.name
            assert said["verdict"] is None
            assert "interrupted" in (tmp_path / "report" / "report.html").read_text().lower()
    finally:
        reap(run)
