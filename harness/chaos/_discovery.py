"""``chaos discover --no-install resilience-harness``: the extension's actions and probes, with arguments."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Chaos Toolkit's discovery payload: every action and probe of ``harness.chaos``."""
    from chaoslib.discovery.discover import discover_actions, discover_probes, initialize_discovery_result

    discovery: dict[str, Any] = initialize_discovery_result(
        "resilience-harness", version("resilience-harness"), "harness"
    )
    discovery["activities"].extend(discover_actions("harness.chaos.actions"))
    discovery["activities"].extend(discover_probes("harness.chaos.probes"))
    return discovery
