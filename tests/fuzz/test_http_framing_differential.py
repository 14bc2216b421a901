"""The fault proxy's request framing against the parsers servers read requests with: llhttp as uvicorn runs
it (httptools), h11, and http.server. Generated and hand-made request streams, fed to the framer in random
pieces: every request one of them would serve is framed by the proxy (so an HTTP toxic applies to it), or
the proxy refused the stream before that request's head was whole; none is ever passed on unframed. The
framer and llhttp agree request for request. Deterministic (derandomized) and bounded in examples."""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler

import h11
import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.faults._http_framing import Data, Malformed, NotHttp, Start
from harness.faults._request_framing import RequestFramer

EXAMPLES = 1500


@dataclass(frozen=True)
class Served:
    """A request a parser would hand to its application: where its head ends in the stream, and its start
    line's method and target as sent."""

    head_end: int
    method: bytes
    target: bytes


# -- the parsers servers use ---------------------------------------------------------------------------
class _Llhttp:
    """llhttp configured as uvicorn configures it, fed byte by byte: a request is served once its head is
    read (uvicorn starts the application there), until llhttp refuses or switches protocols."""

    def __init__(self, stream: bytes) -> None:
        self.served: list[Served] = []
        self._url = b""
        self._at = 0
        self._parser = httptools.HttpRequestParser(self)
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        for self._at in range(len(stream)):
            try:
                self._parser.feed_data(stream[self._at : self._at + 1])
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):
                break

    def on_message_begin(self) -> None:
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_headers_complete(self) -> None:
        self.served.append(Served(self._at + 1, self._parser.get_method(), self._url))


def llhttp_serves(stream: bytes) -> list[Served]:
    return _Llhttp(stream).served


