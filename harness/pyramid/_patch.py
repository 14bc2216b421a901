"""A seeded bug applied to a temporary copy of the source, never to the source itself.

The copy holds what the tests and the services need (everything but version control, virtual
environments, caches and reports). Every patch must find its text exactly once, checked against the
source before anything is copied, so a catalogue entry that no longer applies is refused up front.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from harness.pyramid._bugs import Patch, SeededBug
from harness.pyramid._errors import PatchRefused

_LEFT_OUT = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "build",
        "dist",
        ".harness",
        "harness-run",
        "chaos-report",
        "load-report",
        "pyramid-report",
    }
)


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {name for name in names if name in _LEFT_OUT or name.endswith(".egg-info")}


def copy_source(root: Path, destination: Path) -> Path:
    """A copy of the project at ``root`` in ``destination`` (which must not exist yet)."""
    shutil.copytree(root, destination, ignore=_ignore, symlinks=True)
    return destination


def patched_texts(bug: SeededBug, root: Path) -> dict[str, str]:
    """The new text of every file ``bug`` changes, from the files under ``root``, patches applied in order;
    PatchRefused when a patch's text is not found exactly once (in the text its earlier patches left)."""
    texts: dict[str, str] = {}
    for patch in bug.patches:
        text = texts[patch.path] if patch.path in texts else _read(bug, root, patch)
        found = text.count(patch.find)
        if found != 1:
            raise PatchRefused(bug.id, patch.path, found, patch.find)
        texts[patch.path] = text.replace(patch.find, patch.replace, 1)
    return texts


def apply_bug(bug: SeededBug, copy: Path) -> list[Path]:
    """Write ``bug`` into the copy at ``copy``; returns the files changed. Refuses (PatchRefused) before
    writing anything if one of its patches does not apply."""
    texts = patched_texts(bug, copy)
    changed = []
    for relative, text in texts.items():
        path = copy / relative
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed


def check_bugs(bugs: Iterable[SeededBug], root: Path) -> dict[str, str]:
    """Why each bug that cannot be applied to the source under ``root`` is refused, by bug id."""
    refused = {}
    for bug in bugs:
        try:
            patched_texts(bug, root)
        except PatchRefused as exc:
            refused[bug.id] = str(exc)
    return refused


def _read(bug: SeededBug, root: Path, patch: Patch) -> str:
    try:
        return (root / patch.path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PatchRefused(bug.id, patch.path, 0, patch.find) from exc
