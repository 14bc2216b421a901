"""The HTTP toxics and a connection's HTTP layer, driven through fake outlets and a virtual clock: what is
forwarded, what the proxy answers and when, in request order, per request; no sockets, no real sleeps."""

from __future__ import annotations

import heapq
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from harness.chaos.actions import add_toxic
from harness.errors import ConfigError
from harness.faults import FaultKind, FaultSpec
from harness.faults._exchange import HttpExchange
from harness.faults._http_framing import Body, Head
from harness.faults._http_toxics import HTTP_TOXICS, INJECTED_HEADER, HttpErrorToxic, HttpLatencyToxic
from harness.faults._link import Direction, ToxicEntry
from harness.faults._toxics import Toxic

EOF = b"<EOF>"


class Clock:
    """A virtual event loop clock: timers run only when the test advances time."""

    @dataclass(order=True)
    class _Timer:
        when: float
        seq: int
        callback: Callable[[], object] = field(compare=False)
        cancelled: bool = field(default=False, compare=False)

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[Clock._Timer] = []
        self._seq = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> Clock._Timer:
        self._seq += 1
        timer = Clock._Timer(when, self._seq, callback)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while self._timers and self._timers[0].when <= until:
            timer = heapq.heappop(self._timers)
            self.now = max(self.now, timer.when)
            if not timer.cancelled:
                timer.callback()
        self.now = until


class Outlet:
    """Where one direction's bytes go: recorded, with the virtual time they went."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.writes: list[tuple[float, bytes]] = []
        self.held = 0

    def forward(self, data: bytes) -> None:
        self.writes.append((self.clock.now, data))

    def forward_eof(self) -> None:
        self.writes.append((self.clock.now, EOF))

    def queued(self, delta: int) -> None:
        self.held += delta

    @property
    def data(self) -> bytes:
        return b"".join(data for _, data in self.writes)


class Conn:
    """An HTTP layer between a fake client and a fake server."""

    def __init__(self, *entries: ToxicEntry, fresh: bool = True, seed: int = 1) -> None:
        self.toxics: tuple[list[ToxicEntry], list[ToxicEntry]] = ([], [])
        for item in entries:
            self.toxics[item.direction].append(item)
        self.clock = Clock()
        self.server = Outlet(self.clock)
        self.client = Outlet(self.clock)
        self.detached: list[bool] = []
        self.layer = HttpExchange(
            self.toxics,
            random.Random(seed),
            self.clock,
            to_server=self.server,
            to_client=self.client,
            fresh=fresh,
            on_detach=self.detached.append,
        )

    def send(self, data: bytes) -> None:
        self.layer.requests.feed(data)

    def answer(self, data: bytes) -> None:
        self.layer.responses.feed(data)


def entry(toxic: Toxic, stream: str = "upstream", toxicity: float = 1.0, name: str = "") -> ToxicEntry:
    direction = Direction.UPSTREAM if stream == "upstream" else Direction.DOWNSTREAM
    return ToxicEntry(
        name or f"{toxic.type_name}_{stream}", toxic.type_name, stream, direction, toxicity, toxic
    )


GET = b"GET /a HTTP/1.1\r\nHost: svc\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def statuses(data: bytes) -> list[int]:
    """The status of every response in ``data`` (bodies here never contain a status line)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


