"""ServiceClient: the resilient way services call each other.

One call = bulkhead slot -> (lookup -> balancer over instances whose breaker admits calls -> breaker permit
-> one HTTP attempt bounded by the attempt timeout and the overall deadline) repeated while the retry
policy, the retry budget and the deadline allow. Every decision is counted and logged as an event.
With ``breaker=None`` the client has no breakers at all: every instance is always a candidate and no
outcome is recorded (a configuration a user may legitimately have, not a bug switch); its
``client.configured`` event and the breaker-state gauge (``-1``) say so.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from harness.discovery._lookup import InstanceSource
from harness.discovery._metrics import BREAKER_STATE_VALUES, ClientMetrics
from harness.discovery._models import Instance
from harness.errors import (
    BulkheadFullError,
    CallFailed,
    CircuitOpenError,
    DeadlineExceeded,
    NoAvailableInstance,
    RegistryError,
)
from harness.events import EventLog
from harness.faults import ChaosMonkey, MonkeyConfig
from harness.resilience import (
    Balancer,
    BreakerConfig,
    BreakerOpen,
    BreakerState,
    BreakerTransition,
    Bulkhead,
    Candidate,
    CircuitBreaker,
    Clock,
    Deadline,
    RetryBudget,
    RetryPolicy,
    SystemClock,
    choose,
    make_balancer,
    parse_retry_after,
)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ServiceClientConfig:
    """How one ServiceClient balances, breaks, retries and bounds its calls; ``breaker=None``: no breaker."""

    balancer: str = "round_robin"
    breaker: BreakerConfig | None = field(default_factory=BreakerConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_budget_ratio: float = 0.2
    retry_budget_min_per_second: float = 1.0
    attempt_timeout: float = 2.0
    deadline: float = 10.0
    max_concurrent: int = 100
    bulkhead_max_wait: float = 0.0
    failure_statuses: frozenset[int] = frozenset({500, 502, 503, 504})
    chaos: MonkeyConfig | None = None
    """A ChaosMonkey under the client's own transport: injected latency and failures on every attempt."""

    def __post_init__(self) -> None:
        if self.attempt_timeout <= 0 or self.deadline <= 0:
            raise ValueError("attempt_timeout and deadline must be positive")


@dataclass
class InstanceStats:
    """What one client saw of one instance: attempts by outcome and the breaker's current state."""

    attempts: int = 0
    successes: int = 0
    failures: int = 0
    skipped_by_breaker: int = 0
    breaker_state: BreakerState | None = BreakerState.CLOSED
    """None when the client has no breaker."""


@dataclass(frozen=True)
class _Attempt:
    instance: Instance
    response: httpx.Response | None
    error: httpx.HTTPError | None

    @property
    def outcome(self) -> str:
        if self.response is not None:
            return f"status_{self.response.status_code // 100}xx"
        if isinstance(self.error, httpx.TimeoutException):
            return "timeout"
        if isinstance(self.error, httpx.ConnectError):
            return "connect_error"
        return "transport_error"


