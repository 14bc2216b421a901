"""Faults over real TCP: each toxic of the embedded server measured against loopback upstreams; where time
is the thing measured it is measured (against a direct run where that matters); other waits have deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from harness.faults import AsyncProxy, AsyncToxiproxyClient, ToxiproxyServer

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
WAIT = 10.0  # seconds any single step may take before the test fails instead of hanging


class Upstream:
    """A loopback TCP server for the proxy to dial; closes every connection it served on ``close``."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._handler(reader, writer)
        except ConnectionError:
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
        await asyncio.sleep(0)  # let the handlers see their closed streams and finish


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


def sender(payload: bytes) -> Handler:
    """Sends ``payload`` as soon as a client connects, then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()

    return handler


@pytest.fixture
async def toxiproxy() -> AsyncIterator[AsyncToxiproxyClient]:
    """An embedded server on port 0 and a client for it."""
    async with ToxiproxyServer(seed=7) as server, AsyncToxiproxyClient(server.url) as client:
        yield client


@pytest.fixture
async def echo_upstream() -> AsyncIterator[Upstream]:
    upstream = await Upstream(echo).start()
    yield upstream
    await upstream.close()


@pytest.fixture
async def echo_proxy(toxiproxy: AsyncToxiproxyClient, echo_upstream: Upstream) -> AsyncProxy:
    return await toxiproxy.create_proxy("echo", echo_upstream.address)


class Client:
    """One client connection, to the proxy or straight to the upstream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: str) -> Client:
        host, port = address.rsplit(":", 1)
        async with asyncio.timeout(WAIT):
            return cls(*await asyncio.open_connection(host, int(port)))

    async def round_trip(self, payload: bytes = b"ping") -> float:
        """Seconds from sending ``payload`` to having it all back from the echo upstream."""
        began = time.perf_counter()
        self.writer.write(payload)
        async with asyncio.timeout(WAIT):
            await self.reader.readexactly(len(payload))
        return time.perf_counter() - began

    async def read_all(self) -> tuple[bytes, float]:
        """Everything until EOF, and the seconds it took to see the EOF."""
        began = time.perf_counter()
        async with asyncio.timeout(WAIT):
            data = await self.reader.read()
        return data, time.perf_counter() - began

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def median_round_trip(address: str, count: int = 30) -> float:
    client = await Client.connect(address)
    try:
        await client.round_trip()  # the first one pays for connection set-up
        return statistics.median([await client.round_trip() for _ in range(count)])
    finally:
        await client.close()


@pytest.mark.behaviour("toxic.latency")
class TestLatency:
    async def test_adds_the_configured_delay(self, echo_proxy: AsyncProxy, echo_upstream: Upstream) -> None:
        """50 ms downstream latency: the median round trip grows by 50 ms, within 2 ms."""
        direct = await median_round_trip(echo_upstream.address)
        async with echo_proxy.toxic("latency", latency=50):
            proxied = await median_round_trip(echo_proxy.listen)
        assert abs((proxied - direct) * 1000 - 50) <= 2, f"added {(proxied - direct) * 1000:.2f} ms"

    async def test_upstream_latency_delays_the_request(self, echo_proxy: AsyncProxy) -> None:
        async with echo_proxy.toxic("latency", stream="upstream", latency=40):
            proxied = await median_round_trip(echo_proxy.listen, count=10)
        assert 0.038 <= proxied <= 0.060

    async def test_removing_restores_normal_latency(self, echo_proxy: AsyncProxy) -> None:
        """One open connection: 100 ms while the toxic is there, fast again once it is removed."""
        client = await Client.connect(echo_proxy.listen)
        try:
            await client.round_trip()
            await echo_proxy.add_toxic("latency", latency=100)
            assert await client.round_trip() >= 0.095
            await echo_proxy.remove_toxic("latency_downstream")
            after = [await client.round_trip() for _ in range(10)]
            assert statistics.median(after) < 0.010
        finally:
            await client.close()

    async def test_update_reaches_an_open_connection(self, echo_proxy: AsyncProxy) -> None:
        client = await Client.connect(echo_proxy.listen)
        try:
            await echo_proxy.add_toxic("latency", latency=30)
            assert 0.028 <= await client.round_trip() < 0.090
            await echo_proxy.update_toxic("latency_downstream", latency=150)
            assert await client.round_trip() >= 0.145
        finally:
            await client.close()


