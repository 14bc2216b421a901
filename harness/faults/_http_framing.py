"""HTTP/1.x message framing without I/O: where each message of a byte stream starts and ends, so the fault
proxy can act per request on keep-alive and pipelined connections. Here: the messages and events, the body
machine both directions share, and responses as a client reads them; requests are framed as uvicorn reads
them in ``_request_framing``. Bytes go in as they arrive, in any split; events come out, carrying every byte
exactly once."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 << 10  # a head (start line and headers) longer than this is refused, as servers do
MAX_LINE_BYTES = 4096  # a chunk-size or trailer line
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: [^\r\n]*)?\r?\n")


def _prefix_pattern(*parts: bytes) -> re.Pattern[bytes]:
    """A pattern matching every prefix of ``parts`` in sequence: ``(?:a(?:b(?:c)?)?)?``."""
    pattern = b""
    for part in reversed(parts):
        pattern = b"(?:" + part + pattern + b")?"
    return re.compile(pattern)


_HTTP_VERSION = (b"H", b"T", b"T", b"P", b"/", rb"\d", rb"\.", rb"\d")
# What the first bytes of a status line may be, before its end has arrived.
_STATUS_PREFIX = _prefix_pattern(*_HTTP_VERSION, b" ", rb"\d", rb"\d", rb"\d", rb"(?: [^\r\n]*)?", b"\r")
_HEAD_END = re.compile(rb"\n\r?\n")
_HEADER = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(.*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?")
_DIGITS = re.compile(r"[0-9]{1,18}")


class Body(enum.Enum):
    """How the end of a message's body is found."""

    NONE = "none"
    LENGTH = "length"  # Content-Length bytes
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until_close"  # a response without a length: its body ends when the server closes
    TUNNEL = "tunnel"  # 101 Switching Protocols or a successful CONNECT: not HTTP from here on


@dataclass(frozen=True)
class Head:
    """A parsed request or response head: start line facts, headers (names lower-cased), body framing."""

    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]
    body: Body
    length: int = 0  # for Body.LENGTH
    method: str = ""  # requests: the method; responses: the method of the request answered
    target: str = ""  # requests only
    status: int = 0  # responses only
    upgrade: bool = False  # requests only: CONNECT, or asks to switch protocols; the framer waits after it

    def header(self, name: str) -> str | None:
        """The values of header ``name`` joined by commas (as HTTP reads repeated fields), or None."""
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of a header, lower-cased (``Connection: keep-alive, Upgrade``)."""
        value = self.header(name)
        return [part.strip().lower() for part in value.split(",") if part.strip()] if value else []

    @property
    def path(self) -> str:
        """The path of a request's target (origin or absolute form), without its query."""
        target = self.target
        if "://" in target:
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        return target.split("?", 1)[0].split("#", 1)[0]

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after this message (HTTP/1.1 unless ``close``; 1.0 if asked)."""
        connection = self.tokens("connection")
        if "close" in connection:
            return False
        return self.version >= (1, 1) or "keep-alive" in connection

    @property
    def expects_continue(self) -> bool:
        return "100-continue" in self.tokens("expect") and self.body is not Body.NONE

    @property
    def interim(self) -> bool:
        """A 1xx response other than 101: another response to the same request follows."""
        return 100 <= self.status < 200 and self.status != 101


@dataclass(frozen=True)
class Start:
    """A message begins; ``data`` is its head, byte for byte."""

    head: Head
    data: bytes


@dataclass(frozen=True)
class Data:
    """Bytes of the current message's body (chunk framing included), or of a stream that is not HTTP."""

    data: bytes


@dataclass(frozen=True)
class End:
    """The current message is complete."""


@dataclass(frozen=True)
class NotHttp:
    """The stream is not HTTP/1.x here: ``data`` and everything after it are passed on as they are."""

    data: bytes


@dataclass(frozen=True)
class Malformed:
    """A message a server must refuse (``reason``); the framer stops; ``data`` is what it held back."""

    reason: str
    data: bytes


Event = Start | Data | End | NotHttp | Malformed


class FramerState(enum.Enum):
    """Where a framer is in its stream."""

    HEAD = "head"
    LENGTH = "length"
    CHUNK_SIZE = "chunk_size"
    CHUNK_DATA = "chunk_data"
    CHUNK_END = "chunk_end"  # the CRLF after a chunk's data
    TRAILER = "trailer"
    UNTIL_CLOSE = "until_close"
    UPGRADE = "upgrade"  # after a request that may switch protocols: nothing is framed until resume()
    PASS = "pass"  # not HTTP, or a tunnel: everything is Data
    STOPPED = "stopped"  # after Malformed: nothing more is framed


