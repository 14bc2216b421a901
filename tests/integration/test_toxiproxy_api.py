"""Conformance: every case of reference/toxiproxy-api.md, byte for byte where it gives bytes, with raw httpx,
against the embedded server (a thread, port 0) or, when TOXIPROXY_URL is set, a real Toxiproxy."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.errors import EnvironmentUnavailable
from harness.faults import ThreadedToxiproxyServer, ToxiproxyProcess
from harness.stack import SettingValue
from tests._children import child_env

REAL_SERVER = os.environ.get("TOXIPROXY_URL")
embedded_only = pytest.mark.skipif(bool(REAL_SERVER), reason="a property of the embedded server")
REQUEST_ID = re.compile(r"[0-9a-v]{20}")
TEXT = "text/plain; charset=utf-8"
DEAD_UPSTREAM = "127.0.0.1:1"  # stored, dialled only when a client connects


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    if REAL_SERVER:
        yield REAL_SERVER.rstrip("/")
        return
    with ThreadedToxiproxyServer(seed=1) as server:
        yield server.url


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    """A raw HTTP client; every proxy is deleted after the test, so tests start from an empty server."""
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        yield client
        for name in client.get("/proxies").json():
            client.delete(f"/proxies/{name}")


def create(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0", **fields}
    response = api.post("/proxies", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def error_body(message: str, status: int) -> bytes:
    return json.dumps({"error": message, "status": status}, separators=(",", ":")).encode() + b"\n"


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    """Go's http.Error: text/plain, nosniff, the JSON error and a newline."""
    assert response.status_code == status
    assert response.headers["content-type"] == TEXT
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == error_body(message, status)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def refused(listen: str) -> bool:
    host, port = listen.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.behaviour("proxy.api")
