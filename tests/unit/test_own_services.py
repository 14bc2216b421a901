"""Services of your own in the topology: a command per instance or external URLs; what is accepted, what
is refused with one line naming the key, and what the stack will start, name and refuse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.stack import OwnServiceTopology, Stack, StackState, Topology, load_topology
from harness.stack._state import InstanceRecord, Origin

EXAMPLE = Path(__file__).parents[2] / "examples" / "inventory" / "topology.toml"


def topology_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.behaviour("harness.own_services")
class TestTheTable:
    def test_the_example_reads_as_the_issue_writes_it(self) -> None:
        """Two inventory instances weighted 1 and 3, run in the topology's folder, reference services off."""
        topology = load_topology(EXAMPLE)
        inventory = topology.own_services()["inventory"]
        assert topology.instances() == [("inventory", "inventory-1"), ("inventory", "inventory-2")]
        assert inventory.weights() == [1, 3]
        assert inventory.health == "/healthz"
        assert inventory.cwd == str(EXAMPLE.parent)
        assert inventory.env["INVENTORY_DB"] == "{workdir}/inventory.db"

    def test_own_instances_start_after_the_reference_ones_in_file_order(self, tmp_path: Path) -> None:
        text = '[services.zeta]\ncommand = ["z", "{port}"]\n[services.alpha]\n'
        text += 'external = ["http://127.0.0.1:9001", "http://localhost:9002"]\n'
        path = topology_file(tmp_path, text)
        names = [name for _kind, name in load_topology(path).instances()]
        assert names[-3:] == ["zeta-1", "alpha-1", "alpha-2"]
        assert names[:5] == ["users-1", "users-2", "users-3", "notifications-1", "orchestrator-1"]

    def test_an_external_service_has_one_instance_per_url(self) -> None:
        legacy = OwnServiceTopology(external=["http://127.0.0.1:9001", "http://127.0.0.1:9002"])
        assert legacy.instances == 2

    def test_the_command_runs_where_its_cwd_says_relative_to_the_file(self, tmp_path: Path) -> None:
        path = topology_file(tmp_path, '[services.inv]\ncommand = ["run", "{port}"]\ncwd = "bin"\n')
        assert load_topology(path).own_services()["inv"].cwd == str(tmp_path / "bin")

    def test_the_topology_survives_its_json_copy(self) -> None:
        """What the stack leaves in ``topology.json`` reads back the same (attached runs use it)."""
        topology = load_topology(EXAMPLE)
        assert Topology.model_validate_json(topology.model_dump_json()) == topology


@pytest.mark.behaviour("harness.own_services")
class TestRefusals:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            pytest.param('[services.payments]\ninstances = 1', "services: unknown service 'payments'",
                         id="reference-table-for-an-unknown-service"),
            pytest.param('[services.inv]\ncommand = ["run"]', "services.inv: the command (or env) must pass "
                         "{port}", id="no-port"),
            pytest.param('[services.inv]\ncommand = ["run", "{prot}"]', "services.inv: '{prot}' names {prot}",
                         id="unknown-placeholder"),
            pytest.param('[services.inv]\ncommand = ["run", "{port}"]\nexternal = ["http://127.0.0.1:1"]',
                         "services.inv: give a command", id="both-forms"),
            pytest.param('[services.inv]\nexternal = ["http://127.0.0.1:1"]\ninstances = 2',
                         "instances = 2 but 1 external URLs", id="count-and-urls"),
            pytest.param('[services.inv]\nexternal = ["https://127.0.0.1:1/api"]', "is not http://host:port",
                         id="url-shape"),
            pytest.param('[services.inv]\nexternal = ["http://127.0.0.1:1"]\nenv = { A = "b" }',
                         "env and cwd are for a command", id="env-for-external"),
            pytest.param('[services.inv]\ncommand = ["run", "{port}"]\nweight = [1, 2]',
                         "2 weights for 1 instances", id="weights"),
            pytest.param('[services.inv]\ncommand = ["run", "{port}"]\nhealth = "healthz"',
                         "services.inv.health", id="health-path"),
            pytest.param('[services.inv]\ncommand = ["run", "{port}"]\nretries = 3', "services.inv.retries: "
                         "unknown key", id="unknown-key"),
            pytest.param('[services.users]\ncommand = ["run", "{port}"]', "users is a reference service",
                         id="reference-with-command"),
            pytest.param('[services.registry]\ncommand = ["run", "{port}"]', "not one of registry",
                         id="reserved-name"),
            pytest.param('[services.Inv]\ncommand = ["run", "{port}"]', "lowercase", id="name-shape"),
        ],
    )  # fmt: skip
    def test_a_bad_table_is_one_line_naming_its_key(self, tmp_path: Path, text: str, message: str) -> None:
        with pytest.raises(ConfigError, match="topology file") as caught:
            load_topology(topology_file(tmp_path, text))
        assert message in str(caught.value)
        assert "\n" not in str(caught.value)

    def test_an_external_url_off_this_machine_is_refused_before_anything_starts(self, tmp_path: Path) -> None:
        """Without ``allow_remote`` (``--allow-remote``): a ConfigError naming the key, no workdir made."""
        remote = Topology(services={"legacy": OwnServiceTopology(external=["http://10.1.2.3:8080"])})
        refused = r"services\.legacy\.external: http://10\.1\.2\.3:8080 is not on loopback.*--allow-remote"
        with pytest.raises(ConfigError, match=refused):
            Stack(remote, tmp_path / "stack").start()
        assert not (tmp_path / "stack").exists()


@pytest.mark.behaviour("harness.own_services")
class TestTheStateFile:
    def test_it_reads_back_typed_while_its_harness_lives(self, tmp_path: Path) -> None:
        state = StackState(harness_pid=os.getpid(), registry="http://127.0.0.1:1", instances=[
            InstanceRecord(name="legacy-1", kind="legacy", origin=Origin.EXTERNAL, url="http://127.0.0.1:2",
                           pid=None, proxy="127.0.0.1:3", ready_path="/healthz"),
        ])  # fmt: skip
        state.write(tmp_path)
        assert StackState.read(tmp_path) == state

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("{not json", id="torn"),
            pytest.param(
                '{"harness_pid": 1, "registry": "x", "instances": [], "extra": 1}', id="unknown-key"
            ),
            pytest.param('{"harness_pid": 999999999, "registry": "x", "instances": []}', id="harness-gone"),
        ],
    )
    def test_a_torn_foreign_or_stale_file_is_no_stack(self, tmp_path: Path, text: str) -> None:
        (tmp_path / "stack.json").write_text(text, encoding="utf-8")
        assert StackState.read(tmp_path) is None
