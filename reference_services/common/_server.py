"""Run an ASGI app on a socket bound here, so port 0 works and the parent learns the real port from a file."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from harness.errors import EnvironmentUnavailable
from harness.net import write_port_file


def stopping_event(app: FastAPI) -> asyncio.Event:
    """The app's "a stop was requested" event, created on first use; set by ``run_app`` on SIGTERM/SIGINT."""
    event = getattr(app.state, "stopping", None)
    if event is None:
        event = app.state.stopping = asyncio.Event()
    return event


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (0 picks a free port) before the app exists.

    A port in use (or an address not on this machine) is EnvironmentUnavailable: one line, exit code 3.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        raise EnvironmentUnavailable(f"cannot listen on {shown}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """Sets ``app.state.stopping`` the moment a stop is requested.

    uvicorn drains open requests *before* the lifespan shutdown runs, so a long-poll handler would hold
    shutdown for the whole graceful timeout; handlers that wait for long end early on this event instead.
    """

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self._stopping = stopping
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        super().handle_exit(sig, frame)


def run_app(
    factory: Callable[[int], FastAPI],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    port_file: Path | None = None,
    log_level: str = "warning",
) -> None:
    """Bind, announce the port, build the app for it, and serve until SIGINT or SIGTERM.

    The port file is written as soon as the socket listens (a connection waits in its backlog until the app
    is up): the stack points this instance's fault proxy at it before the instance registers itself under
    the proxy's address. Readiness is the ready path's to say, not the file's."""
    sock = bind_socket(host, port)
    bound_port = int(sock.getsockname()[1])
    if port_file is not None:
        write_port_file(port_file, bound_port)
    app = factory(bound_port)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        lifespan="on",
        loop="auto",  # uvloop when installed
    )
    server = _Server(config, stopping_event(app))
    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
