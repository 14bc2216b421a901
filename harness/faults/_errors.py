"""Errors of the fault layer, so callers handle a Toxiproxy failure by kind, not by parsing messages.

HarnessError
└── FaultError                 status and message of the failed Toxiproxy call (exit code 1)
    ├── FaultApiError          the server answered with an error status
    │   ├── ProxyNotFound      404 proxy not found
    │   ├── ToxicNotFound      404 toxic not found
    │   ├── ProxyExists        409 proxy already exists
    │   ├── ToxicExists        409 toxic already exists
    │   └── ToxicUnsupported   400 invalid toxic type (a real Toxiproxy asked for an HTTP toxic)
    └── ToxiproxyUnavailable   the server could not be reached (exit code 3)
"""

from __future__ import annotations

from harness.errors import HarnessError


class FaultError(HarnessError):
    """A call to the Toxiproxy API failed; ``status`` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None, proxy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.proxy = proxy


class FaultApiError(FaultError):
    """The Toxiproxy server answered with an error status and message."""


class ProxyNotFound(FaultApiError):
    """No proxy of that name exists."""


class ToxicNotFound(FaultApiError):
    """The proxy exists but has no toxic of that name."""

    def __init__(
        self, message: str, *, status: int | None = None, proxy: str | None = None, toxic: str
    ) -> None:
        super().__init__(message, status=status, proxy=proxy)
        self.toxic = toxic


class ProxyExists(FaultApiError):
    """A proxy of that name already exists."""


class ToxicExists(FaultApiError):
    """The proxy already has a toxic of that name."""


class ToxicUnsupported(FaultApiError):
    """The server has no toxic of that type: an HTTP toxic asked of a real Toxiproxy, or a typo."""

    exit_code = 2


class ToxiproxyUnavailable(FaultError):
    """The Toxiproxy server could not be reached (connection refused, timeout)."""

    exit_code = 3
