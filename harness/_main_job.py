"""``harness run``: the main job. One stack; every contract verified against its provider; one chaos
experiment (latency on one users instance: its breaker opens, traffic moves, it closes); a short Locust run
with a fault window; then one HTML report that links the three, and a one-screen summary.

Everything is what the individual commands do (``harness contract verify``, ``harness chaos run``,
``harness load run``), run in one go on one stack so a newcomer sees what the harness is for in a minute.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.chaos import ChaosOutcome, run_chaos
from harness.checks._figures import Comparison, Figure
from harness.contract._runner import VerificationRun, run_verification
from harness.load import LoadOutcome, run_load
from harness.report import (
    FigureSection,
    Link,
    Note,
    ReportInput,
    ReportKind,
    Table,
    collect_metadata,
    write_report,
)
from harness.signals import deferred, stop_if_received
from harness.stack import Stack, load_topology
from harness.timeline import build_timeline
from harness.verdict import ExitCode, Verdict

Progress = Callable[[str], None]
ROOT = Path(__file__).resolve().parents[1]  # the checkout the harness runs from (editable install)
EXPERIMENT = "chaos_experiments/01-latency-on-one-users-instance.json"
PROFILE = "load_profiles/breaker-latency.toml"


@dataclass(frozen=True)
class Part:
    """One of the three jobs: its verdict and exit code, why in a line, and where its own report is."""

    name: str
    verdict: Verdict
    line: str
    report: Path | None
    exit_code: int

    @classmethod
    def of(cls, name: str, exit_code: int, line: str, report: Path | None) -> Part:
        verdicts = {ExitCode.HELD: Verdict.HELD, ExitCode.INCONCLUSIVE: Verdict.INCONCLUSIVE}
        return cls(name, verdicts.get(ExitCode(exit_code), Verdict.DEVIATED), line, report, exit_code)


@dataclass(frozen=True)
class RunOutcome:
    parts: list[Part]
    report_path: Path
    seconds: float

    @property
    def verdict(self) -> Verdict:
        return Verdict.of(part.verdict for part in self.parts)

    @property
    def exit_code(self) -> int:
        """A part that ended otherwise than with a verdict (bad input, the environment, a signal) decides;
        otherwise the verdict of the three."""
        verdict_codes = (ExitCode.HELD, ExitCode.DEVIATED, ExitCode.INCONCLUSIVE)
        other = [p.exit_code for p in self.parts if p.exit_code not in verdict_codes]
        return other[0] if other else self.verdict.exit_code


def run_main_job(
    report_dir: Path,
    *,
    topology_path: Path | None = None,
    workdir: Path | None = None,
    progress: Progress = lambda _line: None,
) -> RunOutcome:
    """The stack up, contracts, chaos, load, one report; never leaves a process or a fault behind."""
    began = time.monotonic()
    started = datetime.now(UTC)
    report_dir = report_dir.resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    topology = load_topology(topology_path)
    stack = Stack(topology, workdir or report_dir / "stack", progress=lambda line: progress(f"  {line}"))
    progress("[1/4] starting the stack")
    with stack:
        progress(f"  {len(stack.processes)} processes ready in {stack.started_in:.1f}s")
        progress("[2/4] verifying every contract against its real provider")
        with deferred():  # a signal stops the run once the verifier is done (a few seconds)
            contracts, contracts_run = _contracts(report_dir, progress)
        progress(f"[3/4] chaos experiment: {EXPERIMENT}")
        chaos = _chaos(stack, report_dir, progress)
        stop_if_received()
        progress(f"[4/4] load run with a fault window: {PROFILE}")
        load = _load(stack, report_dir, progress)
        timeline = build_timeline([stack.workdir / "events"])
    parts = [contracts, chaos, load]
    report = ReportInput(
        title="harness run: contracts, a chaos experiment and a load run on one stack",
        kind=ReportKind.RUN,
        metadata=collect_metadata(command=shlex.join(sys.argv), started=started, ended=datetime.now(UTC)),
        summary=" ".join(f"{p.name}: {p.verdict}." for p in parts),
        timeline=timeline,
        sections=[
            FigureSection(
                title="The three jobs",
                figures=[
                    Figure(
                        name=p.name,
                        measured=1 if p.verdict is Verdict.HELD else 0,
                        bound=1,
                        comparison=Comparison.EXACTLY,
                        evidence=p.verdict is Verdict.INCONCLUSIVE,
                        detail=f"{p.verdict}: {p.line}",
                    )
                    for p in parts
                ],
            )
        ],
        links=[
            Link(title=f"{p.name} report", href=str(p.report.relative_to(report_dir)))
            for p in parts
            if p.report is not None
        ],
        tables=[_contract_table(contracts_run)],
        notes=[Note(title="What ran", text=__doc__ or "")],
    )
    path = write_report(report, report_dir / "report.html")
    return RunOutcome(parts, path, time.monotonic() - began)


def _contracts(report_dir: Path, progress: Progress) -> tuple[Part, VerificationRun]:
    run = run_verification(
        ROOT / "contracts",
        report_dir / "contracts" / "results.json",
        workdir=report_dir / "contracts" / "providers",
        progress=lambda line: progress(f"  {line}"),
    )
    verified = sum(i.passed for r in run.results for i in r.interactions)
    total = sum(len(r.interactions) for r in run.results)
    line = f"{verified}/{total} interactions of {len(run.pacts)} pacts verified"
    if run.failing:
        line += f"; failing: {', '.join(run.failing)}"
    return Part.of("contracts", ExitCode.HELD if run.passed else ExitCode.DEVIATED, line, None), run


def _chaos(stack: Stack, report_dir: Path, progress: Progress) -> Part:
    outcome: ChaosOutcome = run_chaos(
        ROOT / EXPERIMENT,
        report_dir=report_dir / "chaos",
        stack=stack,
        progress=lambda line: progress(f"  {line}"),
    )
    return Part.of("chaos", outcome.exit_code, outcome.verdict, outcome.report_path)


def _load(stack: Stack, report_dir: Path, progress: Progress) -> Part:
    outcome: LoadOutcome = run_load(
        ROOT / PROFILE,
        report_dir=report_dir / "load",
        stack=stack,
        progress=lambda line: progress(f"  {line}"),
    )
    results = outcome.results
    p99 = results.total.percentile(0.99)
    line = f"{results.total.requests} orders, {results.achieved_rate:.1f}/s, p99 {p99 or 0:.0f} ms; "
    if outcome.exit_code == ExitCode.HELD:
        line += "every check held"
    else:
        line += "; ".join((outcome.failed or outcome.inconclusive or outcome.left_behind)[:3])
    return Part.of("load", outcome.exit_code, line, outcome.report_path)


def _contract_table(run: VerificationRun) -> Table:
    rows = [
        [
            r.pair,
            f"{sum(i.passed for i in r.interactions)}/{len(r.interactions)}",
            "ok" if r.passed else "FAILED",
        ]
        for r in run.results
    ]
    return Table(
        title="Contracts verified", columns=["consumer -> provider", "interactions", "verdict"], rows=rows
    )
