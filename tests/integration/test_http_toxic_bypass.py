"""The fault proxy's HTTP layer cannot be bypassed and stays bounded, over real TCP with a proxy process:
request shapes uvicorn (llhttp) serves are faulted or refused, never passed on unframed; a client that
pipelines without reading does not grow the proxy; nothing follows a response that ends with the
connection."""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from harness.faults import ToxiproxyClient, ToxiproxyProcess
from harness.faults._limits import MAX_BODY_ATTRIBUTE
from tests._children import child_env
from tests.integration._support import tcp_server

WAIT = 10.0
PIPELINE_SECONDS = 2.0
RSS_BOUND = 32 << 20  # growth of the proxy process while one client pipelines without reading


class Served:
    """An ASGI app that answers every request ``200 ok`` and records the path it served."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(scope["path"])
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Served, str]]:
    """uvicorn with httptools (llhttp), as the reference services run, on a loopback port, in a thread."""
    app = Served()
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, http="httptools", loop="asyncio", lifespan="off", log_level="critical",
                            access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield app, f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


class _CloseDelimited(socketserver.BaseRequestHandler):
    """Reads one request head, answers without a length (the body ends with the connection), closes."""

    def handle(self) -> None:
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            received += chunk
        version = b"HTTP/1.0" if b"/one-oh" in received else b"HTTP/1.1"
        self.request.sendall(version + b" 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until the close")


@pytest.fixture(scope="module")
def close_delimited() -> Iterator[str]:
    with tcp_server(_CloseDelimited) as address:
        yield address


@pytest.fixture(scope="module")
def toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToxiproxyProcess]:
    with ToxiproxyProcess(workdir=tmp_path_factory.mktemp("toxiproxy"), env=child_env()) as server:
        yield server


@pytest.fixture
def api(toxiproxy: ToxiproxyProcess) -> Iterator[ToxiproxyClient]:
    """A client of the proxy process; every proxy is deleted after the test."""
    with ToxiproxyClient(toxiproxy.url) as client:
        yield client
        for proxy in client.proxies():
            client.delete_proxy(proxy)


def faulted_proxy(api: ToxiproxyClient, upstream: str, **attributes: str | int) -> int:
    """A proxy to ``upstream`` with an ``http_error`` at toxicity 1 on its requests; its port."""
    port = api.create_proxy("web", upstream).port
    api.add_toxic("web", "http_error", stream="upstream", name="errors", attributes=attributes)
    return port


def exchange(port: int, data: bytes, *, until_close: bool = False) -> bytes:
    """Send ``data``, then read one response with a Content-Length (or, ``until_close``, everything until
    the peer closes): what came back."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        with contextlib.suppress(OSError):  # the proxy may refuse (and reset) before everything is sent
            sock.sendall(data)
        with contextlib.suppress(OSError):
            while (chunk := sock.recv(65536)) and (until_close or not _complete(received + chunk)):
                received += chunk
            received += chunk
    return received


def _complete(data: bytes) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)\r$", head + b"\r")
    return bool(found and length and len(body) >= int(length.group(1)))


def status(answer: bytes) -> int | None:
    line = answer.split(b"\r\n", 1)[0].split(b" ")
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") else None


# Request lines uvicorn serves that the proxy passed on unframed before
SHAPES = [
    pytest.param(b"GET  /blocked HTTP/1.1\r\nHost: svc\r\n\r\n", id="two-spaces"),
    pytest.param(b"GET /blocked\r\n\r\n", id="http-0.9"),
    pytest.param(b"GET /blocked HTTP/2.0\r\nHost: svc\r\n\r\n", id="http-2.0-in-the-request-line"),
    # uvicorn serves a target of up to 65,535 bytes (httptools.parse_url's limit): a line just over 64 KiB
    pytest.param(
        b"GET /blocked" + b"x" * 65_527 + b" HTTP/1.1\r\nHost: svc\r\n\r\n", id="request-line-over-64-KiB"
    ),
]
# Spellings of /blocked a server routes as /blocked (uvicorn decodes, http.server folds leading slashes)
SPELLINGS = [
    pytest.param(b"GET /%62locked HTTP/1.1\r\nHost: svc\r\n\r\n", id="percent-encoded-path"),
    pytest.param(b"GET //blocked HTTP/1.1\r\nHost: svc\r\n\r\n", id="doubled-slash"),
]


