"""Load runs with Locust that judge the balancers and breakers of the stack, not only its throughput.

``run_load`` is what ``harness load run`` calls: a TOML profile (``load_profiles/``) against the stack,
Locust in a subprocess (never imported here: its import patches the interpreter with gevent), the
profile's fault schedule, and a verdict from the services' own evidence on the timeline.
"""

from harness.load._capacity import REQUESTS_PER_PROCESS, capacity_warning
from harness.load._locust import LOCUSTFILE, Distribution, LocustProcess, worker_command
from harness.load._profile import (
    BreakerCheck,
    Checks,
    Load,
    LoadProfile,
    Regression,
    SharesCheck,
    Stage,
    Target,
    TargetKind,
    Thresholds,
    load_profile,
)
from harness.load._results import RESULTS_VERSION, InstanceEvidence, LoadResults
from harness.load._runner import LoadOutcome, run_load
from harness.load._stats import EndpointStats, HistoryRow

__all__ = [
    "LOCUSTFILE",
    "REQUESTS_PER_PROCESS",
    "RESULTS_VERSION",
    "BreakerCheck",
    "Checks",
    "Distribution",
    "EndpointStats",
    "HistoryRow",
    "InstanceEvidence",
    "Load",
    "LoadOutcome",
    "LoadProfile",
    "LoadResults",
    "LocustProcess",
    "Regression",
    "SharesCheck",
    "Stage",
    "Target",
    "TargetKind",
    "Thresholds",
    "capacity_warning",
    "load_profile",
    "run_load",
    "worker_command",
]
