"""The typed Toxiproxy client against httpx.MockTransport: bodies sent, answers read, errors translated."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import harness.faults
from harness.errors import HarnessError
from harness.faults import (
    AsyncToxiproxyClient,
    FaultApiError,
    ProxyExists,
    ProxyNotFound,
    ToxicExists,
    ToxicNotFound,
    ToxicUnsupported,
    ToxiproxyClient,
    ToxiproxyUnavailable,
)

PROXY = {
    "name": "users-1",
    "listen": "127.0.0.1:21001",
    "upstream": "127.0.0.1:9001",
    "enabled": True,
    "Logger": {},
    "toxics": [],
}
TOXIC = {
    "attributes": {"latency": 100, "jitter": 0},
    "name": "latency_downstream",
    "type": "latency",
    "stream": "downstream",
    "toxicity": 1,
}


class FakeServer:
    """Answers from a table keyed by (method, path) and records what was sent."""

    def __init__(self, answers: dict[tuple[str, str], httpx.Response]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.raw_path.decode()  # as sent, percent-escapes included
        self.sent.append((request.method, path, body))
        return self.answers.get((request.method, path), httpx.Response(404, text="404 page not found\n"))


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, text=json.dumps({"error": message, "status": status}) + "\n")


def client_for(server: FakeServer) -> ToxiproxyClient:
    return ToxiproxyClient("http://toxiproxy.test", transport=httpx.MockTransport(server))


def test_exported_names() -> None:
    """__all__ is the public surface, sorted as ruff sorts it, and each name resolves."""
    assert harness.faults.__all__ == [
        "DEFAULT_TOXIPROXY_URL",
        "TOXIPROXY_VERSION",
        "ActiveFault",
        "AsyncProxy",
        "AsyncToxiproxyClient",
        "ChaosMonkey",
        "FaultApiError",
        "FaultApplier",
        "FaultConsole",
        "FaultError",
        "FaultInjector",
        "FaultKind",
        "FaultNotApplied",
        "FaultSchedule",
        "FaultSpec",
        "FaultTarget",
        "FaultWindow",
        "MonkeyConfig",
        "Proxy",
        "ProxyConfig",
        "ProxyExists",
        "ProxyInfo",
        "ProxyNotFound",
        "RandomFaults",
        "ScheduleRunner",
        "Stream",
        "ThreadedToxiproxyServer",
        "ToxicExists",
        "ToxicInfo",
        "ToxicNotFound",
        "ToxicType",
        "ToxicUnsupported",
        "ToxiproxyClient",
        "ToxiproxyInjector",
        "ToxiproxyProcess",
        "ToxiproxyServer",
        "ToxiproxySettings",
        "ToxiproxyUnavailable",
        "active_faults",
        "faults_summary",
        "random_schedule",
        "read_ledger",
        "run_toxiproxy",
    ]
    for name in harness.faults.__all__:
        assert getattr(harness.faults, name) is not None


@pytest.mark.behaviour("proxy.clients")
class TestUrl:
    def test_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TOXIPROXY_URL", "http://10.0.0.5:8474/")
        assert ToxiproxyClient().url == "http://10.0.0.5:8474"

    def test_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("TOXIPROXY_URL", raising=False)
        assert ToxiproxyClient().url == "http://127.0.0.1:8474"


@pytest.mark.behaviour("proxy.clients")
class TestRequests:
    def test_create_proxy_body_and_answer(self) -> None:
        server = FakeServer({("POST", "/proxies"): httpx.Response(201, json=PROXY)})
        proxy = client_for(server).create_proxy("users-1", "127.0.0.1:9001")
        assert server.sent == [
            (
                "POST",
                "/proxies",
                {"name": "users-1", "upstream": "127.0.0.1:9001", "listen": "127.0.0.1:0", "enabled": True},
            ),
        ]
        assert (proxy.name, proxy.host, proxy.port, proxy.info.enabled) == (
            "users-1",
            "127.0.0.1",
            21001,
            True,
        )

    def test_update_sends_only_what_changes(self) -> None:
        server = FakeServer(
            {("POST", "/proxies/users-1"): httpx.Response(200, json={**PROXY, "enabled": False})}
        )
        proxy = client_for(server).update_proxy("users-1", enabled=False)
        assert server.sent == [("POST", "/proxies/users-1", {"enabled": False})]
        assert proxy.info.enabled is False

    def test_add_toxic_body(self) -> None:
        server = FakeServer({("POST", "/proxies/users-1/toxics"): httpx.Response(200, json=TOXIC)})
        toxic = client_for(server).add_toxic("users-1", "latency", attributes={"latency": 100})
        assert server.sent[0][2] == {
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": 100},
        }
        assert toxic.attributes == {"latency": 100, "jitter": 0}

    def test_update_toxic_body(self) -> None:
        server = FakeServer({("POST", "/proxies/users-1/toxics/lat"): httpx.Response(200, json=TOXIC)})
        client_for(server).update_toxic("users-1", "lat", toxicity=0.5)
        assert server.sent == [("POST", "/proxies/users-1/toxics/lat", {"toxicity": 0.5})]

    def test_names_are_escaped_in_paths(self) -> None:
        server = FakeServer({})
        with pytest.raises(FaultApiError):
            client_for(server).proxy("a/b")
        assert server.sent[0][1] == "/proxies/a%2Fb"

    def test_populate_reads_the_proxies(self) -> None:
        server = FakeServer({("POST", "/populate"): httpx.Response(201, json={"proxies": [PROXY]})})
        proxies = client_for(server).populate(
            [harness.faults.ProxyConfig(name="users-1", upstream="127.0.0.1:9001")]
        )
        assert [p.name for p in proxies] == ["users-1"]

    def test_invalid_toxicity_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="toxicity"):
            client_for(FakeServer({})).add_toxic("users-1", "latency", toxicity=1.5)


@pytest.mark.behaviour("proxy.clients")
class TestErrors:
    @pytest.mark.parametrize(
        ("answer", "kind", "status"),
        [
            pytest.param(error(404, "proxy not found"), ProxyNotFound, 404, id="proxy-not-found"),
            pytest.param(error(404, "toxic not found"), ToxicNotFound, 404, id="toxic-not-found"),
            pytest.param(error(409, "proxy already exists"), ProxyExists, 409, id="proxy-exists"),
            pytest.param(error(409, "toxic already exists"), ToxicExists, 409, id="toxic-exists"),
            pytest.param(error(400, "invalid toxic type"), FaultApiError, 400, id="bad-request"),
            pytest.param(
                httpx.Response(500, json={"error": "listen tcp: boom", "status": 500, "proxies": None}),
                FaultApiError,
                500,
                id="populate-style-error",
            ),
            pytest.param(
                httpx.Response(404, text="404 page not found\n"), FaultApiError, 404, id="router-404"
            ),
        ],
    )
    def test_statuses_become_fault_errors(
        self, answer: httpx.Response, kind: type[Exception], status: int
    ) -> None:
        server = FakeServer({("POST", "/proxies/p/toxics"): answer})
        with pytest.raises(kind) as caught:
            client_for(server).add_toxic("p", "latency")
        assert isinstance(caught.value, HarnessError)
        assert caught.value.status == status  # type: ignore[attr-defined]
        assert caught.value.proxy == "p"  # type: ignore[attr-defined]

    def test_a_real_toxiproxy_refusing_an_http_toxic_says_why(self) -> None:
        """A real Toxiproxy answers an HTTP toxic with 'invalid toxic type': the error says they are the
        embedded proxy's extensions, which server refused, and what to use instead."""
        server = FakeServer({("POST", "/proxies/p/toxics"): error(400, "invalid toxic type")})
        with pytest.raises(ToxicUnsupported) as caught:
            client_for(server).add_toxic("p", "http_error", attributes={"status": 503, "path_prefix": "/x"})
        message = str(caught.value)
        assert "the Toxiproxy at http://toxiproxy.test has no http_error toxic" in message
        assert "extensions of the harness's embedded fault proxy" in message
        assert "harness.faults.ChaosMonkey" in message
        assert caught.value.exit_code == 2
        assert server.sent[0][2]["attributes"] == {"status": 503, "path_prefix": "/x"}

    def test_message_is_the_servers(self) -> None:
        server = FakeServer({("GET", "/proxies/p"): error(404, "proxy not found")})
        with pytest.raises(ProxyNotFound, match="GET /proxies/p: proxy not found"):
            client_for(server).proxy("p")

    def test_unreachable_server(self) -> None:
        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        client = ToxiproxyClient("http://toxiproxy.test", transport=httpx.MockTransport(refuse))
        with pytest.raises(ToxiproxyUnavailable) as caught:
            client.version()
        assert caught.value.exit_code == 3

    def test_unexpected_answer_is_an_api_error(self) -> None:
        server = FakeServer({("GET", "/proxies"): httpx.Response(200, text="not json")})
        with pytest.raises(FaultApiError, match="unexpected answer"):
            client_for(server).proxies()


