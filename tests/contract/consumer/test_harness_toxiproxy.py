"""harness -> toxiproxy: the harness's typed ToxiproxyClient against the Toxiproxy HTTP API.

Success bodies are JSON and pinned by type; error bodies are what Go's ``http.Error`` writes (text/plain,
``{"error":...,"status":...}`` and a newline), pinned as exact text: the client tells errors apart by
that message, and pact matchers do not apply to text bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
from pact import Pact, match
from pact.interaction import HttpInteraction

from harness.faults import (
    ProxyConfig,
    ProxyExists,
    ProxyNotFound,
    ToxicExists,
    ToxicNotFound,
    ToxiproxyClient,
)

from .._support import NewPact

CONSUMER, PROVIDER = "harness", "toxiproxy"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
PROXY, UPSTREAM = "pact-probe-1", "127.0.0.1:9"
ADDRESS = r"^[^\s:]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$"
LATENCY = "latency_downstream"
T = TypeVar("T")


def proxy(name: str = PROXY, *, enabled: bool = True) -> dict[str, object]:
    """A proxy as the client reads it (ProxyInfo); ``listen`` is the address actually bound."""
    return {
        "name": match.str(name),
        "listen": match.regex("127.0.0.1:21210", regex=ADDRESS),
        "upstream": match.str(UPSTREAM),
        "enabled": enabled,
    }


def toxic(latency: int = 100) -> dict[str, object]:
    return {
        "name": match.str(LATENCY),
        "type": "latency",
        "stream": "downstream",
        "toxicity": match.number(1),
        "attributes": match.like({"latency": latency}),
    }


def go_error(message: str, status: int) -> str:
    return f'{{"error":"{message}","status":{status}}}\n'


def a_proxy(name: str = PROXY) -> dict[str, object]:
    return {"name": name, "upstream": UPSTREAM}


def with_toxic() -> dict[str, object]:
    return {**a_proxy(), "toxic": LATENCY, "type": "latency", "attributes": {"latency": 100}}


def run(pact: Pact, use: Callable[[ToxiproxyClient], T]) -> T:
    with pact.serve(addr="127.0.0.1") as server, ToxiproxyClient(str(server.url)) as client:
        return use(client)


def interaction(new_pact: NewPact, description: str) -> tuple[Pact, HttpInteraction]:
    pact = new_pact(CONSUMER, PROVIDER)
    return pact, pact.upon_receiving(description)


@pytest.mark.behaviour("contract.harness-toxiproxy")
class TestProxies:
    def test_version(self, new_pact: NewPact) -> None:
        pact, i = interaction(new_pact, "a request for the version")
        i.with_request("GET", "/version").will_respond_with(200).with_body(
            {"version": match.regex("2.12.0", regex=r"^\d+\.\d+\.\d+")}, content_type=JSON
        )
        assert run(pact, lambda c: c.version()) == "2.12.0"

    def test_create_proxy(self, new_pact: NewPact) -> None:
        """201 with the proxy; a listen port of 0 comes back as the port bound."""
        pact, i = interaction(new_pact, "a request to create a proxy")
        (
            i.given("no such proxy", name=PROXY)
            .with_request("POST", "/proxies")
            .with_body(
                {
                    "name": match.str(PROXY),
                    "upstream": match.str(UPSTREAM),
                    "listen": "127.0.0.1:0",
                    "enabled": True,
                },
                content_type=JSON,
            )
            .will_respond_with(201)
            .with_body(proxy(), content_type=JSON)
        )
        created = run(pact, lambda c: c.create_proxy(PROXY, UPSTREAM))
        assert created.port > 0

    def test_create_existing_proxy(self, new_pact: NewPact) -> None:
        """409 ``proxy already exists`` becomes ProxyExists."""
        pact, i = interaction(new_pact, "a request to create a proxy that exists")
        (
            i.given("a proxy", a_proxy())
            .with_request("POST", "/proxies")
            .with_body(
                {
                    "name": match.str(PROXY),
                    "upstream": match.str(UPSTREAM),
                    "listen": "127.0.0.1:0",
                    "enabled": True,
                },
                content_type=JSON,
            )
            .will_respond_with(409)
            .with_body(go_error("proxy already exists", 409), content_type=TEXT)
        )
        with pytest.raises(ProxyExists):
            run(pact, lambda c: c.create_proxy(PROXY, UPSTREAM))

    def test_list_proxies(self, new_pact: NewPact) -> None:
        """An object keyed by proxy name."""
        pact, i = interaction(new_pact, "a request for the proxies")
        i.given("a proxy", a_proxy()).with_request("GET", "/proxies").will_respond_with(200).with_body(
            {PROXY: proxy()}, content_type=JSON
        )
        proxies = run(pact, lambda c: c.proxies())
        assert PROXY in proxies

    def test_get_proxy(self, new_pact: NewPact) -> None:
        pact, i = interaction(new_pact, "a request for a proxy")
        i.given("a proxy", a_proxy()).with_request("GET", f"/proxies/{PROXY}").will_respond_with(
            200
        ).with_body(proxy(), content_type=JSON)
        assert run(pact, lambda c: c.proxy(PROXY).name) == PROXY

    def test_get_unknown_proxy(self, new_pact: NewPact) -> None:
        """404 ``proxy not found`` becomes ProxyNotFound."""
        pact, i = interaction(new_pact, "a request for an unknown proxy")
        i.given("no such proxy", name=PROXY).with_request("GET", f"/proxies/{PROXY}").will_respond_with(
            404
        ).with_body(go_error("proxy not found", 404), content_type=TEXT)
        with pytest.raises(ProxyNotFound):
            run(pact, lambda c: c.proxy(PROXY))

    def test_disable_proxy(self, new_pact: NewPact) -> None:
        """POST with only the changed field; 200 with the proxy as it is now."""
        pact, i = interaction(new_pact, "a request to disable a proxy")
        (
            i.given("a proxy", a_proxy())
            .with_request("POST", f"/proxies/{PROXY}")
            .with_body({"enabled": False}, content_type=JSON)
            .will_respond_with(200)
            .with_body(proxy(enabled=False), content_type=JSON)
        )
        assert run(pact, lambda c: c.update_proxy(PROXY, enabled=False).info.enabled) is False

    def test_delete_proxy(self, new_pact: NewPact) -> None:
        pact, i = interaction(new_pact, "a request to delete a proxy")
        i.given("a proxy", a_proxy()).with_request("DELETE", f"/proxies/{PROXY}").will_respond_with(204)
        run(pact, lambda c: c.delete_proxy(PROXY))

    def test_populate(self, new_pact: NewPact) -> None:
        """201 with the proxies created or kept."""
        pact, i = interaction(new_pact, "a request to populate proxies")
        body = {
            "name": match.str(PROXY),
            "upstream": match.str(UPSTREAM),
            "listen": "127.0.0.1:0",
            "enabled": True,
        }
        (
            i.given("no such proxy", name=PROXY)
            .with_request("POST", "/populate")
            .with_body(match.each_like(body), content_type=JSON)
            .will_respond_with(201)
            .with_body({"proxies": match.each_like(proxy())}, content_type=JSON)
        )
        populated = run(pact, lambda c: c.populate([ProxyConfig(name=PROXY, upstream=UPSTREAM)]))
        assert [p.name for p in populated] == [PROXY]

    def test_reset(self, new_pact: NewPact) -> None:
        """204: every proxy enabled, every toxic gone."""
        pact, i = interaction(new_pact, "a request to reset")
        i.given("a proxy with a toxic", with_toxic()).with_request("POST", "/reset").will_respond_with(204)
        run(pact, lambda c: c.reset())


@pytest.mark.behaviour("contract.harness-toxiproxy")
class TestToxics:
    def test_add_toxic(self, new_pact: NewPact) -> None:
        """200 (not 201) with the toxic as added."""
        pact, i = interaction(new_pact, "a request to add a toxic")
        (
            i.given("a proxy", a_proxy())
            .with_request("POST", f"/proxies/{PROXY}/toxics")
            .with_body(
                {
                    "type": "latency",
                    "name": match.str(LATENCY),
                    "stream": "downstream",
                    "toxicity": match.number(1.0),
                    "attributes": match.like({"latency": 100}),
                },
                content_type=JSON,
            )
            .will_respond_with(200)
            .with_body(toxic(), content_type=JSON)
        )
        added = run(pact, lambda c: c.add_toxic(PROXY, "latency", name=LATENCY, attributes={"latency": 100}))
        assert added.attributes["latency"] == 100

    def test_add_existing_toxic(self, new_pact: NewPact) -> None:
        """409 ``toxic already exists`` becomes ToxicExists."""
        pact, i = interaction(new_pact, "a request to add a toxic that exists")
        (
            i.given("a proxy with a toxic", with_toxic())
            .with_request("POST", f"/proxies/{PROXY}/toxics")
            .with_body(
                {
                    "type": "latency",
                    "name": match.str(LATENCY),
                    "stream": "downstream",
                    "toxicity": match.number(1.0),
                    "attributes": match.like({"latency": 100}),
                },
                content_type=JSON,
            )
            .will_respond_with(409)
            .with_body(go_error("toxic already exists", 409), content_type=TEXT)
        )
        with pytest.raises(ToxicExists):
            run(pact, lambda c: c.add_toxic(PROXY, "latency", name=LATENCY, attributes={"latency": 100}))

    def test_list_toxics(self, new_pact: NewPact) -> None:
        pact, i = interaction(new_pact, "a request for a proxy's toxics")
        i.given("a proxy with a toxic", with_toxic()).with_request(
            "GET", f"/proxies/{PROXY}/toxics"
        ).will_respond_with(200).with_body(match.each_like(toxic()), content_type=JSON)
        assert [t.name for t in run(pact, lambda c: c.toxics(PROXY))] == [LATENCY]

    def test_update_toxic(self, new_pact: NewPact) -> None:
        """Only the attributes to change are sent; 200 with the toxic as it is now."""
        pact, i = interaction(new_pact, "a request to update a toxic")
        (
            i.given("a proxy with a toxic", with_toxic())
            .with_request("POST", f"/proxies/{PROXY}/toxics/{LATENCY}")
            .with_body({"attributes": match.like({"latency": 200})}, content_type=JSON)
            .will_respond_with(200)
            .with_body(toxic(latency=200), content_type=JSON)
        )
        updated = run(pact, lambda c: c.update_toxic(PROXY, LATENCY, attributes={"latency": 200}))
        assert updated.attributes["latency"] == 200

    def test_remove_toxic(self, new_pact: NewPact) -> None:
        pact, i = interaction(new_pact, "a request to remove a toxic")
        i.given("a proxy with a toxic", with_toxic()).with_request(
            "DELETE", f"/proxies/{PROXY}/toxics/{LATENCY}"
        ).will_respond_with(204)
        run(pact, lambda c: c.remove_toxic(PROXY, LATENCY))

    def test_remove_unknown_toxic(self, new_pact: NewPact) -> None:
        """404 ``toxic not found`` becomes ToxicNotFound (a toxic context manager then ignores it)."""
        pact, i = interaction(new_pact, "a request to remove an unknown toxic")
        i.given("a proxy", a_proxy()).with_request(
            "DELETE", f"/proxies/{PROXY}/toxics/{LATENCY}"
        ).will_respond_with(404).with_body(go_error("toxic not found", 404), content_type=TEXT)
        with pytest.raises(ToxicNotFound):
            run(pact, lambda c: c.remove_toxic(PROXY, LATENCY))
