"""The seeded bugs: curated faults in the code under test that the pyramid must catch, each a small patch.

Production code carries no bug switch: a bug exists only as text to find and its replacement, applied to a
temporary copy of the source (``_patch``). A patch whose text is not found exactly once is refused, so a
refactor shows up as a broken entry here rather than as a run that silently tested unmutated code.
Settings a user legitimately has (a breaker turned off, health checks off) are configuration, not bugs.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ConfigError
from harness.pyramid._catalogue import known


@dataclass(frozen=True)
class Patch:
    """Replace ``find`` (which must occur exactly once) by ``replace`` in ``path`` (relative to the root)."""

    path: str
    find: str
    replace: str

    def __post_init__(self) -> None:
        if not self.find or self.find == self.replace:
            raise ValueError(
                f"patch of {self.path}: the text to find must be non-empty and differ from its replacement"
            )


@dataclass(frozen=True)
class SeededBug:
    """One curated fault: what it breaks (catalogued behaviours) and the patches that make it."""

    id: str
    description: str
    behaviours: tuple[str, ...]
    patches: tuple[Patch, ...]

    def __post_init__(self) -> None:
        known(self.behaviours)
        if not self.patches:
            raise ValueError(f"seeded bug {self.id!r} has no patch")

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.path for p in self.patches))


_BREAKER = "harness/resilience/_breaker.py"
_BALANCERS = "harness/resilience/_balancers.py"
_RETRY = "harness/resilience/_retry.py"
_CLIENT = "harness/discovery/_service_client.py"
_LOOKUP = "harness/discovery/_lookup.py"
_REGISTRY_STORE = "reference_services/registry/_store.py"
_CHECKER = "reference_services/registry/_checker.py"
_SAGA = "reference_services/orchestrator/_saga.py"
_OUTBOX = "reference_services/users/_outbox.py"
_USERS_STORE = "reference_services/users/_store.py"
_NOTIFICATIONS_MODELS = "reference_services/notifications/_models.py"
_NOTIFICATIONS_APP = "reference_services/notifications/_app.py"
_TOXICS = "harness/faults/_toxics.py"

_8 = " " * 8  # the indentation of a method body, so the patches below read as the code they change
_12 = " " * 12

SEEDED_BUGS: tuple[SeededBug, ...] = (
    SeededBug(
        "breaker.never_opens",
        "a breaker that never opens: its verdict waits for more calls than its count window can hold",
        ("breaker.opens",),
        (Patch(_BREAKER, f"{_8}if totals.calls < config.minimum_calls:\n{_12}return\n",
               f"{_8}if totals.calls <= config.window_size:\n{_12}return\n"),),
    ),
    SeededBug(
        "breaker.half_open_admits_all",
        "half-open admitting every call: probes in flight do not take a slot",
        ("breaker.half_open_probes",),
        (Patch(_BREAKER,
               "return self.config.half_open_calls - len(self._probes) - self._probe_successes",
               "return self.config.half_open_calls - self._probe_successes"),),
    ),
    SeededBug(
        "balancer.ignores_open_breakers",
        "a balancer that ignores open breakers: every known instance stays a candidate",
        ("balancer.skips_open_breakers",),
        (Patch(_BALANCERS, "    available = [c for c in candidates if is_available(c.id)]\n",
               "    available = list(candidates)\n"),),
    ),
    SeededBug(
        "balancer.ignores_weights",
        "weighted balancing ignoring the weights: each instance counts as weight 1",
        ("balancer.weights",),
        (Patch(_BALANCERS,
               f"{_12}current = self._current.get(candidate.id, 0) + candidate.weight\n"
               f"{_12}self._current[candidate.id] = current\n"
               f"{_12}total += candidate.weight\n",
               f"{_12}current = self._current.get(candidate.id, 0) + 1\n"
               f"{_12}self._current[candidate.id] = current\n"
               f"{_12}total += 1\n"),),
    ),
    SeededBug(
        "retry.retries_post",
        "retries of a non-idempotent POST: the client forgets to ask whether the request may be retried",
        ("retry.only_when_safe",),
        (Patch(_CLIENT, f"{_8}if not retryable or attempt_number >= self.config.retry.max_attempts:\n",
               f"{_8}if attempt_number >= self.config.retry.max_attempts:\n"),),
    ),
    SeededBug(
        "retry.budget_never_charged",
        "a retry budget never charged: a retry is allowed but not recorded",
        ("retry.budget",),
        (Patch(_RETRY, f"{_12}return False\n{_8}self._current_bucket().retries += 1\n{_8}return True\n",
               f"{_12}return False\n{_8}return True\n"),),
    ),
    SeededBug(
        "registry.never_expires",
        "a registry that never evicts on TTL: the TTL is taken a thousand times too long",
        ("registry.ttl_eviction",),
        (Patch(_REGISTRY_STORE, f"{_8}return self.last_heartbeat + self.ttl\n",
               f"{_8}return self.last_heartbeat + self.ttl * 1000\n"),),
    ),
    SeededBug(
        "registry.ignores_health_checks",
        "a health-check result ignored: every check counts as passed (only the registry process has it)",
        ("registry.health_check_eviction", "registry.critical_until_checked"),
        (Patch(_CHECKER, "passed=result is CheckResult.PASSING, reason=reason)",
               "passed=True, reason=reason)"),),
    ),
    SeededBug(
        "discovery.never_refreshes",
        "a lookup cache that never refreshes: the first list of instances is kept whatever the mode",
        ("discovery.follows_membership",),
        (Patch(_LOOKUP, f"{_8}while not (mode.never and self._lists.get(service)):",
               f"{_8}while not self._lists.get(service):"),),
    ),
    SeededBug(
        "saga.skips_compensation",
        "a saga that skips a compensation: the first step (the credit reservation) is never released",
        ("saga.compensation",),
        (Patch(_SAGA, f"{_8}for spec in reversed(FORWARD):\n", f"{_8}for spec in reversed(FORWARD[1:]):\n"),),
    ),
    SeededBug(
        "saga.compensates_after_pivot",
        "a saga that compensates after its pivot: a failed notification undoes a confirmed order",
        ("saga.pivot_rule",),
        (Patch(_SAGA, f"{_8}may_compensate = spec.kind is StepKind.COMPENSABLE or (\n",
               f"{_8}may_compensate = spec.kind is not StepKind.PIVOT or (\n"),),
    ),
    SeededBug(
        "outbox.loses_event_on_crash",
        "an outbox that loses an event on a crash: a row counts as delivered once a relay claims it",
        ("outbox.at_least_once",),
        (Patch(_OUTBOX, "UPDATE outbox SET lease_owner = :owner, lease_until = :until\n",
               "UPDATE outbox SET lease_owner = :owner, lease_until = :until, delivered_at = :now\n"),),
    ),
    SeededBug(
        "users.ignores_idempotency_key",
        "an idempotency key ignored: a replayed reservation id makes a second reservation",
        ("users.idempotent_reservations",),
        (
            Patch(_USERS_STORE, "    reservation_id TEXT    NOT NULL UNIQUE,\n",
                  "    reservation_id TEXT    NOT NULL,\n"),
            Patch(_USERS_STORE,
                  f"{_12}existing = _reservation(conn, reservation_id)\n{_12}if existing is not None:\n",
                  f"{_12}existing = None\n{_12}if existing is not None:\n"),
        ),
    ),
    SeededBug(
        "notifications.renames_field",
        "a provider that renames a response field: notification_id becomes id in every answer",
        ("contract.orchestrator-notifications", "contract.harness-notifications"),
        (
            Patch(_NOTIFICATIONS_MODELS, "    notification_id: str\n    user_id: str\n",
                  "    id: str\n    user_id: str\n"),
            Patch(_NOTIFICATIONS_APP,
                  f"    return NotificationView(\n{_8}notification_id=notification.notification_id,",
                  f"    return NotificationView(\n{_8}id=notification.notification_id,"),
        ),
    ),
    SeededBug(
        "toxic.latency_10x",
        "a latency toxic off by 10x: milliseconds divided by 100",
        ("toxic.latency",),
        (Patch(_TOXICS, "    return delay / 1000.0\n", "    return delay / 100.0\n"),),
    ),
)  # fmt: skip

_BY_ID = {bug.id: bug for bug in SEEDED_BUGS}


def seeded_bugs(ids: list[str] | tuple[str, ...] | None = None) -> tuple[SeededBug, ...]:
    """The bugs named (all when None), in catalogue order; ConfigError naming an unknown id."""
    if ids is None:
        return SEEDED_BUGS
    if unknown := [id for id in ids if id not in _BY_ID]:
        raise ConfigError(f"unknown seeded bug {', '.join(unknown)}; known: {', '.join(_BY_ID)}")
    wanted = set(ids)
    return tuple(bug for bug in SEEDED_BUGS if bug.id in wanted)
