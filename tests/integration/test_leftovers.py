"""The session's leftover check (tests/_leftovers.py) against real leftovers: a fault proxy left running is
named with its ports and its toxic; a pytest session that leaks a child and a temporary folder fails and
names both (and ends the child), while one whose session fixture stops its child passes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]

from harness.faults import ToxiproxyProcess
from tests._children import child_env
from tests._leftovers import leftover_processes

ME = os.getpid()


def test_a_fault_proxy_left_running_is_named_with_its_ports_and_faults(tmp_path: Path) -> None:
    proxy = ToxiproxyProcess(workdir=tmp_path, env=child_env()).start()
    try:
        api = f"127.0.0.1:{proxy.port}"
        users_2 = {"name": "users-2", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}
        created = httpx.post(f"http://{api}/proxies", json=users_2, trust_env=False)
        assert created.status_code == 201, created.text
        listen = created.json()["listen"]
        toxic = {"type": "latency", "name": "slow", "attributes": {"latency": 300}}
        added = httpx.post(f"http://{api}/proxies/users-2/toxics", json=toxic, trust_env=False)
        assert added.status_code == 200, added.text
        named = [str(leftover) for leftover in leftover_processes(ME, "no-such-session", grace=0).leftovers]
        assert f"never waited for: pid {proxy.pid} (" in "\n".join(named)
        assert f"port still listening: {api} held by pid {proxy.pid}" in named
        assert f"port still listening: {listen} held by pid {proxy.pid}" in named
        assert f"fault still applied: latency 'slow' on proxy 'users-2' at {api}" in named
    finally:
        proxy.stop()
    assert not [line for line in map(str, leftover_processes(ME, "x", grace=0).leftovers) if api in line]


SESSION = """
import os, subprocess, sys, tempfile, pytest

KEPT = []


@pytest.fixture(scope="session")
def server():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_uses_a_child_its_session_fixture_stops(server):
    assert server.poll() is None


def test_may_leak():
    if os.environ.get("LEAK"):
        KEPT.append(subprocess.Popen(["sleep", "61"]))
        print(f"LEAKED {KEPT[-1].pid}")
        tempfile.mkdtemp(prefix="harness-leak-")
"""
CONFTEST = """
from tests._leftovers import SessionHygiene


def pytest_configure(config):
    config.pluginmanager.register(SessionHygiene(grace=1.0), "harness-session-hygiene")
"""


def inner_session(folder: Path, *, leak: bool) -> subprocess.CompletedProcess[str]:
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_session.py").write_text(SESSION)
    (folder / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, **child_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "LEAK": "1" if leak else ""}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "-q", str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_session_that_leaves_nothing_passes(tmp_path: Path) -> None:
    done = inner_session(tmp_path, leak=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left behind" not in done.stdout


def test_a_session_that_leaks_a_child_and_a_folder_fails_naming_both(tmp_path: Path) -> None:
    done = inner_session(tmp_path, leak=True)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "2 passed" in output
    [pid] = [int(found) for found in re.findall(r"LEAKED (\d+)", done.stdout)]
    assert f"never waited for: pid {pid} (sleep 61) still running" in output
    assert re.search(r"temporary file left: \S+/harness-tests-\w+/harness-leak-\w+\n", output), output
    assert not psutil.pid_exists(pid), "the session ends what it found"