@pytest.mark.behaviour("toxic.bandwidth")
class TestBandwidth:
    async def test_rate_within_ten_percent(self, toxiproxy: AsyncToxiproxyClient) -> None:
        """200 kB at 100 KB/s (bytes per ms) takes 2 s from connecting to the last byte."""
        payload = bytes(200_000)
        upstream = await Upstream(sender(payload)).start()
        try:
            proxy = await toxiproxy.create_proxy("bulk", upstream.address)
            await proxy.add_toxic("bandwidth", rate=100)
            began = time.perf_counter()
            client = await Client.connect(proxy.listen)
            data, _ = await client.read_all()
            elapsed = time.perf_counter() - began
            await client.close()
        finally:
            await upstream.close()
        assert data == payload
        assert 1.8 <= elapsed <= 2.2, f"{len(payload) / elapsed / 1000:.1f} KB/s"


@pytest.mark.behaviour("toxic.timeout")
class TestTimeout:
    async def test_holds_data_then_closes(self, echo_proxy: AsyncProxy) -> None:
        """Nothing comes back, and the connection closes 300 ms after the last byte reached the toxic."""
        await echo_proxy.add_toxic("timeout", timeout=300)
        client = await Client.connect(echo_proxy.listen)
        client.writer.write(b"ping")
        data, elapsed = await client.read_all()
        await client.close()
        assert data == b""
        assert 0.28 <= elapsed <= 1.5

    async def test_zero_holds_forever(self, echo_proxy: AsyncProxy) -> None:
        """timeout=0: no data and no close, for as long as we care to wait."""
        await echo_proxy.add_toxic("timeout", timeout=0)
        client = await Client.connect(echo_proxy.listen)
        client.writer.write(b"ping")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await client.reader.read(1)
        await client.close()

    async def test_removing_closes_held_connections(self, echo_proxy: AsyncProxy) -> None:
        """As in Toxiproxy, removing a timeout toxic closes the connections it was holding."""
        await echo_proxy.add_toxic("timeout", timeout=0)
        client = await Client.connect(echo_proxy.listen)
        client.writer.write(b"ping")
        await echo_proxy.remove_toxic("timeout_downstream")
        data, _ = await client.read_all()
        await client.close()
        assert data == b""


@pytest.mark.behaviour("toxic.reset_peer")
class TestResetPeer:
    async def test_client_gets_connection_reset(self, echo_proxy: AsyncProxy) -> None:
        await echo_proxy.add_toxic("reset_peer", timeout=0)
        client = await Client.connect(echo_proxy.listen)
        client.writer.write(b"ping")
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(WAIT):
                await client.reader.read(100)
        client.writer.close()

    async def test_reset_comes_after_the_timeout(self, echo_proxy: AsyncProxy) -> None:
        await echo_proxy.add_toxic("reset_peer", stream="upstream", timeout=200)
        client = await Client.connect(echo_proxy.listen)
        began = time.perf_counter()
        client.writer.write(b"ping")
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(WAIT):
                await client.reader.read(100)
        elapsed = time.perf_counter() - began
        client.writer.close()
        assert 0.19 <= elapsed <= 1.5


@pytest.mark.behaviour("toxic.slow_close")
class TestSlowClose:
    async def test_data_at_once_and_eof_after_the_delay(self, toxiproxy: AsyncToxiproxyClient) -> None:
        upstream = await Upstream(sender(b"hello")).start()
        try:
            proxy = await toxiproxy.create_proxy("greeter", upstream.address)
            await proxy.add_toxic("slow_close", delay=300)
            client = await Client.connect(proxy.listen)
            began = time.perf_counter()
            async with asyncio.timeout(WAIT):
                greeting = await client.reader.readexactly(5)
            first_data = time.perf_counter() - began
            rest, _ = await client.read_all()
            eof = time.perf_counter() - began
            await client.close()
        finally:
            await upstream.close()
        assert greeting == b"hello"
        assert rest == b""
        assert first_data < 0.150
        assert 0.29 <= eof <= 1.5


