"""Every service's API keeps its own schema under fuzzing: no 5xx, and every answer as documented."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fuzz._fuzz import AnyCase, FuzzRun, load_schema
from tests.fuzz._services import alone, orchestrator_stack

BLOCKING_WAIT = 0.05


def fuzzed(run: FuzzRun, url: str, runs: list[FuzzRun]) -> FuzzRun:
    """Fuzz the service at ``url`` and keep its figures for the summary."""
    runs.append(run)
    return run.fuzz(load_schema(url))


@pytest.mark.behaviour("services.schema", "services.bad_input")
class TestServicesKeepTheirSchema:
    def test_users(self, tmp_path: Path, fuzz_runs: list[FuzzRun]) -> None:
        """users: no 5xx, every status, content type, header and body as documented, Allow complete."""
        with alone("users", tmp_path) as url:
            run = fuzzed(FuzzRun("users"), url, fuzz_runs)
        assert run.passed, run.report()

    def test_notifications(self, tmp_path: Path, fuzz_runs: list[FuzzRun]) -> None:
        """notifications: no 5xx, every status, content type, header and body as documented."""
        with alone("notifications", tmp_path) as url:
            run = fuzzed(FuzzRun("notifications"), url, fuzz_runs)
        assert run.passed, run.report()

    def test_registry(self, tmp_path: Path, fuzz_runs: list[FuzzRun]) -> None:
        """registry: the same, with blocking queries bounded to a short wait so the run stays short."""
        with alone("registry", tmp_path, database=False) as url:
            run = fuzzed(FuzzRun("registry", before=_short_blocking_queries), url, fuzz_runs)
        assert run.passed, run.report()

    def test_orchestrator(self, tmp_path: Path, fuzz_runs: list[FuzzRun]) -> None:
        """orchestrator, with its participants registered: every saga answer as documented."""
        with orchestrator_stack(tmp_path) as url:
            run = fuzzed(FuzzRun("orchestrator"), url, fuzz_runs)
        assert run.passed, run.report()

    def test_echo(self, tmp_path: Path, fuzz_runs: list[FuzzRun]) -> None:
        """echo: the same, with the faults a case switches on switched off again after it."""
        with alone("echo", tmp_path, database=False) as url:
            run = fuzzed(FuzzRun("echo", after=_faults_cleared(url)), url, fuzz_runs)
        assert run.passed, run.report()


def _short_blocking_queries(case: AnyCase) -> None:
    """A lookup with ``index`` blocks for ``wait`` (default 30 s) while nothing changes: keep it short."""
    if case.query and "index" in case.query:
        case.query["wait"] = BLOCKING_WAIT


def _faults_cleared(url: str) -> Callable[[AnyCase], None]:
    """After a case that set faults (a 5xx status, a 60 s delay, unhealthy), make the instance healthy."""

    def clear(case: AnyCase) -> None:
        if case.method.upper() == "PUT" and case.path == "/admin/faults":
            httpx.put(f"{url}/admin/faults", json={}, trust_env=False).raise_for_status()

    return clear
