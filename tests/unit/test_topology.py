"""The topology file: defaults, client tables, the per-instance config hand-off, and every mistake reported as
one ConfigError naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from harness._cli_common import given
from harness._serve_cli import instance_values, knob
from harness.discovery import DiscoveryRefresh, ServiceClientConfig
from harness.errors import ConfigError
from harness.resilience import BreakerConfig, RetryPolicy
from harness.settings import (
    CLIENT_DEFAULTS,
    HEARTBEAT_INTERVAL,
    MAX_IN_FLIGHT,
    ClientSettings,
    InstanceConfig,
)
from harness.stack import Topology, load_topology
from harness.stack._topology import RegistryTopology
from reference_services.common import registration
from reference_services.notifications import NotificationsSettings
from reference_services.orchestrator import OrchestratorSettings
from reference_services.registry import RegistrySettings
from reference_services.registry._store import InstanceStore
from reference_services.users import UsersSettings


@pytest.mark.behaviour("harness.topology")
def test_an_empty_file_is_the_default_stack(tmp_path: Path) -> None:
    """Every key has a default: registry, users x3, notifications, orchestrator, behind proxies."""
    path = tmp_path / "topology.toml"
    path.write_text("")
    topology = load_topology(path)
    assert topology == Topology()
    assert [name for _, name in topology.instances()] == [
        "users-1", "users-2", "users-3", "notifications-1", "orchestrator-1"]  # fmt: skip
    assert topology.proxies


@pytest.mark.behaviour("harness.topology")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('host = "10.0.0.5"', "not a loopback address", id="remote-host"),
        pytest.param("[services.payments]\ninstances = 1", "unknown service", id="unknown-service"),
        pytest.param(
            "[services.orchestrator]\ninstances = 2", "one instance per saga log", id="two-orchestrators"
        ),
        pytest.param("[registry]\nttl = -1", "registry.ttl", id="negative-ttl"),
        pytest.param("[registry\nttl = 1", "not valid TOML", id="bad-toml"),
    ],
)
def test_mistakes_are_one_config_error(tmp_path: Path, text: str, message: str) -> None:
    """A bad topology file names its problem and never starts anything."""
    path = tmp_path / "topology.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_topology(path)


EXAMPLE = """
[services.users]
instances = 3
weight = [1, 1, 2]
[services.orchestrator.clients.users]
balancer = "weighted_round_robin"
retry = { max_attempts = 3, base_delay = 0.05, max_delay = 0.5 }
attempt_timeout = 1.0
deadline = 3.0
discovery = { watch = false, refresh_interval = 0 }
[services.orchestrator.clients.users.breaker]
window_size = 10
minimum_calls = 5
failure_rate_threshold = 0.5
open_duration = 0.5
half_open_calls = 1
[services.orchestrator.options]
step_deadline = 7.5
recovery_interval = 0.5
[registry]
health_checks = false
"""


def load(tmp_path: Path, text: str) -> Topology:
    path = tmp_path / "topology.toml"
    path.write_text(text)
    return load_topology(path)


@pytest.mark.behaviour("harness.topology", "client.configuration")
class TestClientTables:
    def test_a_client_table_configures_that_callers_client(self, tmp_path: Path) -> None:
        """Every key of [services.orchestrator.clients.users] reaches the orchestrator's users client."""
        topology = load(tmp_path, EXAMPLE)
        config = topology.client("orchestrator", "users").to_config()
        assert config.balancer == "weighted_round_robin"
        assert config.breaker == BreakerConfig(window_size=10, minimum_calls=5, open_duration=0.5)
        assert (config.retry.max_attempts, config.retry.base_delay, config.retry.max_delay) == (3, 0.05, 0.5)
        assert (config.attempt_timeout, config.deadline) == (1.0, 3.0)
        refresh = topology.client("orchestrator", "users").discovery.to_refresh()
        assert refresh == DiscoveryRefresh(watch=False, interval=0)
        assert (
            topology.client("orchestrator", "notifications")
            == CLIENT_DEFAULTS["orchestrator"]["notifications"]
        )

    def test_a_partial_table_changes_only_what_it_names(self, tmp_path: Path) -> None:
        """breaker = { open_duration = 0.5 } keeps the caller's other breaker and retry defaults."""
        text = "[services.orchestrator.clients.users]\nbreaker = { open_duration = 0.5 }\n"
        config = load(tmp_path, text).client("orchestrator", "users").to_config()
        default = CLIENT_DEFAULTS["orchestrator"]["users"].to_config()
        assert config.breaker is not None
        assert config.breaker.open_duration == 0.5
        assert (config.breaker.window_size, config.breaker.minimum_calls) == (20, 10)
        assert (config.retry, config.attempt_timeout) == (default.retry, default.attempt_timeout)

    def test_breaker_false_is_a_client_without_breaker(self, tmp_path: Path) -> None:
        """breaker = false: no BreakerConfig at all, also after the JSON hand-off to the instance."""
        topology = load(tmp_path, "[services.users.clients.notifications]\nbreaker = false\n")
        assert topology.client("users", "notifications").to_config().breaker is None
        path = topology.instance_config("users", "users-2").write(tmp_path / "users-2.json")
        assert '"breaker": false' in path.read_text()
        values = InstanceConfig.read(path).settings_values()
        settings = UsersSettings(database=tmp_path / "db", **values)
        assert settings.client("notifications").to_config().breaker is None


