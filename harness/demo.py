"""The discovery demo: a registry and echo instances as real processes, and a ServiceClient that has to cope.

A small, self-checking showcase of the discovery layer: it shows, with measured numbers, that round robin
spreads calls evenly, that a failing instance's breaker opens while callers still succeed, that it closes
again after recovery, and that a killed instance leaves the lookups within its health-check bound.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.discovery import RegistryClient, RegistryLookup, ServiceClient, ServiceClientConfig
from harness.errors import EnvironmentUnavailable
from harness.resilience import BreakerConfig, BreakerState, RetryPolicy
from harness.stack import ServiceProcess

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoSettings:
    """Knobs of the demo; the defaults finish in about ten seconds on a laptop."""

    instances: int = 3
    calls: int = 30
    ttl: float = 2.0
    check_interval: float = 0.5
    check_failures: int = 2
    breaker_failures: int = 3
    open_duration: float = 1.0
    workdir: Path | None = None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class DemoReport:
    workdir: Path
    checks: list[Check] = field(default_factory=list)
    started_in: float = 0.0

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def add(self, name: str, passed: bool, detail: str) -> Check:
        check = Check(name, passed, detail)
        self.checks.append(check)
        return check


def run_demo(settings: DemoSettings, progress: Progress = lambda _line: None) -> DemoReport:
    """Start the processes, run the scenario, stop everything (also on error or Ctrl-C)."""
    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="harness-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = DemoReport(workdir)
    processes: list[ServiceProcess] = []
    began = time.monotonic()
    try:
        registry = ServiceProcess(
            "registry",
            "registry",
            [
                "--ttl",
                str(settings.ttl),
                "--check-interval",
                str(settings.check_interval),
                "--check-failures",
                str(settings.check_failures),
                "--event-log",
                str(workdir / "registry.jsonl"),
            ],
            workdir=workdir,
        )
        processes.append(registry.start())
        progress(f"registry      {registry.url}  pid {registry.pid}")
        for n in range(1, settings.instances + 1):
            echo = ServiceProcess(
                f"echo-{n}",
                "echo",
                [
                    "--instance-id",
                    f"echo-{n}",
                    "--registry",
                    registry.url,
                    "--ttl",
                    str(settings.ttl),
                    "--heartbeat-interval",
                    str(settings.ttl / 4),
                    "--event-log",
                    str(workdir / f"echo-{n}.jsonl"),
                ],
                workdir=workdir,
            )
            processes.append(echo.start())
            progress(f"echo-{n}        {echo.url}  pid {echo.pid}")
        report.started_in = time.monotonic() - began
        progress(f"started {len(processes)} processes in {report.started_in:.2f}s")
        asyncio.run(_scenario(settings, registry.url, {p.name: p for p in processes[1:]}, report, progress))
    finally:
        for process in reversed(processes):
            process.stop()
    return report


async def _scenario(
    settings: DemoSettings,
    registry_url: str,
    echoes: dict[str, ServiceProcess],
    report: DemoReport,
    progress: Progress,
) -> None:
    config = ServiceClientConfig(
        balancer="round_robin",
        breaker=BreakerConfig.consecutive_failures(settings.breaker_failures, settings.open_duration),
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
        retry_budget_min_per_second=float(settings.calls),
        attempt_timeout=1.0,
    )
    async with (
        RegistryClient(registry_url) as registry,
        httpx.AsyncClient(timeout=2.0, trust_env=False) as admin,
    ):
        lookup = RegistryLookup(registry, wait=5.0)
        client = ServiceClient("echo", lookup, config=config)
        try:
            await _wait_for_members(lookup, len(echoes), deadline=10.0)
            await _balanced(client, settings, report, progress)
            await _breaker_opens(client, admin, echoes, settings, report, progress)
            await _breaker_closes(client, admin, echoes, settings, report, progress)
            await _killed_instance_leaves(lookup, echoes, settings, report, progress)
        finally:
            await client.aclose()
            await lookup.aclose()


async def _wait_for_members(lookup: RegistryLookup, count: int, deadline: float) -> None:
    until = time.monotonic() + deadline
    while len(await lookup.instances("echo")) < count:
        if not await lookup.wait_for_change("echo", max(0.0, until - time.monotonic())):
            raise EnvironmentUnavailable(
                f"only {len(lookup.known('echo'))} of {count} echo instances registered"
            )


async def _served(admin: httpx.AsyncClient, echoes: dict[str, ServiceProcess]) -> dict[str, int]:
    served = {}
    for name, process in echoes.items():
        if process.is_running():
            served[name] = int((await admin.get(f"{process.url}/admin/stats")).json()["served"])
    return served


async def _balanced(
    client: ServiceClient, settings: DemoSettings, report: DemoReport, progress: Progress
) -> None:
    progress(f"\n1. {settings.calls} calls, round robin over healthy instances")
    before = {k: v.successes for k, v in client.stats().items()}
    for n in range(settings.calls):
        (await client.get("/echo", params={"msg": str(n)})).raise_for_status()
    shares = {k: v.successes - before.get(k, 0) for k, v in client.stats().items()}
    progress("   shares: " + ", ".join(f"{k} {v}" for k, v in shares.items()))
    spread = max(shares.values()) - min(shares.values())
    report.add("round robin spreads calls evenly", spread <= 1, f"max - min share = {spread} (bound 1)")


async def _breaker_opens(
    client: ServiceClient,
    admin: httpx.AsyncClient,
    echoes: dict[str, ServiceProcess],
    settings: DemoSettings,
    report: DemoReport,
    progress: Progress,
) -> None:
    progress("\n2. echo-2 starts answering 503; callers should not notice")
    await admin.put(f"{echoes['echo-2'].url}/admin/faults", json={"status": 503})
    before = await _served(admin, echoes)
    ok = 0
    for n in range(settings.calls):
        ok += (await client.get("/echo", params={"msg": str(n)})).status_code == 200
    after = await _served(admin, echoes)
    hits = after["echo-2"] - before["echo-2"]
    state = client.breaker("echo-2").state
    progress(
        f"   {ok}/{settings.calls} calls answered 200; echo-2 saw {hits} requests; breaker {state.value}"
    )
    report.add(
        "callers keep succeeding while echo-2 fails",
        ok == settings.calls,
        f"{ok}/{settings.calls} answered 200 (retries to other instances)",
    )
    report.add(
        "echo-2's breaker opens and shields it",
        state is BreakerState.OPEN and hits <= settings.breaker_failures,
        f"state {state.value}, echo-2 got {hits} requests "
        f"(bound {settings.breaker_failures} = failures to open)",
    )


async def _breaker_closes(
    client: ServiceClient,
    admin: httpx.AsyncClient,
    echoes: dict[str, ServiceProcess],
    settings: DemoSettings,
    report: DemoReport,
    progress: Progress,
) -> None:
    progress("\n3. echo-2 recovers; its breaker should probe and close")
    await admin.put(f"{echoes['echo-2'].url}/admin/faults", json={})
    began = time.monotonic()
    bound = settings.open_duration + 2.0
    breaker = client.breaker("echo-2")
    while breaker.state is not BreakerState.CLOSED and time.monotonic() - began < bound:
        if breaker.state is BreakerState.OPEN:
            await asyncio.sleep(breaker.retry_in())
            continue
        await client.get("/echo", params={"msg": "probe"})
    took = time.monotonic() - began
    closed = client.breaker("echo-2").state is BreakerState.CLOSED
    progress(f"   breaker {client.breaker('echo-2').state.value} after {took:.2f}s")
    report.add(
        "echo-2's breaker closes after recovery",
        closed,
        f"closed after {took:.2f}s (open_duration {settings.open_duration}s)",
    )


async def _killed_instance_leaves(
    lookup: RegistryLookup,
    echoes: dict[str, ServiceProcess],
    settings: DemoSettings,
    report: DemoReport,
    progress: Progress,
) -> None:
    victim = f"echo-{settings.instances}"
    progress(f"\n4. {victim} is killed with SIGKILL; lookups should drop it")
    echoes[victim].kill()
    began = time.monotonic()
    bound = settings.check_interval + 1.0 + 1.0  # one check interval, the check timeout, one watch round trip
    while victim in {i.id for i in lookup.known("echo")} and time.monotonic() - began < bound + 2:
        await lookup.wait_for_change("echo", bound + 2 - (time.monotonic() - began))
    took = time.monotonic() - began
    gone = victim not in {i.id for i in lookup.known("echo")}
    progress(f"   {victim} left the lookups after {took:.2f}s")
    report.add(
        f"killed {victim} leaves the lookups",
        gone and took <= bound,
        f"after {took:.2f}s (bound {bound:.1f}s)",
    )
