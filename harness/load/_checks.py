"""The verdict of a load run, as figures next to their bounds: Locust's thresholds, and the behaviour of one
caller's balancer and breakers judged from the caller's own attempt and breaker events on the timeline.

Every section declares the evidence it needs (``Evidence``: the harness's own timing lag, the share of the
offered load it achieved before the first fault, the caller's attempts then) next to its checks, so a
busy machine makes it inconclusive, never deviated (``harness.checks.judge``).

Pure: every function takes what was measured and returns figure sections; nothing here reads a socket or
a file. Times are seconds since the timeline's origin; ``LoadWindow`` says when the load ran on it.
A share is the instance's part of the caller's attempts to the service (attempts placed when sent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.checks._breaker_conformance import breaker_conformance
from harness.checks._figures import Comparison, Figure
from harness.load._profile import BreakerCheck, Evidence, Regression, SharesCheck, Thresholds
from harness.load._stats import EndpointStats
from harness.report import FigureSection
from harness.resilience import BreakerConfig
from harness.timeline import CallAttempt, FaultSpan, LoadSample, Span, Timeline
from harness.verdict import Verdict

WARMUP = 1.0
"""Seconds at the start of the load left out of "before" periods: users are still being spawned."""
COORDINATED_OMISSION = 0.95
"""A run whose achieved rate is below this share of the offered one is flagged."""


@dataclass(frozen=True)
class LoadWindow:
    start: float
    end: float


@dataclass(frozen=True)
class CallerFacts:
    """The judged caller's client towards the service, as the stack configured it."""

    caller: str
    service: str
    instances: tuple[str, ...]
    expected: dict[str, float]  # each instance's share by its weight
    breaker: BreakerConfig | None
    attempt_timeout: float

    @property
    def probe_round(self) -> float:
        """How long a probe round can take: one attempt timeout and some slack (as the chaos checks use)."""
        return self.attempt_timeout + 0.5


def failure_line(section: str, figure: Figure) -> str:
    """One line for a figure that does not hold: which, what was measured, and by how much it missed."""
    if figure.measured is None or figure.bound is None:
        return f"{section}: {figure.line()}"
    unit = figure.unit
    excess = abs(figure.measured - figure.bound)
    detail = f"; {figure.detail}" if figure.detail else ""
    return (
        f"{section}: {figure.name}: {figure.measured:g}{unit} (bound {figure.comparison.value} "
        f"{figure.bound:g}{unit}) FAILED by {excess:.4g}{unit}{detail}"
    )


def failures(sections: Sequence[FigureSection]) -> list[str]:
    """One line per check that did not hold, in the sections whose evidence was sufficient."""
    return [
        failure_line(s.title, f)
        for s in sections
        if s.verdict is Verdict.DEVIATED
        for f in s.figures
        if not f.holds
    ]


def insufficient(sections: Sequence[FigureSection]) -> list[str]:
    """One line per piece of evidence that was too thin (once, though several sections needed it)."""
    lines = [f.line() for s in sections if s.verdict is Verdict.INCONCLUSIVE for f in s.figures
             if f.evidence and not f.holds]  # fmt: skip
    return list(dict.fromkeys(lines))


# -- evidence -------------------------------------------------------------------------------------------


def baseline_window(load: LoadWindow, first_fault: float | None) -> LoadWindow:
    """Before the first fault (the whole load without one), after the users were spawned."""
    end = load.end if first_fault is None else min(first_fault, load.end)
    return LoadWindow(min(load.start + WARMUP, end), end)


def achieved_ratio(
    timeline: Timeline, within: LoadWindow, rate_per_user: float
) -> tuple[float, float] | None:
    """(achieved, offered) requests/s over the load samples in ``within``; None without a sample."""
    samples = [s for s in timeline.of(LoadSample) if within.start <= timeline.t(s) <= within.end]
    if not samples:
        return None
    achieved = sum(s.rate for s in samples) / len(samples)
    offered = rate_per_user * sum(s.users for s in samples) / len(samples)
    return achieved, offered


