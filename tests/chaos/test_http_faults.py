"""HTTP toxics through the embedded proxy over real TCP: per-request shares on one keep-alive connection
(binomial bounds, not timing), latency draws, request order with pipelining, what a server would refuse,
bytes that are not HTTP, and ServiceClient's breaker and retry under them."""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from harness.discovery import Instance, ServiceClient, ServiceClientConfig, StaticInstances
from harness.errors import CallError
from harness.events import EventLog
from harness.faults import AsyncProxy, AsyncToxiproxyClient, ToxiproxyServer
from harness.faults._proxy import Connection
from harness.resilience import BreakerConfig, BreakerState, RetryPolicy
from harness.stack import Stack, load_topology
from harness.stack._orders import place_orders
from harness.timeline import CallAttempt, CallRetry, MonkeyInjection, OtherEvent, build_timeline

WAIT = 10.0


class HttpUpstream:
    """A keep-alive HTTP/1.1 server on loopback: answers ``METHOD PATH BODY-LENGTH``; counts what it saw."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> HttpUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ")
                fields = {
                    k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(fields.get("content-length", "0")))
                self.requests.append(f"{method} {path}")
                text = f"{method} {path} {len(body)}".encode()
                close = fields.get("connection", "").lower() == "close"
                connection = b"close" if close else b"keep-alive"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n"
                    % (len(text), connection)
                )
                if method != "HEAD":
                    writer.write(text)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()


@pytest.fixture
async def upstream() -> AsyncIterator[HttpUpstream]:
    server = await HttpUpstream().start()
    yield server
    await server.close()


@pytest.fixture
async def toxiproxy() -> AsyncIterator[AsyncToxiproxyClient]:
    async with ToxiproxyServer(seed=7) as server, AsyncToxiproxyClient(server.url) as client:
        yield client


@pytest.fixture
async def proxy(toxiproxy: AsyncToxiproxyClient, upstream: HttpUpstream) -> AsyncProxy:
    return await toxiproxy.create_proxy("web", upstream.address)


def binomial_interval(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The central ``confidence`` interval of Binomial(n, p), from its exact distribution."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    tail = (1 - confidence) / 2
    low = next(k for k in range(n + 1) if sum(pmf[: k + 1]) > tail)
    high = next(k for k in range(n, -1, -1) if sum(pmf[k:]) > tail)
    return low, high


def keep_alive(proxy: AsyncProxy) -> httpx.AsyncClient:
    """An httpx client that keeps exactly one connection to the proxy open."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=f"http://{proxy.listen}", limits=limits, timeout=WAIT, trust_env=False)


async def failures(proxy: AsyncProxy, calls: int, *, reuse: bool) -> int:
    """Calls that did not get a 200, on one keep-alive connection (``reuse``) or a new one each."""
    failed = 0
    async with keep_alive(proxy) as client:
        for number in range(calls):
            headers = {} if reuse else {"Connection": "close"}
            try:
                response = await client.get(f"/call/{number}", headers=headers)
                failed += response.status_code != 200
            except httpx.TransportError:
                failed += 1
    return failed