class ServiceClient:
    """Calls one logical service through discovery, a balancer, per-instance breakers, retries and a bulkhead.

    Returns the final ``httpx.Response`` whatever its status (the caller decides what a 404 means);
    raises a ``CallError`` when no response could be had: no instance available, bulkhead full,
    deadline exceeded, or every attempt failed at the transport level.
    """

    def __init__(
        self,
        service: str,
        source: InstanceSource,
        *,
        config: ServiceClientConfig | None = None,
        http: httpx.AsyncClient | None = None,
        events: EventLog | None = None,
        metrics: ClientMetrics | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.source = source
        self.config = config or ServiceClientConfig()
        self.events = events or EventLog(f"client.{service}")
        self.metrics = metrics or ClientMetrics()
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._owns_http = http is None
        if http is not None and self.config.chaos is not None:
            raise ValueError(
                "chaos needs the client's own transport: leave http out, or give your httpx client "
                "transport=harness.faults.ChaosMonkey(...)"
            )
        limits = httpx.Limits(
            max_connections=self.config.max_concurrent * 2,
            max_keepalive_connections=self.config.max_concurrent,
        )
        self.monkey: ChaosMonkey | None = None
        if self.config.chaos is not None:
            self.monkey = ChaosMonkey.from_config(
                self.config.chaos,
                transport=httpx.AsyncHTTPTransport(limits=limits),
                events=self.events,
                target=service,
                sleep=sleep,
            )
        self._http = http or httpx.AsyncClient(
            trust_env=False,  # loopback traffic must never be sent to an HTTP proxy from the environment
            limits=limits,
            transport=self.monkey,
        )
        self.balancer: Balancer = make_balancer(self.config.balancer, rng=self._rng)
        self.bulkhead = Bulkhead(
            self.config.max_concurrent, max_wait=self.config.bulkhead_max_wait, name=service
        )
        self.retry_budget = RetryBudget(
            self.config.retry_budget_ratio,
            min_retries_per_second=self.config.retry_budget_min_per_second,
            clock=self._clock,
        )
        self._breakers: dict[str, CircuitBreaker] = {}
        self._stats: dict[str, InstanceStats] = {}
        self.events.emit("client.configured", service=service, **_described(self.config))

    # -- public API ---------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send ``method path`` to an instance of the service, retrying where it is safe."""
        method = method.upper()
        headers = dict(headers or {})
        call_deadline = Deadline.after(
            deadline if deadline is not None else self.config.deadline, self._clock
        )
        try:
            async with self.bulkhead.slot():
                self.metrics.in_flight.labels(self.service).inc()
                try:
                    return await self._call(method, path, params, json, content, headers, call_deadline)
                finally:
                    self.metrics.in_flight.labels(self.service).dec()
        except BulkheadFullError:
            self._reject("bulkhead_full")
            raise

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    def breaker(self, instance_id: str) -> CircuitBreaker:
        """The breaker of one instance, created on first use; ValueError when the client has none."""
        breaker = self._breaker_of(instance_id)
        if breaker is None:
            raise ValueError(f"the {self.service} client has no breaker (breaker = false)")
        return breaker

    def stats(self) -> dict[str, InstanceStats]:
        """Per-instance attempts, outcomes and current breaker state (None: no breaker), for checks."""
        for instance_id, breaker in self._breakers.items():
            self._stats_of(instance_id).breaker_state = breaker.state
        return {k: InstanceStats(**vars(v)) for k, v in sorted(self._stats.items())}

    def _breaker_of(self, instance_id: str) -> CircuitBreaker | None:
        if self.config.breaker is None:
            return None
        breaker = self._breakers.get(instance_id)
        if breaker is None:
            breaker = CircuitBreaker(
                instance_id, self.config.breaker, clock=self._clock, listeners=[self._on_transition]
            )
            self._breakers[instance_id] = breaker
            self.metrics.breaker_state.labels(self.service, instance_id).set(0)
        return breaker

    # -- one call -------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        content: bytes | None,
        headers: dict[str, str],
        deadline: Deadline,
    ) -> httpx.Response:
        retryable = self.config.retry.is_retryable_request(method, headers)
        self.retry_budget.record_call()
        tried: list[str] = []
        attempt_number = 0
        while True:
            attempt_number += 1
            if deadline.expired:
                self._reject("deadline")
                raise DeadlineExceeded(
                    f"{self.service}: deadline of {deadline.seconds:g}s exceeded "
                    f"after {attempt_number - 1} attempt(s)",
                    service=self.service,
                    deadline=deadline.seconds,
                )
            instance = await self._pick(tried)
            attempt = await self._attempt(instance, method, path, params, json, content, headers, deadline)
            tried.append(instance.id)
            if not self._should_retry(attempt):
                return self._finish(attempt, attempt_number)
            delay = self._retry_delay(attempt, attempt_number, retryable, deadline)
            if delay is None:
                return self._finish(attempt, attempt_number)
            self.metrics.retries.labels(self.service).inc()
            self.events.emit(
                "client.retry",
                service=self.service,
                instance=instance.id,
                attempt=attempt_number,
                delay=round(delay, 4),
                outcome=attempt.outcome,
            )
            await self._sleep(delay)

    async def _pick(self, tried: list[str]) -> Instance:
        try:
            instances = {i.id: i for i in await self.source.instances(self.service)}
        except RegistryError as exc:
            self._reject("no_instance")
            raise NoAvailableInstance(
                f"{self.service}: no instance known and the registry cannot be asked: {exc}",
                service=self.service,
            ) from exc
        candidates = [Candidate(i.id, i.weight) for i in instances.values()]
        try:
            chosen = choose(self.balancer, candidates, self._admits, service=self.service, exclude=tried)
        except NoAvailableInstance:
            self._reject("no_instance")
            raise
        return instances[chosen.id]

    def _admits(self, instance_id: str) -> bool:
        breaker = self._breaker_of(instance_id)
        if breaker is None or breaker.available():
            return True
        self._stats_of(instance_id).skipped_by_breaker += 1
        return False

    async def _attempt(
        self,
        instance: Instance,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        json: Any,
        content: bytes | None,
        headers: dict[str, str],
        deadline: Deadline,
    ) -> _Attempt:
        breaker = self._breaker_of(instance.id)
        try:
            permit = breaker.acquire() if breaker is not None else None
        except BreakerOpen as exc:
            raise CircuitOpenError(
                str(exc), service=self.service, instance=exc.instance, retry_in=exc.retry_in
            ) from exc
        stats = self._stats_of(instance.id)
        if breaker is None and stats.attempts == 0:
            self.metrics.breaker_state.labels(self.service, instance.id).set(BREAKER_STATE_VALUES["off"])
        stats.attempts += 1
        self.balancer.started(instance.id)
        started = self._clock.monotonic()
        response: httpx.Response | None = None
        error: httpx.HTTPError | None = None
        try:
            response = await self._http.request(
                method,
                instance.base_url + path,
                params=params,
                json=json,
                content=content,
                headers=headers,
                timeout=deadline.cap(self.config.attempt_timeout),
            )
        except httpx.HTTPError as exc:  # transport errors, and answers httpx cannot decode
            error = exc
        except BaseException:
            if breaker is not None and permit is not None:
                breaker.release(permit)
            raise
        finally:
            self.balancer.finished(instance.id)
        duration = self._clock.monotonic() - started
        attempt = _Attempt(instance, response, error)
        if response is not None and response.status_code not in self.config.failure_statuses:
            if breaker is not None and permit is not None:
                breaker.record_success(permit, duration)
            stats.successes += 1
        else:
            if breaker is not None and permit is not None:
                breaker.record_failure(permit, duration)
            stats.failures += 1
        self.metrics.calls.labels(self.service, instance.id, attempt.outcome).inc()
        self.metrics.latency.labels(self.service, instance.id).observe(duration)
        self.events.emit(
            "client.attempt",
            service=self.service,
            instance=instance.id,
            method=method,
            path=path,
            outcome=attempt.outcome,
            status=response.status_code if response is not None else None,
            admitted=permit.state.value if permit is not None else "off",
            sent_at=started,
            duration=round(duration, 6),
        )
        return attempt

    def _should_retry(self, attempt: _Attempt) -> bool:
        if attempt.response is None:
            return True
        return attempt.response.status_code in self.config.retry.retry_on_status

    def _retry_delay(
        self, attempt: _Attempt, attempt_number: int, retryable: bool, deadline: Deadline
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when this attempt's result is final."""
        if not retryable or attempt_number >= self.config.retry.max_attempts:
            return None
        retry_after = None
        if attempt.response is not None:
            retry_after = parse_retry_after(attempt.response.headers.get("Retry-After"))
        delay = self.config.retry.delay(attempt_number, self._rng, retry_after)
        if delay is None or delay >= deadline.remaining():
            return None
        if not self.retry_budget.try_spend():
            self._reject("retry_budget")
            return None
        return delay

    def _finish(self, attempt: _Attempt, attempts: int) -> httpx.Response:
        if attempt.response is not None:
            return attempt.response
        raise CallFailed(
            f"{self.service}: {attempts} attempt(s) failed, last at {attempt.instance.id} "
            f"({attempt.instance.base_url}): {attempt.error!r}",
            service=self.service,
            attempts=attempts,
        ) from attempt.error

    # -- bookkeeping ----------------------------------------------------------------------------

    def _stats_of(self, instance_id: str) -> InstanceStats:
        stats = self._stats.get(instance_id)
        if stats is None:
            state = None if self.config.breaker is None else BreakerState.CLOSED
            stats = self._stats[instance_id] = InstanceStats(breaker_state=state)
        return stats

    def _on_transition(self, transition: BreakerTransition) -> None:
        to_state = transition.to_state.value
        self.metrics.breaker_state.labels(self.service, transition.breaker).set(
            BREAKER_STATE_VALUES[to_state]
        )
        self.metrics.breaker_transitions.labels(self.service, transition.breaker, to_state).inc()
        self.events.emit(
            "client.breaker_transition",
            service=self.service,
            instance=transition.breaker,
            from_state=transition.from_state.value,
            to_state=to_state,
            reason=transition.reason,
            at=transition.at,
        )

    def _reject(self, reason: str) -> None:
        self.metrics.rejections.labels(self.service, reason).inc()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _described(config: ServiceClientConfig) -> dict[str, Any]:
    """The configuration as event fields: what a reader of the timeline needs to judge the client."""
    breaker = config.breaker
    return {
        "balancer": config.balancer,
        "breaker": "off" if breaker is None else {
            "window_size": breaker.window_size, "window_type": breaker.window_type,
            "minimum_calls": breaker.minimum_calls, "failure_rate_threshold": breaker.failure_rate_threshold,
            "slow_call_duration": breaker.slow_call_duration, "open_duration": breaker.open_duration,
            "half_open_calls": breaker.half_open_calls,
        },
        "retry": {"max_attempts": config.retry.max_attempts, "base_delay": config.retry.base_delay,
                  "max_delay": config.retry.max_delay},
        "attempt_timeout": config.attempt_timeout,
        "deadline": config.deadline,
        "chaos": None if config.chaos is None else {
            "failure_rate": config.chaos.failure_rate, "latency_range": list(config.chaos.latency_range),
            "error": config.chaos.error, "retry_after": config.chaos.retry_after, "seed": config.chaos.seed,
        },
    }  # fmt: skip
