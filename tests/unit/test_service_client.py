"""ServiceClient against respx-mocked instances: balancing, breakers, retries, timeouts, bulkhead, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import respx

from harness.discovery import Instance, ServiceClient, ServiceClientConfig, StaticInstances
from harness.errors import BulkheadFullError, CallFailed, NoAvailableInstance, RegistryUnavailable
from harness.events import EventLog
from harness.resilience import BreakerConfig, BreakerState, ManualClock, RetryPolicy

INSTANCES = [Instance(f"echo-{n}", "echo", "127.0.0.1", 9000 + n) for n in (1, 2, 3)]


def url(n: int, path: str = "/echo") -> str:
    return f"http://127.0.0.1:{9000 + n}{path}"


class FakeSleep:
    """Records requested delays and moves the manual clock instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def sleep(clock: ManualClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def make_client(
    clock: ManualClock, sleep: FakeSleep, *, instances: list[Instance] = INSTANCES, **config: object
) -> ServiceClient:
    settings = {
        "breaker": BreakerConfig.consecutive_failures(3, open_duration=5.0),
        "retry": RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=1.0),
        "retry_budget_min_per_second": 100.0,
        **config,
    }
    return ServiceClient(
        "echo",
        StaticInstances(instances),
        config=ServiceClientConfig(**settings),  # type: ignore[arg-type]
        clock=clock,
        sleep=sleep,
        events=EventLog("test"),
    )


def ok(n: int) -> httpx.Response:
    return httpx.Response(200, json={"instance": f"echo-{n}"})