class MessageFramer:
    """The machine requests and responses share: heads are found by the subclass, bodies are framed here."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = FramerState.HEAD
        self._remaining = 0
        self._events: list[Event] = []
        self.messages = 0  # complete messages so far

    @property
    def idle(self) -> bool:
        """Between messages, with nothing buffered: the next byte starts a new message."""
        return self._state is FramerState.HEAD and not self._buffer

    @property
    def between(self) -> bool:
        """Between messages: the bytes of the last one have all been passed (the next may be buffered)."""
        return self._state is FramerState.HEAD

    @property
    def passing(self) -> bool:
        """No longer framing: the stream is not HTTP/1.x, a tunnel, or stopped at a malformed message."""
        return self._state in (FramerState.PASS, FramerState.STOPPED)

    def feed(self, data: bytes) -> list[Event]:
        """The events ``data`` completes, in stream order."""
        return list(self.events(data))

    def events(self, data: bytes) -> Iterator[Event]:
        """The events ``data`` completes, each found only once the one before has been handled: a response
        framer asks for the method of the request it answers only when it reaches that response. The
        caller may stop after an End (always the last event of its step): what follows stays buffered, and
        the next call (``events(b"")`` will do) goes on from there."""
        if self._state is FramerState.PASS:
            if self._buffer:  # held before a switch to passing (a tunnel after an upgrade request)
                yield Data(bytes(self._buffer))
                self._buffer.clear()
            if data:
                yield Data(data)
            return
        if self._state is FramerState.STOPPED:
            return
        self._buffer += data
        more = True
        while more and self._buffer:
            self._events = []
            more = self._step()
            yield from self._events

    def feed_eof(self) -> list[Event]:
        """The source closed: a body framed by the close ends here; a partial head (or chunk line) is
        passed on as it is."""
        self._events = []
        if self._state is FramerState.UNTIL_CLOSE:
            self._end()
        elif self._state is FramerState.HEAD and self._buffer:
            self._pass(bytes(self._buffer))
            self._buffer.clear()
        elif self._state is not FramerState.STOPPED:
            self._emit_data(len(self._buffer))  # a truncated chunk line: passed on as it came
        return self._events

    def pass_through(self) -> None:
        """Stop framing: everything from now on is Data (a tunnel, or a stream that is not HTTP)."""
        if self._state is not FramerState.STOPPED:
            self._state = FramerState.PASS

    def keep(self, data: bytes) -> None:
        """Hold ``data`` unframed, behind what is held already, for a later ``events``."""
        self._buffer += data

    # -- the machine ---------------------------------------------------------------------------------------
    def _step(self) -> bool:
        """Consume what the buffer allows in the current state; False when more bytes are needed."""
        match self._state:
            case FramerState.HEAD:
                return self._head()
            case FramerState.LENGTH:
                return self._body_bytes()
            case FramerState.CHUNK_SIZE:
                return self._chunk_size()
            case FramerState.CHUNK_DATA:
                return self._body_bytes()
            case FramerState.CHUNK_END:
                return self._chunk_end()
            case FramerState.TRAILER:
                return self._trailer()
            case FramerState.UNTIL_CLOSE | FramerState.PASS:
                self._emit_data(len(self._buffer))
                return False
            case FramerState.UPGRADE:
                return False
            case _:
                self._buffer.clear()
                return False

    def _head(self) -> bool:
        raise NotImplementedError

    def _start(self, head: Head, size: int) -> None:
        self._events.append(Start(head, bytes(self._buffer[:size])))
        del self._buffer[:size]
        match head.body:
            case Body.NONE:
                self._end()
            case Body.LENGTH:
                self._remaining = head.length
                self._state = FramerState.LENGTH
                if head.length == 0:
                    self._end()
            case Body.CHUNKED:
                self._state = FramerState.CHUNK_SIZE
            case Body.UNTIL_CLOSE:
                self._state = FramerState.UNTIL_CLOSE
            case Body.TUNNEL:
                self._state = FramerState.PASS

    def _end(self) -> None:
        self._events.append(End())
        self.messages += 1
        self._state = FramerState.HEAD

    def _emit_data(self, size: int) -> None:
        if size:
            self._events.append(Data(bytes(self._buffer[:size])))
            del self._buffer[:size]

    def _pass(self, data: bytes) -> None:
        self._events.append(NotHttp(data))
        self._state = FramerState.PASS

    def _malformed(self, reason: str) -> bool:
        self._events.append(Malformed(reason, bytes(self._buffer)))
        self._buffer.clear()
        self._state = FramerState.STOPPED
        return False

    def _body_bytes(self) -> bool:
        size = min(self._remaining, len(self._buffer))
        self._emit_data(size)
        self._remaining -= size
        if self._remaining:
            return False
        if self._state is FramerState.LENGTH:
            self._end()
        else:
            self._state = FramerState.CHUNK_END
        return True

    def _line(self) -> int | None:
        """The length of the line at the start of the buffer, LF included; None while it is incomplete."""
        end = self._buffer.find(b"\n", 0, MAX_LINE_BYTES + 1)
        return None if end < 0 else end + 1

    def _chunk_size(self) -> bool:
        size = self._line()
        if size is None:
            return self._too_long("chunk size line")
        match = _CHUNK_SIZE.fullmatch(bytes(self._buffer[:size]).rstrip(b"\r\n"))
        if match is None:
            return self._malformed("invalid chunk size line")
        self._emit_data(size)
        self._remaining = int(match.group(1), 16)
        self._state = FramerState.CHUNK_DATA if self._remaining else FramerState.TRAILER
        return True

    def _chunk_end(self) -> bool:
        if self._buffer[:1] == b"\n":
            self._emit_data(1)
        elif self._buffer[:2] == b"\r\n":
            self._emit_data(2)
        elif len(self._buffer) < 2 and self._buffer == b"\r":
            return False
        else:
            return self._malformed("chunk data not followed by CRLF")
        self._state = FramerState.CHUNK_SIZE
        return True

    def _trailer(self) -> bool:
        size = self._line()
        if size is None:
            return self._too_long("trailer line")
        empty = bytes(self._buffer[:size]) in (b"\r\n", b"\n")
        self._emit_data(size)
        if empty:
            self._end()
        return True

    def _too_long(self, what: str) -> bool:
        if len(self._buffer) > MAX_LINE_BYTES:
            return self._malformed(f"{what} longer than {MAX_LINE_BYTES} bytes")
        return False

    def _head_end(self) -> int | None:
        """The length of the head at the start of the buffer (blank line included); None if incomplete."""
        match = _HEAD_END.search(self._buffer)
        return None if match is None else match.end()

    @staticmethod
    def _fields(lines: list[bytes]) -> tuple[tuple[str, str], ...] | str:
        """The header fields of a head's lines; a string says why they are refused."""
        fields = []
        for raw in lines:
            line = raw.rstrip(b"\r")
            if line[:1] in (b" ", b"\t"):
                return "obsolete line folding in a header"
            match = _HEADER.fullmatch(line)
            if match is None:
                return "invalid header line"
            fields.append((match.group(1).decode("ascii").lower(), match.group(2).decode("latin-1")))
        return tuple(fields)