@pytest.mark.behaviour("harness.topology")
class TestInstanceConfig:
    def test_a_service_table_without_instances_keeps_the_default_count(self, tmp_path: Path) -> None:
        """[services.users.clients.notifications] alone still runs three users instances."""
        topology = load(tmp_path, "[services.users.clients.notifications]\nbalancer = 'random'\n")
        assert [name for kind, name in topology.instances() if kind == "users"] == [
            "users-1",
            "users-2",
            "users-3",
        ]

    def test_weights_and_registry_switches_reach_each_instance(self, tmp_path: Path) -> None:
        """weight = [1, 1, 2] gives users-3 weight 2; health_checks = false reaches every instance."""
        topology = load(tmp_path, EXAMPLE)
        configs = [topology.instance_config("users", f"users-{n}") for n in (1, 2, 3)]
        assert [c.weight for c in configs] == [1, 1, 2]
        assert {c.health_check for c in configs} == {False}
        orchestrator = topology.instance_config("orchestrator", "orchestrator-1")
        options = orchestrator.options
        assert (options["step_deadline"], options["recovery_interval"]) == (7.5, 0.5)
        assert "step_attempts" not in options  # the replaced option is never written to an instance file

    def test_one_weight_applies_to_every_instance(self, tmp_path: Path) -> None:
        """weight = 3 (a number) is every instance's weight."""
        topology = load(tmp_path, "[services.users]\ninstances = 2\nweight = 3\n")
        assert [topology.instance_config("users", f"users-{n}").weight for n in (1, 2)] == [3, 3]

    def test_an_instance_reads_its_file_into_its_settings(self, tmp_path: Path) -> None:
        """The orchestrator built from its config file has the topology's options and client tables."""
        topology = load(tmp_path, EXAMPLE)
        path = topology.instance_config("orchestrator", "orchestrator-1").write(tmp_path / "o.json")
        values = InstanceConfig.read(path).settings_values()
        settings = OrchestratorSettings(database=tmp_path / "db", advertise_port=9000, **values)
        assert (settings.step_deadline, settings.recovery_interval) == (7.5, 0.5)
        assert settings.client("users") == topology.client("orchestrator", "users")
        assert registration(settings, "orchestrator").health_url is None

    def test_a_bad_config_file_names_the_file_and_the_key(self, tmp_path: Path) -> None:
        """An unknown key in a --config file is one ConfigError with the file and the key's path."""
        path = tmp_path / "bad.json"
        path.write_text('{"clients": {"users": {"breaker": {"windows": 3}}}}')
        with pytest.raises(ConfigError, match=r"bad.json: clients.users.breaker.windows: Extra inputs"):
            InstanceConfig.read(path)


