"""The stack as real processes on loopback: start in dependency order, watch, stop, no orphans.

With proxies on (the default), a Toxiproxy-compatible server (the embedded one, or a real one at
``TOXIPROXY_URL``) gets one proxy per instance, named after it, and each instance is registered under the
proxy's address: every call between services crosses a proxy, so a toxic on ``users-2`` degrades only
users-2. Reference services register themselves; a user's own services (a command the stack starts, or
external URLs it never starts) are registered by the stack's registration agent (``_agent``). The
embedded proxy is supervised (restarted with its proxies and toxics, see ``_supervisor``); a real one is
watched and its loss reported. Every child is forked from the stack's one spawner thread, so a restart
from any thread lasts (see ``Spawner``). Events of the stack itself go to ``events/harness.jsonl``; what
others read about a running stack is in its workdir (``_state``).
Used by ``harness up`` and, as a context manager, by tests: ``with Stack(topology, workdir) as stack:``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from harness._process import ServiceProcess, Spawner
from harness._spec import ProcessSpec
from harness.discovery import Registration
from harness.errors import ConfigError, EnvironmentUnavailable
from harness.events import EventLog
from harness.faults import FaultError, ToxiproxyClient, ToxiproxyProcess
from harness.net import is_loopback_url
from harness.signals import hurried
from harness.stack._agent import AgentTarget, RegistrationAgent
from harness.stack._external import ExternalService
from harness.stack._probe import wait_registered
from harness.stack._state import (
    REGISTRY_TOKEN_FILE,
    STATE_FILE,
    TOPOLOGY_FILE,
    InstanceRecord,
    Origin,
    StackState,
    new_token,
)
from harness.stack._supervisor import ExternalProxyWatch, FaultProxySupervisor
from harness.stack._topology import OwnServiceTopology, Topology

Progress = Callable[[str], None]
Member = ServiceProcess | ExternalService
"""What the stack runs under a name: a process it started, or an external instance it only proxies."""
STOP_GRACE = 5.0
"""Seconds every process of a stopping stack gets, all together, to exit on SIGTERM before SIGKILL."""


class Stack:
    """Registry first, then every service instance in parallel, each registered (by itself or the agent)."""

    def __init__(self, topology: Topology | None = None, workdir: Path | None = None, *,
                 progress: Progress = lambda _line: None, allow_remote: bool = False) -> None:  # fmt: skip
        self.topology = topology or Topology()
        self.workdir = (workdir or Path(".harness/run")).resolve()
        self.progress = progress
        self.allow_remote = allow_remote
        self.processes: dict[str, Member] = {}
        self.kinds: dict[str, str] = {}
        self.origins: dict[str, Origin] = {}
        self.proxies: dict[str, str] = {}  # instance name -> proxied "host:port"
        self.toxiproxy: ToxiproxyClient | None = None
        self.supervisor: FaultProxySupervisor | ExternalProxyWatch | None = None
        self.agent: RegistrationAgent | None = None
        self.spawner: Spawner | None = None
        self.events: EventLog | None = None
        self.started_in = 0.0
        self._started = False
        self._state_lock = threading.Lock()  # restarts from any thread, and the supervisor, rewrite the state
        self._external_toxiproxy = os.environ.get("TOXIPROXY_URL") if self.topology.proxies else None

    # -- paths ------------------------------------------------------------------------------------

    def database(self, kind: str) -> Path:
        """One database per service: the users instances share theirs, like a stateless app tier."""
        return self.workdir / "data" / f"{kind}.sqlite3"

    def event_log(self, name: str) -> Path:
        return self.workdir / "events" / f"{name}.jsonl"

    def config_file(self, name: str) -> Path:
        return self.workdir / "config" / f"{name}.json"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Stack:
        running = StackState.read(self.workdir)
        if running is not None and running.harness_pid != os.getpid():
            raise ConfigError(f"a stack is already running in {self.workdir} (harness pid "
                              f"{running.harness_pid}); stop it or choose another --workdir")  # fmt: skip
        remote = self._remote_externals()
        began = time.monotonic()
        deadline = began + self.topology.startup_timeout
        for folder in ("data", "events", "logs"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        (self.workdir / TOPOLOGY_FILE).write_text(self.topology.model_dump_json(indent=2), encoding="utf-8")
        try:
            self.events = EventLog("harness", self.event_log("harness"))
            self.spawner = Spawner().start()
            if self.topology.proxies:
                self._start_toxiproxy()
            self._start(self._registry_spec(allow_remote=bool(remote)), Origin.HARNESS).wait_ready()
            self.progress(f"registry ready at {self.registry_url}")
            spawned = [self._start(spec, origin) for spec, origin in self._instance_specs()]
            externals = [self._external(kind, own) for kind, own in self.topology.own_services().items()
                         if own.external is not None]  # fmt: skip
            for process in spawned:
                process.wait_ready()
            for external in (e for group in externals for e in group):
                external.wait_ready(max(0.0, deadline - time.monotonic()))
            self._start_agent()
            wait_registered(self.registry_url, [kind for kind, _name in self.topology.instances()], deadline)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        self._started = True
        self._write_state()
        return self

    def _remote_externals(self) -> list[str]:
        """External URLs off this machine: refused unless ``allow_remote`` (``--allow-remote``)."""
        remote = [f"services.{kind}.external: {url}" for kind, own in self.topology.own_services().items()
                  for url in own.external or () if not is_loopback_url(url)]  # fmt: skip
        if remote and not self.allow_remote:
            raise ConfigError(f"{remote[0]} is not on loopback; the stack reaches services on this machine "
                              "only unless --allow-remote is given")  # fmt: skip
        return remote

    def _start_toxiproxy(self) -> None:
        if self._external_toxiproxy is not None:
            if not is_loopback_url(self._external_toxiproxy):
                raise ConfigError(f"TOXIPROXY_URL={self._external_toxiproxy} is not on loopback; the stack "
                                  "only injects faults on this machine")  # fmt: skip
            self.toxiproxy = ToxiproxyClient(self._external_toxiproxy)
            try:
                version = self.toxiproxy.version()
            except FaultError as exc:
                raise EnvironmentUnavailable(f"TOXIPROXY_URL={self._external_toxiproxy}: {exc}") from exc
            self.progress(f"using Toxiproxy {version} at {self._external_toxiproxy}")
            assert self.events is not None
            watch = ExternalProxyWatch(self._external_toxiproxy, self.events)
            self.supervisor = watch
            watch.start()
            return
        assert self.events is not None
        supervisor = FaultProxySupervisor(self._toxiproxy_process, self.workdir, self.events,
                                          on_restart=self._toxiproxy_restarted)  # fmt: skip
        self.supervisor = supervisor
        process = supervisor.start()
        self._keep("toxiproxy", process, Origin.HARNESS)
        self.toxiproxy = ToxiproxyClient(process.url)
        self.progress(f"fault proxy ready at {process.url} (supervised; proxy set in {supervisor.path})")

    def _toxiproxy_process(self, port: int, config: Path | None) -> ServiceProcess:
        """The embedded fault proxy, unstarted: first on any port, then again on that one from ``config``."""
        settings = {"proxy_metrics": True, "seed": self.topology.toxiproxy_seed, "config": config}
        return ToxiproxyProcess(settings, host=self.topology.host, port=port, workdir=self.workdir / "logs",
                                startup_timeout=self.topology.startup_timeout,
                                spawner=self.spawner)  # fmt: skip

    def _toxiproxy_restarted(self, process: ServiceProcess) -> None:
        self.processes["toxiproxy"] = process
        if self._started:
            self._write_state()

    def _registry_spec(self, *, allow_remote: bool) -> ProcessSpec:
        """The registry; built once per start, it makes this run's token (see ``new_token``)."""
        r = self.topology.registry
        token = new_token(self.workdir / REGISTRY_TOKEN_FILE)
        return ProcessSpec("registry", "registry", {
            "ttl": r.ttl, "check_interval": r.check_interval, "check_timeout": r.check_timeout,
            "check_failures": r.check_failures, "token_file": token, "event_log": self.event_log("registry"),
            "allow_remote": allow_remote,
        }, host=self.topology.host)  # fmt: skip

    def _instance_specs(self) -> list[tuple[ProcessSpec, Origin]]:
        """Every instance the stack starts: the reference services', then the user's own commands."""
        own = self.topology.own_services()
        specs: list[tuple[ProcessSpec, Origin]] = []
        for kind, name in self.topology.instances():
            if kind not in own:
                specs.append((self._reference_spec(kind, name), Origin.HARNESS))
            elif own[kind].command is not None:
                specs.append((self._own_spec(kind, name, own[kind]), Origin.OWN))
        return specs

    def _reference_spec(self, kind: str, name: str) -> ProcessSpec:
        """Where the instance is and whom it talks to; everything the topology sets is in its config file."""
        config = self.topology.instance_config(kind, name).write(self.config_file(name))
        return ProcessSpec(name, kind, {
            "instance_id": name, "registry": self.registry_url_for_services, "database": self.database(kind),
            "config": config, "registry_token_file": self.workdir / REGISTRY_TOKEN_FILE,
            "event_log": self.event_log(name),
        }, host=self.topology.host)  # fmt: skip

    def _own_spec(self, kind: str, name: str, own: OwnServiceTopology) -> ProcessSpec:
        """A user's command on a port chosen here (it cannot report one), in its topology's folder."""
        assert own.command is not None
        return ProcessSpec(name, kind, command=tuple(own.command), env=own.env, host=self.topology.host,
                           port=_free_port(self.topology.host), cwd=Path(own.cwd) if own.cwd else None,
                           ready_path=own.health, workdir=self.workdir)  # fmt: skip

    def _start(self, spec: ProcessSpec, origin: Origin) -> ServiceProcess:
        """Spawn one instance; with proxies, on a port chosen here, behind a proxy named after it."""
        if self.toxiproxy is not None:
            port = spec.port or _free_port(self.topology.host)
            proxy = self._proxy(spec.name, f"{self.topology.host}:{port}")
            spec = spec.with_port(port)
            if origin is Origin.HARNESS and spec.kind != "registry":  # it registers itself: the proxy's port
                spec = spec.with_settings(advertise_port=proxy)
        process = ServiceProcess(spec, workdir=self.workdir / "logs",
                                 startup_timeout=self.topology.startup_timeout,
                                 spawner=self.spawner)  # fmt: skip
        self._keep(spec.name, process, origin)
        return process.spawn()

    def _proxy(self, name: str, upstream: str) -> int:
        """A fault proxy named ``name`` in front of ``upstream``; returns the port it listens on."""
        assert self.toxiproxy is not None
        with contextlib.suppress(FaultError):  # a proxy left by an earlier run of the same stack
            self.toxiproxy.delete_proxy(name)
        proxy = self.toxiproxy.create_proxy(name, upstream, listen=f"{self.topology.host}:0")
        self.proxies[name] = f"{proxy.host}:{proxy.port}"
        if isinstance(self.supervisor, FaultProxySupervisor):
            self.supervisor.refresh()  # the new proxy is in the workdir before anything advertises it
        return proxy.port

    def _external(self, kind: str, own: OwnServiceTopology) -> list[ExternalService]:
        """The running instances of an external service, each behind a proxy named after it."""
        found = []
        for n, url in enumerate(own.external or (), start=1):
            external = ExternalService(f"{kind}-{n}", kind, url, ready_path=own.health)
            if self.toxiproxy is not None:
                self._proxy(external.name, f"{external.host}:{external.port}")
            self._keep(external.name, external, Origin.EXTERNAL)
            found.append(external)
        return found

    def _keep(self, name: str, member: Member, origin: Origin) -> None:
        self.processes[name] = member
        self.kinds[name] = member.kind
        self.origins[name] = origin

    def _start_agent(self) -> None:
        """Register the user's own instances on their behalf (the reference ones register themselves)."""
        own = self.topology.own_services()
        if not own:
            return
        registry = self.topology.registry
        targets = []
        for kind, name in self.topology.instances():
            if kind not in own:
                continue
            direct = self.url(name)
            proxied = self.proxied_url(name)
            health = own[kind].health
            registered_health = (proxied if registry.checks_through_proxy else direct) + health
            port = int(proxied.rsplit(":", 1)[1])
            weight = own[kind].weights()[int(name.rsplit("-", 1)[1]) - 1]
            registration = Registration(instance_id=name, service=kind, address=self.topology.host, port=port,
                                        health_url=registered_health if registry.health_checks else None,
                                        weight=weight, ttl=registry.ttl)  # fmt: skip
            targets.append(AgentTarget(registration, direct + health, own[kind].heartbeat_interval))
        token = (self.workdir / REGISTRY_TOKEN_FILE).read_text(encoding="utf-8").strip()
        assert self.events is not None
        self.agent = RegistrationAgent(self.registry_url, token=token, events=self.events,
                                       check_timeout=registry.check_timeout).start(targets)  # fmt: skip
        self.progress(f"registration agent registers {len(targets)} instance(s) on their behalf")

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Deregister the own instances, then SIGTERM every process at once (each reference instance
        deregisters itself; a frozen one is continued so it can), one ``grace`` for them all (none after a
        second Ctrl-C), then SIGKILL to the process group of each that is left; external instances are
        left alone. Every process is waited for."""
        self._started = False
        if self.agent is not None:  # first, while the registry still answers
            self.agent.stop()
        if self.supervisor is not None:  # before the processes, so the fault proxy is not restarted
            self.supervisor.stop()
        stopping = [p for p in reversed(self.processes.values()) if isinstance(p, ServiceProcess)]
        for process in stopping:
            _terminate(process)
        deadline = time.monotonic() + grace
        while any(p.is_running() for p in stopping) and time.monotonic() < deadline and not hurried():
            time.sleep(0.02)
        for member in self.processes.values():
            member.stop(timeout=0.0)  # SIGKILL to what is left, and to its process group; reaped
        if self.spawner is not None:  # after its children: its thread's end would signal them
            self.spawner.stop()
        if self.toxiproxy is not None:
            if self._external_toxiproxy is not None:  # leave a shared Toxiproxy as we found it
                for name in self.proxies:
                    with contextlib.suppress(FaultError):
                        self.toxiproxy.delete_proxy(name)
            self.toxiproxy.close()
            self.toxiproxy = None
        (self.workdir / STATE_FILE).unlink(missing_ok=True)
        if self.events is not None:
            self.events.close()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- operating on instances ---------------------------------------------------------------------

    @property
    def registry_url(self) -> str:
        """The registry itself, for the harness."""
        return self.processes["registry"].url

    @property
    def registry_url_for_services(self) -> str:
        """What instances use: through the registry's proxy when there is one."""
        proxied = self.proxies.get("registry")
        return f"http://{proxied}" if proxied else self.registry_url

    def proxied_url(self, name: str) -> str:
        """The address others reach ``name`` at: its proxy, or the instance itself without proxies."""
        proxied = self.proxies.get(name)
        return f"http://{proxied}" if proxied else self.url(name)

    def url(self, name: str) -> str:
        return self.processes[name].url

    def instances(self, kind: str) -> list[Member]:
        return [p for name, p in self.processes.items() if self.kinds[name] == kind]

    def kill(self, name: str) -> None:
        """SIGKILL one instance: the crash case, no deregistration, no cleanup (refused for an external)."""
        process = self.processes[name]
        pid = process.pid
        process.kill()
        self._process_event("process.killed", name, pid)

    def restart(self, name: str) -> ServiceProcess:
        """Start a stopped or killed instance again on the same port, so its address stays valid.

        Safe from any thread: the child is forked by the stack's spawner, not by the calling thread.
        The fault proxy is restarted by its supervisor, with every proxy and toxic it had.
        """
        if name == "toxiproxy" and isinstance(self.supervisor, FaultProxySupervisor):
            return self.supervisor.restart()
        old = self.processes[name]
        if isinstance(old, ExternalService):
            raise ConfigError(f"{name} is external: the harness never starts, kills or restarts it")
        old.stop()
        process = old.again()
        self.processes[name] = process.start()
        self._process_event("process.restarted", name, process.pid)
        self._write_state()
        return process

    def _process_event(self, event: str, name: str, pid: int | None) -> None:
        """On the timeline: what the stack did to one of its processes (a ``ProcessChange``)."""
        if self.events is not None:
            self.events.emit(event, name=name, pid=pid)

    def _write_state(self) -> None:
        instances = [
            InstanceRecord(name=name, kind=self.kinds[name], origin=self.origins[name], url=p.url, pid=p.pid,
                           proxy=self.proxies.get(name), ready_path=p.ready_path,
                           log=None if p.log_path is None else str(p.log_path))
            for name, p in list(self.processes.items())
        ]  # fmt: skip
        with self._state_lock:
            StackState(harness_pid=os.getpid(), registry=self.registry_url, instances=instances).write(
                self.workdir
            )


def _free_port(host: str) -> int:
    """A port the OS considers free now; the instance binds it a moment later."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _terminate(process: ServiceProcess) -> None:
    """SIGTERM to a running process, then SIGCONT: a frozen one (SIGSTOP) handles its SIGTERM too."""
    pid = process.pid
    if pid is not None and process.is_running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)
