"""`harness fault` as a user runs it: against a running `harness up` found by its workdir (faults seen on
real traffic, on the up status line, in the ledger and the events), and against a bare TOXIPROXY_URL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests._children import reap

READY = 60.0  # seconds the stack or a command may take to get where the test waits for it


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False, env=env)  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "TOXIPROXY_URL"}


def wait_for(check: Callable[[], object], what: str, timeout: float = READY) -> None:
    """Poll ``check()`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.05)


@dataclass
class RunningStack:
    workdir: Path
    output: Path
    proxies: dict[str, str]  # instance -> "host:port" of its fault proxy

    def fault(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run("fault", *args, "--workdir", str(self.workdir), env=clean_env())

    def get(self, instance: str, path: str = "/health") -> httpx.Response:
        return httpx.get(f"http://{self.proxies[instance]}{path}", timeout=10.0, trust_env=False)

    def ledger(self) -> list[str]:
        path = self.workdir / "fault-ledger.json"
        return [w["name"] for w in json.loads(path.read_text())["applied"]] if path.exists() else []

    def events(self) -> list[dict[str, object]]:
        path = self.workdir / "events" / "harness-fault.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One `harness up` for the module, status line every 0.2 s."""
    workdir = tmp_path_factory.mktemp("stack")
    output = workdir / "up.out"
    with output.open("w") as sink:
        up = subprocess.Popen(
            [sys.executable, "-m", "harness", "up", "--workdir", str(workdir), "--status-interval", "0.2"],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=clean_env(),
        )  # fmt: skip
    try:
        state = workdir / "stack.json"
        wait_for(lambda: state.exists() or up.poll() is not None, "harness up")
        assert state.exists(), output.read_text()
        instances = json.loads(state.read_text())["instances"]
        yield RunningStack(workdir, output, {i["name"]: i["proxy"] for i in instances if i.get("proxy")})
    finally:
        up.send_signal(signal.SIGINT)
        reap(up, grace=30)


@pytest.mark.behaviour("harness.fault_cli")
class TestAgainstAStack:
    @pytest.mark.behaviour("toxic.http_error")
    def test_add_shows_on_traffic_list_status_then_remove(self, stack: RunningStack) -> None:
        """http_error on users-2: its calls get 503 with Retry-After, `list` and the up status line show it,
        `remove` ends it; ledger and events follow."""
        added = stack.fault("add", "users-2", "http_error", "status=503", "retry_after=1")
        assert added.returncode == 0, added.stderr
        name = added.stdout.split(" as ")[-1].strip()
        answer = stack.get("users-2")
        assert (answer.status_code, answer.headers["Retry-After"], answer.headers["X-Harness-Fault"]) == (
            503, "1", name,
        )  # fmt: skip
        assert stack.get("users-1").status_code == 200
        listed = stack.fault("list")
        [row] = [line for line in listed.stdout.splitlines() if name in line]
        assert row.startswith("* users-2")
        assert "http_error upstream status=503 retry_after=1" in row
        wait_for(lambda: "faults users-2 (http_error)" in stack.output.read_text(), "the up status line")
        assert stack.ledger() == [name]
        removed = stack.fault("remove", "users-2")
        assert removed.returncode == 0, removed.stderr
        assert stack.get("users-2").status_code == 200
        assert stack.ledger() == []
        kinds = [(e["event"], e["window"]) for e in stack.events() if e["window"] == name]
        assert kinds == [("fault.start", name), ("fault.end", name)]

    @pytest.mark.behaviour("toxic.toxicity")
    def test_per_request_share_on_a_keep_alive_client(self, stack: RunningStack) -> None:
        """--toxicity 0.5 on users-3: about half of 400 calls on one connection fail (99.9% binomial)."""
        assert stack.fault("add", "users-3", "http_error", "--toxicity", "0.5").returncode == 0
        try:
            limits = httpx.Limits(max_connections=1)
            with httpx.Client(
                base_url=f"http://{stack.proxies['users-3']}", limits=limits, trust_env=False
            ) as c:
                codes = [c.get("/health").status_code for _ in range(400)]
        finally:
            assert stack.fault("clear", "users-3").returncode == 0
        print(f"503s: {codes.count(503)} of 400 (99.9% interval 167..233)")
        assert 167 <= codes.count(503) <= 233

    @pytest.mark.behaviour("proxy.enable_disable")
    def test_down_and_up(self, stack: RunningStack) -> None:
        assert stack.fault("down", "users-1").returncode == 0
        with pytest.raises(httpx.ConnectError):
            stack.get("users-1")
        assert "down" in stack.fault("list").stdout
        assert stack.fault("up", "users-1").stdout.strip() == "users-1 is up"
        assert stack.get("users-1").status_code == 200

    def test_for_counts_down_then_removes(self, stack: RunningStack) -> None:
        began = time.monotonic()
        result = stack.fault(
            "add", "users-3", "http_latency", "latency_min=100", "latency_max=100", "--for", "1s"
        )
        took = time.monotonic() - began
        assert result.returncode == 0, result.stderr
        assert "time is up: removed http_latency" in result.stdout
        assert took >= 1.0
        assert "users-3" not in stack.fault("list").stdout

    def test_ctrl_c_removes_at_once(self, stack: RunningStack) -> None:
        """A --for of a minute, interrupted: the fault is removed and the command ends straight away."""
        holder = subprocess.Popen(
            [sys.executable, "-m", "harness", "fault", "add", "users-2", "http_error", "--for", "60s",
             "--workdir", str(stack.workdir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
        )  # fmt: skip
        try:
            wait_for(lambda: stack.get("users-2").status_code == 503, "the fault")
            interrupted = time.monotonic()
            holder.send_signal(signal.SIGINT)
            out, err = holder.communicate(timeout=30)
        finally:
            reap(holder)
        print(f"removed {time.monotonic() - interrupted:.2f}s after Ctrl-C")
        assert holder.returncode == 0, err
        assert "interrupted: removed http_error" in out
        assert stack.get("users-2").status_code == 200
        assert stack.ledger() == []

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            pytest.param(
                ("users-2", "http_error", "status=200"), "status: must be between 400 and 599", id="range"
            ),
            pytest.param(
                ("users-2", "http_error", "colour=red"),
                "colour: http_error has no such attribute; it has status, retry_after, body, path_prefix",
                id="unknown-attribute",
            ),
            pytest.param(
                ("users-2", "latency", "latency=soon"), "latency: must be a whole number (ms)", id="int"
            ),
            pytest.param(("users-9", "latency"), "no instance named 'users-9'", id="instance"),
            pytest.param(
                ("users-2", "latency", "--for", "forever"), "--for 'forever': give a duration", id="for"
            ),
        ],
    )
    def test_refusals_are_one_line(self, stack: RunningStack, args: tuple[str, ...], message: str) -> None:
        result = stack.fault("add", *args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr

    def test_clear_removes_everything(self, stack: RunningStack) -> None:
        assert stack.fault("add", "users-1", "latency", "latency=1").returncode == 0
        assert stack.fault("add", "users-2", "http_latency", "latency_max=1").returncode == 0
        cleared = stack.fault("clear")
        assert "2 fault(s) removed" in cleared.stdout
        assert stack.fault("list").stdout.strip() == "no faults"


@pytest.mark.behaviour("harness.fault_cli")
def test_against_toxiproxy_url_without_a_stack(tmp_path: Path) -> None:
    """No stack in the workdir: TOXIPROXY_URL's proxies are the instances; without it, exit 3."""
    port_file = tmp_path / "toxiproxy.port"
    server = subprocess.Popen(
        [sys.executable, "-m", "harness", "toxiproxy", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(port_file.exists, "harness toxiproxy")
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        httpx.post(f"{url}/proxies", json={"name": "db", "upstream": "127.0.0.1:9"}, trust_env=False)
        env = {**clean_env(), "TOXIPROXY_URL": url}
        workdir = str(tmp_path / "work")
        added = run("fault", "add", "db", "timeout", "timeout=0", "--workdir", workdir, env=env)
        assert added.returncode == 0, added.stderr
        toxics = httpx.get(f"{url}/proxies/db/toxics", trust_env=False).json()
        assert [(t["type"], t["stream"]) for t in toxics] == [("timeout", "downstream")]
        assert run("fault", "clear", "--workdir", workdir, env=env).returncode == 0
        assert httpx.get(f"{url}/proxies/db/toxics", trust_env=False).json() == []
        missing = run("fault", "list", "--workdir", workdir, env=clean_env())
        assert missing.returncode == 3
        assert "TOXIPROXY_URL is not set" in missing.stderr
    finally:
        server.terminate()
        reap(server, grace=30)