class TestConventions:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("GET", "/version", id="version"),
            pytest.param("GET", "/proxies", id="proxy-index"),
            pytest.param("GET", "/proxies/missing", id="matched-route-404"),
            pytest.param("POST", "/proxies", id="matched-route-400"),
        ],
    )
    def test_matched_routes_carry_a_request_id(self, api: httpx.Client, method: str, path: str) -> None:
        response = api.request(method, path)
        assert REQUEST_ID.fullmatch(response.headers["x-toxiproxy-request-id"])

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            pytest.param("GET", "/nope", 404, id="unknown-path"),
            pytest.param("PUT", "/proxies", 405, id="wrong-method"),
        ],
    )
    def test_router_answers_carry_no_request_id(
        self, api: httpx.Client, method: str, path: str, status: int
    ) -> None:
        response = api.request(method, path)
        assert response.status_code == status
        assert "x-toxiproxy-request-id" not in response.headers

    def test_browsers_are_refused(self, api: httpx.Client) -> None:
        """Anti-CSRF: a Mozilla/ user agent gets 403 text on matched routes, with a request id."""
        response = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
        assert response.status_code == 403
        assert response.headers["content-type"] == TEXT
        assert response.content == b"User agent not allowed\n"
        assert REQUEST_ID.fullmatch(response.headers["x-toxiproxy-request-id"])

    def test_browser_check_only_on_matched_routes(self, api: httpx.Client) -> None:
        response = api.get("/nope", headers={"User-Agent": "Mozilla/5.0"})
        assert response.status_code == 404

    def test_success_is_compact_json_without_newline(self, api: httpx.Client) -> None:
        create(api, "conv")
        response = api.get("/proxies/conv")
        assert response.headers["content-type"] == "application/json"
        assert not response.content.endswith(b"\n")
        assert b" " not in response.content

    def test_version_body(self, api: httpx.Client) -> None:
        """The one body with a space after the colon and a trailing newline: 22 bytes."""
        response = api.get("/version")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json;charset=utf-8"
        assert response.content == b'{"version": "2.12.0"}\n'

    def test_error_body(self, api: httpx.Client) -> None:
        assert_error(api.get("/proxies/missing"), 404, "proxy not found")

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("DELETE", "/proxies/p204", id="delete-proxy"),
            pytest.param("DELETE", "/proxies/p204/toxics/latency_downstream", id="delete-toxic"),
            pytest.param("POST", "/reset", id="reset"),
        ],
    )
    def test_no_content_has_no_body_and_no_type(self, api: httpx.Client, method: str, path: str) -> None:
        create(api, "p204")
        api.post("/proxies/p204/toxics", json={"type": "latency"})
        response = api.request(method, path)
        assert response.status_code == 204
        assert response.content == b""
        assert "content-type" not in response.headers

    def test_request_content_type_is_not_checked(self, api: httpx.Client) -> None:
        body = json.dumps({"name": "ct", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0"})
        response = api.post("/proxies", content=body, headers={"Content-Type": "text/plain"})
        assert response.status_code == 201

    def test_unknown_fields_are_ignored(self, api: httpx.Client) -> None:
        proxy = create(api, "extra", color="blue", toxics=[{"type": "latency"}])
        assert proxy["toxics"] == []

    def test_type_mismatch_is_go_decoder_message(self, api: httpx.Client) -> None:
        response = api.post("/proxies", json={"name": "t", "upstream": DEAD_UPSTREAM, "enabled": "yes"})
        message = (
            "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled of type bool"
        )
        assert_error(response, 400, message)

    def test_proxy_key_order_and_logger(self, api: httpx.Client) -> None:
        proxy = create(api, "order")
        response = api.get("/proxies/order")
        expected = (
            f'{{"name":"order","listen":"{proxy["listen"]}","upstream":"{DEAD_UPSTREAM}",'
            f'"enabled":true,"Logger":{{}},"toxics":[]}}'
        )
        assert response.content == expected.encode()

    def test_toxic_key_order(self, api: httpx.Client) -> None:
        create(api, "order")
        response = api.post("/proxies/order/toxics", json={"type": "latency", "attributes": {"latency": 5}})
        assert response.content == (
            b'{"attributes":{"latency":5,"jitter":0},"name":"latency_downstream","type":"latency",'
            b'"stream":"downstream","toxicity":1}'
        )

    def test_proxy_index_keys_are_sorted(self, api: httpx.Client) -> None:
        for name in ("b", "c", "a"):
            create(api, name)
        text = api.get("/proxies").text
        assert [text.index(f'"{name}":{{') for name in "abc"] == sorted(
            text.index(f'"{n}":{{') for n in "abc"
        )

    @pytest.mark.parametrize(
        ("toxicity", "printed"),
        [
            pytest.param(1, b"1", id="one"),
            pytest.param(0.5, b"0.5", id="half"),
            pytest.param(0.25, b"0.25", id="quarter"),
            pytest.param(0.1, b"0.1", id="float32-minimal"),
            pytest.param(0, b"0", id="zero"),
        ],
    )
    def test_toxicity_printed_as_minimal_float32(
        self, api: httpx.Client, toxicity: float, printed: bytes
    ) -> None:
        create(api, "tox")
        response = api.post("/proxies/tox/toxics", json={"type": "timeout", "toxicity": toxicity})
        assert response.content.endswith(b'"toxicity":' + printed + b"}")


@pytest.mark.behaviour("proxy.api")
class TestObjects:
    def test_listen_port_zero_is_echoed_as_bound(self, api: httpx.Client) -> None:
        proxy = create(api, "zero")
        host, port = proxy["listen"].rsplit(":", 1)
        assert host == "127.0.0.1"
        assert int(port) > 0

    def test_localhost_is_echoed_as_ip(self, api: httpx.Client) -> None:
        port = free_port()
        assert create(api, "lh", listen=f"localhost:{port}")["listen"] == f"127.0.0.1:{port}"

    def test_empty_listen(self, api: httpx.Client) -> None:
        """The real server binds every interface ([::]:<port>); the embedded one a random loopback port."""
        response = api.post("/proxies", json={"name": "wild", "upstream": DEAD_UPSTREAM})
        assert response.status_code == 201
        listen = response.json()["listen"]
        host, port = listen.rsplit(":", 1)
        assert host == ("[::]" if REAL_SERVER else "127.0.0.1")
        assert int(port) > 0
        assert not refused(listen.replace("[::]", "127.0.0.1"))

    def test_disabled_proxy_keeps_its_listen(self, api: httpx.Client) -> None:
        listen = create(api, "keep")["listen"]
        response = api.post("/proxies/keep", json={"enabled": False})
        assert response.json()["listen"] == listen
        assert response.json()["enabled"] is False

    def test_upstream_is_stored_verbatim(self, api: httpx.Client) -> None:
        assert create(api, "verbatim", upstream="localhost:1")["upstream"] == "localhost:1"

    def test_toxic_defaults(self, api: httpx.Client) -> None:
        """stream downstream, toxicity 1, name <type>_<stream>, missing attributes zero."""
        create(api, "dflt")
        toxic = api.post("/proxies/dflt/toxics", json={"type": "slicer"}).json()
        assert toxic == {
            "attributes": {"average_size": 0, "size_variation": 0, "delay": 0},
            "name": "slicer_downstream",
            "type": "slicer",
            "stream": "downstream",
            "toxicity": 1,
        }

    def test_stream_case_insensitive_echoed_verbatim(self, api: httpx.Client) -> None:
        create(api, "case")
        toxic = api.post("/proxies/case/toxics", json={"type": "latency", "stream": "UPSTREAM"}).json()
        assert toxic["stream"] == "UPSTREAM"
        assert toxic["name"] == "latency_UPSTREAM"

    def test_unknown_attributes_are_ignored(self, api: httpx.Client) -> None:
        create(api, "attrs")
        toxic = api.post(
            "/proxies/attrs/toxics", json={"type": "bandwidth", "attributes": {"rate": 7, "burst": 9}}
        ).json()
        assert toxic["attributes"] == {"rate": 7}

    def test_upstream_toxics_are_listed_first(self, api: httpx.Client) -> None:
        create(api, "listing")
        for body in (
            {"type": "latency", "name": "d1"},
            {"type": "latency", "name": "u1", "stream": "upstream"},
            {"type": "timeout", "name": "d2"},
            {"type": "timeout", "name": "u2", "stream": "upstream"},
        ):
            api.post("/proxies/listing/toxics", json=body)
        assert [t["name"] for t in api.get("/proxies/listing/toxics").json()] == ["u1", "u2", "d1", "d2"]
        assert [t["name"] for t in api.get("/proxies/listing").json()["toxics"]] == ["u1", "u2", "d1", "d2"]


@pytest.mark.behaviour("proxy.api")
class TestProxies:
    def test_index_empty(self, api: httpx.Client) -> None:
        response = api.get("/proxies")
        assert response.status_code == 200
        assert response.content == b"{}"

    def test_create_is_201_and_listening(self, api: httpx.Client) -> None:
        proxy = create(api, "made")
        assert proxy["enabled"] is True
        assert not refused(proxy["listen"])

    def test_create_disabled_does_not_listen(self, api: httpx.Client) -> None:
        port = free_port()
        proxy = create(api, "off", listen=f"127.0.0.1:{port}", enabled=False)
        assert proxy["enabled"] is False
        assert proxy["listen"] == f"127.0.0.1:{port}"
        assert refused(proxy["listen"])

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(b"", "bad request body: EOF", id="empty"),
            pytest.param(b'{"name":', "bad request body: unexpected EOF", id="truncated"),
            pytest.param(
                b"nope", "bad request body: invalid character 'o' in literal null (expecting 'u')", id="junk"
            ),
            pytest.param(
                b"[]",
                "bad request body: json: cannot unmarshal array into Go value of type toxiproxy.Proxy",
                id="array",
            ),
            pytest.param(b'{"upstream":"127.0.0.1:1"}', "missing required field: name", id="no-name"),
            pytest.param(b'{"name":"n"}', "missing required field: upstream", id="no-upstream"),
            pytest.param(
                b'{"name":"","upstream":""}', "missing required field: name", id="name-checked-first"
            ),
        ],
    )
    def test_create_bad_request(self, api: httpx.Client, body: bytes, message: str) -> None:
        assert_error(api.post("/proxies", content=body), 400, message)

    def test_create_duplicate_is_409(self, api: httpx.Client) -> None:
        create(api, "dup")
        assert_error(
            api.post("/proxies", json={"name": "dup", "upstream": DEAD_UPSTREAM}), 409, "proxy already exists"
        )

    def test_create_bind_error_is_500_and_creates_nothing(self, api: httpx.Client, taken_port: int) -> None:
        response = api.post(
            "/proxies", json={"name": "clash", "upstream": DEAD_UPSTREAM, "listen": f"127.0.0.1:{taken_port}"}
        )
        assert_error(response, 500, f"listen tcp 127.0.0.1:{taken_port}: bind: address already in use")
        assert api.get("/proxies/clash").status_code == 404

    def test_create_check_order(self, api: httpx.Client, taken_port: int) -> None:
        """JSON decode, then name, then upstream, then duplicate (409), then listen (500)."""
        create(api, "first")
        assert api.post("/proxies", content=b'{"name":"first"').status_code == 400
        assert (
            api.post("/proxies", json={"name": "first"}).json()["error"] == "missing required field: upstream"
        )
        clash = {"name": "first", "upstream": DEAD_UPSTREAM, "listen": f"127.0.0.1:{taken_port}"}
        assert api.post("/proxies", json=clash).status_code == 409

    def test_show(self, api: httpx.Client) -> None:
        proxy = create(api, "shown")
        assert api.get("/proxies/shown").json() == proxy

    @pytest.mark.parametrize("method", [pytest.param("POST", id="post"), pytest.param("PATCH", id="patch")])
    def test_update_keeps_omitted_fields(self, api: httpx.Client, method: str) -> None:
        proxy = create(api, "upd")
        response = api.request(method, "/proxies/upd", json={"enabled": False})
        assert response.status_code == 200
        assert response.json() == {**proxy, "enabled": False}
        assert refused(proxy["listen"])
        again = api.request(method, "/proxies/upd", json={"enabled": True}).json()
        assert again == proxy
        assert not refused(proxy["listen"])

    def test_update_listen_and_upstream(self, api: httpx.Client) -> None:
        old = create(api, "move")
        port = free_port()
        moved = api.patch(
            "/proxies/move", json={"listen": f"127.0.0.1:{port}", "upstream": "127.0.0.1:2"}
        ).json()
        assert moved["listen"] == f"127.0.0.1:{port}"
        assert moved["upstream"] == "127.0.0.1:2"
        assert moved["enabled"] is True
        assert refused(old["listen"])

    def test_update_keeps_toxics(self, api: httpx.Client) -> None:
        create(api, "kept")
        api.post("/proxies/kept/toxics", json={"type": "latency"})
        updated = api.patch("/proxies/kept", json={"listen": f"127.0.0.1:{free_port()}"}).json()
        assert [t["name"] for t in updated["toxics"]] == ["latency_downstream"]

    def test_update_missing_is_404(self, api: httpx.Client) -> None:
        assert_error(api.patch("/proxies/ghost", json={"enabled": False}), 404, "proxy not found")

    def test_update_bad_body_is_400(self, api: httpx.Client) -> None:
        create(api, "badupd")
        assert_error(api.patch("/proxies/badupd", content=b"{"), 400, "bad request body: unexpected EOF")

    def test_update_bind_error_leaves_it_disabled_with_new_listen(
        self, api: httpx.Client, taken_port: int
    ) -> None:
        create(api, "stuck")
        response = api.patch("/proxies/stuck", json={"listen": f"127.0.0.1:{taken_port}"})
        assert_error(response, 500, f"listen tcp 127.0.0.1:{taken_port}: bind: address already in use")
        after = api.get("/proxies/stuck").json()
        assert after["enabled"] is False
        assert after["listen"] == f"127.0.0.1:{taken_port}"

    def test_delete(self, api: httpx.Client) -> None:
        proxy = create(api, "gone")
        assert api.delete("/proxies/gone").status_code == 204
        assert refused(proxy["listen"])
        assert_error(api.delete("/proxies/gone"), 404, "proxy not found")


