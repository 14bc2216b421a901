"""Runs the pact verifier for one pact against one provider and turns its report into a PactResult.

Provider states are set through the provider's test-mode URL, or by a function in this process that a
CallbackServer exposes for the duration of the verification (it also serves the provider's messages).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from harness.contract._callbacks import MESSAGE_PATH, CallbackServer, MessageFunction, StateFunction
from harness.contract._pacts import PactFile
from harness.contract._results import InteractionResult, PactResult
from harness.errors import EnvironmentUnavailable


@dataclass(frozen=True)
class ProviderTarget:
    """Where and how a provider is verified: its HTTP URL, its states, and its messages.

    ``headers`` replace the pact's values in every replayed request: a credential the pact holds only as
    an example (the registry's write token) is sent as the provider's real one.
    """

    name: str
    url: str | None = None
    state_url: str | None = None
    state_function: StateFunction | None = None
    messages: MessageFunction | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.url is None and self.messages is None:
            raise ValueError(f"provider {self.name!r} needs a URL, a message producer, or both")
        if self.state_url is not None and self.state_function is not None:
            raise ValueError("give a state URL or a state function, not both")


@contextlib.contextmanager
def _stdout_captured() -> Iterator[None]:
    """The verifier prints its report on file descriptor 1; keep it off the terminal (it is in the result)."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(1)
        try:
            os.dup2(sink.fileno(), 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def verify_pact(pact: PactFile, target: ProviderTarget, *, quiet: bool = True) -> PactResult:
    """Replay every interaction of ``pact`` against ``target`` and report the verdict per interaction."""
    os.environ["PACT_DO_NOT_TRACK"] = "true"  # the verifier pings an analytics service unless told not to
    try:  # imported here: pact-python is a development dependency, and loading its FFI is not free
        from pact import Verifier
    except ImportError as exc:
        raise EnvironmentUnavailable(
            "provider verification needs pact-python: pip install -e '.[dev]'"
        ) from exc

    host = urlsplit(target.url).hostname if target.url else "127.0.0.1"
    with CallbackServer(states=target.state_function, messages=target.messages) as callbacks:
        verifier = Verifier(target.name, host=host).set_coloured_output(enabled=False)
        if target.url is not None:
            verifier.add_transport(url=target.url)
        if target.headers:
            verifier.add_custom_headers(target.headers)
        if target.messages is not None:
            verifier.add_transport(protocol="message", port=callbacks.port, path=MESSAGE_PATH)
        if target.state_url is not None:
            verifier.state_handler(target.state_url, teardown=True, body=True)
        elif target.state_function is not None:
            verifier.state_handler(callbacks.state_url, teardown=True, body=True)
        verifier.add_source(str(pact.path))
        # "Failed to execute verifier" (RuntimeError) only says that something failed: results say what.
        with _stdout_captured() if quiet else contextlib.nullcontext(), contextlib.suppress(RuntimeError):
            verifier.verify()
    return _result(pact, target, verifier.results, verifier.output(strip_ansi=True), callbacks.state_errors)


def _result(
    pact: PactFile,
    target: ProviderTarget,
    report: dict[str, Any],
    output: str,
    failed_states: dict[str, str],
) -> PactResult:
    interactions = []
    for item in report.get("interactionResults", []):
        states = tuple(str(s) for s in item.get("providerStates", []))
        problems = [failed_states[s] for s in states if s in failed_states]
        passed = item.get("result") == "OK" and not problems
        if item.get("result") != "OK":
            problems += _mismatches(item.get("mismatch") or {})
        interactions.append(
            InteractionResult(
                description=str(item.get("description", "")),
                states=states,
                passed=passed,
                mismatches=tuple(problems),
            )
        )
    seen = {(i.description, i.states) for i in interactions}
    missing = [i for i in pact.interactions if (i.description, i.states) not in seen]
    error = None
    if missing:
        error = f"{len(missing)} interaction(s) were not verified: " + "; ".join(i.label for i in missing)
    passed = (
        bool(report.get("result"))
        and not failed_states
        and not missing
        and all(i.passed for i in interactions)
    )
    return PactResult(
        consumer=pact.consumer,
        provider=pact.provider,
        pact_file=str(pact.path),
        pact_sha256=pact.sha256,
        provider_url=target.url,
        verified_at=datetime.now(UTC),
        passed=passed,
        interactions=tuple(interactions),
        error=error,
        output=output,
    )


def _mismatches(mismatch: dict[str, Any]) -> list[str]:
    """One line per mismatch: ``$.available: Expected ... but was ...`` or the verifier's error message."""
    if mismatch.get("type") == "error":
        return [str(mismatch.get("message", "verification error"))]
    lines = []
    for item in mismatch.get("mismatches", []):
        text = str(item.get("mismatch") or item)
        path = item.get("path")
        kind = item.get("type", "")
        where = f"{path} -> " if path else ""
        lines.append(f"{kind}: {where}{text}" if kind else f"{where}{text}")
    return lines or ["verification failed"]
