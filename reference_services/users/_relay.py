"""The outbox relay: a background task that delivers outbox events to the notification service.

At least once: a row is marked delivered only after a 2xx answer, and a row without a clear answer
(transport error, 5xx, 408, 429, a 4xx without the documented JSON error body: uvicorn's plain-text 400
for a request a fault cut) waits its backoff and goes again; the notification service deduplicates by
event id, so resending is always safe. A refusal the notification service's contract defines
(``reference_services.common.contract_refusal``), or a row the relay cannot send at all, would fail the
same way forever: it becomes a dead letter, visible in the metrics, the events and
``GET /outbox/dead-letters``, instead of being retried forever.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

from harness.discovery import ServiceClient
from harness.events import EventLog
from reference_services.common import contract_refusal

from ._outbox import Outbox, OutboxMessage
from ._store import utc_now
from .events import USER_CREATED, UserCreatedEvent, welcome_notification

logger = logging.getLogger(__name__)


def backoff_delay(attempts: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before the next try after ``attempts`` failures: doubling from ``base`` up to ``cap``, with
    jitter in [50%, 100%] so rows that failed together do not all come back together."""
    if attempts < 1:
        raise ValueError(f"attempts counts from 1, got {attempts}")
    ceiling = min(cap, base * 2.0 ** min(attempts - 1, 60))
    return rng.uniform(ceiling / 2, ceiling)


class Undeliverable(Exception):
    """The row can never be delivered as it is (refused outright, or it cannot be sent at all)."""


class RelayMetrics:
    """Pending events and dead letters (set each round); deliveries by result: delivered, duplicate,
    failed, dead_lettered."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge("users_outbox_pending", "Outbox events not delivered yet.", registry=registry)
        self.dead = Gauge(
            "users_outbox_dead_letters",
            "Outbox events refused outright, waiting for an operator.",
            registry=registry,
        )
        self.deliveries = Counter(
            "users_outbox_deliveries",
            "Outbox delivery attempts, by result (duplicate: the receiver had it already).",
            ["result"],
            registry=registry,
        )


class OutboxRelay:
    """Claims due events with a lease and sends each to ``notifications``, concurrently within a round.

    ``run`` first frees rows leased by this instance's previous incarnation (same instance id, so that
    process is gone), then relays every ``interval`` seconds, or sooner after ``wake``.
    """

    def __init__(
        self,
        outbox: Outbox,
        client: Callable[[], ServiceClient],
        *,
        owner: str,
        interval: float,
        events: EventLog,
        metrics: RelayMetrics,
        lease: float = 15.0,
        batch: int = 32,
        max_backoff: float = 5.0,
        clock: Callable[[], float] = time.time,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self.owner = owner
        self.interval = interval
        self._events = events
        self._metrics = metrics
        self.lease = lease
        self.batch = batch
        self.max_backoff = max_backoff
        self._clock = clock
        self._now = now
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Relay now rather than at the next tick (a new event was just written)."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; a failing round is logged and the next one runs as usual."""
        freed = await self._outbox.release_leases(self.owner)
        if freed:
            self._events.emit("outbox.leases_recovered", owner=self.owner, rows=freed)
        while True:
            try:
                if await self.relay_once() == self.batch:
                    continue  # a full batch: more may be due right now
            except Exception:  # e.g. the database is locked for long: never stop relaying for good
                logger.exception("outbox relay round failed")
            try:
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def relay_once(self) -> int:
        """One round: claim what is due and try each; returns how many rows it claimed."""
        now = self._clock()
        backlog = await self._outbox.backlog(now)
        self._metrics.pending.set(backlog.pending)
        self._metrics.dead.set(backlog.dead)
        if not backlog.due:
            return 0
        claimed = await self._outbox.claim(self.owner, now, self.lease, self.batch)
        results = await asyncio.gather(*(self._deliver(m) for m in claimed), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):  # marking failed; the lease frees the row in time
                logger.error("outbox delivery failed", exc_info=result)
        delivered = sum(result is True for result in results)
        self._metrics.pending.set(max(0, backlog.pending - delivered))
        return len(claimed)

    async def _deliver(self, message: OutboxMessage) -> bool:
        try:
            notification = _notification(message)
            response = await self._client().post(
                "/notifications", json=notification, headers={"Idempotency-Key": message.event_id}
            )
        except Undeliverable as exc:
            await self._dead(message, str(exc))
            return False
        except Exception as exc:  # no answer (a CallError): try again later
            await self._failed(message, f"{type(exc).__name__}: {exc}")
            return False
        if response.is_success:
            await self._delivered(message, response.status_code)
            return True
        reason = f"status {response.status_code}: {response.text[:200]}"
        if contract_refusal(response) is not None:
            await self._dead(message, reason)
        else:
            await self._failed(message, reason)
        return False

    async def _dead(self, message: OutboxMessage, reason: str) -> None:
        moved = await self._outbox.dead_letter(message.seq, self.owner, reason, self._now())
        if not moved:  # another relay took the row over after our lease ran out: it decides
            return
        self._metrics.deliveries.labels("dead_lettered").inc()
        self._metrics.dead.inc()
        self._events.emit(
            "outbox.dead_lettered",
            event_id=message.event_id,
            type=message.type,
            attempts=message.attempts + 1,
            reason=reason[:300],
        )

    async def _delivered(self, message: OutboxMessage, status: int) -> None:
        first = await self._outbox.mark_delivered(message.seq, self._now())
        result = "delivered" if status == 201 else "duplicate"
        self._metrics.deliveries.labels(result).inc()
        self._events.emit(
            "outbox.delivered",
            event_id=message.event_id,
            type=message.type,
            status=status,
            attempts=message.attempts + 1,
            first_mark=first,
        )

    async def _failed(self, message: OutboxMessage, reason: str) -> None:
        attempts = message.attempts + 1
        delay = backoff_delay(
            attempts, base=self.interval, cap=max(self.max_backoff, self.interval), rng=self._rng
        )
        await self._outbox.mark_failed(message.seq, self.owner, self._clock() + delay, reason)
        self._metrics.deliveries.labels("failed").inc()
        self._events.emit(
            "outbox.failed",
            event_id=message.event_id,
            type=message.type,
            attempts=attempts,
            retry_in=round(delay, 3),
            reason=reason[:300],
        )


def _notification(message: OutboxMessage) -> dict[str, str]:
    """The notification a row asks for; Undeliverable when no notification can ever come of it."""
    if message.type != USER_CREATED:
        raise Undeliverable(f"no route for event type {message.type!r}")
    try:
        event = UserCreatedEvent.model_validate_json(message.payload)
    except ValueError as exc:
        raise Undeliverable(f"payload is not a valid {message.type} event: {exc}") from exc
    return welcome_notification(event)
