"""``harness load run``: a profile against the stack (started, attached to, or given), Locust in a subprocess,
the profile's fault schedule played from the start of the load, then the verdict from the evidence.

Pipeline: load the profile -> check names and addresses -> prepare the stack (a customer, the caller's
counters) -> run Locust, writing one load sample per stats-history row and playing the faults -> clean
up -> merge the timeline -> judge (thresholds from Locust, behaviour from the caller's own events) ->
write results.json, timeline.json and report.html. Exit code from the verdict (``harness.verdict``): 0 every
threshold and check held, 1 one did not (each failure one line), 4 inconclusive (the harness could not
produce the evidence: each reason one line), 2 a bad profile or argument, 3 the environment failed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.chaos import ChaosSession
from harness.chaos._session import AttachedStack
from harness.errors import ConfigError
from harness.events import EventLog
from harness.faults import ScheduleRunner
from harness.lag import LagMonitor
from harness.load import _checks as checks
from harness.load._capacity import capacity_warning
from harness.load._locust import Distribution, LocustFiles, LocustRun, run_locust
from harness.load._metrics import CallCounts, read_calls
from harness.load._plan import LocustPlan, build_plan
from harness.load._profile import LoadProfile, load_profile
from harness.load._report import shares_table, write_load_report
from harness.load._results import InstanceEvidence, LoadResults, LocustInfo
from harness.load._samples import LoadSampler
from harness.load._stats import EndpointStats, HistoryRow, read_failures, read_final_stats
from harness.load._target import Prepared, check_names, prepare
from harness.net import is_loopback_url
from harness.report import FigureSection, Table
from harness.stack import Stack, Topology, load_topology
from harness.timeline import BreakerTransition, MembershipChange, Timeline, build_timeline
from harness.verdict import ExitCode, Verdict

Progress = Callable[[str], None]
PROGRESS_EVERY = 3.0  # seconds between progress lines


@dataclass(frozen=True)
class LoadOutcome:
    """How a run ended and where its evidence is; ``exit_code`` is what the CLI exits with."""

    exit_code: int
    results: LoadResults
    results_path: Path
    report_path: Path
    failed: list[str]
    inconclusive: list[str]
    left_behind: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Played:
    """Locust's run, and the harness's own timing lag over it (p99, ms): the evidence it kept its time."""

    run: LocustRun
    lag_p99_ms: float | None


def run_load(
    profile_path: Path,
    *,
    report_dir: Path,
    topology_path: Path | None = None,
    workdir: Path | None = None,
    attach: Path | None = None,
    stack: Stack | None = None,
    baseline: Path | None = None,
    distribution: Distribution | None = None,
    allow_remote: bool = False,
    locust_args: tuple[str, ...] = (),
    progress: Progress = lambda _line: None,
) -> LoadOutcome:
    """Run one load profile end to end. The stack is started for the run (``topology_path``, in
    ``workdir``), attached to (``attach``: a running ``harness up``'s workdir), or given (``stack``: one
    this process runs, left running: how tests share a stack)."""
    distribution = distribution or Distribution()
    profile = load_profile(profile_path)
    earlier = LoadResults.load(baseline) if baseline is not None else None
    distribution.check(allow_remote=allow_remote)
    url = profile.target.url
    if url is not None and not (allow_remote or is_loopback_url(url)):
        raise ConfigError(
            f"{profile_path}: target.url: {url} is not a loopback URL; pass --allow-remote to use it"
        )
    warnings = [w for w in [capacity_warning(profile.load, distribution.workers)] if w]
    for warning in warnings:
        progress(f"warning: {warning}")
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    files = LocustFiles(report_dir)
    if not profile.target.in_stack:
        return _run_outside(
            profile, profile_path, files, distribution, locust_args, earlier, warnings, progress
        )
    topology: Topology | None = None
    if stack is None and attach is None:
        topology = load_topology(topology_path)  # names are checked before a stack is started for them
        check_names(profile, profile_path, {name: kind for kind, name in topology.instances()})
    session = _session(stack, attach, topology, workdir or report_dir / "stack", progress)
    try:
        check_names(profile, profile_path, {n: p.kind for n, p in session.stack.processes.items()})
        prepared = prepare(profile, profile_path, session)
        origin = time.monotonic()
        played = _play(profile, prepared.plan, files, distribution, locust_args, session, progress)
        facts = prepared.facts
        after = read_calls(prepared.caller_url, facts.service) if facts and prepared.caller_url else None
        left = session.cleanup().left
        timeline = _timeline(session, origin)
    finally:
        session.close()  # cleans up (again: idempotent), stops a stack the run started
    return _finish(profile, profile_path, files, played, timeline, prepared, after, earlier, warnings, left)


def _session(
    stack: Stack | None, attach: Path | None, topology: Topology | None, workdir: Path, progress: Progress
) -> ChaosSession:
    if stack is not None:
        return ChaosSession(stack, owned=False, progress=progress)
    if attach is not None:
        return ChaosSession(AttachedStack(attach), owned=False, progress=progress)
    progress(f"starting the stack in {workdir}")
    assert topology is not None
    started = Stack(topology, workdir, progress=progress).start()
    return ChaosSession(started, owned=True, progress=progress)


def _play(
    profile: LoadProfile,
    plan: LocustPlan,
    files: LocustFiles,
    distribution: Distribution,
    locust_args: tuple[str, ...],
    session: ChaosSession | None,
    progress: Progress,
) -> Played:
    """Locust with the plan; the fault schedule from the start of the load; a progress line now and then;
    the harness's own timing lag measured meanwhile."""
    events_path = (
        session.stack.event_log("harness-load")
        if session is not None
        else files.folder / "events" / "harness-load.jsonl"
    )
    sampler = LoadSampler(EventLog("harness-load", events_path), span=1 if distribution.workers == 1 else 2)
    schedule = (
        ScheduleRunner(profile.faults, session.faults)
        if session is not None and profile.faults.windows
        else None
    )
    thread: threading.Thread | None = None
    shown = [time.monotonic()]
    load_start = [0.0]

    def started(mono: float) -> None:
        nonlocal thread
        load_start[0] = mono
        sampler.started(mono)
        progress(
            f"load started: {plan.name} to {', '.join(plan.hosts)}, {distribution.workers} worker process(es)"
        )
        if schedule is not None:
            thread = threading.Thread(target=schedule.run, name="load-faults", daemon=True)
            thread.start()

    def tick() -> None:
        if schedule is not None and schedule.error is not None:
            progress(f"stopping: {schedule.error}")
            raise schedule.error  # stops Locust; the session removes what was applied
        if time.monotonic() - shown[0] < PROGRESS_EVERY or sampler.latest is None:
            return
        shown[0] = time.monotonic()
        row = sampler.latest
        active = ", ".join(w.fault.describe() for w in schedule.active()) if schedule is not None else ""
        failures = row.failures / row.requests if row.requests else 0.0
        p95 = "-" if row.p95_ms is None else f"{row.p95_ms:.0f} ms"
        progress(
            f"{time.monotonic() - load_start[0]:5.1f}s  users {row.users}  {sampler.rate:.1f} req/s  "
            f"p95 {p95}  failed {failures:.1%}  faults: {active or 'none'}"
        )

    lag = LagMonitor().start()
    try:
        run = run_locust(
            plan,
            files,
            distribution,
            extra=locust_args,
            on_started=started,
            on_rows=sampler.add,
            on_tick=tick,
        )
    finally:
        lag.stop()
        if schedule is not None:
            schedule.stop()
            if thread is not None:
                thread.join(timeout=30.0)
        sampler.events.close()
    if schedule is not None and schedule.error is not None:  # it failed after Locust's last tick
        raise schedule.error
    progress(f"load ended after {run.stopped - run.started:.1f} s")
    return Played(run, lag.p99_ms(run.started, run.stopped))


