"""Errors of the fault layer, so callers handle a Toxiproxy failure by kind, not by parsing messages.

HarnessError
└── FaultError                 status and message of the failed Toxiproxy call
    ├── FaultApiError          the server answered with an error status (exit code 2 for a 4xx: the
    │   │                      proxy refused what it was asked; 3 for anything else)
    │   ├── ProxyNotFound      404 proxy not found
    │   ├── ToxicNotFound      404 toxic not found
    │   ├── ProxyExists        409 proxy already exists
    │   ├── ToxicExists        409 toxic already exists
    │   └── ToxicUnsupported   400 invalid toxic type (a real Toxiproxy asked for an HTTP toxic)
    ├── ToxiproxyUnavailable   the server could not be reached (exit code 3)
    └── FaultNotApplied        a run's fault could not be applied: the run stops (the cause's exit code)
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.verdict import ExitCode


class FaultError(HarnessError):
    """A call to the Toxiproxy API failed; ``status`` is the HTTP status when there was an answer."""

    def __init__(self, message: str, *, status: int | None = None, proxy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.proxy = proxy


class FaultApiError(FaultError):
    """The Toxiproxy server answered with an error status and message."""

    def __init__(self, message: str, *, status: int | None = None, proxy: str | None = None) -> None:
        super().__init__(message, status=status, proxy=proxy)
        # a refusal (4xx) is bad input; a server error means the proxy is not working
        refused = status is not None and 400 <= status < 500
        self.exit_code = ExitCode.USAGE if refused else ExitCode.ENVIRONMENT


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


class ToxiproxyUnavailable(FaultError):
    """The Toxiproxy server could not be reached (connection refused, timeout)."""

    exit_code = ExitCode.ENVIRONMENT


class FaultNotApplied(FaultError):
    """A fault a run planned could not be applied. The run stops there: its checks would otherwise judge a
    fault that never happened. Exit code 2 when the proxy refused a value, 3 when it could not be reached."""

    def __init__(self, fault: str, cause: Exception) -> None:
        reason = getattr(cause, "message", None) or str(cause)
        super().__init__(
            f"the fault {fault} could not be applied, so the run stopped: {reason}",
            status=getattr(cause, "status", None),
            proxy=getattr(cause, "proxy", None),
        )
        code = getattr(cause, "exit_code", ExitCode.ENVIRONMENT)
        self.exit_code = code if code in (ExitCode.USAGE, ExitCode.ENVIRONMENT) else ExitCode.ENVIRONMENT
