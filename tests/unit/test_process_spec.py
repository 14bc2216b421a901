"""One description of a process: a ProcessSpec becomes its command line and environment in one place, and
every setting the harness gives a reference service is a flag that service's command has."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pytest

from harness._faults_cli import toxiproxy as toxiproxy_command
from harness._serve_cli import serve
from harness.contract._providers import PROVIDERS, _process
from harness.faults import ToxiproxyProcess
from harness.stack import ProcessSpec, ServiceProcess, SettingValue, Stack, Topology
from harness.stack._topology import SERVICE_KINDS


class TestCommandLine:
    def test_a_reference_service_is_harness_serve_with_a_flag_per_setting(self, tmp_path: Path) -> None:
        """snake_case names become --flags in order; True is a bare flag; None and False are left out."""
        settings: dict[str, SettingValue] = {
            "instance_id": "users-2", "database": tmp_path / "u.db", "test_mode": True, "registry": None,
            "advertise_health": False, "heartbeat_interval": 0.2,
        }  # fmt: skip
        spec = ProcessSpec("users-2", "users", settings)
        assert spec.argv(tmp_path / "users-2.port") == [
            sys.executable, "-m", "harness", "serve", "users", "--host", "127.0.0.1", "--port", "0",
            "--port-file", str(tmp_path / "users-2.port"), "--instance-id", "users-2",
            "--database", str(tmp_path / "u.db"), "--test-mode", "--heartbeat-interval", "0.2",
        ]  # fmt: skip

    def test_the_fault_proxy_is_its_own_command(self) -> None:
        argv = ToxiproxyProcess({"seed": 5, "proxy_metrics": True}, port=8474).command()
        assert argv[3:] == ["toxiproxy", "--host", "127.0.0.1", "--port", "8474", "--port-file", argv[-4],
                            "--seed", "5", "--proxy-metrics"]  # fmt: skip

    def test_an_own_command_gets_its_placeholders_filled(self, tmp_path: Path) -> None:
        """{port}, {host}, {instance}, {workdir} and {python} in the arguments and the environment."""
        spec = ProcessSpec("inventory-2", "inventory", host="127.0.0.1", port=4711, workdir=tmp_path,
                           command=("{python}", "inventory.py", "--port", "{port}", "--bind={host}"),
                           env={"DB": "{workdir}/inventory.db", "NAME": "{instance}"})  # fmt: skip
        assert spec.argv() == [sys.executable, "inventory.py", "--port", "4711", "--bind=127.0.0.1"]
        assert spec.environment() == {"DB": f"{tmp_path}/inventory.db", "NAME": "inventory-2"}

    def test_a_restart_keeps_the_port(self) -> None:
        """``again`` is the same spec pinned to the port the first process bound."""
        process = ServiceProcess(ProcessSpec("registry", "registry", {"ttl": 1.0}))
        process.port = 40123
        assert process.again().spec == ProcessSpec("registry", "registry", {"ttl": 1.0}, port=40123)


class TestRefusals:
    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            pytest.param(lambda: ProcessSpec("x", "users", {"Bad-Name": 1}), "snake_case", id="setting-name"),
            pytest.param(
                lambda: ProcessSpec("x", "own", command=("run", "{prot}")),
                "names {prot}",
                id="unknown-placeholder",
            ),
            pytest.param(
                lambda: ProcessSpec("x", "own", command=("run", "{port")), "literal brace", id="broken-brace"
            ),
            pytest.param(lambda: ProcessSpec("x", "own", command=()), "executable", id="empty-command"),
            pytest.param(
                lambda: ProcessSpec("x", "own", {"a": 1}, command=("run",)),
                "in the command itself",
                id="settings-with-command",
            ),
            pytest.param(lambda: ProcessSpec("x", "users", port=70000), "0 to 65535", id="port"),
        ],
    )
    def test_a_spec_that_cannot_run_is_refused_when_made(self, spec: object, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            spec()  # type: ignore[operator]

    def test_an_own_command_needs_its_port_chosen_beforehand(self) -> None:
        with pytest.raises(ValueError, match="port chosen beforehand"):
            ProcessSpec("x", "own", command=("run", "{port}")).argv()


def options_of(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts}


def flags_in(argv: list[str]) -> list[str]:
    return [part for part in argv if part.startswith("--")]


class TestEverySettingIsAFlag:
    """What the stack and the contract providers pass each reference service is an option of its command,
    so a renamed flag fails here, not at start-up."""

    @pytest.mark.parametrize("kind", SERVICE_KINDS)
    def test_the_stack_s_instances(self, tmp_path: Path, kind: str) -> None:
        stack = Stack(Topology(), tmp_path)
        stack.proxies["registry"] = "127.0.0.1:1"  # what the instances are told to use
        spec = stack._reference_spec(kind, f"{kind}-1").with_settings(advertise_port=2)
        assert set(flags_in(spec.argv(tmp_path / "p"))) <= options_of(serve.commands[kind])

    def test_the_stack_s_registry_and_fault_proxy(self, tmp_path: Path) -> None:
        stack = Stack(Topology(), tmp_path)
        registry = stack._registry_spec(allow_remote=True)
        assert set(flags_in(registry.argv(tmp_path / "p"))) <= options_of(serve.commands["registry"])
        toxiproxy = stack._toxiproxy_process(0, tmp_path / "populate.json")
        assert set(flags_in(toxiproxy.command())) <= options_of(toxiproxy_command)

    @pytest.mark.parametrize("name", PROVIDERS)
    def test_the_contract_providers(self, tmp_path: Path, name: str) -> None:
        process = _process(name, tmp_path, "127.0.0.1", 5.0, None)
        command = toxiproxy_command if name == "toxiproxy" else serve.commands[name]
        assert set(flags_in(process.command())) <= options_of(command)
