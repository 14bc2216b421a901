"""Fuzz one service's OpenAPI with schemathesis: bounded, deterministic, and counted for the docs.

Each operation gets its documented examples and the coverage phase's planned cases (boundary values,
missing and wrong-typed parameters, undocumented methods), then at most ``MAX_EXAMPLES`` generated
requests, valid and invalid; a service gets ``SERVICE_BUDGET`` seconds. Every answer must be: no 5xx,
a documented status, with the documented content type, headers and body; a 405 names every method in
``Allow``.

The operations are driven here, one after another, with the hypothesis tests schemathesis's own pytest
integration builds (``get_all_tests``, not public: pyproject pins schemathesis to 4.32.x for it): its
``from_fixture`` entry point cannot run under pytest 9.2 (it rewrites ``Node._nodeid``, which pytest 9.2
no longer has), and driving them here also lets one run count its examples, collect every failure, and
stop at the service's budget.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import requests
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation.meta import TestPhase
from schemathesis.pytest.lazy import get_all_tests

MAX_EXAMPLES = 100
SERVICE_BUDGET = 60.0
REQUEST_TIMEOUT = 5.0
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
)

AnyCase = schemathesis.Case[Any]  # the operation type is not ours to name
Hook = Callable[[AnyCase], None]


def schemathesis_config(base_url: str) -> schemathesis.Config:
    """The run's settings: deterministic (the same requests in every CI run), bounded, our checks only."""
    return schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "request-timeout": REQUEST_TIMEOUT,
            "cache": {"enabled": False},  # no .schemathesis/ folder in the work tree
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


def load_schema(base_url: str) -> schemathesis.BaseSchema:
    """The OpenAPI the running service serves (fetched without proxies: loopback stays loopback)."""
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        response = http.get(f"{base_url}/openapi.json")
        response.raise_for_status()
        spec = response.json()
    return schemathesis.openapi.from_dict(spec, config=schemathesis_config(base_url))


class BudgetSpent(Exception):
    """The service's time budget ran out before this operation was done."""


@dataclass
class FuzzRun:
    """One service's fuzzing: every operation in turn, each answer validated, examples and failures counted.

    ``before`` may adjust a case (bound a wait the test cannot afford), ``after`` may undo what a case
    changed (a fault it switched on). Past the budget the remaining operations are cut short and named in
    the summary, so a slow run cannot hold CI and cannot pass unnoticed either.
    """

    service: str
    before: Hook | None = None
    after: Hook | None = None
    budget: float = SERVICE_BUDGET
    operations: list[str] = field(default_factory=list)
    generated: Counter[str] = field(default_factory=Counter)
    planned: Counter[str] = field(default_factory=Counter)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)  # operation -> finding -> curl
    errors: dict[str, str] = field(default_factory=dict)
    cut_short: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def fuzz(self, schema: schemathesis.BaseSchema) -> FuzzRun:
        """Fuzz every operation of ``schema``, in order, within the budget."""
        started = time.monotonic()
        deadline = started + self.budget
        settings = hypothesis.settings(
            max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False
        )
        with requests.Session() as session:
            session.trust_env = False  # never through a proxy from the environment

            def check(case: AnyCase) -> None:
                if time.monotonic() > deadline:
                    raise BudgetSpent
                self._check(case, session)

            for built in get_all_tests(schema=schema, test_func=check, settings=settings, given_kwargs=None):
                if not isinstance(built, Ok):
                    self.errors[str(built.err().label)] = str(built.err())
                    continue
                operation, test = built.ok()
                self.operations.append(operation.label)
                try:
                    test()
                except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup is a BaseExceptionGroup
                    self._outcome(operation.label, exc)  # a broken test, or the budget
                finally:
                    self.elapsed = time.monotonic() - started
        return self

    def _outcome(self, operation: str, exc: BaseException) -> None:
        """Sort what stopped an operation early: the budget, or an error in the test itself."""
        leaves = _leaves(exc)
        if not all(isinstance(leaf, Exception) for leaf in leaves):
            raise exc  # an interrupt, not a finding
        if any(isinstance(leaf, BudgetSpent) for leaf in leaves):
            self.cut_short.append(operation)
        others = [leaf for leaf in leaves if not isinstance(leaf, BudgetSpent)]
        if others:  # a network error, an unusable schema
            self.errors[operation] = "; ".join(f"{type(e).__name__}: {_first_line(str(e))}" for e in others)

    def _check(self, case: AnyCase, session: requests.Session) -> None:
        operation = case.operation.label
        if self.before is not None:
            self.before(case)
        fuzzed = case.meta is None or case.meta.phase.name is TestPhase.FUZZING
        (self.generated if fuzzed else self.planned)[operation] += 1
        try:
            case.call_and_validate(session=session)
        except FailureGroup as exc:  # recorded, not raised: the operation goes on, so one finding hides none
            found = self.failures.setdefault(operation, {})
            for failure in exc.exceptions:
                found.setdefault(
                    f"{failure.code} {failure.title}: {_first_line(failure.message)}", _curl(exc)
                )
        finally:
            if self.after is not None:
                self.after(case)

    @property
    def failure_count(self) -> int:
        return sum(len(found) for found in self.failures.values())

    @property
    def passed(self) -> bool:
        return not (self.failures or self.errors or self.cut_short)

    def summary(self) -> str:
        """One line for the terminal and the docs: operations, requests, failures, time."""
        generated, planned = sum(self.generated.values()), sum(self.planned.values())
        line = (
            f"{self.service}: {len(self.operations)} operations, {generated + planned} requests "
            f"({generated} generated, at most {max(self.generated.values(), default=0)} per operation; "
            f"{planned} from examples and the coverage phase), {self.failure_count} failures, "
            f"{self.elapsed:.1f} s (budget {self.budget:g} s)"
        )
        if self.cut_short:
            line += f"; budget spent, cut short: {', '.join(self.cut_short)}"
        return line

    def report(self) -> str:
        """The summary, then every failure and error, one per line."""
        lines = [self.summary()]
        for operation, found in sorted(self.failures.items()):
            for finding, curl in sorted(found.items()):
                lines += [f"  {operation}: {finding}", f"    {curl}"]
        lines += [f"  {op}: error: {error}" for op, error in sorted(self.errors.items())]
        return "\n".join(lines)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _curl(exc: FailureGroup) -> str:
    """The reproduction command schemathesis puts in its report."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip().startswith("curl ")), "")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
