"""The harness's Chaos Toolkit control: declare it in an experiment file and it

- prepares the stack: the session of ``harness chaos run``, or (under plain ``chaos run``) a stack it
  starts from the topology the configuration names (``harness_topology``, ``harness_workdir``) or a
  running ``harness up`` it attaches to (``harness_attach``: its workdir), stopped again at the end;
- shows each activity as it starts and ends;
- judges the tolerances of probes in the method (Chaos Toolkit ignores them there), each after the
  evidence the probe declared (the harness kept its time, enough calls): held, deviated, or
  inconclusive when the evidence was too thin; a fault that could not be applied stops the run;
- cleans up whatever happened (passed, deviated, raised, interrupted): every fault removed, every proxy
  enabled, every stopped or killed process continued or restarted; then checks the steady state again
  after cleanup, and writes all of it into the journal under ``harness``.

Chaos Toolkit calls control functions by module and passes no object between them; the session travels
in the run's configuration (``harness_session``), and the few sessions this module started itself are
kept here so that ``cleanup_control`` can stop them even when the run broke off early.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chaoslib.exceptions import InterruptExecution
from chaoslib.hypothesis import run_steady_state_hypothesis, within_tolerance
from chaoslib.run import EventHandlerRegistry, RunEventHandler

from harness.checks import Figure, judge
from harness.signals import reclaim
from harness.stack import load_topology
from harness.verdict import Verdict

from ._session import ChaosSession, EvidenceBounds

logger = logging.getLogger("chaostoolkit")
JOURNAL_VERSION = 1
_STARTED_HERE: list[ChaosSession] = []  # stopped by cleanup_control; see the module docstring


class HarnessRunHandler(RunEventHandler):  # type: ignore[misc]
    """Registered by ``harness chaos run``: hands its session to the control and shows progress."""

    def __init__(self, session: ChaosSession) -> None:
        self.session = session

    def started(self, experiment: dict[str, Any], journal: dict[str, Any]) -> None:
        reclaim()  # Chaos Toolkit just put its own SIGTERM handler in; the run's knows 143 from 130

    def start_hypothesis_before(self, experiment: dict[str, Any]) -> None:
        self.session.progress("steady-state hypothesis (before)")

    def start_method(self, experiment: dict[str, Any]) -> None:
        if not self.session.control_loaded:  # a control that failed to load must not let faults run
            raise InterruptExecution("the harness control did not load; no fault is applied without it")
        self.session.progress("method")

    def start_hypothesis_after(self, experiment: dict[str, Any]) -> None:
        self.session.progress("steady-state hypothesis (after)")

    def start_rollbacks(self, experiment: dict[str, Any]) -> None:
        if experiment.get("rollbacks"):
            self.session.progress("rollbacks")


class InterruptSkipsPause(RunEventHandler):  # type: ignore[misc]
    """Ctrl-C (or --max-time's signal) while an activity runs ends it at once. Chaos Toolkit pauses after
    an activity in the ``finally`` that the interrupt passes through, so an activity with a pause after it
    would hold the interrupted run for the whole pause; raised again here, before that pause, it does not."""

    def activity_completed(self, activity: dict[str, Any], run: dict[str, Any]) -> None:
        interrupt = sys.exc_info()[1]
        if isinstance(interrupt, KeyboardInterrupt | SystemExit):
            raise interrupt


def configure_control(
    configuration: dict[str, Any] | None = None,
    experiment: dict[str, Any] | None = None,
    event_registry: EventHandlerRegistry | None = None,
    **_: Any,
) -> None:
    """Find or make the run's session; an error is kept and raised before the experiment starts (Chaos
    Toolkit would otherwise swallow it and run without the control)."""
    if event_registry is not None and not any(
        isinstance(handler, InterruptSkipsPause) for handler in event_registry.handlers
    ):
        event_registry.register(InterruptSkipsPause())
    if configuration is None:
        return
    try:
        session = _hosting_session(event_registry)
        if session is None:
            session = _own_session(configuration)
            _STARTED_HERE.append(session)
        session.bounds = EvidenceBounds.of(configuration.get("harness_evidence"))
        session.control_loaded = True
        configuration["harness_session"] = session
    except Exception as exc:
        configuration["harness_session_error"] = str(exc)
        logger.error(f"harness control: {exc}")


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    config = configuration or {}
    if config.get("harness_session_error"):
        raise InterruptExecution(f"harness control: {config['harness_session_error']}")
    session = config.get("harness_session")
    if not isinstance(session, ChaosSession):
        raise InterruptExecution("harness control: no session (the control did not configure)")
    session.progress(f"experiment: {context.get('title', '?')}")


def before_activity_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    session = _session(configuration)
    if session is not None:
        background = " (background)" if context.get("background") else ""
        session.progress(f"  > {context.get('type', 'activity')} {context.get('name', '?')}{background}")


def after_activity_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    experiment: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Show the activity's outcome. In the method, judge a probe's tolerance (Chaos Toolkit does not) after
    the evidence it declared, and count a failed activity as a deviation: the experiment could not do
    what it says. A fault that could not be applied stops the run at once."""
    session = _session(configuration)
    if session is None or state is None:
        return
    name = context.get("name", "?")
    status = state.get("status", "?")
    duration = state.get("duration") or 0.0
    output = _short(state.get("output"))
    needed = session.take_evidence()
    shown = ""
    in_method = experiment is not None and any(context is a for a in experiment.get("method", []))
    expectation: dict[str, Any] | None = None
    if session.stopped_by is not None:
        session.progress(f"    {name}: {status} -> {session.stopped_by}")
        raise InterruptExecution(str(session.stopped_by))
    if in_method and status == "failed":
        reason = f"{name} failed: {_last_line(state.get('exception'))}"
        expectation = _expectation(name, None, None, Verdict.DEVIATED, reason, [])
        output = _last_line(state.get("exception"))
    elif in_method and context.get("type") == "probe" and "tolerance" in context and status == "succeeded":
        value = state.get("output")
        if judge(needed) is Verdict.INCONCLUSIVE:
            thin = "; ".join(f.line() for f in needed if not f.holds)
            verdict, reason = Verdict.INCONCLUSIVE, f"{name}: evidence too thin: {thin}"
        elif within_tolerance(context["tolerance"], value, configuration, secrets):
            verdict, reason = Verdict.HELD, ""
        else:
            verdict, reason = Verdict.DEVIATED, f"{name} gave {value!r}, outside {context['tolerance']!r}"
        expectation = _expectation(name, value, context["tolerance"], verdict, reason, needed)
        shown = {Verdict.HELD: " held", Verdict.DEVIATED: " DID NOT HOLD"}.get(verdict, " INCONCLUSIVE")
    if expectation is not None:
        session.expectations.append(expectation)
    session.progress(f"    {name}: {status} in {duration:.2f}s{shown} -> {output}")
    if expectation is not None and expectation["verdict"] == Verdict.DEVIATED and session.fail_fast:
        session.failed_fast = True
        raise InterruptExecution(f"fail fast: {expectation['reason']}")