@pytest.mark.behaviour("toxic.http_error", "toxic.http_latency")
class TestAttributes:
    def test_json_order_and_defaults(self) -> None:
        """Both HTTP toxics, their attributes in the order the server prints them, and their defaults."""
        assert {name: kind().attributes() for name, kind in HTTP_TOXICS.items()} == {
            "http_error": {"status": 503, "retry_after": 0, "body": "", "path_prefix": "", "method": ""},
            "http_latency": {"latency_min": 0, "latency_max": 0, "path_prefix": "", "method": ""},
        }

    @pytest.mark.parametrize(
        ("toxic", "message"),
        [
            pytest.param(HttpErrorToxic(status=200), "status: must be between 400 and 599", id="status"),
            pytest.param(
                HttpErrorToxic(retry_after=-1), "retry_after: must be between 0 and 3600 s", id="ra"
            ),
            pytest.param(HttpErrorToxic(body="x" * 70_000), "body: must be at most 65536 bytes", id="body"),
            pytest.param(HttpErrorToxic(path_prefix="users"), "path_prefix: must be empty", id="prefix"),
            pytest.param(HttpErrorToxic(method="GE T"), "method: must be empty", id="method"),
            pytest.param(
                HttpLatencyToxic(latency_min=50, latency_max=10),
                "latency_max: must be at least latency_min (50 ms)",
                id="range",
            ),
            pytest.param(
                HttpLatencyToxic(latency_max=3_600_001),
                "latency_max: must be between 0 and 3600000 ms",
                id="max",
            ),
        ],
    )
    def test_refusals_name_the_attribute(self, toxic: Toxic, message: str) -> None:
        refusal = toxic.refusal()
        assert refusal is not None
        assert refusal.startswith(message)

    def test_chaos_action_and_fault_kinds_know_them(self) -> None:
        """The chaos action passes them on (it fails later, for want of a session), and the fault
        schedule has them as kinds of toxic."""
        with pytest.raises(ConfigError, match="no harness session"):
            add_toxic("users-1", "http_error", {"status": 503, "path_prefix": "/users"})
        with pytest.raises(ConfigError, match="unknown toxic 'http_teapot'"):
            add_toxic("users-1", "http_teapot")
        assert FaultKind.HTTP_ERROR.is_toxic
        assert FaultKind.HTTP_LATENCY.is_toxic
        spec = FaultSpec(
            kind=FaultKind.HTTP_ERROR, instance="users-1", attributes={"body": "x", "status": 500}
        )
        assert spec.describe() == "http_error body=x status=500 on users-1"

    def test_layout_decodes_strings_as_strings(self) -> None:
        """The Go struct the API decodes attributes into: strings for the filters and the body."""
        kinds = {f.key: f.kind.value for f in HttpErrorToxic.layout().fields}
        assert kinds == {"status": "int", "retry_after": "int", "body": "string", "path_prefix": "string",
                         "method": "string"}  # fmt: skip

    def test_answer_is_valid_http(self) -> None:
        request = Head((1, 1), (), Body.NONE, method="GET", target="/a")
        answer = HttpErrorToxic(status=429, retry_after=2, body="slow down").answer(request, "t", close=False)
        assert answer == (
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 9\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nRetry-After: 2\r\n"
            + INJECTED_HEADER.encode()
            + b": t\r\nConnection: keep-alive\r\n\r\nslow down"
        )
        head = Head((1, 1), (), Body.NONE, method="HEAD", target="/a")
        assert HttpErrorToxic(body="x").answer(head, "t", close=True).endswith(b"Connection: close\r\n\r\n")

    def test_latency_draws_are_in_range(self) -> None:
        rng = random.Random(3)
        draws = [HttpLatencyToxic(latency_min=10, latency_max=30).delay(rng) for _ in range(1000)]
        assert 0.010 <= min(draws) < 0.0105
        assert 0.0295 < max(draws) <= 0.030


