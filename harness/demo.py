"""The discovery demo: a registry and echo instances as real processes, and a ServiceClient that has to cope.

A small, self-checking showcase of the discovery layer: it shows, with measured numbers, that round robin
spreads calls evenly, that a failing instance's breaker opens while callers still succeed (only its
half-open probes reach it while open), that it closes again after recovery, and that a killed instance
leaves the lookups within its health-check bound. The processes are a ``Stack``: the echo instances are a
service of the stack's own kind (a command per instance, registered by the stack's agent).
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.discovery import RegistryClient, RegistryLookup, ServiceClient, ServiceClientConfig
from harness.errors import EnvironmentUnavailable
from harness.resilience import BreakerConfig, BreakerState, RetryPolicy
from harness.stack import Member, OwnServiceTopology, Stack, Topology
from harness.stack._topology import SERVICE_KINDS, RegistryTopology, ServiceTopology

Progress = Callable[[str], None]
ECHO_COMMAND = ["{python}", "-m", "harness", "serve", "echo", "--host", "{host}", "--port", "{port}",
                "--instance-id", "{instance}",
                "--event-log", "{workdir}/events/{instance}.jsonl"]  # fmt: skip
"""An echo instance as the stack starts it: it does not register itself, the stack's agent does."""


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

    def topology(self) -> Topology:
        """A registry and the echo instances, without fault proxies: the faults here are the echo's own."""
        echo = OwnServiceTopology(
            command=ECHO_COMMAND, instances=self.instances, heartbeat_interval=self.ttl / 4
        )
        return Topology(
            registry=RegistryTopology(ttl=self.ttl, check_interval=self.check_interval,
                                      check_failures=self.check_failures),
            services={**dict.fromkeys(SERVICE_KINDS, ServiceTopology(instances=0)), "echo": echo},
            proxies=False,
        )  # fmt: skip


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
    report = DemoReport(workdir)
    with Stack(settings.topology(), workdir, progress=lambda line: progress(f"  {line}")) as stack:
        for name, process in stack.processes.items():
            progress(f"{name:<13} {process.url}  pid {process.pid}")
        report.started_in = stack.started_in
        progress(f"started {len(stack.processes)} processes in {report.started_in:.2f}s")
        echoes = {process.name: process for process in stack.instances("echo")}
        asyncio.run(_scenario(settings, stack, echoes, report, progress))
    return report


def shielded_bound(failures: int, half_open_calls: int, open_duration: float, elapsed: float) -> int:
    """The most calls a failing instance may see while its breaker shields it for ``elapsed`` seconds: the
    failures that open it, then ``half_open_calls`` probes each time ``open_duration`` has run out."""
    return failures + half_open_calls * math.floor(elapsed / open_duration)


async def _scenario(
    settings: DemoSettings, stack: Stack, echoes: dict[str, Member], report: DemoReport, progress: Progress
) -> None:
    config = ServiceClientConfig(
        balancer="round_robin",
        breaker=BreakerConfig.consecutive_failures(settings.breaker_failures, settings.open_duration),
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
        retry_budget_min_per_second=float(settings.calls),
        attempt_timeout=1.0,
    )
    async with (
        RegistryClient(stack.registry_url) as registry,
        httpx.AsyncClient(timeout=2.0, trust_env=False) as admin,
    ):
        lookup = RegistryLookup(registry, wait=5.0)
        client = ServiceClient("echo", lookup, config=config)
        try:
            await _wait_for_members(lookup, len(echoes), deadline=10.0)
            await _balanced(client, settings, report, progress)
            await _breaker_opens(client, admin, echoes, settings, report, progress)
            await _breaker_closes(client, admin, echoes, settings, report, progress)
            await _killed_instance_leaves(lookup, stack, settings, report, progress)
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


async def _served(admin: httpx.AsyncClient, echoes: dict[str, Member]) -> dict[str, int]:
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
        _count(n + 1, settings.calls, progress)
    shares = {k: v.successes - before.get(k, 0) for k, v in client.stats().items()}
    progress("   shares: " + ", ".join(f"{k} {v}" for k, v in shares.items()))
    spread = max(shares.values()) - min(shares.values())
    report.add("round robin spreads calls evenly", spread <= 1, f"max - min share = {spread} (bound 1)")


async def _breaker_opens(
    client: ServiceClient,
    admin: httpx.AsyncClient,
    echoes: dict[str, Member],
    settings: DemoSettings,
    report: DemoReport,
    progress: Progress,
) -> None:
    progress("\n2. echo-2 starts answering 503; callers should not notice")
    await admin.put(f"{echoes['echo-2'].url}/admin/faults", json={"status": 503})
    before = await _served(admin, echoes)
    ok = 0
    began = time.monotonic()
    for n in range(settings.calls):
        ok += (await client.get("/echo", params={"msg": str(n)})).status_code == 200
        _count(n + 1, settings.calls, progress)
    elapsed = time.monotonic() - began
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
    probes = client.config.breaker.half_open_calls if client.config.breaker else 0
    bound = shielded_bound(settings.breaker_failures, probes, settings.open_duration, elapsed)
    report.add(
        "echo-2's breaker opens and shields it",
        state is BreakerState.OPEN and hits <= bound,
        f"state {state.value}, echo-2 got {hits} requests (bound {bound} = {settings.breaker_failures} "
        f"failures to open + {probes} half-open probe(s) per {settings.open_duration:g}s open, "
        f"over {elapsed:.2f}s)",
    )


async def _breaker_closes(
    client: ServiceClient,
    admin: httpx.AsyncClient,
    echoes: dict[str, Member],
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
    lookup: RegistryLookup, stack: Stack, settings: DemoSettings, report: DemoReport, progress: Progress
) -> None:
    victim = f"echo-{settings.instances}"
    progress(f"\n4. {victim} is killed with SIGKILL; lookups should drop it")
    stack.kill(victim)
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


def _count(done: int, total: int, progress: Progress) -> None:
    """A line at every quarter of a long phase (200 calls or more), so a long run shows it is alive."""
    if total >= 200 and done % (total // 4) == 0:
        progress(f"   {done}/{total} calls")