class TestPerRequest:
    @pytest.mark.behaviour("toxic.http_error", "toxic.toxicity")
    async def test_error_share_on_one_keep_alive_connection(
        self, proxy: AsyncProxy, upstream: HttpUpstream
    ) -> None:
        """1,000 requests on one connection, http_error at 0.3: the 503s in the 99.9% binomial interval."""
        await proxy.add_toxic("http_error", stream="upstream", toxicity=0.3, status=503)
        async with keep_alive(proxy) as client:
            codes = [(await client.get(f"/r/{n}")).status_code for n in range(1000)]
        low, high = binomial_interval(1000, 0.3)
        errors = codes.count(503)
        print(f"503s: {errors} of 1000 (99.9% interval {low}..{high}); connections: {upstream.connections}")
        assert low <= errors <= high
        assert codes.count(200) == 1000 - errors == len(upstream.requests)
        assert upstream.connections == 1

    @pytest.mark.behaviour("toxic.toxicity", "toxic.http_error", "toxic.reset_peer")
    async def test_per_connection_against_per_request(self, proxy: AsyncProxy) -> None:
        """Toxicity 0.3 over 300 calls: reset_peer (drawn per connection) barely touches a keep-alive
        client; http_error (drawn per request) fails 30% whether connections are kept or not."""
        figures = {}
        for toxic in ("reset_peer", "http_error"):
            stream = "upstream" if toxic == "http_error" else "downstream"
            async with proxy.toxic(toxic, stream=stream, toxicity=0.3):
                for reuse in (True, False):
                    figures[(toxic, reuse)] = await failures(proxy, 300, reuse=reuse)
        low, high = binomial_interval(300, 0.3)
        for (toxic, reuse), failed in figures.items():
            mode = "one keep-alive connection" if reuse else "a new connection per call"
            print(f"{toxic} toxicity 0.3, {mode}: {failed} of 300 calls failed (99.9% at 0.3: {low}..{high})")
        assert figures[("reset_peer", True)] <= 10  # 11 bad connections in a row: p = 0.3**11, 2e-6
        assert low <= figures[("reset_peer", False)] <= high
        assert low <= figures[("http_error", True)] <= high
        assert low <= figures[("http_error", False)] <= high

    @pytest.mark.behaviour("toxic.http_latency")
    async def test_latency_draws_in_range_and_spread(self, proxy: AsyncProxy) -> None:
        """http_latency 20..60 ms: every request is held at least 20 ms, none much past 60, and the added
        latencies (round trip minus the median round trip without the toxic) fill each quarter of the
        range (binomial bounds on the counts)."""
        async with keep_alive(proxy) as client:

            async def round_trip(path: str) -> float:
                began = time.perf_counter()
                await client.get(path)
                return (time.perf_counter() - began) * 1000

            await client.get("/warm-up")
            base = statistics.median([await round_trip("/base") for _ in range(30)])
            await proxy.add_toxic("http_latency", stream="upstream", latency_min=20, latency_max=60)
            trips = [await round_trip(f"/l/{n}") for n in range(120)]
        added = [ms - base for ms in trips]
        quarters = [sum(20 + 10 * q <= ms < 30 + 10 * q for ms in added) for q in range(3)]
        quarters.append(sum(ms >= 50 for ms in added))
        low, _ = binomial_interval(120, 0.25)
        print(f"round trip without the toxic {base:.2f} ms; with it {min(trips):.1f} to {max(trips):.1f} ms;"
              f" added ms per quarter of [20, 60]: {quarters} (each >= {low})")  # fmt: skip
        assert min(trips) >= 19.9
        assert max(added) <= 60 + 25  # the draw, plus the scheduler on a busy machine
        assert all(count >= low for count in quarters)

    @pytest.mark.behaviour("toxic.http_error")
    async def test_filters_select_requests(self, proxy: AsyncProxy, upstream: HttpUpstream) -> None:
        await proxy.add_toxic(
            "http_error", stream="upstream", status=429, method="POST", path_prefix="/orders"
        )
        async with keep_alive(proxy) as client:
            assert (await client.get("/orders/1")).status_code == 200
            assert (await client.post("/orders", content=b"{}")).status_code == 429
            assert (await client.post("/users", content=b"{}")).status_code == 200
        assert upstream.requests == ["GET /orders/1", "POST /users"]

    @pytest.mark.behaviour("toxic.http_error")
    async def test_response_stream_replaces_after_the_server_handled_it(
        self, proxy: AsyncProxy, upstream: HttpUpstream
    ) -> None:
        await proxy.add_toxic("http_error", stream="downstream", status=502, body="lost")
        async with keep_alive(proxy) as client:
            response = await client.post("/pay", content=b"12")
        assert (response.status_code, response.text) == (502, "lost")
        assert upstream.requests == ["POST /pay"]


