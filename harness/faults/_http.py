"""A small HTTP/1.1 server on asyncio streams that writes exactly the bytes a handler returns, because the
API must answer byte for byte like Go's ``net/http`` and an ASGI server would reshape the responses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote

from harness.faults._gojson import go_string
from harness.faults._limits import MAX_BODY_BYTES, body_too_large

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 << 10  # Go allows 1 MiB; parsing that many header lines would hold the loop
READ_TIMEOUT = 15.0  # Toxiproxy's server read timeout
IDLE_TIMEOUT = 60.0  # and its idle timeout for keep-alive connections
DISCARD_TIMEOUT = 2.0  # how long the rest of a refused body is read and dropped before closing
DISCARD_BYTES = 64 << 20
TEXT_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"))
_MALFORMED = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"400 Bad Request"
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query
    headers: dict[str, str]  # lower-cased names; the first value of a repeated header
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


class _Malformed(Exception):
    pass


class _TooLarge(Exception):
    """The body is over MAX_BODY_BYTES: refused from its declared length, or as soon as it passes it."""

    def __init__(self, length: int | None) -> None:
        super().__init__(body_too_large(length))


def http_error(message: str, status: int) -> Response:
    """Go's ``http.Error`` with a JSON message, as Toxiproxy writes it: text/plain, nosniff, a newline."""
    body = f'{{"error":{go_string(message)},"status":{status}}}\n'.encode()
    return Response(status, body, TEXT_HEADERS)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "status code " + str(status)


def render(response: Response, *, head_only: bool = False, connection: str | None = None) -> bytes:
    """The response as Go writes it: handler headers sorted, then Date and Content-Length."""
    lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
    lines += [f"{name}: {value}" for name, value in sorted(response.headers)]
    if connection:
        lines.append(f"Connection: {connection}")
    lines.append(f"Date: {formatdate(usegmt=True)}")
    if response.status != 204 and response.status >= 200:
        lines.append(f"Content-Length: {len(response.body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    chunks = 0
    while True:
        chunks += 1
        if chunks % 256 == 0:
            await asyncio.sleep(0)  # reads from the buffer do not yield: tiny chunks must not hold the loop
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise _Malformed from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise _TooLarge(None)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _Malformed


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[Request, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    try:
        request_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise _Malformed from None
    if not version.startswith("HTTP/1.") or not method:
        raise _Malformed
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _Malformed
        headers.setdefault(name.lower(), value.strip())
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = 0
    if not chunked:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _Malformed from None
        if length < 0:
            raise _Malformed
        if length > MAX_BODY_BYTES:
            raise _TooLarge(length)  # before any of the body is read, and instead of 100 Continue
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if chunked:
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(length) if length else b""
    if target.startswith(("http://", "https://")):
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    path = unquote(target.partition("?")[0])
    return Request(method, path, headers, body), version


async def _refuse_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: Response
) -> None:
    """Answer, close our side, then read and drop what the client still sends, for a bounded time.

    Closing with unread bytes would send a TCP reset, and a client that writes its whole body before
    reading (httpx does) would lose the answer; the body is never kept, and the time is bounded.
    """
    writer.write(render(response, connection="close"))
    with contextlib.suppress(ConnectionError, TimeoutError, OSError):
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        dropped = 0
        async with asyncio.timeout(DISCARD_TIMEOUT):
            while dropped < DISCARD_BYTES and (chunk := await reader.read(1 << 16)):
                dropped += len(chunk)


class HttpServer:
    """Serves ``handler`` on a bound socket until ``close``."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEADER_BYTES)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve_requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except _Malformed:
            writer.write(_MALFORMED)
        except _TooLarge as exc:
            await _refuse_body(reader, writer, http_error(str(exc), 413))
        except asyncio.LimitOverrunError:
            writer.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Connection: close\r\n\r\n431 Request Header Fields Too Large"
            )
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve_requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = READ_TIMEOUT
        while True:
            async with asyncio.timeout(timeout):
                request, version = await _read_request(reader, writer)
            timeout = IDLE_TIMEOUT  # a kept-alive connection may sit idle this long before its next request
            try:
                response = await self._handler(request)
            except Exception:
                logger.exception("handler failed for %s %s", request.method, request.path)
                response = Response(500, b"Internal Server Error\n", (("Content-Type", "text/plain"),))
            connection_header = request.headers.get("connection", "").lower()
            keep_alive = (
                connection_header != "close" if version == "HTTP/1.1" else connection_header == "keep-alive"
            )
            connection = None
            if not keep_alive:
                connection = "close"
            elif version != "HTTP/1.1":
                connection = "keep-alive"
            writer.write(render(response, head_only=request.method == "HEAD", connection=connection))
            await writer.drain()
            if not keep_alive:
                return