def h11_serves(stream: bytes) -> list[Served]:
    """h11 as a server reads the stream (the peer closes after it), answering each request at once."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(stream)
    conn.receive_data(b"")
    served: list[Served] = []
    while True:
        try:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                served.append(Served(len(stream) - len(conn.trailing_data[0]), event.method, event.target))
            elif isinstance(event, h11.EndOfMessage):
                conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
            elif not isinstance(event, h11.Data):
                return served  # NEED_DATA, PAUSED (a switch of protocols), ConnectionClosed
        except h11.ProtocolError:  # what it refuses, or a connection that must close now
            return served


class _Handler(BaseHTTPRequestHandler):
    """http.server's request handling over a byte string: each do_* records the request and reads the body
    its Content-Length gives, as a typical handler does."""

    protocol_version = "HTTP/1.1"  # keep-alive, so pipelined requests are read

    def __init__(self, stream: bytes) -> None:  # no socket: rfile and wfile are the stream and a sink
        self.rfile = io.BytesIO(stream)
        self.wfile = io.BytesIO()
        self.client_address = ("127.0.0.1", 0)
        self.served: list[Served] = []
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        method, target = self.requestline.split()[:2]  # self.path has // folded to /
        self.served.append(Served(self.rfile.tell(), method.encode("latin-1"), target.encode("latin-1")))
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve


def http_server_serves(stream: bytes) -> list[Served]:
    return _Handler(stream).served


PARSERS = {"llhttp": llhttp_serves, "h11": h11_serves, "http.server": http_server_serves}


# -- the proxy's framer --------------------------------------------------------------------------------
class Stop(Enum):
    """How the framer left the stream: framed to the end, refused from ``cut`` on, or passed from ``cut``."""

    FRAMED = "framed"
    REFUSED = "refused"
    PASSED = "passed"


@dataclass(frozen=True)
class Framing:
    framed: list[Served]
    stop: Stop
    cut: int  # REFUSED: no byte from here on is forwarded; PASSED: every byte from here on is, unframed


def frame(stream: bytes, cuts: Sequence[int]) -> Framing:
    """Feed ``stream`` to a RequestFramer in the pieces ``cuts`` make, then the close."""
    points = sorted({min(max(cut, 0), len(stream)) for cut in cuts} | {0, len(stream)})
    framer = RequestFramer()
    events = [event for a, b in itertools.pairwise(points) for event in framer.feed(stream[a:b])]
    events += framer.feed_eof()
    framed: list[Served] = []
    at = 0
    for event in events:
        match event:
            case Start(head=head, data=data):
                at += len(data)
                framed.append(Served(at, head.method.encode(), head.target.encode("latin-1")))
            case Data(data=data):
                at += len(data)
            case NotHttp():
                return Framing(framed, Stop.PASSED, at)
            case Malformed():
                return Framing(framed, Stop.REFUSED, at)
    return Framing(framed, Stop.FRAMED, len(stream))


def check(stream: bytes, cuts: Sequence[int] = ()) -> None:
    """Every request a parser serves is framed, unless the proxy refused the stream before its head was
    whole; and the framer frames exactly what llhttp serves up to where it stopped."""
    framing = frame(stream, cuts)
    for name, serves in PARSERS.items():
        for served in serves(stream):
            if served.head_end <= framing.cut:
                assert served in framing.framed, f"{name} serves {served}, the proxy frames {framing}"
            else:
                assert framing.stop is not Stop.PASSED, f"{name} serves {served}, passed unframed: {framing}"
    llhttp = [served for served in llhttp_serves(stream) if served.head_end <= framing.cut]
    assert framing.framed == llhttp


# -- generated request streams ---------------------------------------------------------------------------
_METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"]
_TARGETS = [b"/", b"/blocked", b"/blocked/x?q=1", b"/open", b"http://svc/blocked", b"/a#frag"]
_FIELDS = [b"Accept: */*", b"Connection: keep-alive", b"Connection: close", b"X-A: b"]
_BODIES = [b"abc", b"GET /blocked HTTP/1.1\r\n\r\n", b"x" * 40]
_CODINGS = [b"chunked", b"Chunked", b"gzip, chunked", b"chunked, gzip", b"gzip"]
# One place bent, the way one parser or another reads differently: (which part, what it becomes).
_BENDS = {
    "method": [b"CONNECT", b"PRI", b"get", b"PING", b"M-SEARCH", b"G\xc9T"],
    "space": [b"  ", b"\t", b" \t", b"\xa0", b""],
    "target": [b"/%62locked", b"//blocked", b"*", b"/\xff", b"/a b", b"svc:443", b"/" + b"x" * 300, b""],
    "version": [b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.10", b"http/1.1", b"HTTP/1.1 ", b"HTTP/1", b""],
    "eol": [b"\n", b"\r", b"\r\r\n", b"\n\r"],
    "lead": [b"\r\n", b"\n", b" ", b"\r\n\r\n"],
    "field": [b"Connection: upgrade\r\nUpgrade: websocket", b"Expect: 100-continue", b"Host : svc",
              b"X: a\r\n folded", b"X-Empty:", b"No-colon", b"X: \x01", b"X: caf\xe9", b"Content-Length: 3",
              b"Content-Length:  3 ", b"Content-Length: +3", b"Content-Length: 3, 3", b"Content-Length: 0x3",
              *(b"Transfer-Encoding: " + te for te in _CODINGS), b"Transfer-Encoding : chunked"],
    "chunk": [b"3;a=b\r\nabc\r\n", b'3;a="b c"\r\nabc\r\n', b"3 ;a\r\nabc\r\n", b"03\r\nabc\r\n",
              b"3\nabc\n", b"3\r\nabcd\r\n", b"g\r\nabc\r\n", b"1\r\n\r\n\r\n", b"0\r\nT: 1\r\n", b"0\n"],
}  # fmt: skip


@st.composite
def requests(draw: st.DrawFn, bent: bool) -> bytes:
    """One valid request (no body, a Content-Length or a chunked body), or one bent in one place."""
    part = dict.fromkeys(_BENDS, b"")
    part.update(space=b" ", eol=b"\r\n", method=draw(st.sampled_from(_METHODS)))
    part.update(
        target=draw(st.sampled_from(_TARGETS)), version=draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    )
    bend = draw(st.sampled_from(sorted(_BENDS))) if bent else ""
    if bend:
        part[bend] = draw(st.sampled_from(_BENDS[bend]))
    fields = [b"Host: svc", *draw(st.lists(st.sampled_from(_FIELDS), max_size=2))]
    fields += [part["field"]] if part["field"] else []
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = draw(st.sampled_from(_BODIES))
    if framing == "length":
        fields.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        fields.append(b"Transfer-Encoding: chunked")
        body = b"%x\r\n%s\r\n" % (len(body), body) + part["chunk"] + b"0\r\n\r\n"
    else:
        body = b""
    eol, space = part["eol"], part["space"]
    line = part["method"] + space + part["target"] + (space + part["version"] if part["version"] else b"")
    return part["lead"] + line + eol + b"".join(field + eol for field in fields) + eol + body


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Pipelined requests, one of them often bent; sometimes with stray bytes in, sometimes cut short."""
    count = draw(st.integers(1, 4))
    bent = draw(st.integers(0, count * 2))  # the request bent, if it is one of them
    stream = b"".join(draw(requests(bent=index == bent)) for index in range(count))
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(stream)))
        stream = stream[:at] + draw(st.binary(min_size=1, max_size=8)) + stream[at:]
    if draw(st.integers(0, 4)) == 0:
        stream = stream[: draw(st.integers(0, len(stream)))]
    return stream


