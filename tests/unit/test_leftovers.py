"""The session's leftover check (tests/_leftovers.py) on leftovers made on purpose: each is found and named
(a child never waited for, running or ended; an orphan that still carries the session's mark; a temporary
folder; a warning a child could only print), and nothing is found once it is cleaned up."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from harness.stack import ProcessSpec, ServiceProcess
from tests._children import reap
from tests._leftovers import MARK, SITE, UNRAISABLE, child_warnings, end, leftover_files, leftover_processes

ME = os.getpid()


def marked(token: str) -> dict[str, str]:
    return {**os.environ, MARK: token}


def named(token: str) -> list[str]:
    return [str(leftover) for leftover in leftover_processes(ME, token, grace=0).leftovers]


class TestProcesses:
    def test_a_running_child_never_waited_for_is_named_until_it_is_reaped(self) -> None:
        token = secrets.token_hex(4)
        child = subprocess.Popen(["sleep", "60"], env=marked(token))
        try:
            assert f"never waited for: pid {child.pid} (sleep 60) still running" in named(token)
        finally:
            reap(child)
        assert not [line for line in named(token) if f"pid {child.pid} " in line]

    def test_a_child_that_ended_but_was_never_waited_for_is_named(self) -> None:
        token = secrets.token_hex(4)
        child = subprocess.Popen(["true"], env=marked(token))
        try:
            os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it has ended; nobody reaped it
            assert f"never waited for: pid {child.pid} (true) ended, never waited" in named(token)
        finally:
            reap(child)
        assert not [line for line in named(token) if f"pid {child.pid} " in line]

    def test_an_orphan_is_found_by_the_sessions_mark_and_ended(self) -> None:
        """A grandchild whose parent exited is no longer below pytest; the mark in its environment names it
        as the session's, and ``end`` kills it."""
        token = secrets.token_hex(4)
        shell = subprocess.run(
            ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
            env=marked(token), capture_output=True, text=True, check=True,
        )  # fmt: skip
        orphan = psutil.Process(int(shell.stdout))
        try:
            assert orphan.ppid() != ME
            found = leftover_processes(ME, token, grace=0.1)
            assert f"still running: pid {orphan.pid} (sleep 60) still running" in map(str, found.leftovers)
            assert [p.pid for p in found.processes] == [orphan.pid]
        finally:
            end([orphan], ME)
        assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
        assert named(token) == []

    def test_another_sessions_process_is_not_ours(self) -> None:
        token, other = secrets.token_hex(4), secrets.token_hex(4)
        shell = subprocess.run(
            ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"],
            env=marked(other), capture_output=True, text=True, check=True,
        )  # fmt: skip
        orphan = psutil.Process(int(shell.stdout))
        try:
            assert named(token) == []
        finally:
            end([orphan], ME)


def test_a_temporary_folder_left_is_named_with_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "harness-chaos-x1y2").mkdir()
    (tmp_path / "harness-chaos-x1y2" / "stack.json").write_text("{}")
    (tmp_path / ".child-warnings").mkdir()
    found = [str(leftover) for leftover in leftover_files(tmp_path, ignore=[".child-warnings"])]
    assert found == [f"temporary file left: {tmp_path / 'harness-chaos-x1y2'} (holding stack.json)"]
    (tmp_path / "harness-chaos-x1y2" / "stack.json").unlink()
    (tmp_path / "harness-chaos-x1y2").rmdir()
    assert leftover_files(tmp_path, ignore=[".child-warnings"]) == []


def test_a_process_only_described_makes_no_temporary_folder() -> None:
    """Its command shown, its restart described: nothing in the temporary folder until it is spawned."""
    before = set(Path(tempfile.gettempdir()).iterdir())
    process = ServiceProcess(ProcessSpec("registry", "registry", {"ttl": 1.0}))
    assert process.command()[3:5] == ["serve", "registry"]
    assert process.again().workdir != process.workdir  # neither was made: the restart gets its own
    assert set(Path(tempfile.gettempdir()).iterdir()) == before


def test_a_warning_a_child_could_only_print_is_recorded_and_named(tmp_path: Path) -> None:
    """Every child of the session runs with warnings as errors. A Popen dropped while its process runs
    only prints its ResourceWarning even so, and the child exits 0; tests/_site/sitecustomize.py records
    it, so the session fails naming it."""
    assert os.environ["PYTHONWARNINGS"].split(",")[0] == "error"
    assert str(SITE) in os.environ["PYTHONPATH"].split(os.pathsep)
    code = "import subprocess; p = subprocess.Popen(['sleep', '0.1']); del p"
    env = {**os.environ, UNRAISABLE: str(tmp_path)}  # here, not in the session's record
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr  # what PYTHONWARNINGS=error alone lets through
    assert "ResourceWarning: subprocess" in done.stderr
    [warning] = child_warnings(tmp_path)
    assert str(warning).startswith("warning in a child: pid ")
    assert "ResourceWarning: subprocess " in str(warning)
    assert "is still running" in str(warning)
