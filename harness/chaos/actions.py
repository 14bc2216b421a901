"""Chaos Toolkit actions on the harness's stack, addressed by instance name (``users-2``, ...).

Use them in an experiment file as python providers of module ``harness.chaos.actions``; the harness
control (``harness.chaos.control``) must be declared in the same file: it starts or attaches to the
stack, and removes every fault these actions apply whatever happens to the run.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import Field

from harness.errors import ConfigError
from harness.faults import FaultKind, FaultSchedule, ScheduleRunner, ToxicType

from ._arguments import FaultWindows, Instance, Toxic, ToxicAttributes, Toxicity, field_of, model_of
from ._conditions import Condition, condition_holds
from ._session import ChaosSession
from ._traffic import TrafficSpec

Configuration = dict[str, Any]
TRAFFIC = field_of(TrafficSpec)  # start_traffic's parameters are TrafficSpec's fields
CONDITION = model_of(Condition, instances=("caller", "instance"), services=("service",))

__all__ = [
    "add_toxic",
    "continue_instance",
    "cut_registry",
    "disable_proxy",
    "enable_proxy",
    "kill_instance",
    "play_fault_schedule",
    "remove_all_faults",
    "remove_toxic",
    "restart_instance",
    "restore_registry",
    "start_traffic",
    "stop_instance",
    "stop_traffic",
    "update_toxic",
    "wait_for_traffic",
    "wait_until",
]


def session_of(configuration: Configuration | None) -> ChaosSession:
    """The run's session, put in the configuration by the harness control."""
    session = (configuration or {}).get("harness_session")
    if not isinstance(session, ChaosSession):
        error = (configuration or {}).get("harness_session_error")
        if error:
            raise ConfigError(f"the harness control could not prepare the stack: {error}")
        raise ConfigError(
            'no harness session: declare the control {"name": "harness", "provider": {"type": "python", '
            '"module": "harness.chaos.control"}} in the experiment'
        )
    return session


def add_toxic(
    instance: Instance,
    type: Toxic,
    attributes: ToxicAttributes = None,
    stream: Literal["upstream", "downstream"] = "downstream",
    toxicity: Toxicity = 1.0,
    name: str | None = None,
    configuration: Configuration | None = None,
) -> str:
    """Add a toxic to the instance's fault proxy until it is removed (or the run ends); returns its name.
    Also the HTTP toxics ``http_error`` and ``http_latency`` (per request; the embedded proxy only)."""
    if type not in ToxicType.__members__.values():
        raise ConfigError(f"unknown toxic {type!r}; known: {', '.join(ToxicType)}")
    return session_of(configuration).apply(
        FaultKind(type), instance, attributes=attributes, stream=stream, toxicity=toxicity, name=name
    )


def update_toxic(
    instance: Instance,
    name: str,
    attributes: dict[str, int | str] | None = None,
    toxicity: Toxicity | None = None,
    configuration: Configuration | None = None,
) -> str:
    """Change the attributes or toxicity of a toxic the run added."""
    session = session_of(configuration)
    session.instance(instance)
    client = session.stack.toxiproxy
    if client is None:
        raise ConfigError("this stack runs without fault proxies")
    client.update_toxic(instance, name, attributes=attributes, toxicity=toxicity)
    session.events.emit(
        "fault.updated", window=name, instance=instance, attributes=attributes or {}, toxicity=toxicity
    )
    return name


def remove_toxic(
    instance: Instance, name: str | None = None, configuration: Configuration | None = None
) -> bool:
    """Remove a toxic the run added (by name, or the newest on the instance); False if none was there."""
    session = session_of(configuration)
    found = name or session.named_fault(instance)
    return session.remove(found) if found else False


def remove_all_faults(configuration: Configuration | None = None) -> int:
    """Remove every fault the run applied so far (processes are revived at cleanup); returns how many."""
    session = session_of(configuration)
    removed = 0
    for window in reversed(session.faults.active()):
        if window.fault.kind not in (FaultKind.KILL, FaultKind.STOP):
            removed += session.remove(window.name)
    return removed


def disable_proxy(instance: Instance, configuration: Configuration | None = None) -> str:
    """Partition the instance: its proxy refuses every connection until enabled."""
    return session_of(configuration).apply(FaultKind.DOWN, instance)


def enable_proxy(instance: Instance, configuration: Configuration | None = None) -> bool:
    session = session_of(configuration)
    found = session.named_fault(instance, FaultKind.DOWN)
    return session.remove(found) if found else False


def cut_registry(configuration: Configuration | None = None) -> str:
    """Cut every service off the registry (its proxy refuses connections); clients serve from cache."""
    return disable_proxy("registry", configuration)


def restore_registry(configuration: Configuration | None = None) -> bool:
    return enable_proxy("registry", configuration)


def kill_instance(instance: Instance, configuration: Configuration | None = None) -> str:
    """SIGKILL the instance (no deregistration, no cleanup); it stays down until restarted."""
    return session_of(configuration).apply(FaultKind.KILL, instance)


