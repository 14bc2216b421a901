"""ChaosMonkey: its draws and their seeding, the transport's behaviour (latency against the read timeout,
statuses with Retry-After, transport errors, events), and ServiceClient and topology configuring it."""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable

import httpx
import pydantic
import pytest
import respx

from harness.discovery import Instance, ServiceClient, ServiceClientConfig, StaticInstances
from harness.events import EventLog
from harness.faults import ChaosMonkey, MonkeyConfig
from harness.resilience import BreakerConfig, BreakerState, ManualClock, RetryPolicy
from harness.settings import ClientSettings
from harness.timeline import MonkeyInjection, parse_event


class VirtualSleep:
    """An asyncio.sleep stand-in that only moves a manual clock, recording each wait."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.clock = clock or ManualClock()
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


def ok_transport(seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, text="real")

    return httpx.MockTransport(handler)


def monkey(
    failure_rate: float = 0.0,
    latency_range: tuple[float, float] = (0.0, 0.0),
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    seen: list[httpx.Request] | None = None,
    seed: int | None = None,
    error: str = "503",
    retry_after: float | None = None,
    events: EventLog | None = None,
    target: str = "",
) -> ChaosMonkey:
    """A monkey over a transport that answers 200 "real" (recording what reaches it in ``seen``)."""
    return ChaosMonkey(failure_rate, latency_range, seed=seed, error=error, retry_after=retry_after,
                       transport=ok_transport(seen), events=events, target=target,
                       sleep=sleep or VirtualSleep())  # fmt: skip


@pytest.mark.behaviour("client.chaos_monkey")
class TestConfig:
    @pytest.mark.parametrize(
        ("values", "message"),
        [
            pytest.param({"failure_rate": 1.5}, "failure_rate: must be between 0 and 1", id="rate"),
            pytest.param({"latency_range": (50.0, 10.0)}, "latency_range: must be [low, high]", id="order"),
            pytest.param(
                {"latency_range": (-1.0, 10.0)}, "latency_range: must be [low, high]", id="negative"
            ),
            pytest.param({"error": "200"}, "error: 200 is not an error status", id="ok-status"),
            pytest.param({"error": "boom"}, "error: unknown 'boom'; use an HTTP status", id="unknown"),
            pytest.param({"retry_after": -1.0}, "retry_after: must be 0 or more seconds", id="retry-after"),
        ],
    )
    def test_refusals_name_the_setting(self, values: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            MonkeyConfig(**values)  # type: ignore[arg-type]

    def test_topology_table(self) -> None:
        """The issue's table, read as the topology reads it, gives the monkey's configuration."""
        text = (
            'chaos = {failure_rate = 0.2, latency_range = [10, 50], error = "503", retry_after = 1, seed = 7}'
        )
        config = ClientSettings.model_validate(tomllib.loads(text)).to_config()
        assert config.chaos == MonkeyConfig(0.2, (10.0, 50.0), "503", 1.0, 7)
        assert ClientSettings().to_config().chaos is None

    def test_topology_refusal_names_the_key(self) -> None:
        with pytest.raises(pydantic.ValidationError, match=r"chaos\n.*latency_range: must be"):
            ClientSettings.model_validate(tomllib.loads("chaos = { latency_range = [50, 10] }"))
        with pytest.raises(pydantic.ValidationError, match=r"chaos\.surprise"):
            ClientSettings.model_validate(tomllib.loads("chaos = { surprise = 1 }"))


@pytest.mark.behaviour("client.chaos_monkey")
class TestDraws:
    def test_same_seed_same_sequence(self) -> None:
        a, b, c = monkey(0.3, (5, 80), seed=42), monkey(0.3, (5, 80), seed=42), monkey(0.3, (5, 80), seed=43)
        draws_a = [a.draw() for _ in range(200)]
        assert draws_a == [b.draw() for _ in range(200)]
        assert draws_a != [c.draw() for _ in range(200)]

    def test_latency_in_range_and_spread(self) -> None:
        """Uniform over [10, 50] ms: every draw inside, each quarter of the range about a quarter."""
        m = monkey(0.0, (10, 50), seed=1)
        latencies = [m.draw().latency * 1000 for _ in range(4000)]
        assert min(latencies) >= 10
        assert max(latencies) <= 50
        quarters = [sum(10 + 10 * q <= x < 20 + 10 * q for x in latencies) for q in range(4)]
        assert all(900 <= count <= 1100 for count in quarters), quarters

    def test_failure_share(self) -> None:
        m = monkey(0.2, seed=3)
        failures = sum(m.draw().fails for _ in range(10_000))
        assert 1850 <= failures <= 2150

    def test_latency_and_failure_are_independent(self) -> None:
        """Slow calls fail as often as fast ones."""
        m = monkey(0.5, (0, 100), seed=9)
        draws = [m.draw() for _ in range(8000)]
        slow = [d.fails for d in draws if d.latency > 0.05]
        fast = [d.fails for d in draws if d.latency <= 0.05]
        assert abs(sum(slow) / len(slow) - sum(fast) / len(fast)) < 0.05


@pytest.mark.behaviour("client.chaos_monkey")
class TestTransport:
    async def test_passes_calls_through_after_the_latency(self) -> None:
        sleep, seen = VirtualSleep(), list[httpx.Request]()
        async with httpx.AsyncClient(transport=monkey(0.0, (20, 20), sleep=sleep, seen=seen)) as client:
            response = await client.get("http://svc/users/1")
        assert response.text == "real"
        assert len(seen) == 1
        assert sleep.waits == [pytest.approx(0.020)]

    async def test_injected_status_with_retry_after(self) -> None:
        """A failure is the status chosen, marked as injected, with Retry-After; the server sees nothing."""
        seen: list[httpx.Request] = []
        transport = monkey(1.0, seen=seen, error="429", retry_after=2)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get("http://svc/x")
        assert (response.status_code, response.headers["Retry-After"]) == (429, "2")
        assert response.headers["X-Harness-Fault"] == "chaos-monkey"
        assert seen == []

    @pytest.mark.parametrize(
        ("error", "raised"),
        [
            pytest.param("connect_error", httpx.ConnectError, id="connect"),
            pytest.param("disconnect", httpx.RemoteProtocolError, id="disconnect"),
            pytest.param("timeout", httpx.ReadTimeout, id="timeout"),
        ],
    )
    async def test_transport_errors(self, error: str, raised: type[Exception]) -> None:
        sleep = VirtualSleep()
        async with httpx.AsyncClient(transport=monkey(1.0, error=error, sleep=sleep), timeout=1.5) as client:
            with pytest.raises(raised):
                await client.get("http://svc/x")
        assert sleep.waits == ([1.5] if error == "timeout" else [])

    async def test_latency_counts_against_the_read_timeout(self) -> None:
        """A draw longer than the timeout ends the call at the timeout, as real latency would."""
        sleep, seen = VirtualSleep(), list[httpx.Request]()
        transport = monkey(0.0, (800, 800), sleep=sleep, seen=seen)
        async with httpx.AsyncClient(transport=transport, timeout=0.5) as client:
            with pytest.raises(httpx.ReadTimeout, match="exceeds the read timeout"):
                await client.get("http://svc/x")
        assert sleep.waits == [0.5]
        assert seen == []

    async def test_each_injection_is_a_typed_event(self) -> None:
        events = EventLog("test")
        transport = monkey(1.0, (5, 5), events=events, target="users", error="503")
        async with httpx.AsyncClient(transport=transport) as client:
            await client.post("http://svc/orders")
        [event] = [parse_event(e) for e in events.of_type("monkey.injected")]
        assert isinstance(event, MonkeyInjection)
        assert (event.target, event.method, event.path, event.failure, event.status) == (
            "users", "POST", "/orders", "status_503", 503,
        )  # fmt: skip
        assert event.latency == pytest.approx(0.005)

    async def test_no_event_when_nothing_was_injected(self) -> None:
        events = EventLog("test")
        async with httpx.AsyncClient(transport=monkey(0.0, events=events)) as client:
            await client.get("http://svc/x")
        assert events.of_type("monkey.injected") == []


INSTANCES = [Instance(id="users-1", service="users", address="127.0.0.1", port=9101)]


def service_client(config: ServiceClientConfig, clock: ManualClock, events: EventLog) -> ServiceClient:
    sleep = VirtualSleep(clock)
    return ServiceClient("users", StaticInstances(INSTANCES), config=config, clock=clock, sleep=sleep,
                         events=events)  # fmt: skip


@pytest.mark.behaviour("client.chaos_monkey")
class TestServiceClient:
    @pytest.mark.behaviour("breaker.opens")
    async def test_breaker_sees_injected_failures(self) -> None:
        """Every call fails by injection: the breaker opens exactly as for real 503s."""
        clock, events = ManualClock(), EventLog("test")
        breaker = BreakerConfig(
            window_size=10, minimum_calls=5, failure_rate_threshold=0.5, open_duration=30.0
        )
        config = ServiceClientConfig(breaker=breaker, retry=RetryPolicy(max_attempts=1),
                                     chaos=MonkeyConfig(failure_rate=1.0, seed=1))  # fmt: skip
        with respx.mock(assert_all_called=False) as router:
            route = router.get("http://127.0.0.1:9101/x").respond(200)
            async with service_client(config, clock, events) as client:
                for _ in range(5):
                    assert (await client.get("/x")).status_code == 503
                assert client.breaker("users-1").state is BreakerState.OPEN
        assert route.call_count == 0
        assert len(events.of_type("monkey.injected")) == 5

    @pytest.mark.behaviour("retry.retry_after")
    async def test_retry_honours_the_injected_retry_after(self) -> None:
        clock, events = ManualClock(), EventLog("test")
        chaos = MonkeyConfig(failure_rate=1.0, retry_after=1.5, seed=1)
        config = ServiceClientConfig(retry=RetryPolicy(max_attempts=2), chaos=chaos)
        async with service_client(config, clock, events) as client:
            response = await client.get("/x")
        assert response.status_code == 503
        assert [e["delay"] for e in events.of_type("client.retry")] == [1.5]

    @pytest.mark.behaviour("client.timeouts")
    async def test_injected_latency_counts_against_the_attempt_timeout(self) -> None:
        clock, events = ManualClock(), EventLog("test")
        config = ServiceClientConfig(retry=RetryPolicy(max_attempts=1), attempt_timeout=0.2,
                                     chaos=MonkeyConfig(latency_range=(500, 500), seed=1))  # fmt: skip
        with respx.mock(assert_all_called=False) as router:
            router.get("http://127.0.0.1:9101/x").respond(200)
            async with service_client(config, clock, events) as client:
                with pytest.raises(Exception, match="attempt"):
                    await client.get("/x")
        [attempt] = events.of_type("client.attempt")
        assert (attempt["outcome"], attempt["duration"]) == ("timeout", pytest.approx(0.2))

    async def test_passes_real_calls_with_latency(self) -> None:
        clock, events = ManualClock(), EventLog("test")
        config = ServiceClientConfig(chaos=MonkeyConfig(latency_range=(30, 30), seed=1))
        with respx.mock() as router:
            router.get("http://127.0.0.1:9101/x").respond(200, text="real")
            async with service_client(config, clock, events) as client:
                response = await client.get("/x")
        assert response.text == "real"
        [attempt] = events.of_type("client.attempt")
        assert attempt["duration"] == pytest.approx(0.030)

    def test_refuses_chaos_with_a_client_of_its_own(self) -> None:
        config = ServiceClientConfig(chaos=MonkeyConfig(failure_rate=0.1))
        with pytest.raises(ValueError, match="chaos needs the client's own transport"):
            ServiceClient("users", StaticInstances(INSTANCES), config=config, http=httpx.AsyncClient())

    async def test_configured_event_describes_the_monkey(self) -> None:
        events = EventLog("test")
        config = ServiceClientConfig(chaos=MonkeyConfig(failure_rate=0.25, latency_range=(1, 2), seed=4))
        async with service_client(config, ManualClock(), events):
            pass
        [configured] = events.of_type("client.configured")
        assert configured["chaos"] == {"failure_rate": 0.25, "latency_range": [1, 2], "error": "503",
                                       "retry_after": None, "seed": 4}  # fmt: skip
