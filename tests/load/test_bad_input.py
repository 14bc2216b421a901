"""Bad input to `harness load`: one line naming the file and the key (or the flag), exit 2, before any stack
or Locust starts; an unknown instance or route is named; a non-loopback address is refused unless
--allow-remote (only the refusal is tested: nothing is ever sent off this machine)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.faults import FaultNotApplied
from harness.load import run_load
from harness.stack import Stack
from harness.verdict import ExitCode

from .conftest import PROFILES, harness

GOOD = """
title = "t"
[target]
kind = "orders"
[load]
users = 2
duration = 5
"""


def profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return path


def refused(done: subprocess.CompletedProcess[str], *parts: str) -> str:
    """Exit 2 and one error line holding every part; no traceback."""
    assert done.returncode == 2, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.mark.behaviour("load.profiles", "harness.exit_codes")
class TestInvalidProfiles:
    @pytest.mark.parametrize(
        ("text", "key", "says"),
        [
            pytest.param(GOOD + "speed = 3\n", "speed", "unknown key", id="unknown-key"),
            pytest.param(
                GOOD.replace("users = 2", "users = 0"),
                "load.users",
                "greater than or equal to 1",
                id="zero-users",
            ),
            pytest.param('title = "t"\n[target]\nkind = "orders"\n', "load", "required", id="no-load"),
            pytest.param(GOOD.replace('"orders"', '"files"'), "target.kind", "'orders'", id="unknown-kind"),
            pytest.param(
                GOOD + "[checks.breaker]\n", "checks.breaker", "needs a fault window", id="breaker-no-fault"
            ),
            pytest.param(
                GOOD + '[[faults.windows]]\nname = "w"\nstart = 1\nend = 9\n'
                'fault = { kind = "latency", instance = "users-2" }\n',
                "faults: window w",
                "must end within the load",
                id="fault-after-the-load",
            ),
            pytest.param("title = \n", "", "not valid TOML", id="not-toml"),
        ],
    )
    def test_is_one_line_naming_the_file_and_key_with_exit_2(
        self, tmp_path: Path, text: str, key: str, says: str
    ) -> None:
        """`harness load run` (and `validate`) refuse it before starting anything."""
        path = profile(tmp_path, text)
        line = refused(
            harness("load", "run", str(path), "--report", str(tmp_path / "r")), str(path), key, says
        )
        assert not (tmp_path / "r" / "stack").exists(), line
        refused(harness("load", "validate", str(path)), str(path), key)

    def test_an_unknown_instance_is_named_before_the_stack_starts(self, tmp_path: Path) -> None:
        text = GOOD + (
            '[[faults.windows]]\nname = "w"\nstart = 1\nend = 2\n'
            'fault = { kind = "latency", instance = "users-9" }\n'
        )
        path = profile(tmp_path, text)
        refused(
            harness("load", "run", str(path), "--report", str(tmp_path / "r")),
            "faults.windows.w.fault.instance",
            "'users-9'",
            "users-1",
        )
        assert not (tmp_path / "r" / "stack").exists()

    def test_an_unknown_route_is_named_from_the_instances_own_routes(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        text = GOOD.replace('kind = "orders"', 'kind = "http"\ninstance = "users-1"\npath = "/nope"')
        path = profile(tmp_path, text)
        refused(
            harness(
                "load", "run", str(path), "--attach", str(stack.workdir), "--report", str(tmp_path / "r")
            ),
            "target.path: /nope is not a route of users-1",
            "/users/{user_id}",
        )
        assert not (tmp_path / "r" / "locust.log").exists()

    def test_a_shipped_profile_with_a_method_its_route_does_not_answer_is_refused(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        text = GOOD.replace(
            'kind = "orders"', 'kind = "http"\nservice = "users"\nmethod = "DELETE"\npath = "/health"'
        )
        path = profile(tmp_path, text)
        refused(
            harness(
                "load", "run", str(path), "--attach", str(stack.workdir), "--report", str(tmp_path / "r")
            ),
            "target.method",
            "GET",
            "not DELETE",
        )


@pytest.mark.behaviour("load.profiles", "harness.exit_codes")
class TestRemoteAddressesAreRefused:
    def test_a_target_url_off_this_machine(self, tmp_path: Path) -> None:
        text = GOOD.replace('kind = "orders"', 'kind = "http"\nurl = "http://203.0.113.7:8080"')
        path = profile(tmp_path, text)
        refused(
            harness("load", "run", str(path), "--report", str(tmp_path / "r")),
            "target.url",
            "203.0.113.7",
            "--allow-remote",
        )

    def test_a_master_bound_to_every_interface(self, tmp_path: Path) -> None:
        refused(
            harness(
                "load",
                "run",
                str(PROFILES / "balancer-shares.toml"),
                "--master",
                "--master-bind-host",
                "0.0.0.0",
                "--report",
                str(tmp_path / "r"),
            ),
            "--master-bind-host",
            "--allow-remote",
        )

    def test_a_worker_asked_to_join_a_remote_master(self) -> None:
        refused(harness("load", "worker", "--master-host", "203.0.113.7"), "--master-host", "--allow-remote")


@pytest.mark.behaviour("load.profiles", "harness.exit_codes")
def test_a_fault_window_the_proxy_refuses_stops_the_run_with_its_reason(stack: Stack, tmp_path: Path) -> None:
    """A window the proxy refuses when it is due (validation cannot know: a toxic of the same name is already
    on users-2) stops Locust, exit 2 with the proxy's own reason; no check that needed the fault is judged
    "held", and nothing the run applied is left."""
    text = GOOD.replace("duration = 5", "duration = 8\nrate_per_user = 2") + (
        '[[faults.windows]]\nname = "refused"\nstart = 1\nend = 4\n'
        'fault = { kind = "latency", instance = "users-2", attributes = { latency = 3000 } }\n'
    )
    assert stack.toxiproxy is not None
    stack.toxiproxy.add_toxic("users-2", "latency", name="refused", attributes={"latency": 1})
    try:
        with pytest.raises(FaultNotApplied) as raised:
            run_load(profile(tmp_path, text), report_dir=tmp_path / "report", stack=stack, progress=print)
        assert [t.name for t in stack.toxiproxy.toxics("users-2")] == ["refused"]  # only the one set here
    finally:
        stack.toxiproxy.remove_toxic("users-2", "refused")
    print(raised.value)
    assert raised.value.exit_code == ExitCode.USAGE
    assert "refused (latency latency=3000 on users-2) could not be applied, so the run stopped" in str(
        raised.value
    )
    assert "already exists" in str(raised.value)
    assert not (tmp_path / "report" / "results.json").exists()  # no verdict on a fault that never was
    assert all(not stack.toxiproxy.toxics(name) for name in stack.proxies)