@pytest.mark.behaviour("harness.topology")
class TestPrecedence:
    """flag > HARNESS_* environment > --config file > default, for `harness serve`."""

    @staticmethod
    def run(tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        @click.command()
        @knob("--heartbeat-interval", HEARTBEAT_INTERVAL, type=float)
        @knob("--max-in-flight", MAX_IN_FLIGHT, type=int)
        @click.option("--advertise-health", is_flag=True)
        def command(**flags: Any) -> None:
            seen.update(instance_values(tmp_path / "config.json", given(flags), {}))

        result = CliRunner().invoke(command, args, env=env or {}, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return seen

    def test_the_file_beats_the_default_and_flags_beat_both(self, tmp_path: Path) -> None:
        """A value only in the file is used; an environment variable beats it; a flag beats both."""
        InstanceConfig(heartbeat_interval=0.25, max_in_flight=8, advertise_health=True).write(
            tmp_path / "config.json"
        )
        assert self.run(tmp_path, [])["heartbeat_interval"] == 0.25
        assert self.run(tmp_path, [])["advertise_health"] is True
        env = {"HARNESS_HEARTBEAT_INTERVAL": "0.5"}
        assert self.run(tmp_path, [], env)["heartbeat_interval"] == 0.5
        assert self.run(tmp_path, ["--heartbeat-interval", "2"], env)["heartbeat_interval"] == 2.0
        assert self.run(tmp_path, ["--max-in-flight", "3"])["max_in_flight"] == 3

    def test_call_timeout_overrides_the_files_client_timeouts(self, tmp_path: Path) -> None:
        """--call-timeout is laid over the file's client tables: attempt timeout and 3x deadline."""
        topology = load(tmp_path, EXAMPLE)
        topology.instance_config("orchestrator", "orchestrator-1").write(tmp_path / "config.json")
        timeouts = ClientSettings(attempt_timeout=0.5, deadline=1.5)
        values = instance_values(tmp_path / "config.json", {}, {"users": timeouts})
        settings = OrchestratorSettings(database=tmp_path / "db", **values)
        users = settings.client("users")
        assert (users.attempt_timeout, users.deadline, users.balancer) == (0.5, 1.5, "weighted_round_robin")


@pytest.mark.behaviour("harness.topology")
class TestRefusals:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            pytest.param("[services.users]\ninstances = 3\nweight = [1, 2]",
                         "services.users.weight: 2 weights for 3 instances", id="weights-per-instance"),
            pytest.param("[services.users]\nweight = 0", "services.users.weight: a weight is 1 to 1000",
                         id="weight-range"),
            pytest.param("[services.orchestrator.clients.payments]\nbalancer = 'random'",
                         "services.orchestrator.clients.payments: orchestrator has no client towards "
                         "'payments'", id="unknown-target"),
            pytest.param("[services.notifications.clients.users]\nbalancer = 'random'",
                         "services.notifications.clients.users: .*calls no other service", id="no-calls"),
            pytest.param("[services.orchestrator.clients.users]\nbalance = 'random'",
                         "services.orchestrator.clients.users.balance: unknown key", id="unknown-key"),
            pytest.param("[services.orchestrator.clients.users]\nbalancer = 'fastest'",
                         "services.orchestrator.clients.users.balancer: unknown balancer 'fastest'",
                         id="unknown-balancer"),
            pytest.param("[services.orchestrator.clients.users]\nbreaker = true",
                         "services.orchestrator.clients.users.breaker: breaker = true means nothing",
                         id="breaker-true"),
            pytest.param("[services.orchestrator.clients.users]\nbreaker = { window_size = 5 }",
                         r"services.orchestrator.clients.users: minimum_calls \(10\) cannot exceed",
                         id="breaker-never-opens"),
            pytest.param("[services.orchestrator.clients.users]\nattempt_timeout = '1'",
                         "services.orchestrator.clients.users.attempt_timeout: Input should be a valid "
                         "number", id="text-for-a-number"),
            pytest.param("[services.orchestrator.clients.users]\ndiscovery = { refresh_interval = 0 }",
                         "services.orchestrator.clients.users: refresh_interval = 0", id="watch-never"),
            pytest.param("[services.orchestrator.options]\nstep_deadlin = 3",
                         "services.orchestrator.options.step_deadlin: unknown option; orchestrator has: "
                         "recovery_interval, saga_deadline, step_deadline$", id="unknown-option"),
            pytest.param("[services.orchestrator.options]\nstep_deadline = 0",
                         "services.orchestrator.options.step_deadline: Input should be greater",
                         id="bad-option"),
            pytest.param("[services.orchestrator.options]\nstep_attempts = 30",
                         r"services.orchestrator.options.step_attempts: replaced by step_deadline \(seconds\)"
                         ": a failure to deliver", id="replaced-option"),
            pytest.param("[registry]\nhealth_checks = false\nchecks_through_proxy = true",
                         "registry.checks_through_proxy: needs health_checks", id="checks-without-checks"),
        ],
    )  # fmt: skip
    def test_each_mistake_names_its_key(self, tmp_path: Path, text: str, message: str) -> None:
        """One ConfigError line: the file, the full key, what is wrong."""
        with pytest.raises(ConfigError, match=f"topology.toml: {message}"):
            load(tmp_path, text)