@pytest.mark.behaviour("proxy.api")
class TestToxics:
    def test_index(self, api: httpx.Client) -> None:
        create(api, "tx")
        response = api.get("/proxies/tx/toxics")
        assert response.status_code == 200
        assert response.content == b"[]"
        assert_error(api.get("/proxies/nope/toxics"), 404, "proxy not found")

    def test_create_is_200_not_201(self, api: httpx.Client) -> None:
        create(api, "tx")
        response = api.post("/proxies/tx/toxics", json={"type": "latency", "attributes": {"latency": 10}})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"

    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            pytest.param(b"{", 400, "bad request body: unexpected EOF", id="bad-json"),
            pytest.param(
                b'{"type":"latency","toxicity":"high"}',
                400,
                "bad request body: json: cannot unmarshal string into Go struct field"
                " ToxicWrapper.toxicity of type float32",
                id="type-mismatch",
            ),
            pytest.param(
                b'{"type":"latency","stream":"sideways"}',
                400,
                "stream was invalid, can be either upstream or downstream",
                id="bad-stream",
            ),
            pytest.param(b'{"type":"laser"}', 400, "invalid toxic type", id="bad-type"),
            pytest.param(b'{"stream":"upstream"}', 400, "invalid toxic type", id="no-type"),
            pytest.param(b'{"type":"latency","name":"taken"}', 409, "toxic already exists", id="duplicate"),
            pytest.param(
                b'{"type":"latency","attributes":{"latency":"slow"}}',
                400,
                "bad request body: json: cannot unmarshal string into Go struct field"
                " LatencyToxic.attributes.latency of type int64",
                id="bad-attribute",
            ),
        ],
    )
    def test_create_errors(self, api: httpx.Client, body: bytes, status: int, message: str) -> None:
        create(api, "tx")
        api.post("/proxies/tx/toxics", json={"type": "timeout", "name": "taken"})
        assert_error(api.post("/proxies/tx/toxics", content=body), status, message)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(b"{", "proxy not found", id="proxy-before-decode"),
            pytest.param(
                b'{"stream":"x","type":"laser"}',
                "stream was invalid, can be either upstream or downstream",
                id="stream-before-type",
            ),
            pytest.param(
                b'{"type":"laser","name":"taken"}', "invalid toxic type", id="type-before-duplicate"
            ),
            pytest.param(
                b'{"type":"latency","name":"taken","attributes":{"latency":"x"}}',
                "toxic already exists",
                id="duplicate-before-attributes",
            ),
            pytest.param(
                b'{"stream":5}',
                "bad request body: json: cannot unmarshal number into Go struct field "
                "ToxicWrapper.stream of type string",
                id="decode-before-stream",
            ),
        ],
    )
    def test_create_check_order(self, api: httpx.Client, body: bytes, message: str) -> None:
        create(api, "tx")
        api.post("/proxies/tx/toxics", json={"type": "timeout", "name": "taken"})
        path = "/proxies/missing/toxics" if message == "proxy not found" else "/proxies/tx/toxics"
        assert api.post(path, content=body).json()["error"] == message

    def test_show(self, api: httpx.Client) -> None:
        create(api, "tx")
        toxic = api.post("/proxies/tx/toxics", json={"type": "limit_data", "attributes": {"bytes": 5}}).json()
        assert api.get("/proxies/tx/toxics/limit_data_downstream").json() == toxic
        assert_error(api.get("/proxies/nope/toxics/limit_data_downstream"), 404, "proxy not found")
        assert_error(api.get("/proxies/tx/toxics/nope"), 404, "toxic not found")

    @pytest.mark.parametrize("method", [pytest.param("POST", id="post"), pytest.param("PATCH", id="patch")])
    def test_update_merges_attributes_and_keeps_toxicity(self, api: httpx.Client, method: str) -> None:
        create(api, "tx")
        api.post(
            "/proxies/tx/toxics",
            json={"type": "latency", "toxicity": 0.5, "attributes": {"latency": 10, "jitter": 3}},
        )
        response = api.request(
            method, "/proxies/tx/toxics/latency_downstream", json={"attributes": {"latency": 99}}
        )
        assert response.status_code == 200
        assert response.json()["attributes"] == {"latency": 99, "jitter": 3}
        assert response.json()["toxicity"] == 0.5

    def test_update_ignores_type_name_and_stream(self, api: httpx.Client) -> None:
        create(api, "tx")
        api.post("/proxies/tx/toxics", json={"type": "latency"})
        body = {"type": "timeout", "name": "renamed", "stream": "upstream", "toxicity": 0.25}
        updated = api.post("/proxies/tx/toxics/latency_downstream", json=body).json()
        assert (updated["name"], updated["type"], updated["stream"], updated["toxicity"]) == (
            "latency_downstream",
            "latency",
            "downstream",
            0.25,
        )

    def test_update_errors(self, api: httpx.Client) -> None:
        create(api, "tx")
        api.post("/proxies/tx/toxics", json={"type": "latency"})
        assert_error(api.patch("/proxies/nope/toxics/latency_downstream", json={}), 404, "proxy not found")
        assert_error(api.patch("/proxies/tx/toxics/nope", json={}), 404, "toxic not found")
        assert_error(
            api.patch("/proxies/tx/toxics/latency_downstream", content=b"{"),
            400,
            "bad request body: unexpected EOF",
        )

    def test_delete(self, api: httpx.Client) -> None:
        create(api, "tx")
        api.post("/proxies/tx/toxics", json={"type": "latency"})
        assert api.delete("/proxies/tx/toxics/latency_downstream").status_code == 204
        assert api.get("/proxies/tx/toxics").json() == []
        assert_error(api.delete("/proxies/tx/toxics/latency_downstream"), 404, "toxic not found")
        assert_error(api.delete("/proxies/nope/toxics/latency_downstream"), 404, "proxy not found")