@pytest.mark.behaviour("toxic.http_error", "proxy.http_framing")
class TestNoBypass:
    @pytest.mark.parametrize("request_bytes", SHAPES)
    def test_what_uvicorn_serves_is_faulted_or_refused(
        self, api: ToxiproxyClient, served: tuple[Served, str], request_bytes: bytes
    ) -> None:
        """Each shape gets 200 from uvicorn directly; through the proxy, the toxic's 503 or a 400, never
        the server's answer, and the server never sees it."""
        app, upstream = served
        assert status(exchange(int(upstream.rsplit(":", 1)[1]), request_bytes)) == 200  # uvicorn serves it
        before = len(app.paths)
        answer = exchange(faulted_proxy(api, upstream, status=503), request_bytes)
        assert status(answer) in (503, 400), answer[:200]
        assert len(app.paths) == before

    @pytest.mark.parametrize("request_bytes", SHAPES + SPELLINGS)
    def test_a_path_prefix_filter_is_not_bypassed(
        self, api: ToxiproxyClient, served: tuple[Served, str], request_bytes: bytes
    ) -> None:
        """With ``path_prefix=/blocked``: the same shapes are faulted or refused; other paths still pass."""
        app, upstream = served
        port = faulted_proxy(api, upstream, status=503, path_prefix="/blocked")
        before = len(app.paths)
        answer = exchange(port, request_bytes)
        assert status(answer) in (503, 400), answer[:200]
        assert len(app.paths) == before
        assert status(exchange(port, b"GET /open HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")) == 200
        assert app.paths[before:] == ["/open"]


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.behaviour("toxic.http_error", "proxy.http_framing")
class TestBounded:
    def test_a_client_that_pipelines_without_reading_does_not_grow_the_proxy(
        self, api: ToxiproxyClient, toxiproxy: ToxiproxyProcess, served: tuple[Served, str]
    ) -> None:
        """Requests answered with a 64 KiB error body, sent for 2 s and never read: the proxy stops reading
        the client, and its RSS grows by less than the bound."""
        assert toxiproxy.pid is not None
        port = faulted_proxy(api, served[1], body="x" * MAX_BODY_ATTRIBUTE)
        request = b"GET /p HTTP/1.1\r\nHost: svc\r\n\r\n"
        batch = request * 256
        sent = 0
        baseline = peak = rss(toxiproxy.pid)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.setblocking(False)
            deadline = time.monotonic() + PIPELINE_SECONDS
            while time.monotonic() < deadline:
                try:
                    sent += sock.send(batch)
                except BlockingIOError:
                    time.sleep(0.01)  # the proxy stopped reading: the socket buffers are full
                peak = max(peak, rss(toxiproxy.pid))
        requests = sent // len(request)
        growth = peak - baseline
        print(f"pipelined {requests:,} requests ({sent:,} bytes) unread in {PIPELINE_SECONDS:g} s: proxy RSS "
              f"{baseline / 2**20:.1f} MiB -> peak {peak / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB, bound "
              f"{RSS_BOUND / 2**20:.0f} MiB)")  # fmt: skip
        assert growth < RSS_BOUND


@pytest.mark.behaviour("toxic.http_error", "proxy.http_framing")
class TestCloseDelimited:
    @pytest.mark.parametrize(
        "path", [pytest.param("/stream", id="http-1.1"), pytest.param("/one-oh", id="1.0")]
    )
    def test_nothing_is_written_after_a_response_that_ends_with_the_connection(
        self, api: ToxiproxyClient, close_delimited: str, path: str
    ) -> None:
        """A response without a length is followed by the close only: the proxy's answer to the next
        pipelined request is not appended to its body."""
        port = faulted_proxy(api, close_delimited, path_prefix="/blocked")
        pipelined = f"GET {path} HTTP/1.1\r\nHost: svc\r\n\r\nGET /blocked HTTP/1.1\r\nHost: svc\r\n\r\n"
        answer = exchange(port, pipelined.encode(), until_close=True)
        assert answer.endswith(b"\r\n\r\nstreamed until the close"), answer
        assert b"503" not in answer
