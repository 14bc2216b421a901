"""The consumer x provider matrix: one cell per pair, then the verdict of every interaction (pure text)."""

from __future__ import annotations

from collections.abc import Sequence

from harness.contract._pacts import PactFile
from harness.contract._results import PactResult


def _cell(pact: PactFile | None, result: PactResult | None) -> str:
    if pact is None:
        return "-"
    if result is None:
        return "not verified"
    if result.pact_sha256 != pact.sha256:
        return "outdated"
    passed = sum(i.passed for i in result.interactions)
    verdict = "ok" if result.passed else "FAIL"
    return f"{verdict} {passed}/{len(pact.interactions)}"


def _latest(results: Sequence[PactResult]) -> dict[tuple[str, str], PactResult]:
    return {(r.consumer, r.provider): r for r in results}


def render_matrix(pacts: Sequence[PactFile], results: Sequence[PactResult]) -> str:
    """Consumers by providers; a cell reads ``ok 6/6``, ``FAIL 5/6``, ``not verified`` or ``-`` (no pact)."""
    by_pair = {(p.consumer, p.provider): p for p in pacts}
    latest = _latest(results)
    consumers = sorted({p.consumer for p in pacts})
    providers = sorted({p.provider for p in pacts})
    header = ["consumer \\ provider", *providers]
    rows = [[c, *(_cell(by_pair.get((c, p)), latest.get((c, p))) for p in providers)] for c in consumers]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def render_interactions(pacts: Sequence[PactFile], results: Sequence[PactResult]) -> str:
    """Every interaction of every pact with its verdict, and the mismatches of those that failed."""
    latest = _latest(results)
    blocks = []
    for pact in sorted(pacts, key=lambda p: (p.consumer, p.provider)):
        result = latest.get((pact.consumer, pact.provider))
        if result is None or result.pact_sha256 != pact.sha256:
            status = "not verified" if result is None else "verified for an older version of this pact"
            lines = [f"{pact.pair} ({pact.path.name}): {status}"]
            lines += [f"  ?     {i.label}" for i in pact.interactions]
            blocks.append("\n".join(lines))
            continue
        passed = sum(i.passed for i in result.interactions)
        lines = [f"{pact.pair} ({pact.path.name}): {passed}/{len(pact.interactions)} interactions verified"]
        for interaction in result.interactions:
            lines.append(f"  {'PASS' if interaction.passed else 'FAIL'}  {interaction.label}")
            lines += [f"          {m}" for m in interaction.mismatches]
        if result.error:
            lines.append(f"  ERROR {result.error}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
