"""HTTP/1.x framing without I/O: heads, bodies by length and chunked, pipelining, responses that have no
body, what a server refuses, and bytes that are not HTTP; properties hold for any split of the stream. Also
the HTTP layer's bounds and ends on a virtual clock: a client that does not read is not read either, and
nothing follows a response that ends its connection."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.faults._exchange import MAX_IN_FLIGHT, POLL, HttpExchange
from harness.faults._http_framing import (
    MAX_HEAD_BYTES,
    Body,
    Data,
    End,
    Event,
    Malformed,
    NotHttp,
    ResponseFramer,
    Start,
)
from harness.faults._http_toxics import HttpErrorToxic
from harness.faults._link import HIGH_WATER, Direction, ToxicEntry
from harness.faults._request_framing import RequestFramer, starts_request


def feed_all(
    framer: RequestFramer | ResponseFramer, chunks: Sequence[bytes], *, eof: bool = False
) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += framer.feed(chunk)
    if eof:
        events += framer.feed_eof()
    return events


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({min(max(cut, 0), len(data)) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def messages(events: Sequence[Event]) -> list[bytes]:
    """Each message's bytes, from its Start to its End."""
    found: list[bytes] = []
    current: bytearray | None = None
    for event in events:
        match event:
            case Start(data=data):
                current = bytearray(data)
            case Data(data=data) if current is not None:
                current += data
            case End():
                assert current is not None
                found.append(bytes(current))
                current = None
    return found


def passed(events: Sequence[Event]) -> bytes:
    """Every byte the events pass on, in order (a refused message's bytes are not passed on)."""
    return b"".join(e.data for e in events if isinstance(e, Start | Data | NotHttp))


# -- generated HTTP ------------------------------------------------------------------------------------
_methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
_paths = st.from_regex(r"/[a-z0-9/_.-]{0,20}(\?[a-z]=[0-9]{1,3})?", fullmatch=True)
_bodies = st.binary(max_size=300)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method, path, body = draw(_methods), draw(_paths), draw(_bodies)
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    head = f"{method} {path} HTTP/1.1\r\nHost: svc\r\n"
    if framing == "none" or (framing == "length" and not body):
        return (head + "\r\n").encode()
    if framing == "length":
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    sizes = draw(st.lists(st.integers(1, 64), max_size=6))
    chunks, rest = [], body
    for size in sizes:
        if rest:
            chunks.append(rest[:size])
            rest = rest[size:]
    if rest:
        chunks.append(rest)
    encoded = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    trailer = draw(st.sampled_from([b"", b"X-Trailer: 1\r\n"]))
    return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + encoded + b"0\r\n" + trailer + b"\r\n"