@pytest.mark.behaviour("proxy.api", "toxic.http_error", "toxic.http_latency")
class TestApi:
    async def test_toxic_json_with_string_attributes(
        self, proxy: AsyncProxy, toxiproxy: AsyncToxiproxyClient
    ) -> None:
        """The HTTP toxics through the Toxiproxy API: strings where they are strings, updates merged."""
        url = toxiproxy.url
        async with httpx.AsyncClient(base_url=url, trust_env=False) as api:
            body = {"type": "http_error", "stream": "upstream", "toxicity": 0.5,
                    "attributes": {"status": 429, "body": "<slow>", "method": "POST"}}  # fmt: skip
            created = await api.post("/proxies/web/toxics", json=body)
            updated = await api.post(
                "/proxies/web/toxics/http_error_upstream", json={"attributes": {"status": 503}}
            )
        assert created.status_code == 200
        assert created.text == (
            '{"attributes":{"status":429,"retry_after":0,"body":"\\u003cslow\\u003e","path_prefix":"",'
            '"method":"POST"},"name":"http_error_upstream","type":"http_error","stream":"upstream","toxicity":0.5}'
        )
        assert updated.json()["attributes"] == {"status": 503, "retry_after": 0, "body": "<slow>",
                                                "path_prefix": "", "method": "POST"}  # fmt: skip

    @pytest.mark.parametrize(
        ("attributes", "message"),
        [
            pytest.param({"status": 200}, "status: must be between 400 and 599", id="status"),
            pytest.param(
                {"path_prefix": "users"}, "path_prefix: must be empty (every path) or start", id="path"
            ),
            pytest.param(
                {"status": "503"},
                "bad request body: json: cannot unmarshal string into Go struct field "
                "HttpErrorToxic.attributes.status of type int",
                id="string-for-int",
            ),
            pytest.param(
                {"body": 5},
                "bad request body: json: cannot unmarshal number into Go struct field "
                "HttpErrorToxic.attributes.body of type string",
                id="number-for-string",
            ),
        ],
    )
    async def test_refusals(
        self, proxy: AsyncProxy, toxiproxy: AsyncToxiproxyClient, attributes: dict[str, object], message: str
    ) -> None:
        async with httpx.AsyncClient(base_url=toxiproxy.url, trust_env=False) as api:
            body = {"type": "http_error", "attributes": attributes}
            answer = await api.post("/proxies/web/toxics", json=body)
        assert answer.status_code == 400
        assert answer.json()["error"].startswith(message)