def restart_instance(instance: Instance, configuration: Configuration | None = None) -> bool:
    """Start a killed or stopped instance again on its port (a running one is restarted)."""
    session = session_of(configuration)
    found = session.named_fault(instance, FaultKind.KILL)
    if found:
        return session.remove(found)
    session.instance(instance)
    session.stack.restart(instance)  # the stack records it on the timeline
    return True


def stop_instance(instance: Instance, configuration: Configuration | None = None) -> str:
    """SIGSTOP the instance: it keeps its sockets but answers nothing until continued."""
    return session_of(configuration).apply(FaultKind.STOP, instance)


def continue_instance(instance: Instance, configuration: Configuration | None = None) -> bool:
    session = session_of(configuration)
    found = session.named_fault(instance, FaultKind.STOP)
    return session.remove(found) if found else False


def play_fault_schedule(
    windows: FaultWindows, seed: int | None = None, configuration: Configuration | None = None
) -> int:
    """Play a fault schedule (windows with start/end seconds from now) and return when it ends; every
    window is removed by then. Run it with ``"background": true`` to act meanwhile."""
    session = session_of(configuration)
    schedule = FaultSchedule.model_validate({"seed": seed, "windows": windows})
    for window in schedule.windows:
        session.instance(window.fault.instance)
    schedule.save(session.workdir / "chaos-schedule.json")
    runner = ScheduleRunner(schedule, session.faults)
    runner.run()
    return len(schedule.windows) - len(runner.failures)


def start_traffic(
    name: Annotated[str, TRAFFIC] = "orders",
    kind: Annotated[str, TRAFFIC] = "orders",
    rate: Annotated[float, TRAFFIC] = 10.0,
    duration: Annotated[float, TRAFFIC] = 30.0,
    concurrency: Annotated[int, TRAFFIC] = 16,
    timeout: Annotated[float, TRAFFIC] = 10.0,
    target: Annotated[Instance | None, TRAFFIC] = None,
    method: Annotated[str, TRAFFIC] = "GET",
    path: Annotated[str, TRAFFIC] = "/health",
    keepalive: Annotated[bool, TRAFFIC] = True,
    configuration: Configuration | None = None,
) -> str:
    """Start bounded background traffic (orders through the orchestrator, or HTTP to an instance through
    its proxy); every request is recorded with its outcome and latency. Returns at once."""
    spec = TrafficSpec.model_validate(
        {
            "name": name,
            "kind": kind,
            "rate": rate,
            "duration": duration,
            "concurrency": concurrency,
            "timeout": timeout,
            "target": target,
            "method": method,
            "path": path,
            "keepalive": keepalive,
        }
    )
    session_of(configuration).start_traffic(spec)
    return name


def stop_traffic(name: str = "orders", configuration: Configuration | None = None) -> dict[str, int]:
    """Stop the traffic early and wait for its requests in flight; returns its counts."""
    traffic = _traffic(name, configuration)
    traffic.stop()
    traffic.join(traffic.spec.timeout + 5)
    return _counts(traffic)


def wait_for_traffic(name: str = "orders", configuration: Configuration | None = None) -> dict[str, int]:
    """Wait until the traffic has sent everything it was asked to (bounded by its duration)."""
    traffic = _traffic(name, configuration)
    if not traffic.join(traffic.spec.duration + traffic.spec.timeout + 10):
        traffic.stop()
        raise ConfigError(f"traffic {name} did not end within its duration")
    return _counts(traffic)


def wait_until(
    condition: Annotated[dict[str, Any], CONDITION],
    timeout: Annotated[float, Field(gt=0)] = 30.0,
    interval: Annotated[float, Field(gt=0)] = 0.2,
    configuration: Configuration | None = None,
) -> float:
    """Wait until ``condition`` holds (e.g. ``{"breaker": "open", "caller": "orchestrator-1",
    "instance": "users-2"}`` or ``{"member": false, "service": "users", "instance": "users-2"}``);
    returns the seconds waited; fails after ``timeout``."""
    session = session_of(configuration)
    wanted = Condition.model_validate(condition)
    began = time.monotonic()
    while True:
        if condition_holds(session, wanted):
            return round(time.monotonic() - began, 3)
        if time.monotonic() - began >= timeout:
            raise ConfigError(f"{wanted.describe()} did not hold within {timeout:g}s")
        time.sleep(interval)


def _traffic(name: str, configuration: Configuration | None) -> Any:
    session = session_of(configuration)
    traffic = session.traffic.get(name)
    if traffic is None:
        raise ConfigError(f"no traffic named {name!r}; started: {', '.join(session.traffic) or 'none'}")
    return traffic


def _counts(traffic: Any) -> dict[str, int]:
    stats = traffic.stats
    return {"sent": stats.sent, "ok": stats.ok, "errors": stats.errors, "failed": stats.failed}
