"""The reference stack as real processes on loopback: start in dependency order, watch, stop, no orphans.

With proxies on (the default), a Toxiproxy-compatible server (the embedded one, or a real one at
``TOXIPROXY_URL``) gets one proxy per instance, named after it, and each instance registers the proxy's
address: every call between services crosses a proxy, so a toxic on ``users-2`` degrades only users-2.
The embedded proxy is supervised (restarted with its proxies and toxics, see ``_supervisor``); a real one
is watched and its loss reported. Every child is forked from the stack's one spawner thread, so a restart
from any thread lasts (see ``Spawner``). Events of the stack itself go to ``events/harness.jsonl``.
Used by ``harness up`` and, as a context manager, by tests: ``with Stack(topology, workdir) as stack:``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from harness._process import ServiceProcess, Spawner
from harness.errors import ConfigError, EnvironmentUnavailable
from harness.events import EventLog
from harness.faults import FaultError, ToxiproxyClient, ToxiproxyProcess
from harness.net import is_loopback_url
from harness.stack._supervisor import ExternalProxyWatch, FaultProxySupervisor
from harness.stack._topology import Topology

Progress = Callable[[str], None]
STATE_FILE = "stack.json"
REGISTRY_TOKEN_FILE = "registry.token"


@dataclass(frozen=True)
class InstanceStatus:
    """What ``harness status`` shows for one process."""

    name: str
    kind: str
    url: str
    pid: int | None
    running: bool
    health: str  # "ok", "unhealthy", "unreachable" or "exited (code N)"


class Stack:
    """Registry first, then every service instance in parallel; each registers itself and heartbeats."""

    def __init__(self, topology: Topology | None = None, workdir: Path | None = None, *,
                 progress: Progress = lambda _line: None) -> None:  # fmt: skip
        self.topology = topology or Topology()
        self.workdir = (workdir or Path(".harness/run")).resolve()
        self.progress = progress
        self.processes: dict[str, ServiceProcess] = {}
        self.kinds: dict[str, str] = {}
        self.proxies: dict[str, str] = {}  # instance name -> proxied "host:port"
        self.toxiproxy: ToxiproxyClient | None = None
        self.supervisor: FaultProxySupervisor | ExternalProxyWatch | None = None
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

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Stack:
        running = _running_state(self.workdir / STATE_FILE)
        if running is not None and running["harness_pid"] != os.getpid():
            raise ConfigError(f"a stack is already running in {self.workdir} (harness pid "
                              f"{running['harness_pid']}); stop it or choose another --workdir")  # fmt: skip
        began = time.monotonic()
        for folder in ("data", "events", "logs"):
            (self.workdir / folder).mkdir(parents=True, exist_ok=True)
        try:
            self.events = EventLog("harness", self.event_log("harness"))
            self.spawner = Spawner().start()
            if self.topology.proxies:
                self._start_toxiproxy()
            self._start("registry", "registry", self._registry_args()).wait_ready()
            self.progress(f"registry ready at {self.registry_url}")
            spawned = [self._start(name, kind, self._instance_args(kind, name))
                       for kind, name in self.topology.instances()]  # fmt: skip
            for process in spawned:
                process.wait_ready()
            self._wait_registered(began + self.topology.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        self._started = True
        self._write_state()
        return self

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
        self.processes["toxiproxy"] = process
        self.kinds["toxiproxy"] = "toxiproxy"
        self.toxiproxy = ToxiproxyClient(process.url)
        self.progress(f"fault proxy ready at {process.url} (supervised; proxy set in {supervisor.path})")

    def _toxiproxy_process(self, port: int, config: Path | None) -> ServiceProcess:
        """The embedded fault proxy, unstarted: first on any port, then again on that one from ``config``."""
        seed = [] if self.topology.toxiproxy_seed is None else ["--seed", str(self.topology.toxiproxy_seed)]
        populate = [] if config is None else ["--config", str(config)]
        return ToxiproxyProcess(["--proxy-metrics", *seed, *populate], host=self.topology.host, port=port,
                                workdir=self.workdir / "logs", startup_timeout=self.topology.startup_timeout,
                                spawner=self.spawner)  # fmt: skip

    def _toxiproxy_restarted(self, process: ServiceProcess) -> None:
        self.processes["toxiproxy"] = process
        if self._started:
            self._write_state()

    def _start(self, name: str, kind: str, args: list[str]) -> ServiceProcess:
        """Spawn one instance; with proxies, on a port chosen here, behind a proxy it advertises."""
        if self.toxiproxy is None:
            return self._process(name, kind, args).spawn()
        port = _free_port(self.topology.host)
        upstream = f"{self.topology.host}:{port}"
        with contextlib.suppress(FaultError):  # a proxy left by an earlier run of the same stack
            self.toxiproxy.delete_proxy(name)
        proxy = self.toxiproxy.create_proxy(name, upstream, listen=f"{self.topology.host}:0")
        self.proxies[name] = f"{proxy.host}:{proxy.port}"
        if isinstance(self.supervisor, FaultProxySupervisor):
            self.supervisor.refresh()  # the new proxy is in the workdir before anything advertises it
        if kind != "registry":
            args = [*args, "--advertise-port", str(proxy.port)]
        return self._process(name, kind, args, port=port).spawn()

    def _process(
        self, name: str, kind: str, args: list[str], port: int = 0, **options: Any
    ) -> ServiceProcess:
        process = ServiceProcess(
            name,
            kind,
            args,
            host=self.topology.host,
            port=port,
            workdir=self.workdir / "logs",
            startup_timeout=self.topology.startup_timeout,
            spawner=self.spawner,
            **options,
        )
        self.processes[name] = process
        self.kinds[name] = kind
        return process

    def _registry_args(self) -> list[str]:
        """The registry's flags; called once per start, it makes this run's token (see ``_new_token``)."""
        r = self.topology.registry
        token = _new_token(self.workdir / REGISTRY_TOKEN_FILE)
        return ["--ttl", str(r.ttl), "--check-interval", str(r.check_interval),
                "--check-timeout", str(r.check_timeout), "--check-failures", str(r.check_failures),
                "--token-file", str(token), "--event-log", str(self.event_log("registry"))]  # fmt: skip

    def config_file(self, name: str) -> Path:
        return self.workdir / "config" / f"{name}.json"

    def _instance_args(self, kind: str, name: str) -> list[str]:
        """Where the instance is and whom it talks to; everything the topology sets is in its config file."""
        config = self.topology.instance_config(kind, name).write(self.config_file(name))
        return ["--instance-id", name, "--registry", self.registry_url_for_services,
                "--database", str(self.database(kind)), "--config", str(config),
                "--registry-token-file", str(self.workdir / REGISTRY_TOKEN_FILE),
                "--event-log", str(self.event_log(name))]  # fmt: skip

    def _wait_registered(self, deadline: float) -> None:
        """Until the registry lists every instance as healthy, so the first call finds them all."""
        expected: dict[str, int] = {}
        for kind, _name in self.topology.instances():
            expected[kind] = expected.get(kind, 0) + 1
        seen: dict[str, int] = {}
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                try:
                    services = http.get(f"{self.registry_url}/v1/services").json()["services"]
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    raise EnvironmentUnavailable(
                        f"the registry did not answer its services list: {exc!r}"
                    ) from exc
                seen = {kind: services.get(kind, {}).get("healthy", 0) for kind in expected}
                if seen == expected or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
        if seen == expected:
            return
        raise EnvironmentUnavailable(
            f"instances did not all register in time: expected {expected}, saw {seen}"
        )

    def stop(self) -> None:
        """SIGTERM every process, newest first (each deregisters), SIGKILL what does not exit in time."""
        self._started = False
        if self.supervisor is not None:  # first, so the fault proxy is not restarted while it stops
            self.supervisor.stop()
        for process in reversed(list(self.processes.values())):
            process.stop()
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

    def instances(self, kind: str) -> list[ServiceProcess]:
        return [p for name, p in self.processes.items() if self.kinds[name] == kind]

    def kill(self, name: str) -> None:
        """SIGKILL one instance: the crash case, no deregistration, no cleanup."""
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
        old.stop()
        process = ServiceProcess(old.name, old.kind, old.args, host=old.host, port=old.port or 0,
                                 workdir=old.workdir, startup_timeout=old.startup_timeout, env=old.env,
                                 subcommand=old.subcommand, ready_path=old.ready_path,
                                 spawner=self.spawner)  # fmt: skip
        self.processes[name] = process.start()
        self._process_event("process.restarted", name, process.pid)
        self._write_state()
        return process

    def _process_event(self, event: str, name: str, pid: int | None) -> None:
        """On the timeline: what the stack did to one of its processes (a ``ProcessChange``)."""
        if self.events is not None:
            self.events.emit(event, name=name, pid=pid)

    def _write_state(self) -> None:
        state = {
            "harness_pid": os.getpid(),
            "registry": self.registry_url,
            "instances": [
                {"name": name, "kind": self.kinds[name], "url": p.url, "pid": p.pid,
                 "proxy": self.proxies.get(name), "ready_path": p.ready_path, "log": str(p.log_path)}
                for name, p in self.processes.items()
            ],
        }  # fmt: skip
        path = self.workdir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        with self._state_lock:
            tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
            os.replace(tmp, path)


def _status(
    name: str, kind: str, url: str, pid: int | None, returncode: int | None, ready_path: str = "/health"
) -> InstanceStatus:
    if returncode is not None:
        return InstanceStatus(name, kind, url, pid, False, f"exited (code {returncode})")
    try:
        answer = httpx.get(f"{url}{ready_path}", timeout=1.0, trust_env=False)
        health = "ok" if answer.status_code == 200 else "unhealthy"
    except httpx.TransportError:
        health = "unreachable"
    return InstanceStatus(name, kind, url, pid, True, health)


def read_status(workdir: Path) -> list[InstanceStatus]:
    """Status of the stack a ``harness up`` in ``workdir`` is running, from its state file."""
    path = workdir.resolve() / STATE_FILE
    state = _running_state(path)
    if state is None:
        raise EnvironmentUnavailable(
            f"no stack is running in {workdir} (no live `harness up` there); start one with `harness up`"
        )
    statuses = []
    for item in state["instances"]:
        name, kind, url, pid = item["name"], item["kind"], item["url"], item["pid"]
        if pid is not None and _pid_alive(pid):
            statuses.append(_status(name, kind, url, pid, None, item.get("ready_path", "/health")))
        else:
            statuses.append(InstanceStatus(name, kind, url, pid, False, "not running"))
    return statuses


def _running_state(path: Path) -> dict[str, Any] | None:
    """The state file of a ``harness up`` that is still alive, or None (absent, unreadable or stale)."""
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        harness_pid = int(state["harness_pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if _pid_alive(harness_pid) else None


def _new_token(path: Path) -> Path:
    """Write a fresh random registry token to ``path``, readable by this user only, and return the path.

    Services read it from the file (a command line is visible to everyone in ``ps``); a new one per run
    means a token seen once is worthless to the next stack.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
    os.replace(tmp, path)
    return path


def _free_port(host: str) -> int:
    """A port the OS considers free now; the instance binds it a moment later."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