def _timeline(session: ChaosSession, origin: float) -> Timeline:
    """The run's events from ``origin`` on, with the breaker and membership changes before it (the state
    each breaker and cache was in when the run began), so a shared stack's earlier runs do not show."""
    whole = build_timeline([session.workdir / "events"], origin=origin, end=time.monotonic())
    kept = [
        e for e in whole.events if e.mono >= origin or isinstance(e, BreakerTransition | MembershipChange)
    ]
    return whole.model_copy(update={"events": kept})


def _run_outside(
    profile: LoadProfile,
    path: Path,
    files: LocustFiles,
    distribution: Distribution,
    locust_args: tuple[str, ...],
    earlier: LoadResults | None,
    warnings: list[str],
    progress: Progress,
) -> LoadOutcome:
    """A target outside the stack (``target.url``): Locust and its thresholds only."""
    assert profile.target.url is not None
    events = files.folder / "events"
    for stale in events.glob("*.jsonl"):
        stale.unlink()
    plan = build_plan(profile, [profile.target.url.rstrip("/")], events=str(events / "locust.jsonl"))
    origin = time.monotonic()
    played = _play(profile, plan, files, distribution, locust_args, None, progress)
    timeline = build_timeline([events], origin=origin, end=time.monotonic())
    return _finish(profile, path, files, played, timeline, Prepared(plan), None, earlier, warnings, [])