@pytest.mark.behaviour("harness.topology")
class TestDefaults:
    def test_the_registry_defaults_are_the_registrys_own(self) -> None:
        """[registry] defaults equal the registry service's (the TTL was 5.0 in one, 10.0 in the other)."""
        registry, served = RegistryTopology(), RegistrySettings()
        topology = (registry.ttl, registry.check_interval, registry.check_timeout, registry.check_failures)
        assert topology == (
            served.default_ttl,
            served.check_interval,
            served.check_timeout,
            served.check_failures,
        )
        assert InstanceStore().default_ttl == served.default_ttl

    def test_a_default_instance_gets_the_services_own_settings(self, tmp_path: Path) -> None:
        """The default topology's config file changes nothing: every setting equals the service default."""
        topology, database = Topology(), tmp_path / "db"
        for model, kind in ((UsersSettings, "users"), (NotificationsSettings, "notifications"),
                            (OrchestratorSettings, "orchestrator")):  # fmt: skip
            own = model(database=database, instance_id=f"{kind}-1")
            values = topology.instance_config(kind, f"{kind}-1").settings_values()
            handed = model(database=database, instance_id=f"{kind}-1", **values)
            mismatched = {
                name for name in model.model_fields if name not in ("clients", "ttl")
                and getattr(own, name) != getattr(handed, name)
            }  # fmt: skip
            assert mismatched == set(), kind
            assert handed.ttl == RegistrySettings().default_ttl
            assert {t: handed.client(t) for t in own.client_defaults} == {
                t: own.client(t) for t in own.client_defaults
            }

    def test_the_saga_and_relay_clients_are_as_before(self) -> None:
        """The defaults are what the apps hard-coded: saga breaker 20/10/50%/2 s, relay 2 attempts in 5 s."""
        saga = OrchestratorSettings(database=Path("db")).client("users").to_config()
        assert saga.breaker == BreakerConfig(window_size=20, minimum_calls=10, open_duration=2.0)
        assert (saga.retry, saga.attempt_timeout, saga.deadline, saga.balancer) == (
            RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.5), 2.0, 6.0, "round_robin")  # fmt: skip
        relay = UsersSettings(database=Path("db")).client("notifications").to_config()
        assert relay == ServiceClientConfig(
            attempt_timeout=2.0, deadline=5.0, retry=RetryPolicy(max_attempts=2)
        )
