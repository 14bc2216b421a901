"""The embedded server's deliberate differences from a real Toxiproxy (docs/toxiproxy.md): bodies bounded in
size and nesting, names and toxic values that would break or hang a proxy refused with a 400 naming the
attribute, an empty listen on a random loopback port, and proxied traffic that keeps moving while the API
is flooded with large and malformed bodies."""

from __future__ import annotations

import itertools
import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.faults import ThreadedToxiproxyServer, ToxiproxyProcess
from harness.faults._limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_NAME_LENGTH
from tests._children import child_env
from tests.integration._support import tcp_server

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TOXIPROXY_URL")), reason="limits of the embedded server only"
)
DEAD_UPSTREAM = "127.0.0.1:1"
TEXT = "text/plain; charset=utf-8"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with ThreadedToxiproxyServer(seed=1) as server:
        yield server.url


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    """A raw HTTP client; every proxy is deleted after the test."""
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        yield client
        for name in client.get("/proxies").json():
            client.delete(f"/proxies/{name}")


def proxy_body(name: str = "p", **fields: Any) -> dict[str, Any]:
    return {"name": name, "upstream": DEAD_UPSTREAM, "listen": "127.0.0.1:0", **fields}


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    """Go's http.Error shape: text/plain, nosniff, ``{"error":...,"status":...}`` and a newline."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == TEXT
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json() == {"error": message, "status": status}
    assert response.content.endswith(b"\n")


def padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON of exactly ``size`` bytes, padded with an unknown key the server ignores."""
    bare = json.dumps({**body, "pad": ""}).encode()
    return json.dumps({**body, "pad": "x" * (size - len(bare))}).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def loopback_port(listen: str) -> int:
    host, port = listen.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) > 0
    return int(port)