@pytest.mark.behaviour("toxic.slicer")
class TestSlicer:
    async def test_every_byte_arrives_in_order(self, toxiproxy: AsyncToxiproxyClient) -> None:
        payload = bytes(i % 251 for i in range(100_000))
        upstream = await Upstream(sender(payload)).start()
        try:
            proxy = await toxiproxy.create_proxy("sliced", upstream.address)
            await proxy.add_toxic("slicer", average_size=500, size_variation=200, delay=10)
            client = await Client.connect(proxy.listen)
            data, _ = await client.read_all()
            await client.close()
        finally:
            await upstream.close()
        assert data == payload


@pytest.mark.behaviour("toxic.limit_data")
class TestLimitData:
    async def test_closes_after_exactly_n_bytes(self, toxiproxy: AsyncToxiproxyClient) -> None:
        upstream = await Upstream(sender(bytes(range(256)) * 20)).start()
        try:
            proxy = await toxiproxy.create_proxy("limited", upstream.address)
            await proxy.add_toxic("limit_data", bytes=1000)
            client = await Client.connect(proxy.listen)
            data, _ = await client.read_all()
            await client.close()
        finally:
            await upstream.close()
        assert data == (bytes(range(256)) * 4)[:1000]


@pytest.mark.behaviour("proxy.enable_disable")
class TestDisabledProxy:
    async def test_refuses_connections_until_enabled(self, echo_proxy: AsyncProxy) -> None:
        async with echo_proxy.down():
            with pytest.raises(ConnectionRefusedError):
                await Client.connect(echo_proxy.listen)
        assert await median_round_trip(echo_proxy.listen, count=3) < 0.05

    async def test_disabling_closes_open_connections(self, echo_proxy: AsyncProxy) -> None:
        client = await Client.connect(echo_proxy.listen)
        await client.round_trip()
        await echo_proxy.disable()
        try:
            data, _ = await client.read_all()
        except ConnectionResetError:
            data = b""
        await client.close()
        assert data == b""


async def toxicity_hits(address: str, connections: int) -> list[bool]:
    """Per connection: did a downstream ``limit_data`` of 0 bytes hit (EOF) or miss (the echo)?"""
    hits = []
    for _ in range(connections):
        client = await Client.connect(address)
        client.writer.write(b"ping")
        async with asyncio.timeout(WAIT):
            data = await client.reader.read(4)
        hits.append(data == b"")
        await client.close()
    return hits


@pytest.mark.behaviour("toxic.toxicity")
class TestToxicity:
    async def test_half_of_the_connections_are_hit(self, echo_proxy: AsyncProxy) -> None:
        """Toxicity 0.5 over 200 connections: the hit count is binomial(200, 0.5), within 4.5 sigma."""
        await echo_proxy.add_toxic("limit_data", toxicity=0.5, bytes=0)
        hits = sum(await toxicity_hits(echo_proxy.listen, 200))
        sigma = math.sqrt(200 * 0.5 * 0.5)
        assert abs(hits - 100) <= 4.5 * sigma, f"{hits} of 200 connections hit"

    async def test_same_seed_same_draws(self, echo_upstream: Upstream) -> None:
        """Two servers with one seed draw the same toxicity for the same sequence of connections."""
        patterns = []
        for _ in range(2):
            async with ToxiproxyServer(seed=42) as server, AsyncToxiproxyClient(server.url) as client:
                proxy = await client.create_proxy("seeded", echo_upstream.address)
                await proxy.add_toxic("limit_data", toxicity=0.5, bytes=0)
                patterns.append(await toxicity_hits(proxy.listen, 40))
        assert patterns[0] == patterns[1]
        assert 0 < sum(patterns[0]) < 40


@pytest.mark.behaviour("proxy.api")
class TestUnreachableUpstream:
    async def test_client_connection_is_closed(self, toxiproxy: AsyncToxiproxyClient) -> None:
        upstream = await Upstream(echo).start()
        address = upstream.address
        await upstream.close()  # nothing listens there any more
        proxy = await toxiproxy.create_proxy("nowhere", address)
        client = await Client.connect(proxy.listen)
        try:
            data, _ = await client.read_all()
        except ConnectionResetError:
            data = b""
        await client.close()
        assert data == b""
