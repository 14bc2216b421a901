"""Breaker conformance under a fault, measured from the timeline, each figure next to its bound.

For one caller (its ServiceClient towards ``service``) and one instance under one fault window:
- failed (or slow) outcomes the breaker had recorded when it opened, and seconds from the fault's start
  to OPEN; bound on the outcomes: the failures the configured window needs for a verdict
  (``minimum_calls``, or the threshold's share of a full window). Calls still in flight when it opened
  are not counted: a breaker can only judge outcomes it has seen;
- calls that reached the instance while OPEN: 0 (only HALF_OPEN admits probes);
- probes per HALF_OPEN period: at most ``half_open_calls``, exactly that many in a period that closes;
- seconds from the fault's end to CLOSED: ``open_duration`` plus one probe round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.checks._figures import Comparison, Figure
from harness.resilience import BreakerConfig
from harness.timeline import CallAttempt, Span, Timeline


@dataclass(frozen=True)
class Conformance:
    caller: str | None
    service: str
    instance: str
    fault: str
    figures: list[Figure]

    @property
    def holds(self) -> bool:
        return all(f.holds for f in self.figures)


def failures_to_open(config: BreakerConfig) -> int:
    """The most failures a count window can need to open, starting full of successes."""
    return max(config.minimum_calls, math.ceil(config.failure_rate_threshold * config.window_size))


def breaker_conformance(
    timeline: Timeline,
    *,
    service: str,
    instance: str,
    fault_start: float,
    fault_end: float,
    config: BreakerConfig,
    probe_round: float,
    fault: str = "",
    caller: str | None = None,
) -> Conformance:
    """Every figure for one breaker (of the ``caller`` process, when several call the service) and one
    fault window (times in seconds since the origin)."""
    spans = timeline.breaker_spans(service, instance, caller=caller)
    attempts = timeline.attempts(service, instance, caller=caller)
    since_fault = [s for s in spans if s.end > fault_start]  # earlier periods belong to earlier faults
    figures = [
        *_opening(timeline, spans, attempts, fault_start, config),
        _calls_while_open(timeline, since_fault, attempts),
    ]
    figures += _probes(timeline, since_fault, attempts, config)
    figures.append(_closing(spans, fault_start, fault_end, config, probe_round))
    return Conformance(caller, service, instance, fault, figures)


def _bad(attempt: CallAttempt, config: BreakerConfig) -> bool:
    slow = config.slow_call_duration is not None and attempt.duration >= config.slow_call_duration
    return attempt.failed or slow


def _opening(
    timeline: Timeline, spans: list[Span], attempts: list[CallAttempt], start: float, config: BreakerConfig
) -> list[Figure]:
    opened = next((s for s in spans if s.label == "open" and s.start >= start), None)
    bound = failures_to_open(config)
    if opened is None:
        return [Figure(name="failed calls before OPEN", measured=None, bound=bound,
                       detail="the breaker never opened during the fault")]  # fmt: skip
    # by completion: calls still in flight when it opened are outcomes the breaker had not seen yet
    failed = sum(
        1 for a in attempts if start <= timeline.completed(a) <= opened.start + 1e-6 and _bad(a, config)
    )
    return [
        Figure(name="failed calls before OPEN", measured=failed, bound=bound),
        Figure(name="seconds from fault to OPEN", measured=round(opened.start - start, 3), unit="s"),
    ]


def _calls_while_open(timeline: Timeline, spans: list[Span], attempts: list[CallAttempt]) -> Figure:
    open_spans = [s for s in spans if s.label == "open"]
    leaked = sum(1 for a in attempts if any(s.contains(timeline.sent(a)) for s in open_spans))
    return Figure(name="calls reaching the instance while OPEN", measured=leaked, bound=0)


def _probes(
    timeline: Timeline, spans: list[Span], attempts: list[CallAttempt], config: BreakerConfig
) -> list[Figure]:
    figures = []
    for index, span in enumerate(spans):
        if span.label != "half_open":
            continue
        probes = sum(
            1 for a in attempts if a.admitted == "half_open" and span.start <= timeline.sent(a) <= span.end
        )
        closes = index + 1 < len(spans) and spans[index + 1].label == "closed"
        figures.append(Figure(
            name=f"probes in HALF_OPEN at {span.start:.2f}s" + (" (closed)" if closes else ""),
            measured=probes,
            bound=config.half_open_calls,
            comparison=Comparison.EXACTLY if closes else Comparison.AT_MOST,
        ))  # fmt: skip
    return figures


def _closing(
    spans: list[Span], start: float, end: float, config: BreakerConfig, probe_round: float
) -> Figure:
    bound = round(config.open_duration + probe_round, 3)
    if not any(s.label == "open" and s.start >= start for s in spans):
        return Figure(name="seconds from fault end to CLOSED", measured=None, bound=bound, unit="s",
                      detail="the breaker never opened")  # fmt: skip
    closed = next((s for s in spans if s.label == "closed" and s.start >= end), None)
    if closed is None:
        last = spans[-1]
        if last.label == "closed" and last.start < end:  # closed before the fault ended (a short fault)
            return Figure(name="seconds from fault end to CLOSED", measured=0.0, bound=bound, unit="s")
        return Figure(name="seconds from fault end to CLOSED", measured=None, bound=bound, unit="s",
                      detail=f"still {last.label} at the end")  # fmt: skip
    return Figure(name="seconds from fault end to CLOSED", measured=round(closed.start - end, 3), bound=bound,
                  unit="s")  # fmt: skip
