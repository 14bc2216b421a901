"""The one error tree of the harness, so callers and the CLI can handle every failure in one place.

Exit codes come from the one map in ``harness.verdict`` (``ExitCode``).

HarnessError                      exit code 1 unless a subclass says otherwise
├── ConfigError                   2: bad flags, settings or files
├── EnvironmentUnavailable        3: a process, port or server the run needs is not there
│   └── ServiceStartError         a service process did not become ready
├── CheckFailed                   1: a run finished and a check did not hold
├── RunEnded                      a run's own exit code, after its verdict was printed
└── CallError                     a ServiceClient call could not be served
    ├── NoAvailableInstance       discovery found none, or every breaker is open
    ├── CircuitOpenError          the chosen instance's breaker rejected the call
    ├── BulkheadFullError         too many calls in flight
    ├── DeadlineExceeded          the overall deadline ran out
    └── CallFailed                every attempt failed at the transport level
RegistryError                     the registry answered something unexpected
├── RegistryUnavailable           the registry could not be reached
└── RegistryRefused               2: a write without the registry's token, or with a wrong one
"""

from __future__ import annotations

from harness.verdict import ExitCode


class HarnessError(Exception):
    """Root of every error the harness raises on purpose."""

    exit_code: int = ExitCode.DEVIATED


class ConfigError(HarnessError):
    """Flags, settings or a file given by the user are not valid."""

    exit_code = ExitCode.USAGE


class EnvironmentUnavailable(HarnessError):
    """Something the run needs (a process, a port, a server) is not available."""

    exit_code = ExitCode.ENVIRONMENT


class ServiceStartError(EnvironmentUnavailable):
    """A service process exited or did not become ready in time."""

    def __init__(self, message: str, *, service: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.service = service
        self.log_tail = log_tail


class CheckFailed(HarnessError):
    """A run completed, and at least one of its checks did not hold."""

    exit_code = ExitCode.DEVIATED


class RunEnded(HarnessError):
    """Ends a command with its run's exit code (a verdict, an interrupt) after the run printed its summary."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CallError(HarnessError):
    """A call through ServiceClient could not be served."""

    def __init__(self, message: str, *, service: str) -> None:
        super().__init__(message)
        self.service = service


class NoAvailableInstance(CallError):
    """No instance of the service is known, or every known instance has an open breaker."""


class CircuitOpenError(CallError):
    """The breaker of the chosen instance rejected the call without touching the network."""

    def __init__(self, message: str, *, service: str, instance: str, retry_in: float) -> None:
        super().__init__(message, service=service)
        self.instance = instance
        self.retry_in = retry_in


class BulkheadFullError(CallError):
    """The bulkhead has no room for another concurrent call."""

    def __init__(self, message: str, *, service: str, limit: int) -> None:
        super().__init__(message, service=service)
        self.limit = limit


class DeadlineExceeded(CallError):
    """The overall deadline of the call ran out, across all attempts."""

    def __init__(self, message: str, *, service: str, deadline: float) -> None:
        super().__init__(message, service=service)
        self.deadline = deadline


class CallFailed(CallError):
    """Every attempt failed without an HTTP response (connect error, reset, timeout)."""

    def __init__(self, message: str, *, service: str, attempts: int) -> None:
        super().__init__(message, service=service)
        self.attempts = attempts


class RegistryError(HarnessError):
    """The registry answered with a status or body the client did not expect."""

    exit_code = ExitCode.ENVIRONMENT


class RegistryUnavailable(RegistryError):
    """The registry could not be reached."""


class RegistryRefused(RegistryError):
    """The registry refused a write (401/403): its token is missing or wrong, a configuration problem."""

    exit_code = ExitCode.USAGE