class RawClient:
    """One TCP connection, bytes in and out, for what httpx will not send (pipelining, smuggling shapes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, proxy: AsyncProxy) -> RawClient:
        return cls(*await asyncio.open_connection(proxy.host, proxy.port))

    async def response(self, *, to_head: bool = False) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(WAIT):
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
            length = 0 if to_head else int(fields.get("content-length", "0"))
            body = await self.reader.readexactly(length)
        return int(head[0].split(" ")[1]), fields, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.mark.behaviour("proxy.http_framing")
class TestFraming:
    async def test_pipelined_responses_keep_request_order(
        self, proxy: AsyncProxy, upstream: HttpUpstream
    ) -> None:
        """Four pipelined requests, the second answered by the proxy, the third a HEAD: four answers, in
        order."""
        await proxy.add_toxic("http_error", stream="upstream", path_prefix="/b")
        client = await RawClient.connect(proxy)
        try:
            client.writer.write(
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                b"HEAD /c HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            first, second = await client.response(), await client.response()
            third, fourth = await client.response(to_head=True), await client.response()
        finally:
            await client.close()
        assert (first[0], first[2]) == (200, b"GET /a 0")
        assert (second[0], second[1]["x-harness-fault"]) == (503, "http_error_upstream")
        assert (third[0], third[2]) == (200, b"")  # HEAD: a length, and no body
        assert (fourth[0], fourth[2]) == (200, b"GET /d 0")
        assert upstream.requests == ["GET /a", "HEAD /c", "GET /d"]

    async def test_expect_continue_gets_the_answer_and_a_close(
        self, proxy: AsyncProxy, upstream: HttpUpstream
    ) -> None:
        await proxy.add_toxic("http_error", stream="upstream")
        client = await RawClient.connect(proxy)
        try:
            client.writer.write(
                b"PUT /big HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n"
            )
            status, fields, _ = await client.response()
            async with asyncio.timeout(WAIT):
                rest = await client.reader.read()
        finally:
            await client.close()
        assert (status, fields["connection"], rest) == (503, "close", b"")
        assert upstream.requests == []

    async def test_content_length_with_transfer_encoding_is_refused(
        self, proxy: AsyncProxy, upstream: HttpUpstream
    ) -> None:
        """A request smuggling shape never reaches the server: 400 and the connection closes."""
        await proxy.add_toxic("http_latency", stream="upstream", path_prefix="/elsewhere")
        client = await RawClient.connect(proxy)
        try:
            client.writer.write(
                b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                b"GET /x HTTP/1.1\r\n\r\n"
            )
            status, fields, body = await client.response()
            async with asyncio.timeout(WAIT):
                rest = await client.reader.read()
        finally:
            await client.close()
        assert (status, fields["connection"], rest) == (400, "close", b"")
        assert b"Content-Length and Transfer-Encoding" in body
        assert upstream.requests == []

    async def test_bytes_that_are_not_http_pass_untouched(self, toxiproxy: AsyncToxiproxyClient) -> None:
        """A binary protocol through a proxy with HTTP toxics: echoed byte for byte."""

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        try:
            proxy = await toxiproxy.create_proxy("binary", f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
            await proxy.add_toxic("http_error", stream="upstream")
            await proxy.add_toxic("http_latency", stream="downstream", latency_min=500, latency_max=500)
            client = await RawClient.connect(proxy)
            payload = b"\x16\x03\x01" + bytes(range(256)) * 40
            client.writer.write(payload)
            async with asyncio.timeout(WAIT):
                echoed = await client.reader.readexactly(len(payload))
            await client.close()
        finally:
            server.close()
        assert echoed == payload

    async def test_a_toxic_reaches_an_open_connection_and_leaves_it(self, proxy: AsyncProxy) -> None:
        """Added while a keep-alive connection is open: the next request is hit; removed: served again."""
        async with keep_alive(proxy) as client:
            assert (await client.get("/before")).status_code == 200
            async with proxy.toxic("http_error", stream="upstream", status=500):
                assert (await client.get("/during")).status_code == 500
            assert (await client.get("/after")).status_code == 200


def fast(connection: Connection) -> bool:
    """No HTTP layer, and both links writing straight to the other socket."""
    links = (connection.upstream, connection.downstream)
    return connection.http is None and all(link.fast_write is not None for link in links)


@pytest.mark.behaviour("proxy.http_framing")
async def test_removal_gives_open_connections_the_fast_path_back(upstream: HttpUpstream) -> None:
    """Once the last HTTP toxic is gone and nothing is in flight, an open keep-alive connection leaves the
    HTTP layer: its links write straight to the other socket again."""
    async with ToxiproxyServer(seed=1) as server, AsyncToxiproxyClient(server.url) as toxiproxy:
        proxy = await toxiproxy.create_proxy("web", upstream.address)
        collection = server._collection
        assert collection is not None
        served = collection.proxies["web"]
        async with keep_alive(proxy) as client:
            await client.get("/before")
            [connection] = served.connections
            assert fast(connection)
            async with proxy.toxic("http_latency", stream="upstream", latency_max=1):
                await client.get("/during")
                assert not fast(connection)
            assert fast(connection)
            assert (await client.get("/after")).status_code == 200
        assert upstream.connections == 1


INSTANCE_ID = "web-1"


def service_client(proxy: AsyncProxy, config: ServiceClientConfig, events: EventLog) -> ServiceClient:
    instance = Instance(id=INSTANCE_ID, service="web", address=proxy.host, port=proxy.port)
    return ServiceClient("web", StaticInstances([instance]), config=config, events=events)


async def breaker_run(proxy: AsyncProxy, toxicity: float, calls: int = 300) -> tuple[BreakerState, int]:
    """Calls until the breaker opens (or ``calls``): the breaker's state, and the calls made."""
    breaker = BreakerConfig(window_size=50, minimum_calls=50, failure_rate_threshold=0.35, open_duration=60.0)
    config = ServiceClientConfig(breaker=breaker, retry=RetryPolicy(max_attempts=1))
    made = 0
    async with (
        proxy.toxic("http_error", stream="upstream", toxicity=toxicity),
        service_client(proxy, config, EventLog("test")) as client,
    ):
        for _ in range(calls):
            try:
                await client.get("/work")
            except CallError:
                break
            made += 1
            if client.breaker(INSTANCE_ID).state is BreakerState.OPEN:
                break
        return client.breaker(INSTANCE_ID).state, made