@st.composite
def responses(draw: st.DrawFn) -> tuple[str, bytes]:
    """A request method and a response to it, framed as RFC 9112 says a client reads it."""
    method = draw(st.sampled_from(["GET", "HEAD", "POST"]))
    status = draw(st.sampled_from([200, 201, 204, 304, 404, 503]))
    body = draw(_bodies)
    declared = len(body) if body else draw(st.integers(0, 50))
    chunked = draw(st.booleans())
    head = f"HTTP/1.1 {status} Whatever\r\n"
    if chunked and status not in (204, 304):
        head += "Transfer-Encoding: chunked\r\n\r\n"
        sent = (
            b"" if method == "HEAD" else (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        )
    else:
        head += f"Content-Length: {declared}\r\n\r\n"
        no_body = method == "HEAD" or status in (204, 304)
        sent = b"" if no_body else body.ljust(declared, b"x")[:declared]
    return method, head.encode() + sent


@pytest.mark.behaviour("proxy.http_framing")
class TestRequests:
    def test_a_request_without_a_body(self) -> None:
        """A GET head is the whole message: Start then End, its method, path and keep-alive read."""
        [start, end] = RequestFramer().feed(b"GET /users/1?x=2 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert isinstance(start, Start)
        assert isinstance(end, End)
        assert (start.head.method, start.head.path, start.head.body) == ("GET", "/users/1", Body.NONE)
        assert start.head.keep_alive

    def test_content_length_body(self) -> None:
        framer = RequestFramer()
        events = feed_all(framer, [b"POST /o HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", b"cde"])
        assert messages(events) == [b"POST /o HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde"]
        assert framer.idle

    def test_chunked_body_with_extensions_and_trailers(self) -> None:
        data = (
            b"PUT /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"3;name=value\r\nabc\r\n0\r\nExpires: never\r\n\r\n"
        )
        events = RequestFramer().feed(data)
        assert messages(events) == [data]

    def test_pipelined_requests_in_one_chunk(self) -> None:
        """Three requests in one read are three messages, in order."""
        one = b"GET /a HTTP/1.1\r\n\r\n"
        two = b"POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
        three = b"GET /c HTTP/1.1\r\n\r\n"
        assert messages(RequestFramer().feed(one + two + three)) == [one, two, three]

    def test_http_10_closes_unless_asked_to_keep_alive(self) -> None:
        [start, _] = RequestFramer().feed(b"GET / HTTP/1.0\r\n\r\n")
        [kept, _] = RequestFramer().feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert isinstance(start, Start)
        assert isinstance(kept, Start)
        assert (start.head.keep_alive, kept.head.keep_alive) == (False, True)

    def test_expect_continue_is_seen(self) -> None:
        [start] = RequestFramer().feed(
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"
        )
        assert isinstance(start, Start)
        assert start.head.expects_continue

    def test_absolute_form_target_has_a_path(self) -> None:
        [start, _] = RequestFramer().feed(b"GET http://svc:80/users?x=1 HTTP/1.1\r\n\r\n")
        assert isinstance(start, Start)
        assert start.head.path == "/users"

    def test_blank_lines_before_a_request_are_passed(self) -> None:
        events = RequestFramer().feed(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        assert passed(events) == b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"
        assert len(messages(events)) == 1

    @pytest.mark.parametrize(
        ("head", "reason"),
        [
            pytest.param(
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "both Content-Length and Transfer-Encoding",
                id="cl-and-te",
            ),
            pytest.param(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                "Transfer-Encoding does not end with chunked",
                id="te-not-chunked",
            ),
            pytest.param(
                b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                "conflicting Content-Length values",
                id="two-lengths",
            ),
            pytest.param(
                b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length", id="neg"
            ),
            pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "obsolete line folding", id="fold"),
            pytest.param(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "invalid header line", id="space-colon"),
        ],
    )
    def test_what_a_server_refuses_is_malformed(self, head: bytes, reason: str) -> None:
        """Request smuggling shapes are refused, as a server would, and framing stops."""
        framer = RequestFramer()
        [event] = framer.feed(head)
        assert isinstance(event, Malformed)
        assert event.reason.startswith(reason)
        assert framer.feed(b"GET / HTTP/1.1\r\n\r\n") == []

    def test_bad_chunk_size_is_malformed(self) -> None:
        events = RequestFramer().feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        assert isinstance(events[-1], Malformed)

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-client-hello"),
            pytest.param(b"\x00\x00\x00\x08\x04\xd2\x16\x2f", id="postgres-ssl-request"),
            pytest.param(b"*1\r\n$4\r\nPING\r\n", id="redis"),
            pytest.param(b"PING\r\n", id="a-word"),
        ],
    )
    def test_not_http_passes_untouched(self, data: bytes) -> None:
        """The first bytes that cannot start an HTTP/1.x request line make everything pass as it is."""
        framer = RequestFramer()
        assert framer.feed(data) == [NotHttp(data)]
        assert framer.feed(b"GET / HTTP/1.1\r\n\r\n") == [Data(b"GET / HTTP/1.1\r\n\r\n")]

    def test_a_partial_request_line_waits_for_more(self) -> None:
        framer = RequestFramer()
        assert framer.feed(b"GE") == []
        assert len(messages(framer.feed(b"T / HTTP/1.1\r\n\r\n"))) == 1

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"GET / HTTP/1.1\r\nHo", id="partial-head"),
            pytest.param(b"GET / HTTP/1.0", id="request-line-without-its-end"),
        ],
    )
    def test_a_head_cut_short_by_the_close_is_refused(self, data: bytes) -> None:
        """http.server serves ``GET / HTTP/1.0`` and the close: a partial head is never passed on."""
        framer = RequestFramer()
        assert framer.feed(data) == []
        [refused] = framer.feed_eof()
        assert refused == Malformed("a request cut short by the close", data)

    def test_starts_request_needs_a_whole_request_line(self) -> None:
        """How a toxic added to an open connection finds a request: a chunk that begins with a line llhttp
        reads as the start of one."""
        assert starts_request(b"GET / HTTP/1.1\r\nHost: a\r\n")
        assert starts_request(b"GET  /blocked HTTP/2.0\r\n")
        assert not starts_request(b"GET / HTT")
        assert not starts_request(b"some body bytes\r\n")
        assert not starts_request(b"\r\nGET / HTTP/1.1\r\n")

    @pytest.mark.parametrize(
        ("data", "method", "path", "version"),
        [
            pytest.param(
                b"GET  /blocked HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/blocked", (1, 1), id="two-spaces"
            ),
            pytest.param(b"GET /blocked\r\n\r\n", "GET", "/blocked", (0, 9), id="http-0.9"),
            pytest.param(b"GET /blocked HTTP/2.0\r\n\r\n", "GET", "/blocked", (2, 0), id="http-2.0"),
            pytest.param(
                b"DELETE /blocked?x=1 HTTP/1.0\r\n\r\n", "DELETE", "/blocked", (1, 0), id="http-1.0"
            ),
        ],
    )
    def test_what_uvicorn_serves_is_framed(
        self, data: bytes, method: str, path: str, version: tuple[int, int]
    ) -> None:
        """Shapes llhttp (uvicorn's parser) serves are framed as requests, its reading of them kept."""
        [start, end] = RequestFramer().feed(data)
        assert isinstance(start, Start)
        assert isinstance(end, End)
        assert (start.head.method, start.head.path, start.head.version) == (method, path, version)

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            pytest.param(b"GET /blocked HTTP/1.1\nHost: a\n\n", "Expected CRLF", id="bare-lf"),
            pytest.param(b"PING /blocked HTTP/1.1\r\n\r\n", "Invalid method", id="unknown-method"),
            pytest.param(b" GET /blocked HTTP/1.1\r\n\r\n", "Invalid method", id="leading-space"),
            pytest.param(b"GET\t/blocked HTTP/1.1\r\n\r\n", "Expected space", id="tab"),
            pytest.param(b"GET /blocked HTTP/1.2\r\n\r\n", "Invalid HTTP version", id="http-1.2"),
            pytest.param(
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "an HTTP/2 connection preface", id="h2-preface"
            ),
            pytest.param(
                b"GET /" + b"x" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n", "request head longer", id="long-line"
            ),
            pytest.param(
                b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nabc",
                "a request that switches protocols, with a body",
                id="upgrade-with-body",
            ),
        ],
    )
    def test_what_llhttp_refuses_and_others_read_is_malformed(self, data: bytes, reason: str) -> None:
        """h11 or http.server would serve these; llhttp refuses them: refused, never passed on."""
        [event] = RequestFramer().feed(data)
        assert isinstance(event, Malformed)
        assert event.reason.startswith(reason)
        assert event.data == data

    def test_a_long_line_is_refused_before_its_end(self) -> None:
        """A request line is not waited for past the head limit: 64 KiB without its end is refused."""
        framer = RequestFramer()
        assert framer.feed(b"GET /" + b"x" * 1000) == []
        events = framer.feed(b"x" * MAX_HEAD_BYTES)
        assert [type(event) for event in events] == [Malformed]

    def test_not_http_only_at_the_start(self) -> None:
        """After a request, bytes that are no request are refused, not passed: the server might read on."""
        [_, _, refused] = RequestFramer().feed(b"GET / HTTP/1.1\r\n\r\n\x16\x03\x01")
        assert isinstance(refused, Malformed)

    def test_an_upgrade_waits_for_the_server(self) -> None:
        """After a request that may switch protocols nothing is framed: the next bytes are either protocol."""
        upgrade = b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        framer = RequestFramer()
        events = framer.feed(upgrade + b"GET /next HTTP/1.1\r\n\r\n")
        assert messages(events) == [upgrade]
        assert isinstance(events[0], Start)
        assert events[0].head.upgrade
        assert framer.feed(b"more") == []
        declined = RequestFramer()
        declined.feed(upgrade + b"GET /next HTTP/1.1\r\n\r\n")
        declined.resume()
        assert messages(declined.feed(b"")) == [b"GET /next HTTP/1.1\r\n\r\n"]
        framer.pass_through()
        assert framer.feed(b"\x81") == [Data(b"GET /next HTTP/1.1\r\n\r\nmore"), Data(b"\x81")]

    def test_a_framer_stopped_after_an_end_goes_on_from_there(self) -> None:
        """The layer may stop taking events after an End: what follows stays, and is framed later."""
        framer = RequestFramer()
        for event in framer.events(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"):
            if isinstance(event, End):
                break
        framer.keep(b"GET /c HTTP/1.1\r\n\r\n")
        assert [e.head.target for e in framer.feed(b"") if isinstance(e, Start)] == ["/b", "/c"]

    @given(st.lists(requests(), min_size=1, max_size=6), st.lists(st.integers(0, 4000), max_size=20))
    def test_any_split_gives_the_same_messages(self, sent: list[bytes], cuts: list[int]) -> None:
        """Pipelined requests split anywhere: each message exactly once, every byte once, in order."""
        stream = b"".join(sent)
        framer = RequestFramer()
        events = feed_all(framer, split(stream, cuts))
        assert messages(events) == sent
        assert passed(events) == stream
        assert framer.idle

    @given(
        st.one_of(
            st.binary(min_size=1, max_size=200),
            st.tuples(requests(), st.binary(max_size=80)).map(b"".join),
            st.tuples(st.sampled_from([b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\n"]), st.binary()).map(
                b"".join
            ),
        ),
        st.lists(st.integers(0, 400), max_size=5),
    )
    def test_garbage_is_never_lost(self, data: bytes, cuts: list[int]) -> None:
        """Whatever the bytes, every one comes out, in order, up to a refusal (which holds the rest)."""
        events = feed_all(RequestFramer(), split(data, cuts), eof=True)
        refused = [e.data for e in events if isinstance(e, Malformed)]
        if refused:
            assert data.startswith(passed(events) + refused[0])
        else:
            assert passed(events) == data


@pytest.mark.behaviour("proxy.http_framing")
class TestResponses:
    def framer(self, *methods: str) -> ResponseFramer:
        queue = list(methods)
        return ResponseFramer(lambda: queue.pop(0) if queue else "GET")

    @pytest.mark.parametrize(
        ("method", "status"),
        [
            pytest.param("HEAD", 200, id="head"),
            pytest.param("GET", 204, id="no-content"),
            pytest.param("GET", 304, id="not-modified"),
        ],
    )
    def test_no_body_whatever_the_length_says(self, method: str, status: int) -> None:
        """HEAD, 204 and 304 responses end with their head, Content-Length notwithstanding."""
        head = f"HTTP/1.1 {status} X\r\nContent-Length: 42\r\n\r\n".encode()
        next_one = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        assert messages(self.framer(method, "GET").feed(head + next_one)) == [head, next_one]

    def test_interim_responses_end_without_a_body(self) -> None:
        """100 Continue is a message of its own, flagged interim; the final response follows."""
        data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
        events = self.framer("POST").feed(data)
        starts = [e.head for e in events if isinstance(e, Start)]
        assert [(h.status, h.interim) for h in starts] == [(100, True), (200, False)]
        assert len(messages(events)) == 2

    def test_no_length_means_until_close(self) -> None:
        framer = self.framer("GET")
        events = framer.feed(b"HTTP/1.0 200 OK\r\n\r\npart one ")
        events += framer.feed(b"part two")
        assert not any(isinstance(e, End) for e in events)
        events += framer.feed_eof()
        assert messages(events) == [b"HTTP/1.0 200 OK\r\n\r\npart one part two"]

    def test_switching_protocols_is_a_tunnel(self) -> None:
        framer = self.framer("GET")
        [start] = framer.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        assert isinstance(start, Start)
        assert start.head.body is Body.TUNNEL
        assert framer.passing
        assert framer.feed(b"\x81\x05hello") == [Data(b"\x81\x05hello")]

    def test_not_http_response(self) -> None:
        assert self.framer().feed(b"SSH-2.0-OpenSSH\r\n") == [NotHttp(b"SSH-2.0-OpenSSH\r\n")]

    @given(st.lists(responses(), min_size=1, max_size=6), st.lists(st.integers(0, 3000), max_size=20))
    def test_any_split_gives_the_same_responses(self, sent: list[tuple[str, bytes]], cuts: list[int]) -> None:
        """Responses to pipelined requests, split anywhere: each exactly once, in order."""
        stream = b"".join(data for _, data in sent)
        framer = self.framer(*(method for method, _ in sent))
        events = feed_all(framer, split(stream, cuts))
        assert messages(events) == [data for _, data in sent]
        assert passed(events) == stream


# -- the HTTP layer's bounds and ends ------------------------------------------------------------------
class Clock:
    """A virtual event loop clock: a timer runs only when the test advances time past it."""

    class Timer:
        def __init__(self, when: float, callback: Callable[[], object]) -> None:
            self.when, self.callback, self.cancelled = when, callback, False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Clock.Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> Clock.Timer:
        timer = Clock.Timer(when, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [timer for timer in self.timers if timer.when <= self.now and not timer.cancelled]
        self.timers = [timer for timer in self.timers if timer not in due]
        for timer in due:
            timer.callback()


class Sink:
    """One direction's destination: what was written, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.size = 0
        self.closed = False

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)

    def forward(self, data: bytes) -> None:
        assert not self.closed, "written after the close"
        self.writes.append(data)
        self.size += len(data)

    def forward_eof(self) -> None:
        self.closed = True

    def queued(self, delta: int) -> None:
        pass


class Client:
    """A client socket that takes nothing until told to: the layer's ClientFlow."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.taken = 0
        self.held = False

    def backlog(self) -> int:
        return self.sink.size - self.taken

    def hold(self, held: bool) -> None:
        self.held = held

    def read(self) -> bool:
        """Take everything written so far; whether the layer reads the client now."""
        self.taken = self.sink.size
        return not self.held


def layer(toxic: HttpErrorToxic) -> tuple[HttpExchange, Sink, Sink, Client, Clock]:
    """An HTTP layer with ``toxic`` on its requests, between sinks, on a virtual clock."""
    entry = ToxicEntry("errors", "http_error", "upstream", Direction.UPSTREAM, 1.0, toxic)
    server, client, clock = Sink(), Sink(), Clock()
    flow = Client(client)
    exchange = HttpExchange(
        ([entry], []), random.Random(1), clock, to_server=server, to_client=client, flow=flow
    )
    return exchange, server, client, flow, clock


@pytest.mark.behaviour("proxy.http_framing", "toxic.http_error")
class TestLayerBounds:
    def test_a_client_that_does_not_read_is_not_read(self) -> None:
        """2,000 pipelined requests in one read, answered with 16 KiB each: just over 1 MiB is written, the
        rest waits unframed and the client is held; as it takes its answers, the rest are answered."""
        exchange, _, client, flow, clock = layer(HttpErrorToxic(body="x" * (16 << 10)))
        exchange.requests.feed(b"GET / HTTP/1.1\r\n\r\n" * 2000)
        assert flow.held
        assert HIGH_WATER < client.size < HIGH_WATER + (20 << 10)
        clock.advance(POLL)
        assert flow.held  # nothing taken: nothing more written
        assert client.size < HIGH_WATER + (20 << 10)
        rounds = 0
        while not flow.read():
            clock.advance(POLL)
            rounds += 1
        assert client.data.count(b"HTTP/1.1 503") == 2000
        assert rounds > 10

    def test_a_client_that_closes_while_held_still_gets_its_answers(self) -> None:
        """Its close waits behind the requests it sent before: each is answered, then the server's side
        closes."""
        exchange, server, client, flow, clock = layer(HttpErrorToxic(body="x" * (16 << 10)))
        exchange.requests.feed(b"GET / HTTP/1.1\r\n\r\n" * 200)
        exchange.requests.feed_eof()
        assert not server.closed
        while not flow.read():
            clock.advance(POLL)
        assert client.data.count(b"HTTP/1.1 503") == 200
        assert server.closed

    def test_too_many_requests_in_flight_hold_the_client(self) -> None:
        """Requests the server has not answered count too: past MAX_IN_FLIGHT, the client is held."""
        exchange, server, _, flow, _ = layer(HttpErrorToxic(path_prefix="/never"))
        exchange.requests.feed(b"GET / HTTP/1.1\r\n\r\n" * (MAX_IN_FLIGHT + 100))
        assert flow.held
        assert server.data.count(b"GET") == MAX_IN_FLIGHT + 1
        exchange.responses.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * (MAX_IN_FLIGHT // 2 + 1))
        assert flow.read()
        assert server.data.count(b"GET") == MAX_IN_FLIGHT + 100


@pytest.mark.behaviour("proxy.http_framing", "toxic.http_error")
class TestLayerEnds:
    @pytest.mark.parametrize(
        "response",
        [
            pytest.param(b"HTTP/1.1 200 OK\r\n\r\nuntil the close", id="http-1.1-no-length"),
            pytest.param(b"HTTP/1.0 200 OK\r\n\r\nuntil the close", id="http-1.0-no-length"),
            pytest.param(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", id="says-close"
            ),
        ],
    )
    def test_nothing_follows_a_response_that_ends_the_connection(self, response: bytes) -> None:
        """The proxy's answer to the next pipelined request is not written after it: the client closes."""
        exchange, _, client, _, _ = layer(HttpErrorToxic(path_prefix="/blocked"))
        exchange.requests.feed(b"GET /a HTTP/1.1\r\n\r\nGET /blocked HTTP/1.1\r\n\r\n")
        exchange.responses.feed(response)
        exchange.responses.feed_eof()
        assert client.data == response
        assert client.closed

    def test_a_refusal_in_a_swallowed_body_is_answered(self) -> None:
        """A faulted request whose chunked body llhttp refuses: the 400 goes out and the connection ends."""
        exchange, server, client, _, _ = layer(HttpErrorToxic())
        exchange.requests.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        assert server.data == b""
        assert client.data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert client.closed

    def test_a_declined_upgrade_frames_what_followed(self) -> None:
        """The server answers an upgrade request without switching: the requests held behind it are framed."""
        exchange, server, client, _, _ = layer(HttpErrorToxic(path_prefix="/blocked"))
        upgrade = b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
        exchange.requests.feed(upgrade + b"GET /blocked HTTP/1.1\r\n\r\n")
        assert server.data == upgrade
        exchange.responses.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        assert server.data == upgrade
        assert client.data.count(b"HTTP/1.1 503") == 1

    def test_a_switch_passes_what_followed(self) -> None:
        exchange, server, _, _, _ = layer(HttpErrorToxic(path_prefix="/blocked"))
        upgrade = b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        exchange.requests.feed(upgrade + b"\x81\x02hi")
        exchange.responses.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        assert server.data == upgrade + b"\x81\x02hi"

    def test_an_answered_upgrade_closes(self) -> None:
        exchange, server, client, _, _ = layer(HttpErrorToxic())
        exchange.requests.feed(b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        assert server.data == b""
        assert b"Connection: close" in client.data
        assert client.closed
