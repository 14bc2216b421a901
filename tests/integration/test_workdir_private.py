"""The stack's workdir is its user's alone: the folder and every folder in it 0700 (one left 0755 by an
earlier run too), and what the children write there (SQLite databases with their -wal and -shm, event
logs) and the harness's own files about them (logs, state, configs, tokens) readable by nobody else."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from harness.stack import Stack, Topology
from harness.stack._topology import RegistryTopology, ServiceTopology

FAST = RegistryTopology(ttl=1.0, check_interval=0.2, check_timeout=0.3, check_failures=2)
USERS_ONLY = Topology(registry=FAST, services={
    "users": ServiceTopology(instances=1, heartbeat_interval=0.3),
    "notifications": ServiceTopology(instances=0),
    "orchestrator": ServiceTopology(instances=0),
})  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.behaviour("harness.up")
def test_the_workdir_and_what_is_written_in_it_are_private(tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    (workdir / "data").mkdir(parents=True, mode=0o755)
    workdir.chmod(0o755)
    with Stack(USERS_ONLY, workdir):
        folders = [workdir, *(p for p in workdir.rglob("*") if p.is_dir())]
        assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in folders if mode(p) != 0o700} == {}
        database = workdir / "data" / "users.sqlite3"
        written = [database, database.with_name("users.sqlite3-wal"), database.with_name("users.sqlite3-shm"),
                   workdir / "events" / "users-1.jsonl", workdir / "events" / "registry.jsonl",
                   *(workdir / "logs").glob("*.log"), workdir / "stack.json", workdir / "processes.json",
                   workdir / "topology.json", workdir / "registry.token",
                   *(workdir / "config").glob("*.json")]  # fmt: skip
        missing = [str(p.relative_to(workdir)) for p in written if not p.exists()]
        assert missing == []
        files = [p for p in workdir.rglob("*") if p.is_file()]
        shared = {str(p.relative_to(workdir)): oct(mode(p)) for p in files if mode(p) & 0o077}
        shared.pop("toxiproxy.json", None)  # the supervisor's (0644): private only through its folder
        assert shared == {}