# -- hand-made: the findings, and shapes each parser reads its own way -----------------------------------
HAND_MADE = [
    pytest.param(b"GET  /blocked HTTP/1.1\r\nHost: svc\r\n\r\n", id="two-spaces"),
    pytest.param(b"GET /blocked\r\n\r\n", id="http-0.9"),
    pytest.param(b"GET /blocked\r\n", id="http-0.9-line-only"),
    pytest.param(b"GET /blocked HTTP/2.0\r\nHost: svc\r\n\r\n", id="http-2.0"),
    pytest.param(b"GET /blocked" + b"x" * 65_527 + b" HTTP/1.1\r\nHost: svc\r\n\r\n", id="line-over-64-KiB"),
    pytest.param(
        b"GET /blocked HTTP/1.1\r\nHost: svc\r\nX: " + b"x" * (1 << 20) + b"\r\n\r\n", id="1-MB-head"
    ),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="http2-preface"),
    pytest.param(b"GET /blocked HTTP/1.1\nHost: svc\n\n", id="bare-lf"),
    pytest.param(b" GET /blocked HTTP/1.1\r\nHost: svc\r\n\r\n", id="leading-space"),
    pytest.param(b"GET\t/blocked\tHTTP/1.1\r\nHost: svc\r\n\r\n", id="tabs"),
    pytest.param(b"PING /blocked HTTP/1.1\r\nHost: svc\r\n\r\n", id="unknown-method"),
    pytest.param(b"GET /blocked HTTP/1.0", id="cut-by-the-close"),
    pytest.param(
        b"GET /a HTTP/1.1\r\nContent-Length: 25\r\n\r\nGET /blocked HTTP/1.1\r\n\r\n", id="request-in-body"
    ),
    pytest.param(
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nGET /b HTTP/1.1"
        b"\r\n\r\n",
        id="cl-te",
    ),
    pytest.param(
        b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 25\r\n\r\nGET /blocked "
        b"HTTP/1.1\r\n\r\n",
        id="upgrade-with-a-body",
    ),
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls"),
    pytest.param(b"PING\r\nGET /blocked HTTP/1.1\r\nHost: svc\r\n\r\n", id="a-word-then-a-request"),
    pytest.param(b" \r\nGET /blocked HTTP/1.1\r\nHost: svc\r\n\r\n", id="a-space-line-then-a-request"),
    pytest.param(b"*1\r\n$4\r\nGET /blocked HTTP/1.1\r\nHost: svc\r\n\r\n", id="redis-then-a-request"),
    pytest.param(b"\r\n\r\nGET /blocked HTTP/1.1\r\n\r\n", id="blank-lines-first"),
    pytest.param(b"GET /a HTTP/1.1\r\n\r\n\xa0GET\xa0/blocked\xa0HTTP/1.1\r\n\r\n", id="nbsp-second"),
]


@pytest.mark.behaviour("proxy.http_framing")
class TestFramingAgainstServersParsers:
    @pytest.mark.parametrize("stream", HAND_MADE)
    def test_hand_made_streams(self, stream: bytes) -> None:
        """The findings and the shapes the parsers disagree on: framed, or refused before served."""
        check(stream)
        check(stream, range(0, len(stream), 7))

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(streams(), st.lists(st.integers(0, 2000), max_size=6))
    @example(b"GET /a HTTP/1.1\r\nHost: svc\r\n\r\n", [])
    def test_generated_streams(self, stream: bytes, cuts: list[int]) -> None:
        """Pipelined requests bent one way or another, in any pieces: no parser serves one the proxy
        neither frames nor refused before it."""
        check(stream, cuts)
