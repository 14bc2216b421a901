"""``harness chaos run``: load and validate an experiment file, prepare the stack, run it with Chaos Toolkit's
own engine, and write the journal, the timeline and the report; ``validate`` and ``cleanup`` too.

The pipeline is Chaos Toolkit's (load -> validate -> run -> journal); the harness adds the stack, the
control's guaranteed cleanup, a time limit, and an exit code that says what happened (``harness.verdict``):
0 held, 1 deviated (or ran out of time), 4 inconclusive (a probe's evidence was too thin), 2 bad file or
arguments or a fault value the proxy refused, 3 cleanup left something or the proxy could not be reached,
130 (SIGINT) or 143 (SIGTERM) interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaoslib.configuration import load_configuration
from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid, run_experiment

from harness._documents import Format, read_document
from harness.errors import ConfigError
from harness.signals import interrupted_exit
from harness.stack import Stack, Topology, load_topology
from harness.timeline import Timeline
from harness.verdict import ExitCode, Verdict

from ._report import write_chaos_report
from ._session import ChaosSession, CleanupReport, cleanup_workdir
from ._validation import check_activities, check_shape
from .control import HarnessRunHandler

Progress = Callable[[str], None]
CONTROL_MODULE = "harness.chaos.control"


@dataclass(frozen=True)
class ChaosOutcome:
    """How a run ended, and where its evidence is."""

    exit_code: int
    verdict: str
    """One line: why it held, deviated, was inconclusive or stopped."""
    journal_path: Path
    timeline_path: Path
    report_path: Path | None
    left_behind: list[str]


def load_and_validate(
    path: Path, *, allow_remote: bool = False, topology: Topology | None = None
) -> dict[str, Any]:
    """The experiment in ``path`` (JSON or YAML), checked by the harness and by Chaos Toolkit; one
    ConfigError line naming the file and the key otherwise. Nothing is started and nothing is run: the
    harness's activities are checked by their parameters' types against ``topology`` (when given)."""
    experiment = _read_experiment(path)
    check_shape(path, experiment)
    try:
        ensure_experiment_is_valid(experiment)
    except ChaosException as exc:
        raise ConfigError(f"{path}: {_first_line(exc)}") from exc
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # Chaos Toolkit reads its dicts trustingly; what the shape check lets through it may still trip on
        raise ConfigError(f"{path}: Chaos Toolkit could not validate it: {_first_line(exc)}") from exc
    controls = [
        c for c in experiment.get("controls", []) if (c.get("provider") or {}).get("module") == CONTROL_MODULE
    ]
    if not controls:
        raise ConfigError(
            f'{path}: controls: the harness control is not declared ({{"name": "harness", '
            f'"provider": {{"type": "python", "module": "{CONTROL_MODULE}"}}}})'
        )
    check_activities(path, experiment, allow_remote, topology)
    return experiment


def _read_experiment(path: Path) -> dict[str, Any]:
    """The file as data, within the bounds of ``harness._documents`` (Chaos Toolkit's loader has none)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    form = Format.of(path)
    if form not in (Format.JSON, Format.YAML):
        raise ConfigError(f"{path}: an experiment is a .json, .yaml or .yml file")
    return read_document(path, form)


def run_chaos(
    path: Path,
    *,
    report_dir: Path,
    topology_path: Path | None = None,
    workdir: Path | None = None,
    attach: Path | None = None,
    seed: int | None = None,
    max_time: float | None = None,
    allow_remote: bool = False,
    fail_fast: bool = False,
    stack: Stack | None = None,
    progress: Progress = lambda _line: None,
) -> ChaosOutcome:
    """Run one experiment file end to end; the outcome says which exit code the CLI should give.

    The stack is started for the run, or attached to (``attach``: a running ``harness up``'s workdir), or
    given (``stack``: a Stack this process runs, left running; how tests share one stack). With
    ``fail_fast`` the method stops at the first probe that does not hold."""
    if stack is not None:
        topology: Topology | None = stack.topology
    elif attach is None:
        topology = load_topology(topology_path or named_topology(path))
    else:
        topology = None
    experiment = load_and_validate(path, allow_remote=allow_remote, topology=topology)
    report_dir.mkdir(parents=True, exist_ok=True)
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    if stack is not None:
        session = ChaosSession(stack, owned=False, seed=seed, progress=progress)
    elif attach is not None:
        session = ChaosSession.attach(attach, seed=seed, progress=progress)
    else:
        assert topology is not None
        stack_dir = workdir or report_dir / "stack"
        progress(f"starting the stack in {stack_dir}")
        session = ChaosSession.start(topology, stack_dir, seed=seed, progress=progress)
    session.fail_fast = fail_fast
    progress(f"seed {seed}")
    timed_out = threading.Event()
    timer = _time_limit(max_time, timed_out, progress)
    journal: dict[str, Any] = {}
    try:
        _quiet_chaostoolkit()
        settings = {"runtime": {"rollbacks": {"strategy": "always"}}}
        journal = run_experiment(experiment, settings=settings, event_handlers=[HarnessRunHandler(session)])
    finally:
        if timer is not None:
            timer.cancel()
        last_cleanup = session.cleanup()  # again: idempotent, and the control may not have run at all
        timeline = session.timeline()
        session.close()
    return _finish(journal, timeline, last_cleanup, report_dir, timed_out.is_set(), experiment, session)


def named_topology(path: Path) -> Path | None:
    """The topology the experiment's configuration names (``harness_topology``, after its environment
    variable), as plain ``chaos run`` would use it: relative to the working folder."""
    try:
        configuration = load_configuration(_read_experiment(path).get("configuration") or {})
    except (ConfigError, ChaosException, TypeError, AttributeError, KeyError, ValueError):
        return None  # the file's own problems are reported by validation
    named = configuration.get("harness_topology")
    return Path(named) if isinstance(named, str) and named else None


def _finish(
    journal: dict[str, Any],
    timeline: Timeline,
    cleanup: CleanupReport,
    report_dir: Path,
    timed_out: bool,
    experiment: dict[str, Any],
    session: ChaosSession,
) -> ChaosOutcome:
    harness = journal.setdefault("harness", {"schema_version": 1})
    left = list(harness.get("cleanup", {}).get("left", [])) + cleanup.left
    harness["timed_out"] = timed_out
    status = journal.get("status")
    judged = Verdict(harness["verdict"]) if "verdict" in harness else None
    if left:
        code, verdict = ExitCode.ENVIRONMENT, "cleanup could not restore the stack: " + "; ".join(left)
    elif session.stopped_by is not None:
        code, verdict = ExitCode(session.stopped_by.exit_code), str(session.stopped_by)
    elif timed_out:
        code, verdict = ExitCode.DEVIATED, "stopped at --max-time; the experiment did not finish"
    elif judged is Verdict.DEVIATED:
        code, verdict = ExitCode.DEVIATED, _why(journal)
    elif status == "interrupted":
        code, verdict = interrupted_exit(), "interrupted; cleaned up"
    elif journal.get("deviated") or status in ("failed", "aborted"):
        code, verdict = ExitCode.DEVIATED, _why(journal)
    elif judged is Verdict.INCONCLUSIVE:
        code, verdict = ExitCode.INCONCLUSIVE, _why(journal, Verdict.INCONCLUSIVE)
    else:
        code, verdict = ExitCode.HELD, "the steady state held before, after, and after cleanup"
    if code not in (ExitCode.HELD, ExitCode.DEVIATED, ExitCode.INCONCLUSIVE):
        harness["stopped"] = verdict  # ended before its verdict: the report says "not judged", and why
    journal_path = report_dir / "journal.json"
    journal_path.write_text(json.dumps(journal, indent=2, default=str), encoding="utf-8")
    timeline_path = report_dir / "timeline.json"
    timeline.save(timeline_path)
    report_path = write_chaos_report(journal, timeline, experiment, report_dir / "report.html", verdict)
    return ChaosOutcome(code, verdict, journal_path, timeline_path, report_path, left)


def _why(journal: dict[str, Any], kind: Verdict = Verdict.DEVIATED) -> str:
    """The reasons a run deviated (or, with ``kind``, was inconclusive), in one line."""
    reasons = []
    for phase in ("before", "after"):
        state = (journal.get("steady_states") or {}).get(phase) or {}
        if kind is Verdict.DEVIATED and state and not state.get("steady_state_met"):
            bad = [p["activity"]["name"] for p in state.get("probes", []) if not p.get("tolerance_met", True)]
            reasons.append(
                f"hypothesis {phase} the method did not hold ({', '.join(bad) or 'a probe failed'})"
            )
    harness = journal.get("harness", {})
    reasons += [e["reason"] for e in harness.get("expectations", []) if e.get("verdict") == kind]
    after = harness.get("steady_state_after_cleanup")
    if kind is Verdict.DEVIATED and after is not None and not after.get("steady_state_met"):
        reasons.append("the hypothesis did not hold after cleanup")
    return "; ".join(reasons) or f"status {journal.get('status')}"


def _time_limit(
    max_time: float | None, timed_out: threading.Event, progress: Progress
) -> threading.Timer | None:
    """After ``max_time`` seconds, ask Chaos Toolkit to stop gracefully (rollbacks and cleanup still run)."""
    if max_time is None:
        return None

    def stop() -> None:
        timed_out.set()
        progress(f"--max-time {max_time:g}s reached: stopping the experiment")
        os.kill(os.getpid(), signal.SIGUSR1)

    timer = threading.Timer(max_time, stop)
    timer.daemon = True
    timer.start()
    return timer


def cleanup_after_crash(workdir: Path) -> CleanupReport:
    """``harness chaos cleanup``: remove the faults a crashed run left, from its ledger."""
    return cleanup_workdir(workdir)


def _quiet_chaostoolkit() -> None:
    """The harness shows its own progress; Chaos Toolkit's log goes to the journal's run, not the screen."""
    logging.getLogger("chaostoolkit").setLevel(logging.WARNING)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[-1] if "Traceback" in text else (text.splitlines() or [""])[0]