class TestBalancing:
    @pytest.mark.behaviour("balancer.round_robin_shares")
    async def test_round_robin_spreads_calls_evenly(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """Nine calls over three healthy instances give three calls each."""
        routes = [mock.get(url(n)).mock(return_value=ok(n)) for n in (1, 2, 3)]
        async with make_client(clock, sleep) as client:
            for _ in range(9):
                assert (await client.get("/echo")).status_code == 200
        assert [r.call_count for r in routes] == [3, 3, 3]

    @pytest.mark.behaviour("balancer.none_available_fails_fast")
    async def test_unreachable_registry_with_nothing_cached_is_a_call_error(
        self, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """A lookup that cannot reach the registry surfaces as NoAvailableInstance, the documented error."""

        class DownRegistry:
            async def instances(self, service: str) -> list[Instance]:
                raise RegistryUnavailable("registry at http://127.0.0.1:1 unreachable during lookup")

        client = ServiceClient("echo", DownRegistry(), clock=clock, sleep=sleep, events=EventLog("test"))
        async with client:
            with pytest.raises(NoAvailableInstance, match="registry") as info:
                await client.get("/echo")
        assert isinstance(info.value.__cause__, RegistryUnavailable)

    @pytest.mark.behaviour("balancer.none_available_fails_fast")
    async def test_no_instances_fails_fast(self, clock: ManualClock, sleep: FakeSleep) -> None:
        """An empty instance list raises NoAvailableInstance naming the service."""
        async with make_client(clock, sleep, instances=[]) as client:
            with pytest.raises(NoAvailableInstance, match="echo"):
                await client.get("/echo")


class TestRetries:
    @pytest.mark.behaviour("retry.backoff")
    async def test_connect_error_moves_to_another_instance(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """A refused connection is retried on a different instance and the caller gets its answer."""
        mock.get(url(1)).mock(side_effect=httpx.ConnectError("refused"))
        mock.get(url(2)).mock(return_value=ok(2))
        mock.get(url(3)).mock(return_value=ok(3))
        async with make_client(clock, sleep) as client:
            response = await client.get("/echo")
            stats = client.stats()
        assert response.json()["instance"] == "echo-2"
        assert stats["echo-1"].failures == 1
        assert stats["echo-2"].successes == 1
        assert len(sleep.delays) == 1

    @pytest.mark.behaviour("retry.backoff")
    async def test_5xx_is_retried_with_backoff_within_bounds(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """Two 503s then a 200: two retries, each delay within the full-jitter cap."""
        mock.get(url(1)).mock(return_value=httpx.Response(503))
        mock.get(url(2)).mock(return_value=httpx.Response(503))
        mock.get(url(3)).mock(return_value=ok(3))
        async with make_client(clock, sleep) as client:
            response = await client.get("/echo")
        assert response.status_code == 200
        assert len(sleep.delays) == 2
        assert 0 <= sleep.delays[0] <= 0.1
        assert 0 <= sleep.delays[1] <= 0.2

    @pytest.mark.behaviour("retry.retry_after")
    async def test_retry_after_is_honoured(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """A 503 with Retry-After: 2 makes the client wait exactly 2 s before the next attempt."""
        mock.get(url(1)).mock(return_value=httpx.Response(503, headers={"Retry-After": "2"}))
        mock.get(url(2)).mock(return_value=ok(2))
        async with make_client(clock, sleep) as client:
            assert (await client.get("/echo")).status_code == 200
        assert sleep.delays == [2.0]

    @pytest.mark.behaviour("retry.retry_after")
    async def test_retry_after_beyond_the_cap_returns_the_response(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """A Retry-After longer than max_retry_after is not waited for; the 503 goes back to the caller."""
        mock.get(url(1)).mock(return_value=httpx.Response(503, headers={"Retry-After": "120"}))
        async with make_client(clock, sleep) as client:
            assert (await client.get("/echo")).status_code == 503
        assert sleep.delays == []

    @pytest.mark.behaviour("retry.only_when_safe")
    async def test_post_without_idempotency_key_is_not_retried(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """A non-idempotent POST gets exactly one attempt."""
        route = mock.post(url(1)).mock(return_value=httpx.Response(503))
        async with make_client(clock, sleep) as client:
            assert (await client.post("/echo", json={"a": 1})).status_code == 503
        assert route.call_count == 1

    @pytest.mark.behaviour("retry.only_when_safe")
    async def test_post_with_idempotency_key_is_retried(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """The same POST carrying an Idempotency-Key is retried, on another instance."""
        mock.post(url(1)).mock(return_value=httpx.Response(503))
        mock.post(url(2)).mock(return_value=httpx.Response(201))
        async with make_client(clock, sleep) as client:
            response = await client.post("/echo", json={"a": 1}, headers={"Idempotency-Key": "k1"})
        assert response.status_code == 201
        assert mock.calls.last.request.headers["Idempotency-Key"] == "k1"

    @pytest.mark.behaviour("client.timeouts")
    async def test_timeouts_on_every_attempt_raise_call_failed(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """Three read timeouts end in CallFailed carrying the attempt count and the cause."""
        for n in (1, 2, 3):
            mock.get(url(n)).mock(side_effect=httpx.ReadTimeout("slow"))
        async with make_client(clock, sleep) as client:
            with pytest.raises(CallFailed) as info:
                await client.get("/echo")
            assert (
                client.metrics.registry.get_sample_value(
                    "harness_client_calls_total",
                    {"service": "echo", "instance": "echo-1", "outcome": "timeout"},
                )
                == 1.0
            )
        assert info.value.attempts == 3
        assert isinstance(info.value.__cause__, httpx.ReadTimeout)

    @pytest.mark.behaviour("client.timeouts")
    async def test_attempt_timeout_is_capped_by_the_deadline(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """Each attempt's httpx timeout is the smaller of attempt_timeout and the time left."""
        route = mock.get(url(1)).mock(return_value=ok(1))
        async with make_client(clock, sleep, attempt_timeout=5.0) as client:
            await client.get("/echo", deadline=0.5)
        timeout = route.calls.last.request.extensions["timeout"]
        assert timeout["read"] == pytest.approx(0.5)

    @pytest.mark.behaviour("retry.budget")
    async def test_exhausted_retry_budget_stops_retries(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """With no budget left, a failed attempt is returned instead of retried."""
        mock.get(url(1)).mock(return_value=httpx.Response(503))
        async with make_client(
            clock, sleep, retry_budget_ratio=0.0, retry_budget_min_per_second=0.0
        ) as client:
            assert (await client.get("/echo")).status_code == 503
            rejected = client.metrics.registry.get_sample_value(
                "harness_client_rejections_total", {"service": "echo", "reason": "retry_budget"}
            )
        assert sleep.delays == []
        assert rejected == 1.0


class TestBreakers:
    @pytest.mark.behaviour("breaker.opens", "balancer.skips_open_breakers")
    async def test_breaker_opens_and_the_instance_is_skipped(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """After three failures echo-1's breaker opens; later calls never reach it."""
        bad = mock.get(url(1)).mock(return_value=httpx.Response(500))
        mock.get(url(2)).mock(return_value=ok(2))
        events = EventLog("test")
        client = make_client(clock, sleep, instances=INSTANCES[:2], retry=RetryPolicy(max_attempts=1))
        client.events = events
        async with client:
            for _ in range(6):
                await client.get("/echo")
            assert client.breaker("echo-1").state is BreakerState.OPEN
            hits = bad.call_count
            for _ in range(10):
                assert (await client.get("/echo")).status_code == 200
            assert bad.call_count == hits == 3
            assert (
                client.metrics.registry.get_sample_value(
                    "harness_client_breaker_state", {"service": "echo", "instance": "echo-1"}
                )
                == 1.0
            )
        [transition] = events.of_type("client.breaker_transition")
        assert (transition["instance"], transition["from_state"], transition["to_state"]) == (
            "echo-1",
            "closed",
            "open",
        )

    @pytest.mark.behaviour("breaker.rejects_while_open", "balancer.none_available_fails_fast")
    async def test_all_breakers_open_fails_fast_without_network(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """With every breaker open, a call raises NoAvailableInstance and sends nothing."""
        route = mock.get(url(1)).mock(return_value=httpx.Response(500))
        async with make_client(
            clock, sleep, instances=INSTANCES[:1], retry=RetryPolicy(max_attempts=1)
        ) as client:
            for _ in range(3):
                await client.get("/echo")
            with pytest.raises(NoAvailableInstance):
                await client.get("/echo")
        assert route.call_count == 3

    @pytest.mark.behaviour("breaker.half_open_probes", "breaker.closes")
    async def test_half_open_probe_closes_the_breaker(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """After open_duration a successful probe closes the breaker again."""
        route = mock.get(url(1)).mock(side_effect=[httpx.Response(500)] * 3 + [ok(1)])
        async with make_client(
            clock, sleep, instances=INSTANCES[:1], retry=RetryPolicy(max_attempts=1)
        ) as client:
            for _ in range(3):
                await client.get("/echo")
            clock.advance(5.0)
            assert (await client.get("/echo")).status_code == 200
            assert client.breaker("echo-1").state is BreakerState.CLOSED
        assert route.call_count == 4

    @pytest.mark.behaviour("breaker.opens")
    async def test_4xx_does_not_count_against_the_breaker(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """A 404 is the caller's problem, not the instance's: the breaker stays closed."""
        mock.get(url(1)).mock(return_value=httpx.Response(404))
        async with make_client(clock, sleep, instances=INSTANCES[:1]) as client:
            for _ in range(5):
                assert (await client.get("/echo")).status_code == 404
            assert client.breaker("echo-1").state is BreakerState.CLOSED


@pytest.mark.behaviour("client.bulkhead")
class TestBulkhead:
    async def test_call_beyond_the_limit_is_rejected(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """With one slot taken by a call in flight, the next call is rejected at once."""
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow(request: httpx.Request) -> httpx.Response:
            entered.set()
            await release.wait()
            return ok(1)

        mock.get(url(1)).mock(side_effect=slow)
        async with make_client(clock, sleep, instances=INSTANCES[:1], max_concurrent=1) as client:
            first = asyncio.create_task(client.get("/echo"))
            await entered.wait()
            with pytest.raises(BulkheadFullError) as info:
                await client.get("/echo")
            release.set()
            assert (await first).status_code == 200
        assert info.value.limit == 1


@pytest.mark.behaviour("client.configuration")
class TestBreakerOff:
    async def test_a_failing_instance_keeps_receiving_calls(
        self, mock: respx.MockRouter, clock: ManualClock, sleep: FakeSleep
    ) -> None:
        """breaker=None: echo-1 answers 500 every time and still gets every other call; nothing opens."""
        bad = mock.get(url(1)).mock(return_value=httpx.Response(500))
        good = mock.get(url(2)).mock(return_value=ok(2))
        events = EventLog("test")
        client = make_client(
            clock, sleep, instances=INSTANCES[:2], breaker=None, retry=RetryPolicy(max_attempts=1)
        )
        client.events = events
        async with client:
            for _ in range(40):
                await client.get("/echo")
            stats = client.stats()
            gauge = client.metrics.registry.get_sample_value(
                "harness_client_breaker_state", {"service": "echo", "instance": "echo-1"}
            )
        assert (bad.call_count, good.call_count) == (20, 20)
        assert stats["echo-1"].failures == 20
        assert stats["echo-1"].breaker_state is None
        assert events.of_type("client.breaker_transition") == []
        assert {e["admitted"] for e in events.of_type("client.attempt")} == {"off"}
        assert gauge == -1.0

    async def test_the_client_says_its_breaker_is_off(self, clock: ManualClock, sleep: FakeSleep) -> None:
        """The configured event records breaker "off"; asking for an instance's breaker is a ValueError."""
        events = EventLog("test")
        client = ServiceClient(
            "echo",
            StaticInstances(INSTANCES),
            config=ServiceClientConfig(breaker=None),
            clock=clock,
            sleep=sleep,
            events=events,
        )
        async with client:
            with pytest.raises(ValueError, match="no breaker"):
                client.breaker("echo-1")
        [configured] = events.of_type("client.configured")
        assert configured["breaker"] == "off"