def _expectation(
    probe: str, output: Any, tolerance: Any, verdict: Verdict, reason: str, evidence: list[Figure]
) -> dict[str, Any]:
    """One judged probe of the method, as the journal's harness section keeps it."""
    return {
        "probe": probe,
        "output": output,
        "tolerance": tolerance,
        "verdict": verdict.value,
        "held": verdict is Verdict.HELD,
        "reason": reason,
        "evidence": [f.line() for f in evidence],
    }


def after_hypothesis_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    session = _session(configuration)
    if session is not None and state is not None:
        session.progress(f"  hypothesis met: {state.get('steady_state_met')}")


def after_experiment_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Clean up, check the steady state again, judge the method's expectations, record it all."""
    session = _session(configuration)
    if session is None or state is None:
        return
    journal = state
    session.progress("cleanup")
    cleanup = session.cleanup()
    for item in cleanup.removed:
        session.progress(f"  removed {item}")
    for item in cleanup.left:
        session.progress(f"  LEFT BEHIND: {item}")
    after_cleanup: dict[str, Any] | None = None
    if cleanup.clean and context.get("steady-state-hypothesis", {}).get("probes"):
        session.progress("steady-state hypothesis (after cleanup)")
        after_cleanup = _recheck(context, configuration or {}, secrets or {}, session)
    verdict = run_verdict(journal, session.expectations, after_cleanup)
    if verdict is Verdict.DEVIATED:  # so plain `chaos run` says so too
        journal["deviated"] = True
        if journal.get("status") == "completed" or session.failed_fast:
            journal["status"] = "failed"
    journal["harness"] = {
        "schema_version": JOURNAL_VERSION,
        "verdict": verdict.value,
        "seed": session.seed,
        "expectations": session.expectations,
        "cleanup": {"removed": cleanup.removed, "restored": cleanup.restored, "left": cleanup.left},
        "steady_state_after_cleanup": after_cleanup,
        "conformance": [
            {
                "caller": c.caller,
                "service": c.service,
                "instance": c.instance,
                "fault": c.fault,
                "holds": c.holds,
                "figures": [f.model_dump() for f in c.figures],
            }
            for c in session.conformance.values()
        ],
    }


