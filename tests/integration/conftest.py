"""Integration fixtures: a real registry process on loopback, and a health target tests can switch."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from harness.stack import ProcessSpec, ServiceProcess, SettingValue
from tests._children import child_env


@dataclass(frozen=True)
class RunningRegistry:
    """A registry child process and the settings it was started with."""

    process: ServiceProcess
    event_log: Path
    ttl: float
    check_interval: float
    check_timeout: float
    check_failures: int

    @property
    def url(self) -> str:
        return self.process.url


def start_registry(
    workdir: Path,
    *,
    ttl: float = 1.0,
    check_interval: float = 0.2,
    check_timeout: float = 0.3,
    check_failures: int = 3,
    port: int = 0,
    token_file: Path | None = None,
) -> RunningRegistry:
    """Start ``harness serve registry`` as a child process and wait until it answers ``/health``."""
    event_log = workdir / "registry-events.jsonl"
    settings: dict[str, SettingValue] = {"event_log": event_log, "ttl": ttl, "check_interval": check_interval,
                                         "check_timeout": check_timeout, "check_failures": check_failures,
                                         "token_file": token_file}  # fmt: skip
    process = ServiceProcess(ProcessSpec("registry", "registry", settings, port=port, env=child_env()),
                             workdir=workdir)  # fmt: skip
    process.start()
    return RunningRegistry(process, event_log, ttl, check_interval, check_timeout, check_failures)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """One registry per test module, with a short TTL and fast health checks; tests use unique names."""
    running = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture
async def client(registry: RunningRegistry) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the module's registry."""
    async with httpx.AsyncClient(base_url=registry.url, timeout=10.0, trust_env=False) as http:
        yield http


class HealthTarget:
    """A tiny HTTP server in a thread: answers every GET with ``status`` after ``delay`` seconds."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.hits = 0
        self._released = threading.Event()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.hits += 1
                if target.delay:
                    target._released.wait(target.delay)
                status = target.status
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the checker gave up waiting and closed the connection
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/health"

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def health_target() -> Iterator[HealthTarget]:
    """A health endpoint for one test, healthy until the test says otherwise."""
    target = HealthTarget()
    try:
        yield target
    finally:
        target.close()
