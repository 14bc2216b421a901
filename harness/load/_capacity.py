"""What one Locust process can offer on a machine like this, measured by ``benchmarks/bench_locust.py``,
and the warning a profile gets before it starts when it asks for more than its workers can send."""

from __future__ import annotations

from harness.load._profile import Load

REQUESTS_PER_PROCESS = 8000.0
"""Requests per second one Locust process (FastHttpUser, no wait) offered against the echo service on a
2-core machine, rounded down from the 8,700 measured with Locust at a full core (docs/benchmarks.md). A
profile offering more per worker process is warned about before it starts."""


def capacity_warning(load: Load, workers: int) -> str | None:
    """A sentence when the profile's peak offered rate exceeds the measured capacity of ``workers``."""
    offered = load.offered_peak
    capacity = REQUESTS_PER_PROCESS * workers
    if offered is None or capacity <= 0 or offered <= capacity:
        return None
    return (
        f"the profile offers up to {offered:g} req/s, more than {workers} Locust process(es) measured "
        f"{capacity:g} req/s here (benchmarks/bench_locust.py); the generator, not the system, may be "
        f"the limit: add --processes"
    )