@pytest.mark.behaviour("proxy.clients")
class TestContextManagers:
    def test_toxic_is_removed_when_the_block_fails(self) -> None:
        server = FakeServer(
            {
                ("POST", "/proxies/users-1/toxics"): httpx.Response(200, json=TOXIC),
                ("DELETE", "/proxies/users-1/toxics/latency_downstream"): httpx.Response(204),
            }
        )
        proxy = harness.faults.Proxy(client_for(server), harness.faults.ProxyInfo.model_validate(PROXY))
        with pytest.raises(RuntimeError), proxy.toxic("latency", latency=100):
            raise RuntimeError("the test body failed")
        assert [(method, path) for method, path, _ in server.sent][-1] == (
            "DELETE",
            "/proxies/users-1/toxics/latency_downstream",
        )

    def test_toxic_already_gone_is_fine(self) -> None:
        server = FakeServer(
            {
                ("POST", "/proxies/users-1/toxics"): httpx.Response(200, json=TOXIC),
                ("DELETE", "/proxies/users-1/toxics/latency_downstream"): error(404, "toxic not found"),
            }
        )
        proxy = harness.faults.Proxy(client_for(server), harness.faults.ProxyInfo.model_validate(PROXY))
        with proxy.toxic("latency", latency=100) as toxic:
            assert toxic.name == "latency_downstream"

    def test_down_enables_again_when_the_block_fails(self) -> None:
        server = FakeServer({("POST", "/proxies/users-1"): httpx.Response(200, json=PROXY)})
        proxy = harness.faults.Proxy(client_for(server), harness.faults.ProxyInfo.model_validate(PROXY))
        with pytest.raises(RuntimeError), proxy.down():
            raise RuntimeError("the test body failed")
        assert [body for _, _, body in server.sent] == [{"enabled": False}, {"enabled": True}]

    async def test_async_toxic_context(self) -> None:
        server = FakeServer(
            {
                ("GET", "/proxies/users-1"): httpx.Response(200, json=PROXY),
                ("POST", "/proxies/users-1/toxics"): httpx.Response(200, json=TOXIC),
                ("DELETE", "/proxies/users-1/toxics/latency_downstream"): httpx.Response(204),
            }
        )
        async with AsyncToxiproxyClient(
            "http://toxiproxy.test", transport=httpx.MockTransport(server)
        ) as client:
            proxy = await client.proxy("users-1")
            async with proxy.toxic("latency", latency=100) as toxic:
                assert toxic.type == "latency"
        assert [method for method, _, _ in server.sent] == ["GET", "POST", "DELETE"]
