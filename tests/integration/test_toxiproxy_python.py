"""toxiproxy-python 0.1.1, an independent client, driving the embedded server through every call it has,
with traffic through an echo upstream so each call's effect is seen on real connections."""

from __future__ import annotations

import socket
import socketserver
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from harness.faults import ThreadedToxiproxyServer
from tests.integration._support import tcp_server


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo_address() -> Iterator[str]:
    with tcp_server(_Echo) as address:
        yield address


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedToxiproxyServer]:
    with ThreadedToxiproxyServer(seed=3) as running:
        yield running


@pytest.fixture
def toxiproxy(server: ThreadedToxiproxyServer) -> Iterator[Toxiproxy]:
    """The library pointed at the embedded server; every proxy is destroyed after the test."""
    saved = (APIConsumer.host, APIConsumer.port)
    url = urlsplit(server.url)
    client = Toxiproxy()
    client.update_api_consumer(url.hostname, url.port)
    try:
        yield client
        client.destroy_all()
    finally:
        APIConsumer.host, APIConsumer.port = saved


def round_trip(listen: str, payload: bytes = b"ping") -> float:
    host, port = listen.rsplit(":", 1)
    began = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the echo came back")
            received += chunk
    return time.perf_counter() - began


def refuses(listen: str) -> bool:
    host, port = listen.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.behaviour("proxy.clients")
class TestServer:
    def test_running_and_version(self, toxiproxy: Toxiproxy) -> None:
        """``running`` connects to the API port; ``version`` returns the raw body bytes."""
        assert toxiproxy.running() is True
        assert toxiproxy.version() == b'{"version": "2.12.0"}\n'

    def test_create_proxies_get_proxy(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_echo")
        assert proxy.listen.startswith("127.0.0.1:")
        assert not proxy.listen.endswith(":0")  # the port actually bound, not the one asked for
        assert proxy.enabled is True
        assert set(toxiproxy.proxies()) == {"py_echo"}
        fetched = toxiproxy.get_proxy("py_echo")
        assert (fetched.name, fetched.listen, fetched.upstream) == ("py_echo", proxy.listen, echo_address)
        assert toxiproxy.get_proxy("nope") is None
        assert round_trip(proxy.listen) < 1.0

    def test_create_twice_raises_proxy_exists(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        toxiproxy.create(upstream=echo_address, name="py_dup")
        with pytest.raises(ProxyExists):
            toxiproxy.create(upstream=echo_address, name="py_dup")

    def test_create_disabled(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_off", enabled=False)
        assert proxy.enabled is False
        assert refuses(proxy.listen)

    def test_populate_creates_only_new_proxies(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        port = self._free_port()
        entries = [
            {"name": "py_pop1", "upstream": echo_address, "listen": f"127.0.0.1:{port}"},
            {"name": "py_pop2", "upstream": echo_address, "listen": "127.0.0.1:0"},
        ]
        created = toxiproxy.populate(entries)
        assert sorted(p.name for p in created) == ["py_pop1", "py_pop2"]
        again = toxiproxy.populate(entries)
        # Same upstream and listen: kept; "…:0" never equals the bound port, so that one is recreated.
        assert [p.name for p in again] == ["py_pop2"]
        assert sorted(toxiproxy.proxies()) == ["py_pop1", "py_pop2"]

    def test_reset_enables_and_clears_toxics(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_reset")
        proxy.add_toxic(type="latency", attributes={"latency": 500})
        proxy.disable()
        assert toxiproxy.reset() is True
        assert proxy.toxics() == {}
        assert round_trip(proxy.listen) < 0.3

    def test_destroy_and_destroy_all(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        first = toxiproxy.create(upstream=echo_address, name="py_d1")
        toxiproxy.create(upstream=echo_address, name="py_d2")
        assert toxiproxy.destroy(first) is True
        assert refuses(first.listen)
        assert sorted(toxiproxy.proxies()) == ["py_d2"]
        toxiproxy.destroy_all()
        assert toxiproxy.proxies() == {}
        with pytest.raises(NotFound):
            first.destroy()

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


@pytest.mark.behaviour("proxy.clients")
class TestToxics:
    @pytest.mark.behaviour("toxic.latency")
    def test_add_toxic_slows_traffic(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_slow")
        proxy.add_toxic(type="latency", attributes={"latency": 200})
        assert round_trip(proxy.listen) >= 0.19

    def test_toxics_and_get_toxic(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_list")
        proxy.add_toxic(type="latency", stream="upstream", toxicity=0.5, attributes={"latency": 10})
        proxy.add_toxic(type="bandwidth", name="slow_pipe", attributes={"rate": 1000})
        toxics = proxy.toxics()
        assert sorted(toxics) == ["latency_upstream", "slow_pipe"]
        toxic = proxy.get_toxic("latency_upstream")
        assert (toxic.type, toxic.stream, toxic.toxicity, toxic.attributes) == (
            "latency",
            "upstream",
            0.5,
            {"latency": 10, "jitter": 0},
        )
        assert proxy.get_toxic("nope") is None

    def test_destroy_toxic_restores_traffic(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_destroy")
        proxy.add_toxic(type="latency", attributes={"latency": 300})
        assert proxy.destroy_toxic("latency_downstream") is True
        assert round_trip(proxy.listen) < 0.2
        with pytest.raises(NotFound):
            proxy.destroy_toxic("latency_downstream")

    def test_invalid_toxic_raises(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_bad")
        with pytest.raises(InvalidToxic):
            proxy.add_toxic(type="laser")


@pytest.mark.behaviour("proxy.clients", "proxy.enable_disable")
class TestEnableDisable:
    def test_disable_and_enable(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_switch")
        proxy.disable()
        states = [proxy.enabled]
        assert refuses(proxy.listen)
        proxy.enable()
        states.append(proxy.enabled)
        assert states == [False, True]
        assert round_trip(proxy.listen) < 1.0

    def test_down_context(self, toxiproxy: Toxiproxy, echo_address: str) -> None:
        proxy = toxiproxy.create(upstream=echo_address, name="py_down")
        with proxy.down():
            assert refuses(proxy.listen)
        assert round_trip(proxy.listen) < 1.0
