"""The embedded Toxiproxy-compatible server: ``ToxiproxyServer`` on the running event loop,
``ThreadedToxiproxyServer`` on its own loop for synchronous callers, ``run_toxiproxy`` for the command."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ConfigError, EnvironmentUnavailable
from harness.faults._addresses import AddressError, bind_listener, join_host_port
from harness.faults._api import ToxiproxyApi
from harness.faults._collection import ApiError, ProxyCollection
from harness.faults._http import HttpServer
from harness.faults._metrics import ServerMetrics
from harness.net import write_port_file


class ToxiproxySettings(BaseModel):
    """How the server runs; the flags of ``harness toxiproxy`` (those of ``toxiproxy-server`` and more)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8474, ge=0, le=65535)
    config: Path | None = None  # JSON in the /populate format, loaded at start
    seed: int | None = None  # None: a fresh random seed
    proxy_metrics: bool = False
    runtime_metrics: bool = False
    allow_remote: bool = False  # allow proxies to listen on or dial non-loopback addresses


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop when it is installed (faster proxying), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
        return asyncio.new_event_loop
    return uvloop.new_event_loop


class ToxiproxyServer:
    """The HTTP API and every proxy, on the running event loop."""

    def __init__(self, settings: ToxiproxySettings | None = None, **overrides: Any) -> None:
        base = settings or ToxiproxySettings(port=0)
        self.settings = ToxiproxySettings.model_validate({**base.model_dump(), **overrides})
        self.port: int | None = None
        self._http: HttpServer | None = None
        self._collection: ProxyCollection | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the Toxiproxy server has not started")
        return f"http://{join_host_port(self.settings.host, self.port)}"

    async def start(self) -> ToxiproxyServer:
        """Load the config file, if any, then listen; ConfigError or EnvironmentUnavailable on failure."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        metrics = ServerMetrics(
            proxy_metrics=settings.proxy_metrics, runtime_metrics=settings.runtime_metrics
        )
        collection = ProxyCollection(
            rng=random.Random(settings.seed),
            counters=metrics.bytes.counter,
            allow_remote=settings.allow_remote,
            loop=loop,
        )
        self._collection = collection
        if settings.config is not None:
            await self._load_config(collection, settings.config)
        try:
            sock, bound = await bind_listener(join_host_port(settings.host, settings.port))
        except AddressError as exc:
            collection.close()
            raise EnvironmentUnavailable(f"Toxiproxy API cannot listen: {exc}") from None
        self.port = int(bound.rsplit(":", 1)[1])
        self._http = HttpServer(ToxiproxyApi(collection, metrics))
        await self._http.start(sock)
        return self

    @staticmethod
    async def _load_config(collection: ProxyCollection, path: Path) -> None:
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise ConfigError(f"cannot read --config {path}: {exc.strerror or exc}") from None
        try:
            await collection.populate(body)
        except ApiError as exc:
            collection.close()
            raise ConfigError(f"--config {path}: {exc.message}") from None

    async def stop(self) -> None:
        """Stop listening, close API connections, stop every proxy and its connections."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._collection is not None:
            self._collection.close()
            self._collection = None
            await asyncio.sleep(0)  # let the cancelled toxic tasks and aborted transports wind down

    async def __aenter__(self) -> ToxiproxyServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class ThreadedToxiproxyServer:
    """A ToxiproxyServer on its own event loop in a background thread, for synchronous code and tests."""

    def __init__(self, settings: ToxiproxySettings | None = None, **overrides: Any) -> None:
        self._server = ToxiproxyServer(settings, **overrides)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self._server.url

    def start(self, timeout: float = 10.0) -> ThreadedToxiproxyServer:
        self._thread = threading.Thread(target=self._main, name="toxiproxy-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EnvironmentUnavailable(f"the embedded Toxiproxy server did not start within {timeout:.0f}s")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self._server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._server.stop()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ThreadedToxiproxyServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_toxiproxy(
    settings: ToxiproxySettings,
    *,
    port_file: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; write the bound port to ``port_file`` once accepting requests."""

    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        async with ToxiproxyServer(settings) as server:
            assert server.port is not None
            # This process is the proxy's own: what start-up allocated (interpreter, libraries) is moved out
            # of the collector's reach, so a full collection that a burst of API requests sets off does not
            # walk it while proxied traffic waits (measured: 20 ms pauses without, none with).
            gc.freeze()
            if port_file is not None:
                write_port_file(port_file, server.port)
            if on_ready is not None:
                on_ready(server.url)
            await stopping.wait()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve())
