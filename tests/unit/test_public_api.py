"""The public API: what ``harness`` and its subpackages export, pinned; and layers that stay in their lane
(services use only public harness modules; harness code reaches no service's private module)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import harness

ROOT = Path(__file__).parents[2]
PUBLIC = [
    "chaos",
    "checks",
    "discovery",
    "errors",
    "events",
    "faults",
    "net",
    "report",
    "resilience",
    "settings",
    "stack",
    "timeline",
]


def test_the_package_names_its_public_modules() -> None:
    """``harness.__all__`` is the public surface: the version, the error root, chaos discovery, and every
    public module; each one imports."""
    assert harness.__all__ == ["HarnessError", "__version__", "discover", *PUBLIC]
    for name in PUBLIC:
        assert importlib.import_module(f"harness.{name}")


@pytest.mark.parametrize("module", [m for m in PUBLIC if m not in ("errors", "events", "net", "settings")])
def test_each_public_package_declares_what_it_exports(module: str) -> None:
    """A package's ``__all__`` is sorted as ruff sorts it and every name in it resolves."""
    package = importlib.import_module(f"harness.{module}")
    exported = list(package.__all__)
    assert exported, f"harness.{module} exports nothing"
    for name in exported:
        assert hasattr(package, name), f"harness.{module}.{name}"


def imports_of(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path.relative_to(ROOT), node.module))
            elif isinstance(node, ast.Import):
                found += [(path.relative_to(ROOT), alias.name) for alias in node.names]
    return found


def private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split(".")[1:])


def test_services_use_only_public_harness_modules() -> None:
    reaching = [f"{path}: {module}" for path, module in imports_of(ROOT / "reference_services")
                if module.startswith("harness.") and private(module)]  # fmt: skip
    assert reaching == []


def test_harness_reaches_no_service_private_module() -> None:
    """The harness (contract code, checks, chaos) reads services through their public modules only."""
    reaching = [f"{path}: {module}" for path, module in imports_of(ROOT / "harness")
                if module.startswith("reference_services.") and private(module)]  # fmt: skip
    assert reaching == []
