"""Ctrl-C while a Chaos Toolkit activity runs ends it at once, even when the activity has a pause after it
(Chaos Toolkit would sleep through that pause with the interrupt on its way out). chaoslib's own activity
runner, with its sleep recorded instead of slept."""

from __future__ import annotations

from typing import Any

import chaoslib.activity
import pytest
from chaoslib.run import EventHandlerRegistry

from harness.chaos.control import InterruptSkipsPause, configure_control

pytestmark = pytest.mark.behaviour("harness.chaos_cli")


def interrupted() -> None:
    """The provider of the activity under test: the user's Ctrl-C lands while it runs."""
    raise KeyboardInterrupt


def finished() -> str:
    return "done"


def activity(func: str) -> dict[str, Any]:
    return {"type": "action", "name": func, "pauses": {"after": 120},
            "provider": {"type": "python", "module": __name__, "func": func}}  # fmt: skip


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(chaoslib.activity.time, "sleep", slept.append)
    return slept


def run(func: str, registry: EventHandlerRegistry) -> dict[str, Any]:
    run: dict[str, Any] = chaoslib.activity.execute_activity({}, activity(func), {}, {}, None, registry)
    return run


def the_harness_registry() -> EventHandlerRegistry:
    registry = EventHandlerRegistry()
    configure_control(configuration=None, event_registry=registry)
    return registry


def test_an_interrupted_activity_skips_its_pause(pauses: list[float]) -> None:
    with pytest.raises(KeyboardInterrupt):
        run("interrupted", the_harness_registry())
    print(f"paused: {pauses} (bound: no pause)")
    assert pauses == []


def test_an_activity_that_finishes_still_pauses(pauses: list[float]) -> None:
    assert run("finished", the_harness_registry())["output"] == "done"
    assert pauses == [120]


def test_the_control_registers_it_once() -> None:
    registry = the_harness_registry()
    configure_control(configuration=None, event_registry=registry)
    assert [type(h) for h in registry.handlers] == [InterruptSkipsPause]