@pytest.mark.behaviour("proxy.api")
class TestReset:
    def test_enables_every_proxy_and_removes_every_toxic(self, api: httpx.Client) -> None:
        create(api, "r1")
        create(api, "r2", enabled=False)
        api.post("/proxies/r1/toxics", json={"type": "latency"})
        response = api.post("/reset")
        assert response.status_code == 204
        proxies = api.get("/proxies").json()
        assert sorted(proxies) == ["r1", "r2"]
        assert all(p["enabled"] and p["toxics"] == [] for p in proxies.values())


@pytest.mark.behaviour("proxy.api")
class TestPopulate:
    def test_creates_and_answers_201(self, api: httpx.Client) -> None:
        body = [
            {"name": "pa", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0"},
            {"name": "pb", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0", "enabled": False},
        ]
        response = api.post("/populate", json=body)
        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        proxies = response.json()["proxies"]
        assert [(p["name"], p["enabled"]) for p in proxies] == [("pa", True), ("pb", False)]
        assert response.content.startswith(b'{"proxies":[{"name":"pa",')

    def test_empty_list_is_null(self, api: httpx.Client) -> None:
        response = api.post("/populate", json=[])
        assert response.status_code == 201
        assert response.content == b'{"proxies":null}'

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(
                [
                    {"name": "ok", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0"},
                    {"upstream": DEAD_UPSTREAM},
                ],
                "missing required field: name at proxy 2",
                id="no-name",
            ),
            pytest.param(
                [{"name": "ok", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0"}, {"name": "n"}],
                "missing required field: upstream at proxy 2",
                id="no-upstream",
            ),
        ],
    )
    def test_validates_everything_before_creating(
        self, api: httpx.Client, body: list[Any], message: str
    ) -> None:
        response = api.post("/populate", json=body)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        assert (
            response.content
            == json.dumps({"error": message, "status": 400, "proxies": None}, separators=(",", ":")).encode()
        )
        assert api.get("/proxies").json() == {}

    def test_bad_json_is_400_with_null_proxies(self, api: httpx.Client) -> None:
        response = api.post("/populate", content=b"[")
        assert response.content == b'{"error":"bad request body: unexpected EOF","status":400,"proxies":null}'

    def test_identical_entry_is_kept_as_is(self, api: httpx.Client) -> None:
        port = free_port()
        listen = f"127.0.0.1:{port}"
        create(api, "same", listen=listen)
        api.post("/proxies/same/toxics", json={"type": "latency"})
        api.post("/proxies/same", json={"enabled": False})
        body = [{"name": "same", "upstream": DEAD_UPSTREAM, "listen": f"localhost:{port}", "enabled": True}]
        kept = api.post("/populate", json=body).json()["proxies"][0]
        assert kept["enabled"] is False
        assert [t["name"] for t in kept["toxics"]] == ["latency_downstream"]

    def test_different_entry_replaces_and_drops_toxics(self, api: httpx.Client) -> None:
        create(api, "swap")
        api.post("/proxies/swap/toxics", json={"type": "latency"})
        body = [{"name": "swap", "upstream": "127.0.0.1:2", "listen": "127.0.0.1:0"}]
        replaced = api.post("/populate", json=body).json()["proxies"][0]
        assert replaced["upstream"] == "127.0.0.1:2"
        assert replaced["toxics"] == []

    def test_others_are_left_alone(self, api: httpx.Client) -> None:
        create(api, "other")
        api.post("/populate", json=[{"name": "new", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0"}])
        assert sorted(api.get("/proxies").json()) == ["new", "other"]

    def test_stops_at_first_failure_with_what_it_created(self, api: httpx.Client, taken_port: int) -> None:
        body = [
            {"name": "p1", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0"},
            {"name": "p2", "upstream": DEAD_UPSTREAM, "listen": f"127.0.0.1:{taken_port}"},
            {"name": "p3", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0"},
        ]
        response = api.post("/populate", json=body)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        result = response.json()
        assert result["error"] == f"listen tcp 127.0.0.1:{taken_port}: bind: address already in use"
        assert result["status"] == 500
        assert [p["name"] for p in result["proxies"]] == ["p1"]
        assert sorted(api.get("/proxies").json()) == ["p1"]


@pytest.mark.behaviour("proxy.api")
class TestRouter:
    def test_unknown_path(self, api: httpx.Client) -> None:
        response = api.get("/proxies/a/b/c/d")
        assert response.status_code == 404
        assert response.headers["content-type"] == TEXT
        assert response.content == b"404 page not found\n"

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("PUT", "/proxies", id="put-proxies"),
            pytest.param("GET", "/reset", id="get-reset"),
            pytest.param("DELETE", "/populate", id="delete-populate"),
            pytest.param("PUT", "/proxies/x/toxics/y", id="put-toxic"),
        ],
    )
    def test_wrong_method(self, api: httpx.Client, method: str, path: str) -> None:
        response = api.request(method, path)
        assert response.status_code == 405
        assert response.content == b""
        assert response.headers["content-length"] == "0"

    def test_no_metrics_route_by_default(self, api: httpx.Client) -> None:
        assert api.get("/metrics").status_code == 404


@pytest.mark.behaviour("proxy.api")
@embedded_only
class TestEmbeddedExtras:
    """Behaviour only the embedded server has: metrics on demand and the loopback-only policy."""

    def test_metrics_count_bytes_per_proxy_and_direction(self) -> None:
        with ThreadedToxiproxyServer(proxy_metrics=True) as server, socket.socket() as upstream:
            upstream.bind(("127.0.0.1", 0))
            upstream.listen()
            address = f"127.0.0.1:{upstream.getsockname()[1]}"
            with httpx.Client(base_url=server.url, trust_env=False) as api:
                proxy = api.post(
                    "/proxies", json={"name": "m", "upstream": address, "listen": "127.0.0.1:0"}
                ).json()
                host, port = proxy["listen"].rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=5) as client:
                    client.sendall(b"hello")
                    served, _ = upstream.accept()
                    with served:
                        served.settimeout(5)
                        assert served.recv(5) == b"hello"
                        served.sendall(b"hi")
                        assert client.recv(2) == b"hi"
                text = api.get("/metrics").text
        labels = f'listener="{proxy["listen"]}",proxy="m",upstream="{address}"'
        assert f'toxiproxy_proxy_received_bytes_total{{direction="upstream",{labels}}} 5.0' in text
        assert f'toxiproxy_proxy_sent_bytes_total{{direction="downstream",{labels}}} 2.0' in text

    @pytest.mark.parametrize(
        ("fields", "named"),
        [
            pytest.param({"listen": "0.0.0.0:0"}, "listen address 0.0.0.0:0", id="any-ipv4"),
            pytest.param({"listen": "[::]:0"}, "listen address [::]:0", id="any-ipv6"),
            pytest.param({"upstream": "10.1.2.3:80"}, "upstream address 10.1.2.3:80", id="remote-upstream"),
            pytest.param({"upstream": "example.com:80"}, "upstream address example.com:80", id="host-name"),
        ],
    )
    def test_non_loopback_is_refused(self, api: httpx.Client, fields: dict[str, str], named: str) -> None:
        body = {"name": "far", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0", **fields}
        response = api.post("/proxies", json=body)
        assert response.status_code == 400
        assert named in response.json()["error"]
        assert "--allow-remote" in response.json()["error"]
        assert api.get("/proxies/far").status_code == 404

    def test_allow_remote_binds_every_interface(self) -> None:
        with ThreadedToxiproxyServer(allow_remote=True) as server, httpx.Client(base_url=server.url) as api:
            response = api.post("/proxies", json={"name": "wild", "upstream": "10.1.2.3:80"})
            assert response.status_code == 201
            assert response.json()["listen"].startswith("[::]:")

    def test_command_loads_config_and_announces_its_port(self, tmp_path: Path) -> None:
        """``harness toxiproxy --port 0 --port-file F --config C``: what the stack and benchmarks run."""
        config = tmp_path / "proxies.json"
        config.write_text(
            json.dumps([{"name": "from_config", "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0"}])
        )
        settings: dict[str, SettingValue] = {"config": config, "seed": 5, "proxy_metrics": True}
        process = ToxiproxyProcess(settings, workdir=tmp_path, env=child_env())
        with process, httpx.Client(base_url=process.url, trust_env=False) as api:
            assert list(api.get("/proxies").json()) == ["from_config"]
            assert api.get("/metrics").status_code == 200
        assert process.stop() == 0

    def test_command_refuses_a_bad_config(self, tmp_path: Path) -> None:
        """Unlike toxiproxy-server, which logs and goes on, a config that cannot be applied is exit code 2."""
        config = tmp_path / "proxies.json"
        config.write_text('[{"name": "no_upstream"}]')
        process = ToxiproxyProcess({"config": config}, workdir=tmp_path, env=child_env())
        with pytest.raises(EnvironmentUnavailable, match="exited with code 2"):
            process.start()
        assert "missing required field: upstream at proxy 1" in process.log_tail()