@pytest.mark.behaviour("toxic.http_error")
class TestHttpError:
    def test_answers_instead_of_forwarding(self) -> None:
        """The request never reaches the server; the client gets the toxic's answer; nothing closes."""
        conn = Conn(entry(HttpErrorToxic(status=503, retry_after=1)))
        conn.send(GET)
        assert conn.server.data == b""
        assert statuses(conn.client.data) == [503]
        assert b"Retry-After: 1\r\n" in conn.client.data
        assert EOF not in conn.client.data

    def test_the_connection_stays_usable(self) -> None:
        """After an injected answer the next request is framed and handled as usual."""
        conn = Conn(entry(HttpErrorToxic(path_prefix="/a")))
        conn.send(GET + b"GET /b HTTP/1.1\r\n\r\n")
        assert conn.server.data == b"GET /b HTTP/1.1\r\n\r\n"
        conn.answer(OK)
        assert statuses(conn.client.data) == [503, 200]

    def test_pipelined_answers_keep_request_order(self) -> None:
        """/a is forwarded, /b answered by the proxy: /b's answer waits for /a's response."""
        conn = Conn(entry(HttpErrorToxic(path_prefix="/b")))
        conn.send(GET + b"GET /b HTTP/1.1\r\n\r\n" + b"GET /c HTTP/1.1\r\n\r\n")
        assert conn.client.data == b""
        conn.answer(OK[:-1])
        assert statuses(conn.client.data) == [200]
        conn.answer(OK[-1:])
        assert statuses(conn.client.data) == [200, 503]
        conn.answer(OK)
        assert statuses(conn.client.data) == [200, 503, 200]

    def test_responses_read_together_still_make_room_for_the_answer(self) -> None:
        """The server's responses to /a and a HEAD /c arrive in one read: /b's answer goes between them,
        and the HEAD's response is framed as a HEAD's (no body), so /d's response follows intact."""
        conn = Conn(entry(HttpErrorToxic(path_prefix="/b")))
        conn.send(
            GET + b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" + b"HEAD /c HTTP/1.1\r\n\r\n" + GET
        )
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"
        conn.answer(OK + head + OK)
        answer = conn.client.data[len(OK) : -len(head + OK)]
        assert conn.client.data.startswith(OK)
        assert conn.client.data.endswith(head + OK)
        assert statuses(answer) == [503]

    @pytest.mark.parametrize(
        ("first", "response"),
        [
            pytest.param(
                b"HEAD /a HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", id="head"
            ),
            pytest.param(GET, b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", id="204"),
            pytest.param(GET, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", id="304"),
            pytest.param(GET, b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + OK, id="1xx-then-final"),
        ],
    )
    def test_responses_without_body_are_followed(self, first: bytes, response: bytes) -> None:
        """The proxy's answer to the next request comes right after a response that has no body."""
        conn = Conn(entry(HttpErrorToxic(path_prefix="/z")))
        conn.send(first + b"GET /z HTTP/1.1\r\n\r\n")
        conn.answer(response)
        assert conn.client.data.startswith(response)
        assert statuses(conn.client.data[len(response) :]) == [503]

    def test_chunked_request_body_is_swallowed(self) -> None:
        conn = Conn(entry(HttpErrorToxic(path_prefix="/up")))
        body = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
        conn.send(body[:60])
        assert conn.client.data == b""  # answered once the whole request has been read
        conn.send(body[60:] + GET)
        assert statuses(conn.client.data) == [503]
        assert conn.server.data == GET

    def test_expect_continue_is_answered_at_once_and_closed(self) -> None:
        """The client waits for 100 Continue: the proxy answers now, says close, and closes."""
        conn = Conn(entry(HttpErrorToxic()))
        conn.send(b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assert statuses(conn.client.data) == [503]
        assert b"Connection: close" in conn.client.data
        assert conn.client.writes[-1][1] == EOF
        conn.send(b"hello")
        assert conn.server.data == b""

    def test_http_10_answer_closes(self) -> None:
        conn = Conn(entry(HttpErrorToxic()))
        conn.send(b"GET / HTTP/1.0\r\n\r\n")
        assert b"Connection: close" in conn.client.data
        assert conn.client.writes[-1][1] == EOF

    def test_smuggling_shape_is_refused_not_forwarded(self) -> None:
        """Content-Length with Transfer-Encoding: a 400 from the proxy, then the connection closes."""
        conn = Conn(entry(HttpErrorToxic(path_prefix="/nothing")))
        conn.send(b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert conn.server.data == b""
        assert statuses(conn.client.data) == [400]
        assert b"both Content-Length and Transfer-Encoding" in conn.client.data
        assert conn.client.writes[-1][1] == EOF

    def test_on_the_response_stream_it_replaces_the_response(self) -> None:
        """Downstream: the server handled the request, the client sees the error instead."""
        conn = Conn(entry(HttpErrorToxic(status=502), stream="downstream"))
        conn.send(GET)
        assert conn.server.data == GET
        conn.answer(OK + OK)
        assert statuses(conn.client.data) == [502, 200]  # the second answers nobody: passed as it is
        assert conn.client.data.endswith(OK)

    @pytest.mark.parametrize(
        ("toxic", "hit"),
        [
            pytest.param(HttpErrorToxic(method="POST"), [False, True], id="method"),
            pytest.param(HttpErrorToxic(method="post"), [False, True], id="method-any-case"),
            pytest.param(HttpErrorToxic(path_prefix="/orders"), [False, True], id="prefix"),
            pytest.param(HttpErrorToxic(path_prefix="/users"), [True, False], id="other-prefix"),
        ],
    )
    def test_filters(self, toxic: HttpErrorToxic, hit: list[bool]) -> None:
        conn = Conn(entry(toxic))
        conn.send(b"GET /users/1 HTTP/1.1\r\n\r\n")
        if not hit[0]:
            conn.answer(OK)
        conn.send(b"POST /orders HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        if not hit[1]:
            conn.answer(OK)
        assert statuses(conn.client.data) == [503 if h else 200 for h in hit]

    @pytest.mark.behaviour("toxic.toxicity")
    def test_toxicity_is_per_request(self) -> None:
        """1,000 requests on one connection at toxicity 0.3: about 300 answered by the proxy."""
        conn = Conn(entry(HttpErrorToxic(), toxicity=0.3), seed=11)
        for _ in range(1000):
            before = len(conn.server.data)
            conn.send(GET)
            if len(conn.server.data) > before:
                conn.answer(OK)
        errors = statuses(conn.client.data).count(503)
        assert 250 <= errors <= 350, errors

    @pytest.mark.behaviour("toxic.toxicity")
    def test_same_seed_same_requests_hit(self) -> None:
        def hits(seed: int) -> list[int]:
            conn = Conn(entry(HttpErrorToxic(), toxicity=0.5), seed=seed)
            for _ in range(50):
                before = len(conn.server.data)
                conn.send(GET)
                if len(conn.server.data) > before:
                    conn.answer(OK)
            return statuses(conn.client.data)

        assert hits(5) == hits(5)
        assert hits(5) != hits(6)


@pytest.mark.behaviour("toxic.http_latency")
class TestHttpLatency:
    def test_holds_the_request(self) -> None:
        """A request goes to the server latency ms after it arrived; its body waits behind its head."""
        conn = Conn(entry(HttpLatencyToxic(latency_min=40, latency_max=40)))
        conn.send(b"POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
        conn.clock.advance(0.010)
        conn.send(b"cd")
        assert conn.server.data == b""
        assert conn.server.held > 0
        conn.clock.advance(0.0299)
        assert conn.server.data == b""
        conn.clock.advance(0.0002)
        assert conn.server.data.endswith(b"abcd")
        assert conn.server.held == 0

    def test_later_requests_wait_behind(self) -> None:
        """Pipelined requests leave in order, each no sooner than its own delay."""
        conn = Conn(entry(HttpLatencyToxic(latency_min=50, latency_max=50), name="slow"),
                    entry(HttpLatencyToxic(path_prefix="/b")))  # fmt: skip
        conn.send(GET + b"GET /b HTTP/1.1\r\n\r\n")
        conn.clock.advance(0.06)
        times = [when - 1000.0 for when, _ in conn.server.writes]
        assert conn.server.data == GET + b"GET /b HTTP/1.1\r\n\r\n"
        assert times == [pytest.approx(0.05)]

    def test_on_the_response_stream_it_delays_the_response(self) -> None:
        conn = Conn(entry(HttpLatencyToxic(latency_min=20, latency_max=20), stream="downstream"))
        conn.send(GET)
        conn.answer(OK)
        assert conn.client.data == b""
        conn.clock.advance(0.021)
        assert conn.client.data == OK

    def test_latency_and_error_together_make_a_slow_error(self) -> None:
        """Both fire on a request: its answer comes after the drawn latency."""
        conn = Conn(entry(HttpLatencyToxic(latency_min=30, latency_max=30)), entry(HttpErrorToxic()))
        conn.send(GET)
        assert conn.client.data == b""
        conn.clock.advance(0.031)
        assert statuses(conn.client.data) == [503]


@pytest.mark.behaviour("proxy.http_framing")
class TestLayer:
    def test_not_http_passes_and_detaches(self) -> None:
        """A TLS or database stream goes through untouched, and the layer lets go of the connection."""
        conn = Conn(entry(HttpErrorToxic()))
        conn.send(b"\x16\x03\x01\x00\x05hello")
        conn.answer(b"\x16\x03\x03\x00\x02hi")
        assert conn.server.data == b"\x16\x03\x01\x00\x05hello"
        assert conn.client.data == b"\x16\x03\x03\x00\x02hi"
        assert conn.detached == [False]

    def test_a_server_that_speaks_first_passes(self) -> None:
        conn = Conn(entry(HttpErrorToxic()))
        conn.answer(b"220 smtp.example ESMTP\r\n")
        assert conn.client.data == b"220 smtp.example ESMTP\r\n"
        assert conn.detached == [False]

    def test_tunnel_after_switching_protocols(self) -> None:
        conn = Conn(entry(HttpErrorToxic(path_prefix="/never")))
        conn.send(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        conn.answer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        conn.send(b"\x81\x02GET / HTTP/1.1")
        assert conn.server.data.endswith(b"\x81\x02GET / HTTP/1.1")
        assert conn.detached == [False]

    def test_added_to_an_open_connection_starts_at_a_request(self) -> None:
        """The rest of a body in flight passes; the first chunk that begins a request is framed."""
        conn = Conn(entry(HttpErrorToxic()), fresh=False)
        conn.send(b"rest of an earlier body")
        conn.answer(b"rest of an earlier response")
        assert conn.server.data == b"rest of an earlier body"
        assert conn.client.data == b"rest of an earlier response"
        conn.send(GET)
        assert statuses(conn.client.data[len(b"rest of an earlier response") :]) == [503]

    def test_detaches_once_no_toxic_is_left_and_nothing_is_in_flight(self) -> None:
        conn = Conn(entry(HttpLatencyToxic(latency_min=10, latency_max=10), stream="downstream"))
        conn.send(GET)
        conn.toxics[Direction.DOWNSTREAM].clear()
        conn.layer.rules_changed()
        assert conn.detached == []  # the response is still owed
        conn.answer(OK)
        assert conn.detached == [True]
        assert conn.client.data == OK

    def test_client_close_after_held_data(self) -> None:
        conn = Conn(entry(HttpLatencyToxic(latency_min=10, latency_max=10)))
        conn.send(GET)
        conn.layer.requests.feed_eof()
        assert conn.server.writes == []
        conn.clock.advance(0.011)
        assert [data for _, data in conn.server.writes] == [GET, EOF]

    def test_a_response_ended_by_the_close_is_replaced_then_closed(self) -> None:
        conn = Conn(entry(HttpErrorToxic(), stream="downstream"))
        conn.send(b"GET / HTTP/1.1\r\n\r\n")
        conn.answer(b"HTTP/1.1 200 OK\r\n\r\nstreamed until the end")
        assert conn.client.data == b""
        conn.layer.responses.feed_eof()
        assert statuses(conn.client.data) == [503]
        assert conn.client.writes[-1][1] == EOF

    def test_one_write_per_event(self) -> None:
        """A response's head and body, read together, leave together (no extra segment to wait for)."""
        conn = Conn(entry(HttpErrorToxic(path_prefix="/never")))
        conn.send(GET)
        conn.answer(OK)
        assert [data for _, data in conn.client.writes] == [OK]
