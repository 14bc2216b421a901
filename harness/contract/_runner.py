"""``harness contract verify`` as a library call: committed pacts -> providers (started or given) -> results.

Results are recorded (merged per consumer and provider) so can-i-deploy can answer later.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.contract._pacts import InteractionKind, PactFile, load_pacts
from harness.contract._providers import provider_target, running_providers
from harness.contract._results import PactResult, record_results
from harness.contract._verify import ProviderTarget, verify_pact
from harness.errors import ConfigError, EnvironmentUnavailable

DEFAULT_CONTRACTS = Path("contracts")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class VerificationRun:
    """The pacts verified, their results, and where the results were recorded."""

    pacts: tuple[PactFile, ...]
    results: tuple[PactResult, ...]
    recorded_at: Path

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failing(self) -> list[str]:
        return [result.pair for result in self.results if not result.passed]


def verify_contracts(
    pacts: Sequence[PactFile], targets: Mapping[str, ProviderTarget], *, progress: Progress = lambda _: None
) -> list[PactResult]:
    """Verify each pact against its provider's target, in order."""
    results = []
    for pact in pacts:
        target = targets.get(pact.provider)
        if target is None:
            raise ConfigError(f"no running provider {pact.provider!r} to verify {pact.path.name} against")
        messages_only = all(i.kind is InteractionKind.MESSAGE for i in pact.interactions)
        where = f"{pact.provider}'s message producer" if messages_only else target.url
        progress(f"verifying {pact.pair} ({len(pact.interactions)} interaction(s)) against {where}")
        results.append(verify_pact(pact, target))
    return results


def run_verification(
    contracts: Path,
    results_path: Path,
    *,
    providers: Sequence[str] = (),
    urls: Mapping[str, str] | None = None,
    workdir: Path | None = None,
    progress: Progress = lambda _: None,
    registry_token: str | None = None,
) -> VerificationRun:
    """Verify the committed pacts (of ``providers`` only, when given) and record the results.

    A provider with a URL in ``urls`` is verified there (users and notifications must run with
    ``--test-mode``); every other provider is started as a process under ``workdir`` (default: a
    temporary folder, removed afterwards). ``registry_token`` is the write token of a registry in
    ``urls`` (a started one gets a token of its own).
    """
    pacts = [p for p in load_pacts(contracts) if not providers or p.provider in providers]
    if not pacts:
        wanted = f" for provider(s) {', '.join(providers)}" if providers else ""
        raise ConfigError(f"no pacts in {contracts}{wanted}")
    needed = sorted({p.provider for p in pacts})
    given = {
        name: provider_target(name, url, registry_token=registry_token)
        for name, url in (urls or {}).items()
        if name in needed
    }
    for name, target in given.items():
        if target.url is not None:
            ensure_reachable(name, target.url)
    to_start = [name for name in needed if name not in given]
    with contextlib.ExitStack() as stack:
        targets = dict(given)
        if to_start:
            folder = workdir
            if folder is None:
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-contract-")))
            progress(f"starting {', '.join(to_start)} (test mode) under {folder}")
            targets.update(stack.enter_context(running_providers(to_start, folder)))
        results = verify_contracts(pacts, targets, progress=progress)
    record_results(results_path, results)
    return VerificationRun(tuple(pacts), tuple(results), results_path)


def ensure_reachable(name: str, url: str, *, timeout: float = 5.0) -> None:
    """Any HTTP answer will do; none at all is one clear error, not one verifier error per interaction."""
    try:
        with httpx.Client(trust_env=False, timeout=timeout) as http:
            http.get(url)
    except httpx.TransportError as exc:
        reason = next(iter(str(exc).splitlines()), "") or type(exc).__name__
        raise EnvironmentUnavailable(f"cannot reach {name} at {url} ({reason})") from None