def _length(headers: tuple[tuple[str, str], ...]) -> int | str | None:
    """The Content-Length (None: absent); a string when it is invalid or repeated with different values."""
    values = {part.strip() for key, value in headers if key == "content-length" for part in value.split(",")}
    if not values:
        return None
    if len(values) > 1:
        return "conflicting Content-Length values"
    value = values.pop()
    if not _DIGITS.fullmatch(value):
        return f"invalid Content-Length {value[:40]!r}"
    return int(value)


def _chunked_last(headers: tuple[tuple[str, str], ...]) -> bool | None:
    """Whether Transfer-Encoding ends with chunked (None: no Transfer-Encoding)."""
    codings = [p.strip().lower() for k, v in headers if k == "transfer-encoding" for p in v.split(",")]
    codings = [coding for coding in codings if coding]
    if not codings:
        return None
    return codings[-1] == "chunked"


class ResponseFramer(MessageFramer):
    """Responses as a client reads them (RFC 9112 section 6.3): no body after HEAD, 1xx, 204 and 304; a
    tunnel after 101 and a successful CONNECT; chunked, Content-Length, or until the server closes.
    ``method_of`` names the method of the request the next response answers."""

    def __init__(self, method_of: Callable[[], str]) -> None:
        super().__init__()
        self._method_of = method_of

    def _head(self) -> bool:
        line_end = self._buffer.find(b"\n", 0, MAX_HEAD_BYTES)
        if line_end < 0:
            prefix = bytes(self._buffer[: MAX_HEAD_BYTES + 1])
            if len(prefix) > MAX_HEAD_BYTES or not _STATUS_PREFIX.fullmatch(prefix):
                self._pass(bytes(self._buffer))
                self._buffer.clear()
            return False
        line = _STATUS_LINE.fullmatch(bytes(self._buffer[: line_end + 1]))
        if line is None or line.group(1) != b"1":
            self._pass(bytes(self._buffer))
            self._buffer.clear()
            return False
        size = self._head_end()
        if size is None:
            if len(self._buffer) > MAX_HEAD_BYTES:
                return self._malformed(f"response head longer than {MAX_HEAD_BYTES} bytes")
            return False
        lines = bytes(self._buffer[line_end + 1 : size]).split(b"\n")[:-2]
        fields = self._fields(lines)
        if isinstance(fields, str):
            return self._malformed(fields)
        head = self._response(line, fields, self._method_of())
        if isinstance(head, str):
            return self._malformed(head)
        self._start(head, size)
        return True

    @staticmethod
    def _response(line: re.Match[bytes], fields: tuple[tuple[str, str], ...], method: str) -> Head | str:
        version = (int(line.group(1)), int(line.group(2)))
        status = int(line.group(3))

        def head(body: Body, length: int = 0) -> Head:
            return Head(version, fields, body, length, method=method, status=status)

        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            return head(Body.TUNNEL)
        if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            return head(Body.NONE)
        chunked = _chunked_last(fields)
        if chunked is not None:
            return head(Body.CHUNKED if chunked else Body.UNTIL_CLOSE)
        length = _length(fields)
        if isinstance(length, str):
            return length
        if length is None:
            return head(Body.UNTIL_CLOSE)
        return head(Body.LENGTH, length) if length else head(Body.NONE)
