"""The pytest plugin as a user runs it: pytest in a project of their own, with the inventory example's
tests, topology and service, warnings as errors; and a run that does not use it, where it does nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.events import read_events
from tests._children import child_env

EXAMPLE = Path(__file__).parents[2] / "examples" / "inventory"


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest`` in ``project``, the plugin loaded by its ``pytest11`` entry point as in a user's project,
    every warning an error; the plugins of this environment that warn about their own settings are off."""
    others = ["-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:pact", "-p", "no:locust"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *others, "-W", "error", "-q", *args],
        cwd=project, env=child_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.behaviour("harness.pytest_plugin")
class TestAUsersProject:
    def test_the_example_tests_pass_with_the_stack_scoped_as_the_ini_asks(self, tmp_path: Path) -> None:
        """Topology, scope and workdir from the ini file; four tests, four faults applied and all removed."""
        project = tmp_path / "project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
        (project / "pytest.ini").write_text(
            "[pytest]\nfilterwarnings = error\nharness_topology = topology.toml\nharness_scope = module\n"
            "harness_workdir = run\n"
        )
        result = pytest_in(project)
        print(result.stdout[-3000:], result.stderr[-3000:])
        assert result.returncode == 0
        assert "4 passed" in result.stdout
        events = read_events(project / "run" / "test_inventory.py" / "events" / "harness-pytest.jsonl")
        assert [e["event"] for e in events].count("fault.start") == 4
        assert [e["event"] for e in events].count("fault.end") == 4
        assert not (project / "run" / "test_inventory.py" / "stack.json").exists()  # stopped

    def test_a_fault_left_applied_is_removed_after_the_test(self, tmp_path: Path) -> None:
        """``harness_faults.apply`` without removing: the fixture removes it; the next test sees no toxic."""
        project = tmp_path / "project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.db", "test_*.py"))
        (project / "test_leak.py").write_text(
            "def test_leaves_a_toxic(harness_faults):\n"
            "    harness_faults.apply('inventory-1', 'latency', latency=100)\n\n"
            "def test_finds_none(harness_stack):\n"
            "    assert harness_stack.toxiproxy.toxics('inventory-1') == []\n"
        )
        result = pytest_in(project, "--harness-topology", "topology.toml")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout


@pytest.mark.behaviour("harness.pytest_plugin")
def test_a_run_that_does_not_use_it_starts_nothing(tmp_path: Path) -> None:
    """Loaded but unused: no harness module beyond the plugin imported, no thread, no process."""
    (tmp_path / "test_plain.py").write_text(
        "import sys, threading\n\n"
        "def test_nothing_of_the_harness_runs():\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith('harness'))\n"
        "    assert loaded == ['harness', 'harness.errors', 'harness.pytest_plugin', 'harness.verdict']\n"
        "    assert [t.name for t in threading.enumerate()] == ['MainThread']\n"
    )
    result = pytest_in(tmp_path, "--harness-topology", "no-such-file.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
