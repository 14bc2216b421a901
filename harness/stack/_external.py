"""An instance the stack did not start (``external = [...]`` in the topology): it has a name, a fault proxy
and a registration like the others, but the harness never starts, stops, kills or restarts it."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from harness.errors import ConfigError, EnvironmentUnavailable


class ExternalService:
    """The stack's view of an already running instance; it stands where a ``ServiceProcess`` would."""

    pid: int | None = None
    returncode: int | None = None
    log_path: Path | None = None

    def __init__(self, name: str, kind: str, url: str, *, ready_path: str = "/health") -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{name}: {url!r} is not http://host:port")
        self.name = name
        self.kind = kind
        self.host = parts.hostname
        self.port: int | None = parts.port
        self.ready_path = ready_path

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        """None here: the stack does not start it."""
        return []

    def is_running(self) -> bool:
        """Always: whether it is well is its health path's to say, and it is never stopped here."""
        return True

    def wait_ready(self, timeout: float) -> ExternalService:
        """Until its health path answers 200, within ``timeout``; EnvironmentUnavailable otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=1.0, trust_env=False) as http:
            while True:
                try:
                    answer = http.get(f"{self.url}{self.ready_path}")
                    if answer.status_code == 200:
                        return self
                    last = f"HTTP {answer.status_code}"
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                if time.monotonic() >= deadline:
                    raise EnvironmentUnavailable(
                        f"{self.name} (external, {self.url}) did not answer {self.ready_path} with 200 "
                        f"within {timeout:g}s ({last}); the stack does not start external services: start it"
                    )
                time.sleep(0.05)  # a poll interval under the deadline

    def stop(self, timeout: float = 0.0) -> None:
        """Nothing: an external instance is left as the stack found it."""

    def kill(self) -> None:
        raise ConfigError(f"{self.name} is external: the harness never kills or restarts it")

    def log_tail(self, lines: int = 20) -> str:
        return ""