def run_verdict(
    journal: dict[str, Any], expectations: list[dict[str, Any]], after_cleanup: dict[str, Any] | None
) -> Verdict:
    """Deviated when the hypothesis, a judged probe, an activity or the steady state after cleanup did not
    hold; otherwise inconclusive when a probe's evidence was too thin; otherwise held."""
    verdicts = [Verdict(e["verdict"]) for e in expectations]
    if journal.get("deviated") or (after_cleanup is not None and not after_cleanup.get("steady_state_met")):
        verdicts.append(Verdict.DEVIATED)
    return Verdict.of(verdicts)


def cleanup_control(**_: Any) -> None:
    """Stop what this control started (under plain ``chaos run``), even after an early break."""
    while _STARTED_HERE:
        session = _STARTED_HERE.pop()
        try:
            session.close()
        except Exception as exc:
            logger.error(f"harness control: stopping the stack failed: {exc}")


def _recheck(
    experiment: dict[str, Any], configuration: dict[str, Any], secrets: dict[str, Any], session: ChaosSession
) -> dict[str, Any]:
    began = time.monotonic()
    try:
        state: dict[str, Any] = run_steady_state_hypothesis(
            experiment, configuration, secrets, None, EventHandlerRegistry()
        )
    except Exception as exc:  # a probe that raises is a hypothesis that does not hold
        state = {"steady_state_met": False, "error": str(exc)}
    state["duration"] = round(time.monotonic() - began, 3)
    session.progress(f"  hypothesis met after cleanup: {state.get('steady_state_met')}")
    return state


def _hosting_session(event_registry: EventHandlerRegistry | None) -> ChaosSession | None:
    for handler in getattr(event_registry, "handlers", []):
        if isinstance(handler, HarnessRunHandler):
            return handler.session
    return None


def _own_session(configuration: dict[str, Any]) -> ChaosSession:
    """A session for plain ``chaos run``, from the experiment's configuration."""

    def progress(line: str) -> None:
        logger.info(f"[harness] {line}")

    attach = configuration.get("harness_attach")
    if attach:
        return ChaosSession.attach(Path(str(attach)), progress=progress)
    topology = configuration.get("harness_topology")
    workdir = Path(str(configuration.get("harness_workdir") or tempfile.mkdtemp(prefix="harness-chaos-")))
    seed = configuration.get("harness_seed")
    return ChaosSession.start(
        load_topology(Path(str(topology)) if topology else None),
        workdir,
        seed=int(seed) if seed is not None else None,
        progress=progress,
    )


def _session(configuration: dict[str, Any] | None) -> ChaosSession | None:
    session = (configuration or {}).get("harness_session")
    return session if isinstance(session, ChaosSession) else None


def _last_line(exception: Any) -> str:
    """The last line of the traceback Chaos Toolkit records for a failed activity."""
    lines = "".join(exception or []).strip().splitlines()
    return lines[-1] if lines else "?"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