def _finish(
    profile: LoadProfile,
    path: Path,
    files: LocustFiles,
    played: Played,
    timeline: Timeline,
    stage: Prepared,
    after: CallCounts | None,
    earlier: LoadResults | None,
    warnings: list[str],
    left: list[str],
) -> LoadOutcome:
    run = played.run
    total, endpoints = read_final_stats(files.stats_json)
    load = checks.LoadWindow(timeline.t(run.started), timeline.t(run.stopped))
    offered = checks.offered_rate(profile.load.rate_per_user, _users_over_time(run.rows, total))
    ratio = total.rate / offered if offered else None
    omission = ratio is not None and ratio < checks.COORDINATED_OMISSION
    if omission:
        warnings.append(
            f"coordinated omission: the achieved rate {total.rate:.1f} req/s is {ratio:.0%} of the "
            f"offered {offered:.1f} req/s (below {checks.COORDINATED_OMISSION:.0%})"
        )
    sections: list[FigureSection] = [checks.threshold_section(profile.thresholds, total, offered)]
    evidence: list[InstanceEvidence] = []
    shares: Table | None = None
    facts = stage.facts
    run_faults = [
        f for f in timeline.faults() if f.start >= 0 and f.window in {w.name for w in profile.faults.windows}
    ]
    first_fault = min((f.start for f in run_faults), default=None)
    baseline = checks.baseline_window(load, first_fault)
    calls: tuple[str, int] | None = None
    if facts is not None:
        if profile.checks.shares is not None:
            window = checks.LoadWindow(load.start, baseline.end)
            sections.append(checks.shares_section(timeline, facts, profile.checks.shares, window))
        if profile.checks.breaker is not None:
            calls = (facts.caller, len(checks.attempts_in(timeline, facts, baseline.start, baseline.end)))
            for fault in run_faults:
                if fault.instance in facts.instances:
                    sections.append(
                        checks.breaker_section(timeline, facts, profile.checks.breaker, fault, load)
                    )
            sections.append(checks.open_breaker_section(timeline, facts, load))
        evidence = _evidence(timeline, facts, load, after - stage.before if after and stage.before else None)
        width = 1.0 if load.end - load.start <= 30 else float(int((load.end - load.start) / 30) + 1)
        shares = shares_table(
            facts.caller,
            facts.service,
            list(facts.instances),
            checks.shares_over_time(timeline, facts, load, width),
        )
    if earlier is not None:
        if earlier.profile != path.stem:
            warnings.append(f"the baseline is a run of {earlier.profile!r}, not of {path.stem!r}")
        sections.append(checks.regression_section(total, earlier.total, profile.regression, earlier.profile))
    rates = (
        checks.achieved_ratio(timeline, baseline, profile.load.rate_per_user)
        if profile.load.rate_per_user is not None
        else None
    )
    needed = checks.run_evidence(profile.evidence, lag_p99_ms=played.lag_p99_ms, rates=rates, calls=calls)
    sections = [checks.needing(needed, section) for section in sections]
    failed = checks.failures(sections)
    inconclusive = checks.insufficient(sections)
    verdict = Verdict.of(section.verdict for section in sections)
    results = LoadResults(
        profile=path.stem,
        profile_path=str(path),
        title=profile.title,
        verdict=verdict,
        started=datetime.fromtimestamp(timeline.origin_wall.timestamp() + load.start, UTC),
        ended=datetime.fromtimestamp(timeline.origin_wall.timestamp() + load.end, UTC),
        target=f"{stage.plan.name} on {', '.join(stage.plan.hosts)}",
        locust=LocustInfo(
            version=importlib.metadata.version("locust"),
            command=_shown(run.command),
            workers=_workers(run.command),
        ),
        offered_rate=None if offered is None else round(offered, 3),
        achieved_rate=round(total.rate, 3),
        achieved_ratio=None if ratio is None else round(ratio, 4),
        coordinated_omission=omission,
        total=total,
        endpoints=endpoints,
        failures=read_failures(files.failures),
        history=run.rows,
        faults=[
            f"{f.window}: {f.description} from {f.start - load.start:.2f} s to {f.end - load.start:.2f} s"
            for f in run_faults
        ],
        evidence=evidence,
        sections=sections,
        failed=failed,
        inconclusive=inconclusive,
        warnings=warnings,
        baseline=None if earlier is None else earlier.profile,
    )
    results_path = results.save(files.folder / "results.json")
    timeline.save(files.folder / "timeline.json")
    report_path = write_load_report(results, timeline, shares, files.folder / "report.html")
    code = ExitCode.ENVIRONMENT if left else verdict.exit_code
    return LoadOutcome(code, results, results_path, report_path, failed, inconclusive, left)


