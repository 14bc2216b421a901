"""What an experiment acts on: a stack (started for the run, or a running ``harness up`` attached to by its
workdir), the faults applied to it, the background traffic, the run's events, and guaranteed cleanup.

Cleanup puts the stack back as it found it: traffic stopped, every fault the run applied removed, every
proxy enabled, every paused process continued and every killed one restarted; then it checks that no
toxic is left on any proxy and no process is down, and says what is left when something is.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from harness.checks import Comparison, Figure
from harness.checks._breaker_conformance import Conformance
from harness.errors import ConfigError, EnvironmentUnavailable
from harness.events import EventLog
from harness.faults import (
    FaultApplier,
    FaultError,
    FaultKind,
    FaultNotApplied,
    FaultSpec,
    FaultWindow,
    Stream,
    ToxiproxyClient,
    read_ledger,
)
from harness.lag import LagMonitor
from harness.resilience import BreakerConfig
from harness.settings import CLIENT_DEFAULTS, InstanceConfig
from harness.stack import Origin, Stack, StackState, Topology
from harness.stack._faults import StackInjector
from harness.timeline import Timeline, build_timeline

from ._traffic import Traffic, TrafficSpec

Progress = Callable[[str], None]
LEDGER = "chaos-faults.json"


class ProcessView(Protocol):
    name: str
    kind: str

    @property
    def pid(self) -> int | None: ...
    @property
    def url(self) -> str: ...
    def is_running(self) -> bool: ...


@dataclass
class AttachedProcess:
    """An instance of a stack another harness process runs: signals by pid, no restart."""

    name: str
    kind: str
    url: str
    pid: int | None
    external: bool = False  # not started by any harness: never down as far as cleanup goes

    def is_running(self) -> bool:
        """Alive and not a zombie (a killed child its harness has not reaped yet still has a pid)."""
        if self.external:
            return True
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            return True  # no /proc: the signal check is all there is
        return stat.rpartition(")")[2].split()[0] != "Z"


class AttachedStack:
    """A running ``harness up`` seen through its workdir's state file: faults by name, but a killed
    instance can only be restarted by the harness that owns it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir.resolve()
        state = StackState.read(self.workdir)
        if state is None:
            raise EnvironmentUnavailable(f"no running stack to attach to in {workdir} (no live state file)")
        self.state = state
        self.processes: dict[str, AttachedProcess] = {
            i.name: AttachedProcess(i.name, i.kind, i.url, i.pid, external=i.origin is Origin.EXTERNAL)
            for i in state.instances
        }
        self.proxies: dict[str, str] = {i.name: i.proxy for i in state.instances if i.proxy}
        toxiproxy = self.processes.get("toxiproxy")
        url = os.environ.get("TOXIPROXY_URL") or (toxiproxy.url if toxiproxy else None)
        self.toxiproxy = ToxiproxyClient(url) if url else None
        self.registry_url: str = state.registry
        if not AttachedProcess("harness", "harness", "", state.harness_pid).is_running():
            raise EnvironmentUnavailable(f"the harness that ran the stack in {workdir} is gone")

    def url(self, name: str) -> str:
        return self.processes[name].url

    def instances(self, kind: str) -> list[AttachedProcess]:
        return [p for p in self.processes.values() if p.kind == kind]

    def event_log(self, name: str) -> Path:
        return self.workdir / "events" / f"{name}.jsonl"

    def database(self, kind: str) -> Path:
        return self.workdir / "data" / f"{kind}.sqlite3"

    def kill(self, name: str) -> None:
        pid = self.processes[name].pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def restart(self, name: str) -> Any:
        raise ConfigError(
            f"cannot restart {name}: the stack in {self.workdir} belongs to another harness "
            "process (restart it there, or let this run start its own stack)"
        )

    def stop(self) -> None:
        if self.toxiproxy is not None:
            self.toxiproxy.close()


@dataclass
class CleanupReport:
    """What cleanup did, and what it could not undo."""

    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.left