def run_evidence(
    evidence: Evidence,
    *,
    lag_p99_ms: float | None,
    rates: tuple[float, float] | None,
    calls: tuple[str, int] | None,
) -> list[Figure]:
    """The evidence every section of a load run needs: the harness kept its time, achieved enough of the
    offered rate while the system was healthy (before any fault), and the caller made enough calls then."""
    figures = [
        Figure(
            name="harness timing lag p99",
            measured=lag_p99_ms,
            bound=evidence.max_lag_p99_ms,
            unit=" ms",
            evidence=True,
            detail="how late the harness woke when it asked to; a busy machine shows here",
        )
    ]
    if rates is not None:
        achieved, offered = rates
        ratio = achieved / offered if offered > 0 else None
        figures.append(
            Figure(
                name="achieved / offered rate before the first fault",
                measured=None if ratio is None else round(ratio, 4),
                bound=evidence.min_achieved_ratio,
                comparison=Comparison.AT_LEAST,
                evidence=True,
                detail=f"achieved {achieved:.1f} of the offered {offered:.1f} req/s",
            )
        )
    if calls is not None:
        who, count = calls
        figures.append(
            Figure(
                name=f"attempts by {who} before the first fault",
                measured=count,
                bound=evidence.min_calls,
                comparison=Comparison.AT_LEAST,
                evidence=True,
                detail="what the behaviour under the faults is compared with",
            )
        )
    return figures


def needing(evidence: Sequence[Figure], section: FigureSection) -> FigureSection:
    """The section with the run's evidence first: judged only if the evidence is sufficient."""
    return section.model_copy(update={"figures": [*evidence, *section.figures]})


# -- thresholds -----------------------------------------------------------------------------------------


def offered_rate(rate_per_user: float | None, users: Sequence[tuple[float, int]]) -> float | None:
    """Requests per second asked of the generator: the per-user rate times the time-weighted users
    (``users``: (seconds, user count) per stretch of the load)."""
    total = sum(seconds for seconds, _ in users)
    if rate_per_user is None or total <= 0:
        return None
    return rate_per_user * sum(seconds * count for seconds, count in users) / total


def threshold_section(thresholds: Thresholds, total: EndpointStats, offered: float | None) -> FigureSection:
    ratio = total.rate / offered if offered else None
    figures = [
        Figure(name="requests completed", measured=total.requests, detail=f"in {total.seconds:g} s"),
        Figure(name="achieved rate", measured=round(total.rate, 2), unit=" req/s"),
    ]
    if offered is not None:
        figures.append(
            Figure(
                name="offered rate",
                measured=round(offered, 2),
                unit=" req/s",
                detail="users x rate_per_user, time-weighted",
            )
        )
    bounded: list[tuple[str, float | None, float | None, Comparison, str]] = [
        ("failure ratio", round(total.failure_ratio, 4), thresholds.failure_ratio, Comparison.AT_MOST, ""),
        ("p50 latency", total.percentile(0.5), thresholds.p50_ms, Comparison.AT_MOST, " ms"),
        ("p95 latency", total.percentile(0.95), thresholds.p95_ms, Comparison.AT_MOST, " ms"),
        ("p99 latency", total.percentile(0.99), thresholds.p99_ms, Comparison.AT_MOST, " ms"),
        (
            "achieved / offered rate",
            None if ratio is None else round(ratio, 4),
            thresholds.achieved_ratio,
            Comparison.AT_LEAST,
            "",
        ),
        ("achieved rate, at least", round(total.rate, 2), thresholds.min_rate, Comparison.AT_LEAST, " req/s"),
    ]
    for name, measured, bound, comparison, unit in bounded:
        if bound is not None:
            figures.append(
                Figure(name=name, measured=measured, bound=bound, comparison=comparison, unit=unit)
            )
        elif measured is not None and name != "achieved rate, at least":
            figures.append(Figure(name=name, measured=measured, unit=unit))
    return FigureSection(
        title="Thresholds", figures=figures, note="Measured by Locust over every request of the run."
    )


# -- shares ---------------------------------------------------------------------------------------------


def attempts_in(timeline: Timeline, facts: CallerFacts, start: float, end: float) -> list[CallAttempt]:
    """The caller's attempts to the service sent in [start, end)."""
    return [
        a
        for a in timeline.attempts(facts.service, caller=facts.caller)
        if start <= timeline.sent(a) < end and a.instance in facts.instances
    ]


def shares_of(attempts: Sequence[CallAttempt], instances: Sequence[str]) -> dict[str, float]:
    total = len(attempts)
    return {i: (sum(1 for a in attempts if a.instance == i) / total if total else 0.0) for i in instances}


