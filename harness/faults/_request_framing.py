"""Requests framed as uvicorn reads them, so an HTTP toxic cannot be bypassed: llhttp (``_llhttp``) is fed
every byte of the request stream, in the pieces this framer cuts at message boundaries, and must agree with
each cut. What llhttp would serve is framed (and so faulted); what it refuses, or would cut elsewhere, is
Malformed (answered 400 and closed); only a stream whose first line no HTTP/1.x server reads as a request
line (TLS, a database protocol) passes untouched."""

from __future__ import annotations

import re

from harness.faults._http_framing import (
    MAX_HEAD_BYTES,
    Body,
    Data,
    End,
    Event,
    FramerState,
    Head,
    Malformed,
    MessageFramer,
)
from harness.faults._llhttp import LlhttpRequests, RequestFacts, begins_request_line

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEAD_END = b"\r\n\r\n"  # llhttp, as uvicorn runs it, takes no bare LF in a head
_DISAGREE = "llhttp frames this request differently"
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\n"
_FIRST_WORD = 256  # before its line ends, a first line is judged by this much (its first word, a method)


def request_line(data: bytes, *, complete: bool) -> bool | None:
    """Whether the first line of ``data`` may be a request line for llhttp, h11 or http.server (True), is
    one for none of them (False), or cannot be told yet (None; ``complete``: the stream ends there). Loose
    on purpose: http.server splits the line on any whitespace and serves two words as HTTP/0.9, h11 takes
    any token as a method; only a first word that is no token, or a line of one word, is no request."""
    line, newline, _ = data.decode("latin-1").partition("\n")
    words = line.split()
    if words and not _TOKEN.fullmatch(words[0]):
        return False
    if not newline and not complete:
        return None
    return len(words) >= 2


def starts_request(data: bytes) -> bool:
    """Whether ``data`` begins with a whole line llhttp reads as the start of a request (how a toxic added
    to an open connection finds the first request it can frame: only a chunk that begins one)."""
    end = data.find(b"\n", 0, MAX_HEAD_BYTES)
    return end > 0 and data[:1] != b"\r" and begins_request_line(data[: end + 1])


