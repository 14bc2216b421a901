"""Keeps committed pacts current: what the consumer tests produced is compared with ``contracts/``.

A complete run must reproduce every committed file exactly (in the stable form); a partial run (some
consumer tests deselected) must reproduce every interaction it produced, and cannot judge the others.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.contract._errors import StaleContract
from harness.contract._pacts import interaction_key, read_document, render

MAX_DIFF_LINES = 40


class DifferenceKind(StrEnum):
    CHANGED = "changed"
    NEW = "new"
    REMOVED = "removed"


@dataclass(frozen=True)
class ContractDifference:
    """One committed file the run would change, with a short unified diff (committed -> produced)."""

    file: Path
    kind: DifferenceKind
    expected: str
    diff: str

    def describe(self) -> str:
        what = {
            DifferenceKind.CHANGED: "would change",
            DifferenceKind.NEW: "is new (not committed yet)",
            DifferenceKind.REMOVED: "is committed but no consumer test produces it any more",
        }[self.kind]
        return f"{_shown(self.file)} {what}" + (f":\n{self.diff}" if self.diff else "")


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is below it (``contracts/x.json``)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _merged(committed: dict[str, Any], produced: dict[str, Any]) -> dict[str, Any]:
    """The committed pact with the produced interactions put in (same description and states: replaced)."""
    interactions = {interaction_key(i): i for i in committed.get("interactions", [])}
    interactions.update({interaction_key(i): i for i in produced.get("interactions", [])})
    return {**produced, "interactions": list(interactions.values())}


def _short_diff(before: str, after: str, name: str) -> str:
    lines = list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), f"committed/{name}", f"produced/{name}", lineterm="", n=2
        )
    )
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more diff lines)"]
    return "\n".join(lines)


def compare_contracts(produced: Path, committed: Path, *, complete: bool) -> list[ContractDifference]:
    """Every committed file the produced pacts would change; ``complete`` also reports files gone."""
    differences: list[ContractDifference] = []
    produced_names = set()
    for path in sorted(produced.glob("*.json")):
        produced_names.add(path.name)
        document = read_document(path)
        target = committed / path.name
        if not target.exists():
            text = render(document)
            differences.append(ContractDifference(target, DifferenceKind.NEW, text, ""))
            continue
        before = target.read_text(encoding="utf-8")
        expected = render(document if complete else _merged(read_document(target), document))
        if expected != before:
            differences.append(
                ContractDifference(
                    target, DifferenceKind.CHANGED, expected, _short_diff(before, expected, path.name)
                )
            )
    if complete:
        for target in sorted(committed.glob("*.json")):
            if target.name not in produced_names:
                differences.append(ContractDifference(target, DifferenceKind.REMOVED, "", ""))
    return differences


def apply_differences(differences: list[ContractDifference]) -> None:
    """Write what the run produced into the committed directory (``UPDATE_CONTRACTS=1``)."""
    for difference in differences:
        if difference.kind is DifferenceKind.REMOVED:
            difference.file.unlink()
            continue
        difference.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = difference.file.with_suffix(".json.tmp")
        tmp.write_text(difference.expected, encoding="utf-8")
        os.replace(tmp, difference.file)


def check_contracts(produced: Path, committed: Path, *, complete: bool, update: bool) -> list[Path]:
    """Fail with StaleContract naming each differing file and its diff, or rewrite them when ``update``.

    Returns the files rewritten (empty when everything was current).
    """
    differences = compare_contracts(produced, committed, complete=complete)
    if not differences:
        return []
    if update:
        apply_differences(differences)
        return [d.file for d in differences]
    details = "\n\n".join(d.describe() for d in differences)
    raise StaleContract(
        f"{len(differences)} committed pact file(s) differ from what the consumer tests produce; "
        f"rerun with UPDATE_CONTRACTS=1 to rewrite them, review the diff and commit:\n\n{details}",
        files=[_shown(d.file) for d in differences],
    )