def shares_section(
    timeline: Timeline, facts: CallerFacts, check: SharesCheck, within: LoadWindow
) -> FigureSection:
    """Each instance's share within ``tolerance`` of its weight's share, over ``within``."""
    attempts = attempts_in(timeline, facts, within.start, within.end)
    shares = shares_of(attempts, facts.instances)
    figures = [
        Figure(
            name=f"attempts by {facts.caller} to {facts.service}",
            measured=len(attempts),
            bound=check.min_calls,
            comparison=Comparison.AT_LEAST,
            evidence=True,
            detail=f"from {within.start:.2f} s to {within.end:.2f} s",
        ),
    ]
    for instance in facts.instances:
        expected = facts.expected.get(instance, 0.0)
        figures.append(
            Figure(
                name=f"{instance} share, off its weight's share",
                measured=round(abs(shares[instance] - expected), 4) if attempts else None,
                bound=check.tolerance,
                detail=f"share {shares[instance]:.1%}, weight's share {expected:.1%}",
            )
        )
    return FigureSection(
        title=f"Balancer shares: {facts.caller} -> {facts.service}",
        figures=figures,
        note="Shares of the caller's own attempt events, before any fault.",
    )


def shares_over_time(
    timeline: Timeline, facts: CallerFacts, within: LoadWindow, width: float
) -> list[tuple[float, int, dict[str, float]]]:
    """(bin start, attempts, share per instance) for consecutive bins of ``width`` seconds."""
    rows = []
    count = max(1, math.ceil((within.end - within.start) / width))
    for index in range(count):
        start = within.start + index * width
        attempts = attempts_in(timeline, facts, start, min(start + width, within.end))
        rows.append((round(start, 3), len(attempts), shares_of(attempts, facts.instances)))
    return rows


# -- breakers -------------------------------------------------------------------------------------------


def _opened(spans: Sequence[Span], start: float, end: float) -> float | None:
    return next((s.start for s in spans if s.label == "open" and start <= s.start < end), None)


def breaker_section(
    timeline: Timeline, facts: CallerFacts, check: BreakerCheck, fault: FaultSpan, load: LoadWindow
) -> FigureSection:
    """One fault on one instance: the breaker's conformance, the instance's share while it is open, the
    others absorbing the load, and the shares after recovery."""
    instance = fault.instance
    title = f"Breaker of {facts.caller} towards {instance} under {fault.description} ({fault.window})"
    figures: list[Figure] = []
    if facts.breaker is None:
        figures.append(
            Figure(
                name="breaker opened during the fault",
                measured=None,
                bound=1,
                comparison=Comparison.AT_LEAST,
                detail=f"{facts.caller} has no breaker towards {facts.service} (breaker = false)",
            )
        )
    else:
        figures += breaker_conformance(
            timeline,
            service=facts.service,
            instance=instance,
            fault_start=fault.start,
            fault_end=fault.end,
            config=facts.breaker,
            probe_round=facts.probe_round,
            fault=fault.description,
            caller=facts.caller,
        ).figures
    spans = timeline.breaker_spans(facts.service, instance, caller=facts.caller)
    opened = _opened(spans, fault.start, fault.end)
    settled = opened if opened is not None else min(fault.start + facts.probe_round, fault.end)
    since = "OPEN" if opened is not None else f"the fault's start + {facts.probe_round:g} s (never OPEN)"
    before = attempts_in(timeline, facts, load.start + WARMUP, fault.start)
    during = attempts_in(timeline, facts, settled, fault.end)
    share_before = shares_of(before, facts.instances)[instance]
    share_during = shares_of(during, facts.instances)[instance]
    ratio = share_during / share_before if share_before > 0 and during else None
    figures.append(
        Figure(
            name=f"{instance} share during the fault / before",
            measured=None if ratio is None else round(ratio, 4),
            bound=check.max_share_ratio,
            detail=f"{share_during:.1%} of {len(during)} attempts from {since} at {settled:.2f} s to "
            f"{fault.end:.2f} s; {share_before:.1%} of {len(before)} before",
        )
    )
    # Attempts in flight when it opened still wait out their timeout, and so do the callers behind them:
    # the others are judged once those have resolved.
    absorbing = min(settled + facts.probe_round, fault.end)
    during_settled = attempts_in(timeline, facts, absorbing, fault.end)
    figures.append(
        _absorbed(
            facts,
            check,
            instance,
            before,
            during_settled,
            (fault.start - load.start - WARMUP, fault.end - absorbing),
        )
    )
    figures.append(_recovered(timeline, facts, check, instance, fault, load))
    return FigureSection(title=title, figures=figures)