class TestServiceClient:
    @pytest.mark.behaviour("breaker.opens", "toxic.http_error")
    async def test_breaker_opens_at_six_in_ten_not_at_one_in_ten(self, proxy: AsyncProxy) -> None:
        """A breaker that opens at 35% failures over 50 calls: http_error at 0.6 opens it, at 0.1 it stays
        closed through 300 calls (each run is far outside the other's binomial 99.9% range)."""
        low_6, _ = binomial_interval(50, 0.6)
        _, high_1 = binomial_interval(50, 0.1)
        assert high_1 < 0.35 * 50 < low_6
        opened, calls = await breaker_run(proxy, 0.6)
        stayed, made = await breaker_run(proxy, 0.1)
        print(f"toxicity 0.6: {opened} after {calls} calls; toxicity 0.1: {stayed} after {made} calls")
        assert opened is BreakerState.OPEN
        assert calls <= 60
        assert (stayed, made) == (BreakerState.CLOSED, 300)

    @pytest.mark.behaviour("retry.retry_after", "toxic.http_error")
    async def test_retry_after_is_honoured(self, proxy: AsyncProxy) -> None:
        """503 with Retry-After: 1 on every request: the retry waits one second, measured between attempts."""
        events = EventLog("test")
        config = ServiceClientConfig(breaker=None, retry=RetryPolicy(max_attempts=2), deadline=WAIT)
        async with (
            proxy.toxic("http_error", stream="upstream", status=503, retry_after=1),
            service_client(proxy, config, events) as client,
        ):
            response = await client.get("/work")
        first, second = events.of_type("client.attempt")
        gap = second["sent_at"] - (first["sent_at"] + first["duration"])
        print(f"retry waited {gap:.3f}s after a Retry-After of 1s")
        assert response.status_code == 503
        assert [e["delay"] for e in events.of_type("client.retry")] == [1.0]
        assert 0.99 <= gap < 1.5


TOPOLOGY = """
[registry]
ttl = 2.0
check_interval = 0.5
[services.users]
instances = 1
heartbeat_interval = 0.5
[services.notifications]
heartbeat_interval = 0.5
[services.orchestrator]
heartbeat_interval = 0.5
[services.orchestrator.clients.users]
chaos = { failure_rate = 0.3, latency_range = [2, 6], error = "503", retry_after = 0.05, seed = 7 }
"""


@pytest.mark.behaviour("client.chaos_monkey", "client.configuration")
class TestMonkeyFromTheTopology:
    def test_the_orchestrators_users_client_injects(self, tmp_path: Path) -> None:
        """The topology's chaos table reaches the running orchestrator: its calls to users wait 2 to 6 ms,
        the first two draws of seed 7 fail with 503 and are retried after Retry-After, orders complete,
        and every injection is a typed event on the timeline."""
        path = tmp_path / "topology.toml"
        path.write_text(TOPOLOGY)
        topology = load_topology(path).model_copy(update={"proxies": False})
        with Stack(topology, tmp_path / "run") as stack:
            orders = place_orders(stack, 3)
            log = stack.event_log("orchestrator-1")
        timeline = build_timeline([log])
        injections = [e for e in timeline.events if isinstance(e, MonkeyInjection)]
        attempts = [e for e in timeline.events if isinstance(e, CallAttempt) and e.service == "users"]
        configured = [
            e.fields for e in timeline.events if isinstance(e, OtherEvent) and e.event == "client.configured"
        ]
        print(f"{len(injections)} injections, {sum(bool(i.failure) for i in injections)} failures; orders "
              f"{[o.state for o in orders]}")  # fmt: skip
        assert [c["chaos"]["seed"] for c in configured if c["service"] == "users"] == [7]
        assert [o.state for o in orders] == ["COMPLETED"] * 3
        assert [i.failure for i in injections[:3]] == ["status_503", "status_503", ""]
        assert {i.target for i in injections} == {"users"}
        assert all(0.002 <= i.latency <= 0.006 for i in injections)
        assert [a.status for a in attempts[:2]] == [503, 503]
        assert attempts[2].status is not None
        assert attempts[2].status < 300
        retries = [e for e in timeline.events if isinstance(e, CallRetry)]
        assert [r.delay for r in retries[:2]] == [0.05, 0.05]