@dataclass(frozen=True)
class EvidenceBounds:
    """What a probe of behaviour over time needs before its tolerance is judged; an experiment may set
    them (``"configuration": {"harness_evidence": {"max_lag_p99_ms": 80, "min_calls": 20}}``)."""

    max_lag_p99_ms: float = 50.0
    min_calls: int = 10

    @classmethod
    def of(cls, given: object) -> EvidenceBounds:
        if given is None:
            return cls()
        if not isinstance(given, dict) or set(given) - {"max_lag_p99_ms", "min_calls"}:
            raise ConfigError(
                "configuration.harness_evidence: an object with max_lag_p99_ms and/or min_calls"
            )
        lag, calls = given.get("max_lag_p99_ms", cls.max_lag_p99_ms), given.get("min_calls", cls.min_calls)
        if isinstance(lag, bool) or not isinstance(lag, int | float) or not 0 < lag <= 60_000:
            raise ConfigError("configuration.harness_evidence.max_lag_p99_ms: a number of ms in (0, 60000]")
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
            raise ConfigError("configuration.harness_evidence.min_calls: a whole number, at least 1")
        return cls(float(lag), calls)


class ChaosSession:
    """One experiment run's handle on the stack; every action and probe goes through it."""

    def __init__(
        self,
        stack: Stack | AttachedStack,
        *,
        owned: bool,
        seed: int | None = None,
        progress: Progress = lambda _line: None,
    ) -> None:
        self.stack = stack
        self.owned = owned
        self.seed = seed
        self.progress = progress
        self.workdir = stack.workdir
        self.origin = time.monotonic()
        self.events = EventLog("harness-chaos", stack.event_log("harness-chaos"))
        self.injector = StackInjector(stack)
        self.faults = FaultApplier(self.injector, self.events, ledger=self.workdir / LEDGER)
        self.traffic: dict[str, Traffic] = {}
        self.killed: set[str] = set()
        self.paused: set[str] = set()
        self.expectations: list[dict[str, Any]] = []
        self.conformance: dict[tuple[str, str], Conformance] = {}
        self.control_loaded = False
        self.fail_fast = False
        self.failed_fast = False  # the method stopped at a probe that deviated: the run failed
        self.stopped_by: FaultNotApplied | None = None  # the run stops: a fault it needed never happened
        self.bounds = EvidenceBounds()
        self.lag = LagMonitor().start()
        self._needed = threading.local()
        self._lock = threading.Lock()
        self._closed = False

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        topology: Topology,
        workdir: Path,
        *,
        seed: int | None = None,
        progress: Progress = lambda _line: None,
    ) -> ChaosSession:
        """Start a stack of its own (stopped again by ``close``)."""
        if workdir.exists() and (workdir / LEDGER).exists():
            leftovers = _ledger_windows(workdir / LEDGER)
            if leftovers:
                progress(
                    f"an earlier run left {len(leftovers)} fault(s) in its ledger; they go with the old stack"
                )
        stack = Stack(topology, workdir, progress=progress)
        stack.start()
        return cls(stack, owned=True, seed=seed, progress=progress)

    @classmethod
    def attach(
        cls, workdir: Path, *, seed: int | None = None, progress: Progress = lambda _line: None
    ) -> ChaosSession:
        """Use the stack a ``harness up`` runs in ``workdir`` (left running by ``close``)."""
        return cls(AttachedStack(workdir), owned=False, seed=seed, progress=progress)

    # -- names ------------------------------------------------------------------------------------

    def instance(self, name: str) -> ProcessView:
        """The instance called ``name``; a ConfigError listing the known names otherwise."""
        process = self.stack.processes.get(name)
        if process is None:
            known = ", ".join(sorted(self.stack.processes))
            raise ConfigError(f"no instance named {name!r}; known: {known}")
        return process

    def first(self, kind: str) -> ProcessView:
        found = self.stack.instances(kind)
        if not found:
            raise ConfigError(f"the stack runs no {kind} instance")
        return found[0]

    # -- faults -----------------------------------------------------------------------------------

    def apply(
        self,
        kind: FaultKind,
        instance: str,
        *,
        attributes: dict[str, int | str] | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> str:
        """Apply one fault now, until removed (or cleanup); returns its name."""
        self.instance(instance)
        window = FaultWindow(
            name=name or f"{kind.value}-{instance}-{uuid.uuid4().hex[:6]}",
            fault=FaultSpec(
                kind=kind,
                instance=instance,
                attributes=attributes or {},
                stream=Stream(stream),
                toxicity=toxicity,
            ),
            start=round(self.elapsed(), 3),
        )
        try:
            self.faults.apply(window, at=self.elapsed())
        except Exception as exc:
            self.stopped_by = FaultNotApplied(f"{window.name} ({window.fault.describe()})", exc)
            raise self.stopped_by from exc
        if kind is FaultKind.KILL:
            self.killed.add(instance)
        if kind is FaultKind.STOP:
            self.paused.add(instance)
        self.progress(f"fault on: {window.fault.describe()} ({window.name})")
        return window.name

    def remove(self, name: str) -> bool:
        applied = self.faults.applied.get(name)
        removed = self.faults.remove(name, at=self.elapsed())
        if removed and applied is not None:
            self.killed.discard(applied.window.fault.instance)
            self.paused.discard(applied.window.fault.instance)
            self.progress(f"fault off: {applied.window.fault.describe()} ({name})")
        return removed

    def named_fault(self, instance: str, kind: FaultKind | None = None) -> str | None:
        """The name of the applied fault on ``instance`` (of ``kind``), newest first."""
        for window in reversed(self.faults.active()):
            if window.fault.instance == instance and (kind is None or window.fault.kind is kind):
                return window.name
        return None

    # -- traffic ----------------------------------------------------------------------------------

    def start_traffic(self, spec: TrafficSpec) -> Traffic:
        with self._lock:
            running = self.traffic.get(spec.name)
            if running is not None and running.running:
                raise ConfigError(f"traffic {spec.name!r} is already running")
        if spec.kind == "orders":
            url = self.first("orchestrator").url
            customer = self._customer()
        else:
            if spec.target is None:
                raise ConfigError("http traffic needs a target instance")
            self.instance(spec.target)
            proxied = self.stack.proxies.get(spec.target)
            url = f"http://{proxied}" if proxied else self.stack.url(spec.target)
            customer = None
        traffic = Traffic(spec, url, self.events, customer=customer).start()
        with self._lock:
            self.traffic[spec.name] = traffic
        self.progress(f"traffic {spec.name}: {spec.rate:g}/s for {spec.duration:g}s to {url}")
        return traffic

    def _customer(self) -> str:
        """A customer with credit that no run of orders can exhaust."""
        customer = f"chaos-{uuid.uuid4().hex[:10]}"
        users = self.first("users").url
        answer = httpx.post(
            f"{users}/users",
            json={
                "id": customer,
                "name": "Chaos Customer",
                "email": f"{customer}@example.test",
                "credit": 10**12,
            },
            timeout=10.0,
            trust_env=False,
        )
        if answer.status_code != 201:
            raise EnvironmentUnavailable(f"creating a customer for traffic failed: HTTP {answer.status_code}")
        return customer

    # -- evidence ---------------------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        """The stack's topology (an attached stack's from its workdir, else the built-in one)."""
        if isinstance(self.stack, Stack):
            return self.stack.topology
        saved = self.workdir / "topology.json"
        return (
            Topology.model_validate_json(saved.read_text(encoding="utf-8")) if saved.exists() else Topology()
        )

    def client_config(self, caller: str, service: str) -> tuple[BreakerConfig | None, float]:
        """The caller's breaker towards ``service`` (None: off) and its attempt timeout, as the stack
        handed them to the caller (its ``config/<caller>.json``), else the caller's defaults."""
        kind = self.instance(caller).kind
        path = self.workdir / "config" / f"{caller}.json"
        settings = InstanceConfig.read(path).clients.get(service) if path.exists() else None
        if settings is None:
            settings = CLIENT_DEFAULTS.get(kind, {}).get(service)
        if settings is None:
            raise ConfigError(f"{caller} does not call {service}")
        config = settings.to_config()
        return config.breaker, config.attempt_timeout

    def record_conformance(self, caller: str, result: Conformance) -> None:
        """Keep a conformance result for the report (the last one per caller and instance wins)."""
        with self._lock:
            self.conformance[(caller, result.instance)] = result

    def elapsed(self) -> float:
        return time.monotonic() - self.origin

    # -- evidence ---------------------------------------------------------------------------------

    def needs(self, *, calls: tuple[str, int] | None = None) -> None:
        """What the probe running in this thread needs, judged before its tolerance (``take_evidence``):
        the harness kept its time so far, and (``calls``: what, how many) enough calls were made."""
        figures = [
            Figure(
                name="harness timing lag p99",
                measured=self.lag.p99_ms(self.origin),
                bound=self.bounds.max_lag_p99_ms,
                unit=" ms",
                evidence=True,
            )
        ]
        if calls is not None:
            figures.append(
                Figure(
                    name=calls[0],
                    measured=calls[1],
                    bound=self.bounds.min_calls,
                    comparison=Comparison.AT_LEAST,
                    evidence=True,
                )
            )
        self._needed.figures = figures

    def take_evidence(self) -> list[Figure]:
        """The evidence the last probe of this thread declared (none: it depends on no traffic or timing)."""
        figures: list[Figure] = getattr(self._needed, "figures", [])
        self._needed.figures = []
        return figures

    def timeline(self) -> Timeline:
        """Every event of every process since the session began, merged."""
        return build_timeline([self.workdir / "events"], origin=self.origin, end=time.monotonic())

    # -- cleanup ----------------------------------------------------------------------------------

    def cleanup(self) -> CleanupReport:
        """Undo everything the run did to the stack; idempotent; never raises."""
        report = CleanupReport()
        for name, traffic in list(self.traffic.items()):
            traffic.stop()
            if not traffic.join(timeout=traffic.spec.timeout + 5):
                report.left.append(f"traffic {name} did not stop")
        for window in reversed(self.faults.active()):
            try:
                self.remove(window.name)
                report.removed.append(window.fault.describe())
            except Exception as exc:
                report.left.append(f"{window.fault.describe()}: {exc}")
        for name in sorted(self.paused | self.killed):
            report.left += self._revive(name, report)
        report.left += self._verify_clean()
        self.events.emit("chaos.cleanup", removed=report.removed, restored=report.restored, left=report.left)
        return report

    def _revive(self, name: str, report: CleanupReport) -> list[str]:
        process = self.stack.processes.get(name)
        if process is None:
            return []
        try:
            if name in self.paused and process.pid is not None:
                os.kill(process.pid, signal.SIGCONT)
            if not process.is_running():
                self.stack.restart(name)
        except Exception as exc:
            return [f"{name}: {exc}"]
        self.paused.discard(name)
        self.killed.discard(name)
        report.restored.append(name)
        return []

    def _verify_clean(self) -> list[str]:
        """What is still not as it should be: toxics, disabled proxies, processes down."""
        left: list[str] = []
        client = self.stack.toxiproxy
        if client is not None:
            try:
                for name, proxy in client.proxies().items():
                    if name not in self.stack.proxies:
                        continue
                    if not proxy.info.enabled:
                        try:
                            client.update_proxy(name, enabled=True)
                        except FaultError as exc:
                            left.append(f"proxy {name} is disabled and cannot be enabled: {exc}")
                    left += [f"toxic {t.name} ({t.type}) on {name}" for t in client.toxics(name)]
            except FaultError as exc:
                left.append(f"the fault proxy cannot be asked: {exc}")
        left += [f"{name} is not running" for name, p in self.stack.processes.items() if not p.is_running()]
        return left

    def close(self) -> None:
        """Cleanup, then stop the stack if this session started it (an attached one: close its client)."""
        if self._closed:
            return
        self._closed = True
        self.lag.stop()
        self.cleanup()
        self.events.close()
        if self.owned or isinstance(self.stack, AttachedStack):
            self.stack.stop()


def _ledger_windows(path: Path) -> list[FaultWindow]:
    try:
        return read_ledger(path)
    except (OSError, ValueError):
        return []


def cleanup_workdir(workdir: Path) -> CleanupReport:
    """Remove what a crashed run left on the stack running in ``workdir``, from the run's ledger."""
    windows = _ledger_windows(workdir / LEDGER)
    report = CleanupReport()
    if not windows:
        return report
    stack = AttachedStack(workdir)
    injector = StackInjector(stack)
    try:
        for window in reversed(windows):
            kind = window.fault.kind
            try:
                if kind is FaultKind.KILL:
                    if not stack.processes[window.fault.instance].is_running():
                        report.left.append(f"{window.fault.instance} was killed; restart it with its harness")
                        continue
                else:
                    injector.remove(window)
            except Exception as exc:
                report.left.append(f"{window.fault.describe()}: {exc}")
                continue
            report.removed.append(window.fault.describe())
        if not report.left:
            (workdir / LEDGER).unlink(missing_ok=True)
    finally:
        stack.stop()
    return report