def _users_over_time(rows: list[HistoryRow], total: EndpointStats) -> list[tuple[float, int]]:
    """(seconds, users) per stretch between history rows within Locust's own window (its start to its
    last request, the achieved rate's window), for the time-weighted offered rate."""
    start, end = total.start_wall, total.start_wall + total.seconds
    stretches = []
    previous = start
    for row in rows:
        at = min(row.timestamp + 0.5, end)
        if at > previous:
            stretches.append((at - previous, row.users))
            previous = at
    if end > previous and rows:
        stretches.append((end - previous, rows[-1].users))
    return stretches


def _evidence(
    timeline: Timeline, facts: checks.CallerFacts, load: checks.LoadWindow, counted: CallCounts | None
) -> list[InstanceEvidence]:
    attempts = checks.attempts_in(timeline, facts, load.start, load.end)
    shares = checks.shares_of(attempts, facts.instances)
    metrics = counted.per_instance() if counted is not None else {}
    return [
        InstanceEvidence(
            instance=name,
            attempts=sum(1 for a in attempts if a.instance == name),
            failed=sum(1 for a in attempts if a.instance == name and a.failed),
            metrics_attempts=metrics.get(name) if counted is not None else None,
            share=round(shares[name], 4),
            expected_share=round(facts.expected[name], 4),
        )
        for name in facts.instances
    ]


def _shown(command: list[str]) -> list[str]:
    """The command with the plan's JSON shortened (it is in results.json's neighbours anyway)."""
    shown = list(command)
    with contextlib.suppress(ValueError):
        index = shown.index("--harness-plan")
        shown[index + 1] = "<plan>"
    return shown


def _workers(command: list[str]) -> int:
    for flag in ("--processes", "--expect-workers"):
        if flag in command:
            return int(command[command.index(flag) + 1])
    return 1
