"""The stack as real processes on loopback: start in dependency order, watch, stop, no orphans.

With proxies on (the default), a Toxiproxy-compatible server (the embedded one, or a real one at
``TOXIPROXY_URL``) gets one proxy per instance, named after it, and each instance is registered under the
proxy's address: every call between services crosses a proxy, so a toxic on ``users-2`` degrades only
users-2. Reference services register themselves; a user's own services (a command the stack starts, or
external URLs it never starts) are registered by the stack's registration agent (``_agent``). The
embedded proxy is supervised (restarted with its proxies and toxics, see ``_supervisor``); a real one is
watched and its loss reported. Every child is forked from the stack's one spawner thread, so a restart
from any thread lasts (see ``Spawner``), and is accounted for by the stack's ``Custody``: its reaper ends
every process group of the stack if the harness dies, and the next start in the workdir ends what a dead
run left. The harness's children bind port 0 themselves and report it, and their proxy is pointed there:
no port is chosen here for them to lose meanwhile. Events of the stack itself go to
``events/harness.jsonl``; what others read about a running stack is in its workdir (``_state``), which is
this user's alone (0700), as are the files its children write (umask 077).
Used by ``harness up`` and, as a context manager, by tests: ``with Stack(topology, workdir) as stack:``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from harness._process import ServiceProcess, Spawner
from harness._reaper import started
from harness._spec import ProcessSpec
from harness.discovery import Registration
from harness.errors import ConfigError, EnvironmentUnavailable, ServiceStartError
from harness.events import EventLog
from harness.faults import FaultError, ToxiproxyClient, ToxiproxyProcess
from harness.net import free_port, is_loopback_url
from harness.signals import deferred, hurried
from harness.stack._agent import AgentTarget, RegistrationAgent
from harness.stack._custody import Custody, end_abandoned
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
    write_private,
)
from harness.stack._supervisor import ExternalProxyWatch, FaultProxySupervisor
from harness.stack._topology import OwnServiceTopology, Topology

Progress = Callable[[str], None]
Member = ServiceProcess | ExternalService
"""What the stack runs under a name: a process it started, or an external instance it only proxies."""
STOP_GRACE = 5.0
"""Seconds every process of a stopping stack gets, all together, to exit on SIGTERM before SIGKILL."""
PORT_ATTEMPTS = 5
"""Starts an own command gets, each on a fresh port, when another process took the one it was given."""
NOWHERE = 1
"""Where a reference instance's proxy points until the instance reports its port: a privileged port no
process of the user's listens on, so a call that comes too early is refused rather than misdelivered."""


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
        self._upstreams: dict[str, str] = {}  # instance name -> where its proxy forwards
        self.toxiproxy: ToxiproxyClient | None = None
        self.supervisor: FaultProxySupervisor | ExternalProxyWatch | None = None
        self.agent: RegistrationAgent | None = None
        self.spawner: Spawner | None = None
        self.custody: Custody | None = None
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
        """Start every process (ending first what a dead run left in the workdir, said in one line)."""
        abandoned = end_abandoned(self.workdir)
        if abandoned is not None:
            self.progress(abandoned.line)
        running = StackState.read(self.workdir)
        if running is not None and running.harness_pid != os.getpid():
            raise ConfigError(f"a stack is already running in {self.workdir} (harness pid "
                              f"{running.harness_pid}); stop it or choose another --workdir")  # fmt: skip
        remote = self._remote_externals()
        began = time.monotonic()
        deadline = began + self.topology.startup_timeout
        self._private_workdir()
        write_private(self.workdir / TOPOLOGY_FILE, self.topology.model_dump_json(indent=2))
        try:
            self.events = EventLog("harness", self.event_log("harness"))
            with deferred():  # a signal while the reaper is forked waits until the stack can stop it
                self.custody = Custody(self.workdir).start()
            self.spawner = Spawner(watcher=self.custody).start()
            if self.topology.proxies:
                self._start_toxiproxy()
            self._ready(self._start(self._registry_spec(allow_remote=bool(remote)), Origin.HARNESS))
            self.progress(f"registry ready at {self.registry_url}")
            spawned = [self._start(spec, origin) for spec, origin in self._instance_specs()]
            for process in spawned:  # every proxy pointed as soon as it can be, before instances register
                with contextlib.suppress(ServiceStartError):  # judged below, where a lost port is retried
                    self._point(process.name, process.wait_port())
            externals = [self._external(kind, own) for kind, own in self.topology.own_services().items()
                         if own.external is not None]  # fmt: skip
            for process in spawned:
                self._ready(process)
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

    def _private_workdir(self) -> None:
        """The workdir and every folder in it, this user's alone: databases, events, configs, tokens."""
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in ("data", "events", "logs", "config"):
            (self.workdir / folder).mkdir(mode=0o700, exist_ok=True)
        for folder, _dirs, _files in os.walk(self.workdir):  # made by an earlier run, or by hand: 0755
            os.chmod(folder, 0o700)

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
            watch = ExternalProxyWatch(self._external_toxiproxy, self.events, workdir=self.workdir)
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
        config = self.config_file(name)
        write_private(config, self.topology.instance_config(kind, name).model_dump_json(indent=2) + "\n")
        return ProcessSpec(name, kind, {
            "instance_id": name, "registry": self.registry_url_for_services, "database": self.database(kind),
            "config": config, "registry_token_file": self.workdir / REGISTRY_TOKEN_FILE,
            "event_log": self.event_log(name),
        }, host=self.topology.host)  # fmt: skip

    def _own_spec(self, kind: str, name: str, own: OwnServiceTopology) -> ProcessSpec:
        """A user's command on a port chosen here (it cannot report one), in its topology's folder."""
        assert own.command is not None
        return ProcessSpec(name, kind, command=tuple(own.command), env=own.env, host=self.topology.host,
                           port=free_port(self.topology.host), cwd=Path(own.cwd) if own.cwd else None,
                           ready_path=own.health, workdir=self.workdir)  # fmt: skip

    def _start(self, spec: ProcessSpec, origin: Origin) -> ServiceProcess:
        """Spawn one instance; with proxies, behind a proxy named after it. A harness child binds port 0
        and reports the port it got; ``_ready`` points its proxy there (the registry's is made then). A
        reference instance registers itself under its proxy's address, so that proxy is made first,
        pointing nowhere until then. An own command's proxy points at the port chosen for it."""
        if self.toxiproxy is not None:
            if spec.own:
                self._proxy(spec.name, f"{self.topology.host}:{spec.port}")
            elif spec.kind != "registry":
                proxy = self._proxy(spec.name, f"{self.topology.host}:{NOWHERE}")
                spec = spec.with_settings(advertise_port=proxy)
        process = ServiceProcess(spec, workdir=self.workdir / "logs",
                                 startup_timeout=self.topology.startup_timeout,
                                 spawner=self.spawner)  # fmt: skip
        self._keep(spec.name, process, origin)
        return process.spawn()

    def _ready(self, process: ServiceProcess, *, movable: bool = True) -> ServiceProcess:
        """Wait until ``process`` answers, its proxy pointed at its port as soon as that is known. One given
        its port beforehand that lost it to another process is started again on a fresh one, behind the
        same proxy (``PORT_ATTEMPTS`` starts in all, each said in its log and the progress), if
        ``movable``: its own port is not an address others hold."""
        attempt = 1
        while True:
            try:
                self._point(process.name, process.wait_port())
                return process.wait_ready()
            except ServiceStartError:
                if not movable or attempt >= PORT_ATTEMPTS or not process.lost_its_port():
                    raise
            attempt += 1
            process = self._move(process, attempt)

    def _move(self, process: ServiceProcess, attempt: int) -> ServiceProcess:
        """The same instance again, on a fresh port: an own command's chosen here (its proxy is pointed
        there before it starts), a harness child's bound by itself."""
        port = free_port(self.topology.host) if process.spec.own else 0
        where = f"port {port}" if port else "a port it binds itself"
        line = (f"{process.name}: port {process.spec.port} was taken by another process; starting again on "
                f"{where} (attempt {attempt} of {PORT_ATTEMPTS})")  # fmt: skip
        process.note(line)
        self.progress(line)
        if port:
            self._point(process.name, port)
        fresh = process.again(port)
        self.processes[process.name] = fresh  # before it is spawned: a stop meanwhile stops it
        return fresh.spawn()

    def _point(self, name: str, port: int) -> None:
        """Make ``name``'s proxy forward to ``port``: created now (the registry's), or moved there."""
        if self.toxiproxy is None:
            return
        upstream = f"{self.topology.host}:{port}"
        if name not in self.proxies:
            self._proxy(name, upstream)
        elif self._upstreams.get(name) != upstream:
            self.toxiproxy.update_proxy(name, upstream=upstream)
            self._upstreams[name] = upstream
            if isinstance(self.supervisor, FaultProxySupervisor):
                self.supervisor.refresh()

    def _proxy(self, name: str, upstream: str) -> int:
        """A fault proxy named ``name`` in front of ``upstream``; returns the port it listens on."""
        assert self.toxiproxy is not None
        with contextlib.suppress(FaultError):  # a proxy left by an earlier run of the same stack
            self.toxiproxy.delete_proxy(name)
        proxy = self.toxiproxy.create_proxy(name, upstream, listen=f"{self.topology.host}:0")
        self.proxies[name] = f"{proxy.host}:{proxy.port}"
        self._upstreams[name] = upstream
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
        """Deregister the own instances, then SIGTERM every process group at once (each reference instance
        deregisters itself; a frozen process is continued so it can), one ``grace`` for them all (none after
        a second Ctrl-C), then SIGKILL to each group with anything left in it (a worker an own command
        forked, a grandchild); external instances are left alone. Every process is waited for; then the
        reaper ends any process that left its group (found by the stack's token), and exits."""
        self._started = False
        if self.agent is not None:  # first, while the registry still answers
            self.agent.stop()
        if self.supervisor is not None:  # before the processes, so the fault proxy is not restarted
            self.supervisor.stop()
        stopping = [p for p in reversed(self.processes.values()) if isinstance(p, ServiceProcess)]
        for process in stopping:
            process.terminate()
        deadline = time.monotonic() + grace
        while any(p.group_running() for p in stopping) and time.monotonic() < deadline and not hurried():
            time.sleep(0.02)
        for process in stopping:
            process.kill()  # SIGKILL to what is left of its group; reaped
        if self.spawner is not None:  # after its children: its thread's end would signal them
            self.spawner.stop()
        if self.custody is not None:  # kept: a reaper still at work after a hurried stop is still waited on
            self.custody.close(timeout=1.0 if hurried() else None)
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
        self.processes[name] = process  # before it is spawned: a stop meanwhile stops it
        # On its old port, which its proxy points at; if that was taken meanwhile, behind its proxy it may
        # move. Without one the port is the address others hold, and the registry's own address is held by
        # the harness (its agent, its probes): those stay, or the restart fails.
        movable = name in self.proxies and name != "registry"
        process = self._ready(process.spawn(), movable=movable)
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
        me = os.getpid()
        with self._state_lock:
            StackState(harness_pid=me, harness_started=started(me), registry=self.registry_url,
                       instances=instances).write(self.workdir)  # fmt: skip
