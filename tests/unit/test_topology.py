"""The topology file: defaults, and every mistake reported as one ConfigError naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.stack import Topology, load_topology


def test_an_empty_file_is_the_default_stack(tmp_path: Path) -> None:
    """Every key has a default: registry, users x3, notifications, orchestrator, behind proxies."""
    path = tmp_path / "topology.toml"
    path.write_text("")
    topology = load_topology(path)
    assert topology == Topology()
    assert [name for _, name in topology.instances()] == [
        "users-1", "users-2", "users-3", "notifications-1", "orchestrator-1"]  # fmt: skip
    assert topology.proxies


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
