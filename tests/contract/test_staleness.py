"""The staleness check of committed pacts: a run that would change ``contracts/`` fails, naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.contract import DifferenceKind, StaleContract, check_contracts, compare_contracts, render


def pact(*descriptions: str, status: int = 200, rust: str = "0.5.12") -> dict[str, Any]:
    return {
        "consumer": {"name": "orchestrator"},
        "provider": {"name": "users"},
        "interactions": [
            {
                "description": d,
                "providerStates": [{"name": "a user with available credit"}],
                "request": {"method": "GET", "path": "/users/u-1"},
                "response": {"status": status},
                "type": "Synchronous/HTTP",
            }
            for d in descriptions
        ],
        "metadata": {"pactRust": {"ffi": rust}, "pactSpecification": {"version": "4.0"}},
    }


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    produced, committed = tmp_path / "produced", tmp_path / "contracts"
    produced.mkdir()
    committed.mkdir()
    return produced, committed


def write(folder: Path, document: dict[str, Any], name: str = "orchestrator-users.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.behaviour("contract.stale_pact")
class TestCompare:
    def test_same_contract_in_another_order_and_library_version_is_current(
        self, dirs: tuple[Path, Path]
    ) -> None:
        """Interaction order, key order and the pact library's version are not part of a contract."""
        produced, committed = dirs
        write(produced, pact("b", "a", rust="0.6.0"))
        (committed / "orchestrator-users.json").write_text(render(pact("a", "b")), encoding="utf-8")
        assert compare_contracts(produced, committed, complete=True) == []

    def test_changed_contract_fails_naming_file_and_difference(self, dirs: tuple[Path, Path]) -> None:
        """The message names the file and shows the changed line of the diff, and how to update."""
        produced, committed = dirs
        write(produced, pact("a", status=201))
        (committed / "orchestrator-users.json").write_text(render(pact("a")), encoding="utf-8")
        with pytest.raises(StaleContract) as caught:
            check_contracts(produced, committed, complete=True, update=False)
        message = str(caught.value)
        assert "orchestrator-users.json would change" in message
        assert '-        "status": 200' in message
        assert '+        "status": 201' in message
        assert "UPDATE_CONTRACTS=1" in message
        assert caught.value.files[0].endswith("orchestrator-users.json")

    def test_new_and_removed_files(self, dirs: tuple[Path, Path]) -> None:
        """A pact nobody committed is new; a committed pact nobody produces any more is reported too."""
        produced, committed = dirs
        write(produced, pact("a"), "orchestrator-users.json")
        (committed / "users-registry.json").write_text(render(pact("x")), encoding="utf-8")
        kinds = {d.file.name: d.kind for d in compare_contracts(produced, committed, complete=True)}
        assert kinds == {
            "orchestrator-users.json": DifferenceKind.NEW,
            "users-registry.json": DifferenceKind.REMOVED,
        }

    def test_partial_run_judges_only_what_it_produced(self, dirs: tuple[Path, Path]) -> None:
        """With some consumer tests deselected, missing interactions and files are not differences."""
        produced, committed = dirs
        write(produced, pact("a"))
        (committed / "orchestrator-users.json").write_text(render(pact("a", "b")), encoding="utf-8")
        (committed / "users-registry.json").write_text(render(pact("x")), encoding="utf-8")
        assert compare_contracts(produced, committed, complete=False) == []
        write(produced, pact("a", status=500))
        assert [d.kind for d in compare_contracts(produced, committed, complete=False)] == [
            DifferenceKind.CHANGED
        ]


@pytest.mark.behaviour("contract.stale_pact")
class TestUpdate:
    def test_update_rewrites_in_the_stable_form(self, dirs: tuple[Path, Path]) -> None:
        """UPDATE_CONTRACTS=1: the committed file becomes the produced one, without volatile metadata."""
        produced, committed = dirs
        write(produced, pact("b", "a"))
        updated = check_contracts(produced, committed, complete=True, update=True)
        assert [p.name for p in updated] == ["orchestrator-users.json"]
        written = json.loads((committed / "orchestrator-users.json").read_text(encoding="utf-8"))
        assert [i["description"] for i in written["interactions"]] == ["a", "b"]
        assert "pactRust" not in written["metadata"]
        assert check_contracts(produced, committed, complete=True, update=False) == []