def _absorbed(
    facts: CallerFacts,
    check: BreakerCheck,
    instance: str,
    before: Sequence[CallAttempt],
    during: Sequence[CallAttempt],
    seconds: tuple[float, float],
) -> Figure:
    """The other instances' successful attempts per second during the fault, over every instance's
    successful attempts per second before it: with a steady load, 1.0 means nothing was lost."""
    before_s, during_s = seconds
    ok_before = sum(1 for a in before if not a.failed) / before_s if before_s > 0 else 0.0
    ok_others = (
        sum(1 for a in during if not a.failed and a.instance != instance) / during_s if during_s > 0 else 0.0
    )
    ratio = ok_others / ok_before if ok_before > 0 else None
    return Figure(
        name=f"others absorb {instance}'s load (their ok calls/s during / all ok calls/s before)",
        measured=None if ratio is None else round(ratio, 4),
        bound=check.absorb_min,
        comparison=Comparison.AT_LEAST,
        detail=f"{ok_others:.1f}/s during, {ok_before:.1f}/s before",
    )


def _recovered(
    timeline: Timeline,
    facts: CallerFacts,
    check: BreakerCheck,
    instance: str,
    fault: FaultSpan,
    load: LoadWindow,
) -> Figure:
    start = fault.end + check.recover_within
    after = attempts_in(timeline, facts, start, load.end)
    share = shares_of(after, facts.instances)[instance]
    expected = facts.expected.get(instance, 0.0)
    return Figure(
        name=f"{instance} share {check.recover_within:g} s after the fault, off its weight's share",
        measured=round(abs(share - expected), 4) if after else None,
        bound=check.tolerance,
        detail=f"share {share:.1%} of {len(after)} attempts from {start:.2f} s; weight's {expected:.1%}",
    )


def open_breaker_section(timeline: Timeline, facts: CallerFacts, load: LoadWindow) -> FigureSection:
    """No instance receives a call while its breaker is OPEN, nor more than its probes when HALF_OPEN."""
    title = f"Open breakers of {facts.caller}: probes only"
    if facts.breaker is None:
        detail = f"{facts.caller} has no breaker towards {facts.service} (breaker = false)"
        return FigureSection(
            title=title,
            figures=[
                Figure(
                    name="breakers judged",
                    measured=None,
                    bound=1,
                    comparison=Comparison.AT_LEAST,
                    detail=detail,
                ),
            ],
        )
    figures = []
    for instance in facts.instances:
        spans = [
            s
            for s in timeline.breaker_spans(facts.service, instance, caller=facts.caller)
            if s.end > load.start
        ]
        attempts = [a for a in attempts_in(timeline, facts, load.start, load.end) if a.instance == instance]
        opened = [s for s in spans if s.label == "open"]
        leaked = sum(1 for a in attempts if any(s.contains(timeline.sent(a)) for s in opened))
        probes = [
            sum(1 for a in attempts if a.admitted == "half_open" and s.start <= timeline.sent(a) <= s.end)
            for s in spans
            if s.label == "half_open"
        ]
        figures.append(
            Figure(
                name=f"calls to {instance} while OPEN",
                measured=leaked,
                bound=0,
                detail=f"{len(opened)} OPEN period(s)",
            )
        )
        figures.append(
            Figure(
                name=f"most probes to {instance} in one HALF_OPEN period",
                measured=max(probes, default=0),
                bound=facts.breaker.half_open_calls,
                detail=f"{len(probes)} HALF_OPEN period(s)",
            )
        )
    return FigureSection(title=title, figures=figures)


# -- against a baseline ---------------------------------------------------------------------------------


def regression_section(
    current: EndpointStats, baseline: EndpointStats, regression: Regression, baseline_name: str
) -> FigureSection:
    """Latency percentiles, the achieved rate and the failure ratio against an earlier run's."""
    worse = 1.0 + regression.tolerance
    figures = []
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        before, now = baseline.percentile(q), current.percentile(q)
        if before is None:
            continue
        figures.append(
            Figure(
                name=f"{label} latency against the baseline's {before:g} ms",
                measured=now,
                bound=round(before * worse + 1.0, 3),
                unit=" ms",
            )
        )
    figures.append(
        Figure(
            name=f"achieved rate against the baseline's {baseline.rate:.2f} req/s",
            measured=round(current.rate, 2),
            bound=round(baseline.rate * (1.0 - regression.tolerance), 2),
            comparison=Comparison.AT_LEAST,
            unit=" req/s",
        )
    )
    figures.append(
        Figure(
            name=f"failure ratio against the baseline's {baseline.failure_ratio:.4f}",
            measured=round(current.failure_ratio, 4),
            bound=round(baseline.failure_ratio + regression.failure_ratio, 4),
        )
    )
    return FigureSection(
        title=f"Regressions against {baseline_name}",
        figures=figures,
        note=f"Latency and rate within {regression.tolerance:.0%} of the baseline's; failure ratio up by at "
        f"most {regression.failure_ratio:g}.",
    )