@pytest.mark.behaviour("proxy.api")
class TestBodySize:
    def test_oversized_body_is_413_with_a_clear_message(self, api: httpx.Client) -> None:
        """A body over the limit is refused by its Content-Length, and the client still reads the answer."""
        size = MAX_BODY_BYTES + 1
        response = api.post("/proxies", content=padded(proxy_body("big"), size))
        message = f"request body too large ({size} bytes): the limit is {MAX_BODY_BYTES} bytes"
        assert_error(response, 413, message)
        assert api.get("/proxies/big").status_code == 404

    def test_413_is_answered_before_the_body_is_sent(self, base_url: str) -> None:
        """Headers announcing 15 MiB get the 413 at once: the server does not wait for (or read) the body."""
        host, port = base_url.removeprefix("http://").rsplit(":", 1)
        head = f"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: {15 << 20}\r\n\r\n".encode()
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(head)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"\n"):
                chunk = sock.recv(65536)
                assert chunk, f"closed before the answer was complete: {answer!r}"
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        assert b"request body too large (15728640 bytes)" in answer

    def test_oversized_chunked_body_is_413(self, api: httpx.Client) -> None:
        """A chunked body has no length up front: it is refused as soon as it passes the limit."""
        half = b"x" * (MAX_BODY_BYTES // 2 + 1)
        response = api.post("/proxies", content=iter([half, half]))
        assert_error(response, 413, f"request body too large: the limit is {MAX_BODY_BYTES} bytes")

    def test_body_at_the_limit_is_read(self, api: httpx.Client) -> None:
        response = api.post("/proxies", content=padded(proxy_body("limit"), MAX_BODY_BYTES))
        assert response.status_code == 201, response.text


@pytest.mark.behaviour("proxy.api")
class TestNesting:
    @pytest.mark.parametrize(
        ("body", "character"),
        [
            pytest.param("[" * 5000, "[", id="arrays"),
            pytest.param('{"a":' * 5000, "{", id="objects"),
            pytest.param(
                json.dumps({"name": "n", "x": json.loads(nested(MAX_JSON_DEPTH))}), "[", id="one-over"
            ),
        ],
    )
    def test_too_deep_is_400(self, api: httpx.Client, body: str, character: str) -> None:
        """Go's message for its own limit, at ours; never a 500 from a recursion error."""
        message = f"bad request body: invalid character '{character}' exceeded max depth"
        assert_error(api.post("/proxies", content=body), 400, message)

    def test_too_deep_populate_is_400_in_its_own_shape(self, api: httpx.Client) -> None:
        response = api.post("/populate", content="[" * 5000)
        assert response.status_code == 400
        assert response.json() == {
            "error": "bad request body: invalid character '[' exceeded max depth",
            "status": 400,
            "proxies": None,
        }

    def test_too_deep_toxic_is_400(self, api: httpx.Client) -> None:
        api.post("/proxies", json=proxy_body("deep"))
        message = "bad request body: invalid character '{' exceeded max depth"
        assert_error(api.post("/proxies/deep/toxics", content='{"a":' * 5000), 400, message)

    def test_nesting_at_the_limit_is_accepted(self, api: httpx.Client) -> None:
        body = proxy_body("deep", x=json.loads(nested(MAX_JSON_DEPTH - 1)))  # plus the outer object
        assert api.post("/proxies", json=body).status_code == 201


def filler(size: int) -> bytes:
    """About ``size`` bytes of members the Proxy struct lacks: plain scalars, and arrays and objects of them
    (``"pad0":0,"pad1":"x",...,``), each ending with a comma."""
    values = (
        b"0",
        b'"x"',
        b"true",
        b"null",
        b"-1.5e3",
        b'"\\n\\u00e9"',
        b'[0,1.5,"a",false,null]',
        b'{"k":[{}]}',
    )
    members = [b'"pad%d":%s,' % (i, value) for i, value in enumerate(values)]
    block = b"".join(members)
    return block * (size // len(block))


@pytest.mark.behaviour("proxy.api")
class TestLargeBodies:
    """Bodies up to the limit made of long runs of members are read as Go reads them: the runs the decoder
    takes many members at a time give the fields, and the messages at the same byte, that short bodies do."""

    def test_long_runs_set_fields_like_go(self, api: httpx.Client) -> None:
        """Keys match case-insensitively, the last duplicate wins, members the struct lacks are skipped."""
        half = MAX_BODY_BYTES // 2 - 100
        body = (
            b'{"name":"first",' + filler(half) + b'"NAME":"last","Enabled":true,"listen":"127.0.0.1:0",'
            b'"enabled":false,' + filler(half) + b'"upstream":"' + DEAD_UPSTREAM.encode() + b'"}'
        )
        assert len(body) <= MAX_BODY_BYTES
        response = api.post("/proxies", content=body)
        assert response.status_code == 201, response.text
        created = response.json()
        assert (created["name"], created["enabled"], created["upstream"]) == ("last", False, DEAD_UPSTREAM)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(
                b'{"name":"n","pad":[' + b"0," * (MAX_BODY_BYTES // 2 - 16) + b"01]}",
                "invalid character '1' after array element",
                id="bad-number-after-a-run",
            ),
            pytest.param(
                b'{"name":"n","pad":{' + b'"k":1,' * (MAX_BODY_BYTES // 6 - 8) + b'"k" 1}}',
                "invalid character '1' after object key",
                id="missing-colon-after-a-run",
            ),
            pytest.param(
                b'{"name":"n",' + filler(MAX_BODY_BYTES - 64) + b'"upstream":"u\x01"}',
                "invalid character '\\x01' in string literal",
                id="control-character-after-a-run",
            ),
            pytest.param(
                b'{"name":"n",' + filler(MAX_BODY_BYTES - 64) + b'"enabled":"yes","upstream":1}',
                "json: cannot unmarshal string into Go struct field Proxy.enabled of type bool",
                id="first-type-error-after-a-run",
            ),
            pytest.param(b'{"name":"n",' + filler(MAX_BODY_BYTES - 64), "unexpected EOF", id="truncated"),
        ],
    )
    def test_errors_after_long_runs_read_like_go(self, api: httpx.Client, body: bytes, message: str) -> None:
        assert len(body) <= MAX_BODY_BYTES
        assert_error(api.post("/proxies", content=body), 400, f"bad request body: {message}")
        assert api.get("/proxies").json() == {}

    @pytest.mark.parametrize(
        ("tail", "message"),
        [
            pytest.param(b"{", "unexpected EOF", id="truncated"),
            pytest.param(
                b'{"name":"x","enabled":"yes"}]',
                "json: cannot unmarshal string into Go struct field .enabled of type bool",
                id="type-error-in-the-last-entry",
            ),
        ],
    )
    def test_populate_of_thousands_of_entries_fails_like_go(
        self, api: httpx.Client, tail: bytes, message: str
    ) -> None:
        """Thousands of plain entries, then a fault: nothing is created, and the message is Go's."""
        entry = b'{"name":"p","upstream":"127.0.0.1:1","listen":"127.0.0.1:0","enabled":false},'
        body = b"[" + entry * ((MAX_BODY_BYTES - 64) // len(entry)) + tail
        response = api.post("/populate", content=body)
        assert response.status_code == 400
        assert response.json() == {"error": f"bad request body: {message}", "status": 400, "proxies": None}
        assert api.get("/proxies").json() == {}


HOUR_MS = 3_600_000


@pytest.mark.behaviour("proxy.api")
class TestToxicValues:
    @pytest.mark.parametrize(
        ("toxic", "message"),
        [
            pytest.param(
                {"type": "latency", "attributes": {"latency": -1}},
                f"latency: must be between 0 and {HOUR_MS} ms",
                id="negative-latency",
            ),
            pytest.param(
                {"type": "latency", "attributes": {"latency": 2**62}},
                f"latency: must be between 0 and {HOUR_MS} ms",
                id="latency-for-ever",
            ),
            pytest.param(
                {"type": "latency", "attributes": {"latency": 10, "jitter": -1}},
                f"jitter: must be between 0 and {HOUR_MS} ms",
                id="negative-jitter",
            ),
            pytest.param(
                {"type": "bandwidth", "attributes": {"rate": -1}},
                "rate: must be at least 0 KB/s",
                id="negative-rate",
            ),
            pytest.param(
                {"type": "slow_close", "attributes": {"delay": HOUR_MS + 1}},
                f"delay: must be between 0 and {HOUR_MS} ms",
                id="slow-close-over-an-hour",
            ),
            pytest.param(
                {"type": "timeout", "attributes": {"timeout": -1}},
                f"timeout: must be between 0 and {HOUR_MS} ms",
                id="negative-timeout",
            ),
            pytest.param(
                {"type": "reset_peer", "attributes": {"timeout": 2**40}},
                f"timeout: must be between 0 and {HOUR_MS} ms",
                id="reset-peer-for-ever",
            ),
            pytest.param(
                {"type": "slicer", "attributes": {"average_size": -1}},
                "average_size: must be at least 0 bytes",
                id="negative-slice",
            ),
            pytest.param(
                {"type": "slicer", "attributes": {"size_variation": -5}},
                "size_variation: must be at least 0 bytes",
                id="negative-variation",
            ),
            pytest.param(
                {"type": "slicer", "attributes": {"delay": -1}},
                f"delay: must be between 0 and {HOUR_MS * 1000} µs",
                id="negative-slicer-delay",
            ),
            pytest.param(
                {"type": "limit_data", "attributes": {"bytes": -1}},
                "bytes: must be at least 0 bytes",
                id="negative-bytes",
            ),
            pytest.param(
                {"type": "latency", "toxicity": 2.0}, "toxicity: must be between 0 and 1", id="toxicity-2"
            ),
            pytest.param(
                {"type": "latency", "toxicity": -1},
                "toxicity: must be between 0 and 1",
                id="toxicity-minus-1",
            ),
        ],
    )
    def test_meaningless_value_is_400_naming_the_attribute(
        self, api: httpx.Client, toxic: dict[str, Any], message: str
    ) -> None:
        api.post("/proxies", json=proxy_body("tx"))
        assert_error(api.post("/proxies/tx/toxics", json=toxic), 400, message)
        assert api.get("/proxies/tx/toxics").json() == []

    def test_update_out_of_range_changes_nothing(self, api: httpx.Client) -> None:
        api.post("/proxies", json=proxy_body("tx"))
        api.post(
            "/proxies/tx/toxics", json={"type": "latency", "toxicity": 0.5, "attributes": {"latency": 10}}
        )
        response = api.post("/proxies/tx/toxics/latency_downstream", json={"attributes": {"latency": -5}})
        assert_error(response, 400, f"latency: must be between 0 and {HOUR_MS} ms")
        response = api.post("/proxies/tx/toxics/latency_downstream", json={"toxicity": 1.5})
        assert_error(response, 400, "toxicity: must be between 0 and 1")
        toxic = api.get("/proxies/tx/toxics/latency_downstream").json()
        assert (toxic["attributes"]["latency"], toxic["toxicity"]) == (10, 0.5)

    def test_bounds_are_inclusive(self, api: httpx.Client) -> None:
        api.post("/proxies", json=proxy_body("tx"))
        for toxicity, name in ((0, "never"), (1, "always")):
            toxic = {
                "type": "latency",
                "name": name,
                "toxicity": toxicity,
                "attributes": {"latency": HOUR_MS},
            }
            assert api.post("/proxies/tx/toxics", json=toxic).status_code == 200


@pytest.mark.behaviour("proxy.api")
class TestNames:
    @pytest.mark.parametrize(
        ("name", "message"),
        [
            pytest.param("a/b", "name: must not contain '/'", id="slash"),
            pytest.param("a\x00b", "name: must not contain control characters", id="nul"),
            pytest.param("a\nb", "name: must not contain control characters", id="newline"),
            pytest.param(
                "x" * 10_000, f"name: must be at most {MAX_NAME_LENGTH} characters, not 10000", id="long"
            ),
            pytest.param("..", "name: must not be '..'", id="dot-dot"),
        ],
    )
    def test_unaddressable_name_is_refused(self, api: httpx.Client, name: str, message: str) -> None:
        """Everywhere a name is given: a proxy, a populate entry, a toxic; nothing is created."""
        assert_error(api.post("/proxies", json=proxy_body(name)), 400, message)
        populate = api.post("/populate", json=[proxy_body("fine"), proxy_body(name)])
        assert populate.json() == {"error": f"{message} (proxy 2)", "status": 400, "proxies": None}
        assert api.get("/proxies").json() == {}
        api.post("/proxies", json=proxy_body("tx"))
        assert_error(api.post("/proxies/tx/toxics", json={"type": "latency", "name": name}), 400, message)
        assert api.get("/proxies/tx/toxics").json() == []

    def test_longest_name_can_be_read_and_deleted(self, api: httpx.Client) -> None:
        name = "n" * MAX_NAME_LENGTH
        assert api.post("/proxies", json=proxy_body(name)).status_code == 201
        assert api.get(f"/proxies/{name}").json()["name"] == name
        assert api.delete(f"/proxies/{name}").status_code == 204


@pytest.mark.behaviour("proxy.api")
class TestEmptyListen:
    """Toxiproxy listens on every interface when listen is empty; here it is a random loopback port."""

    def test_create_without_listen_is_201_on_a_loopback_port(self, api: httpx.Client) -> None:
        response = api.post("/proxies", json={"name": "nolisten", "upstream": DEAD_UPSTREAM})
        assert response.status_code == 201
        port = loopback_port(response.json()["listen"])
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    def test_populate_without_listen(self, api: httpx.Client) -> None:
        response = api.post("/populate", json=[{"name": "pop", "upstream": DEAD_UPSTREAM}])
        assert response.status_code == 201
        loopback_port(response.json()["proxies"][0]["listen"])

    def test_update_to_empty_listen_moves_to_a_new_loopback_port(self, api: httpx.Client) -> None:
        before = api.post("/proxies", json=proxy_body("move")).json()["listen"]
        after = api.post("/proxies/move", json={"listen": ""}).json()
        assert after["enabled"] is True
        assert loopback_port(after["listen"]) != loopback_port(before)


# -- the data plane while the control plane is abused -------------------------------------------------------
class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class PingStream:
    """One proxied connection doing one-byte round trips back to back; records when each answer came."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.answers: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ping-stream")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sock.sendall(b"x")
            if self.sock.recv(1) != b"x":
                raise ConnectionError("the proxied stream ended")
            self.answers.append(time.monotonic())

    def __enter__(self) -> PingStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.sock.close()

    def largest_gap(self, start: float, end: float) -> float:
        """The longest wait for an answer between ``start`` and ``end`` (monotonic seconds)."""
        times = [start, *(t for t in self.answers if start < t < end), end]
        return max(later - earlier for earlier, later in itertools.pairwise(times))

    def wait_for_answers(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        target = len(self.answers) + count
        while len(self.answers) < target:
            assert time.monotonic() < deadline, "the proxied stream stalled"
            self._stop.wait(0.01)


@pytest.fixture
def echo_address() -> Iterator[str]:
    with tcp_server(_Echo) as address:
        yield address


@pytest.mark.behaviour("proxy.api")
class TestDataPlaneDuringApiAbuse:
    def test_proxied_traffic_keeps_flowing_while_bad_bodies_are_posted(
        self, tmp_path: Path, echo_address: str
    ) -> None:
        """The longest wait in a proxied stream during a burst of huge, deep and costly bodies is bounded."""
        huge = padded(proxy_body("huge"), 15 << 20)
        costly = b"[" + b"0," * (MAX_BODY_BYTES // 2 - 1)  # scanned to the end, then "unexpected EOF"
        server = ToxiproxyProcess(workdir=tmp_path, env=child_env())
        with server, httpx.Client(base_url=server.url, timeout=60.0, trust_env=False) as api:
            created = api.post("/proxies", json=proxy_body("stream", upstream=echo_address))
            with PingStream(loopback_port(created.json()["listen"])) as stream:
                stream.wait_for_answers(50)
                began = time.monotonic()
                stream.wait_for_answers(200)
                baseline = stream.largest_gap(began, time.monotonic())
                burst_began = time.monotonic()
                statuses = [api.post("/proxies", content=huge).status_code]
                statuses.append(api.post("/proxies", content="[" * 5000).status_code)
                statuses += [api.post("/proxies", content=costly).status_code for _ in range(3)]
                burst_ended = time.monotonic()
                stream.wait_for_answers(10)
        during = stream.largest_gap(burst_began, burst_ended)
        bound = max(0.25, 10 * baseline)
        print(f"largest gap: {during * 1000:.1f} ms during the burst, {baseline * 1000:.1f} ms before")
        assert during < bound, f"the proxied stream stalled {during:.3f}s (bound {bound:.3f}s)"
        assert statuses == [413, 400, 400, 400, 400]