class RequestFramer(MessageFramer):
    """Requests as uvicorn reads them: a request is framed once llhttp has read its head (method, target,
    version and fields are llhttp's), its body as llhttp reads it (Content-Length or chunked); llhttp's
    refusals, and any cut llhttp would not make, are Malformed. After a request that may switch protocols
    the framer waits: ``resume`` when the server declines, ``pass_through`` when it switches."""

    def __init__(self) -> None:
        super().__init__()
        self._llhttp = LlhttpRequests()
        self._fed = 0  # bytes of the head being read that llhttp has been given
        self._http = False  # the stream's first line has been judged a request line
        self._line_scanned = 0  # how far the stream's first line has been searched for its end

    def resume(self) -> None:
        """The server declined the switch the last request asked for: what follows is framed again."""
        if self._state is FramerState.UPGRADE:
            self._state = FramerState.HEAD

    def feed_eof(self) -> list[Event]:
        """The client closed: a head (or a request held after an upgrade) cut short by the close is never
        passed on, since http.server would serve one (``GET / HTTP/1.0`` and the close); the stream's first
        bytes, when they are no request line, pass as they are."""
        if self._state not in (FramerState.HEAD, FramerState.UPGRADE) or not self._buffer:
            return super().feed_eof()
        self._events = []
        if not self._http and request_line(bytes(self._buffer), complete=True) is False:
            self._pass(bytes(self._buffer))
            self._buffer.clear()
        else:
            self._malformed("a request cut short by the close")
        return self._events

    # -- the machine ---------------------------------------------------------------------------------------
    def _step(self) -> bool:
        if self._state is FramerState.HEAD:
            return self._head()
        known = self.messages
        more = super()._step()
        return self._judge(known) and more

    def _head(self) -> bool:
        # Empty lines before a request: llhttp skips them. Passed on as they come, and fed to llhttp too.
        blank = 0
        while blank < len(self._buffer) and self._buffer[blank] in b"\r\n":
            blank += 1
        if blank:
            self._llhttp.feed(bytes(self._buffer[:blank]))
            self._emit_data(blank)
        if not self._buffer:
            return False
        if not self._http:
            line = self._first_line()
            if line is False:
                self._pass(bytes(self._buffer))
                self._buffer.clear()
                return False
            if line is None:
                return self._long_head()
            self._http = True
        end = self._buffer.find(_HEAD_END, max(self._fed - 3, 0))
        size = len(self._buffer) if end < 0 else end + len(_HEAD_END)
        if size > MAX_HEAD_BYTES:
            return self._long_head()
        heads = self._llhttp.heads
        # The head so far goes to llhttp as it arrives, so what it refuses is refused at once.
        refusal = self._llhttp.feed(bytes(self._buffer[self._fed : size]))
        self._fed = size
        if refusal is not None:
            return self._malformed(refusal)
        if end < 0:  # llhttp must not have read a head the framer has not found
            return self._llhttp.heads != heads and self._malformed(_DISAGREE)
        self._fed = 0
        head = self._request(self._llhttp.facts)
        if isinstance(head, str):
            return self._malformed(head)
        self._start(head, size)
        if head.upgrade:
            self._state = FramerState.UPGRADE
        return True

    def _first_line(self) -> bool | None:
        """``request_line`` for the stream's first line, each byte searched once however it is split."""
        end = self._buffer.find(b"\n", self._line_scanned, MAX_HEAD_BYTES + 1)
        if end < 0:
            self._line_scanned = min(len(self._buffer), MAX_HEAD_BYTES + 1)
            return request_line(bytes(self._buffer[:_FIRST_WORD]), complete=False)
        return request_line(bytes(self._buffer[: end + 1]), complete=False)

    def _long_head(self) -> bool:
        if len(self._buffer) > MAX_HEAD_BYTES:
            return self._malformed(f"request head longer than {MAX_HEAD_BYTES} bytes")
        return False

    def _request(self, facts: RequestFacts | None) -> Head | str:
        """The head llhttp has just read, with its body framed as llhttp frames it; a string says why not."""
        llhttp, known = self._llhttp, self.messages
        if facts is None or llhttp.heads != known + 1 or llhttp.completed not in (known, known + 1):
            if self._buffer.startswith(_HTTP2_PREFACE):
                return "an HTTP/2 connection preface: the HTTP toxics speak HTTP/1.x"
            return _DISAGREE
        fields = facts.headers
        names = {key for key, _ in fields}

        def head(body: Body, length: int = 0) -> Head:
            return Head(facts.version, fields, body, length, method=facts.method, target=facts.target,
                        upgrade=facts.upgrade)  # fmt: skip

        if llhttp.completed == known + 1:  # llhttp read no body
            if facts.upgrade and (
                "transfer-encoding" in names or dict(fields).get("content-length", "0") != "0"
            ):
                # llhttp reads none after a switch of protocols; h11 would read it: refused, not guessed.
                return "a request that switches protocols, with a body"
            return head(Body.NONE)
        if "transfer-encoding" in names:
            return head(Body.CHUNKED)
        length = dict(fields).get("content-length")
        if length is None or not length.isdigit():
            return _DISAGREE
        return head(Body.LENGTH, int(length))

    def _judge(self, known: int) -> bool:
        """Feed llhttp the body bytes this step cut (``known`` messages were complete before it); where llhttp
        refuses, or ends the message elsewhere than the step does, the rest of the step is Malformed."""
        events = self._events
        for index, event in enumerate(events):
            if not isinstance(event, Data):
                continue
            ends = index + 1 < len(events) and isinstance(events[index + 1], End)
            refusal = self._llhttp.feed(event.data)
            if refusal is None and self._llhttp.completed == known + ends:
                continue
            held = b"".join(e.data for e in events[index:] if isinstance(e, Data | Malformed))
            del events[index:]
            self.messages = known
            self._buffer[:0] = held
            return self._malformed(refusal or _DISAGREE)
        return True
