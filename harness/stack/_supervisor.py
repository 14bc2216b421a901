"""Keeps the fault proxy up: every call and heartbeat of the stack crosses it, so its death stops everything.

The embedded proxy is supervised by a thread the Stack starts and stops. It notices an exit within
``poll_interval`` and starts the proxy again on the same API port (clients hold its URL) from the proxy set
kept in the workdir (``toxiproxy.json``: names, the listen ports actually bound, upstreams, enabled state
and toxics), so every address the instances advertised stays valid. The set is re-read from the live
server every ``refresh_interval`` and whenever the stack changes it, so toxics added through the API
directly come back too, as they were at most that long before the crash. A proxy with toxics is started
disabled and enabled only once its toxics are back: no call crosses it unharmed in between. A toxic the
new server refuses is dropped and named in the ``toxiproxy.restarted`` event; a toxic or partition with an
expiry gets the time it had left (one whose time ran out meanwhile is not restored). A real Toxiproxy at
``TOXIPROXY_URL`` is not the harness's to restart: its loss and return are reported instead.

Both watchers also end the faults ``harness fault`` held for a duration in the workdir whose time is up
(``ExpiredFaults``): a real Toxiproxy cannot end them itself, so a killed command would leave them on.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from harness._process import ServiceProcess
from harness.errors import EnvironmentUnavailable, HarnessError
from harness.events import EventLog
from harness.faults import FaultApiError, FaultError, ProxyConfig, ProxyInfo, ToxiproxyClient
from harness.stack._faults import ExpiredFaults

PROXY_SET_FILE = "toxiproxy.json"
POPULATE_FILE = "toxiproxy.populate.json"

Launch = Callable[[int, Path | None], ServiceProcess]
"""An unstarted fault proxy process: on this API port (0: any), populated from this file (None: empty)."""


class FaultProxyState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # the embedded proxy exited and is being started again
    UNREACHABLE = "unreachable"  # an external proxy does not answer; nobody here restarts it
    STOPPED = "stopped"


class NoticeKind(StrEnum):
    EXITED = "exited"
    RESTARTED = "restarted"
    RESTART_FAILED = "restart_failed"
    UNREACHABLE = "unreachable"
    REACHABLE = "reachable"
    FAULT_EXPIRED = "fault_expired"  # a fault held for a duration outlived its command, and was ended


@dataclass(frozen=True)
class Notice:
    """One thing about the fault proxy a person watching the stack should see (``harness up`` prints it)."""

    kind: NoticeKind
    message: str


@dataclass(frozen=True)
class ProxyRestart:
    """One restart of the embedded fault proxy, as the ``toxiproxy.restarted`` event records it."""

    downtime: float  # seconds from noticing the exit to every proxy listening with its toxics
    start: float  # of which the new process took this long to answer
    returncode: int | None
    proxies: tuple[str, ...]
    toxics_restored: tuple[str, ...]  # "proxy/toxic"
    toxics_dropped: tuple[str, ...]  # "proxy/toxic: why"
    attempts: int


class ProxySet(BaseModel):
    """The fault proxy's configuration as kept in the workdir: what a restarted proxy is started from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_port: int
    proxies: list[ProxyInfo]


class _Watch:
    """The thread both watchers share: started and joined by its owner, one tick every ``interval``."""

    def __init__(self, events: EventLog, interval: float, name: str) -> None:
        self._events = events
        self._interval = interval
        self._name = name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._facts = threading.Lock()  # guards state and notices, read by other threads
        self._state = FaultProxyState.STOPPED
        self._notices: list[Notice] = []

    @property
    def state(self) -> FaultProxyState:
        with self._facts:
            return self._state

    @property
    def notices(self) -> list[Notice]:
        """Every notice so far, oldest first."""
        with self._facts:
            return list(self._notices)

    def _set(self, state: FaultProxyState, notice: Notice | None = None) -> None:
        with self._facts:
            self._state = state
            if notice is not None:
                self._notices.append(notice)

    def _end_expired(self, expired: ExpiredFaults) -> None:
        """End the ledger's faults whose time is up; each one ended is an event and a notice."""
        ended = expired.tick()
        if not ended:
            return
        self._events.emit("toxiproxy.faults_expired", faults=ended)
        with self._facts:
            self._notices.extend(Notice(NoticeKind.FAULT_EXPIRED, f"ended {line}: its time was up and the "
                                        "command holding it is gone") for line in ended)  # fmt: skip

    def _start_thread(self) -> None:
        self._set(FaultProxyState.RUNNING)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self._tick()
            except (HarnessError, OSError, ValueError) as exc:  # one bad tick must not end the watch
                self._events.emit("toxiproxy.supervisor_error", error=repr(exc))

    def _tick(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """Stop watching (nothing is restarted after this returns); the proxy itself is left running."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set(FaultProxyState.STOPPED)


class FaultProxySupervisor(_Watch):
    """Starts the embedded fault proxy, and starts it again with every proxy and toxic whenever it exits."""

    def __init__(
        self,
        launch: Launch,
        workdir: Path,
        events: EventLog,
        *,
        on_restart: Callable[[ServiceProcess], None] = lambda _process: None,
        poll_interval: float = 0.05,
        refresh_interval: float = 0.25,
        restart_attempts: int = 3,
    ) -> None:
        super().__init__(events, poll_interval, "fault-proxy-supervisor")
        self._launch = launch
        self.path = workdir / PROXY_SET_FILE
        self._populate_path = workdir / POPULATE_FILE
        self._on_restart = on_restart
        self._refresh_interval = refresh_interval
        self._restart_attempts = restart_attempts  # per explicit restart(); the watch itself never gives up
        self._restoring = threading.RLock()  # one restore at a time; no refresh reads a half-restored server
        self._process: ServiceProcess | None = None
        self._client: ToxiproxyClient | None = None
        self._set_of_proxies = ProxySet(api_port=0, proxies=[])
        self._read_at = 0.0
        self._restarts: list[ProxyRestart] = []
        self._workdir = workdir
        self._expired: ExpiredFaults | None = None

    @property
    def process(self) -> ServiceProcess:
        if self._process is None:
            raise RuntimeError("the fault proxy supervisor has not started")
        return self._process

    @property
    def proxy_set(self) -> ProxySet:
        """The proxy set as last read from the live server: what a restart would restore."""
        with self._restoring:
            return self._set_of_proxies

    @property
    def restarts(self) -> list[ProxyRestart]:
        with self._facts:
            return list(self._restarts)

    def start(self) -> ServiceProcess:
        """Start the fault proxy (any free API port), wait until it answers, then watch it."""
        process = self._launch(0, None).start()
        try:
            assert process.port is not None
            self._process = process
            self._client = ToxiproxyClient(process.url, timeout=2.0)
            self._expired = ExpiredFaults(process.url, self._workdir)  # the API port stays across restarts
            self._keep(ProxySet(api_port=process.port, proxies=[]))
            self._start_thread()
        except BaseException:  # nobody else knows of the process yet: stop (and wait for) it here
            process.stop()
            raise
        return process

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        if self._client is not None:
            self._client.close()
        if self._expired is not None:
            self._expired.close()

    def refresh(self) -> bool:
        """Read the live proxy set and keep it, in memory and in the workdir; False if nothing answered."""
        with self._restoring:
            if self._client is None or self.process.returncode is not None:
                return False
            try:
                proxies = self._client.proxies()
            except FaultError:
                return False
            self._keep(ProxySet(api_port=self._set_of_proxies.api_port,
                                proxies=[proxy.info for proxy in proxies.values()]))  # fmt: skip
            return True

    def restart(self) -> ServiceProcess:
        """Stop the fault proxy and start it again with every proxy and toxic it has now."""
        with self._restoring:
            self.refresh()
            self.process.stop()
            self._revive(attempts=self._restart_attempts)
            return self.process

    def _keep(self, proxy_set: ProxySet) -> None:
        self._read_at = time.monotonic()
        if proxy_set != self._set_of_proxies or not self.path.exists():
            self._set_of_proxies = proxy_set
            _write_atomically(self.path, proxy_set.model_dump_json(indent=2))

    def _tick(self) -> None:
        with self._restoring:
            if self.process.returncode is not None:
                self._revive(attempts=None)
            elif time.monotonic() - self._read_at >= self._refresh_interval:
                self.refresh()
        # The proxy ends them itself; this strikes them from the ledger (and catches any a restart lost).
        if self._expired is not None and self.state is FaultProxyState.RUNNING:
            self._end_expired(self._expired)

    def _revive(self, *, attempts: int | None) -> None:
        """Start the proxy again from the kept set, with backoff; forever when ``attempts`` is None."""
        old = self.process
        noticed = time.monotonic()
        proxy_set = self._set_of_proxies
        exited = f"{old.name} exited with code {old.returncode}; restarting it (log: {old.log_path})"
        self._set(FaultProxyState.RESTARTING, Notice(NoticeKind.EXITED, exited))
        self._events.emit("toxiproxy.exited", pid=old.pid, returncode=old.returncode,
                          set_age_s=round(noticed - self._read_at, 3))  # fmt: skip
        attempt = 0
        while True:
            attempt += 1
            try:
                began = time.monotonic()
                process, started, restored, dropped = self._restore(proxy_set)
                break
            except (EnvironmentUnavailable, FaultError, OSError) as exc:
                message = f"the fault proxy did not restart (attempt {attempt}): {exc}"
                self._events.emit("toxiproxy.restart_failed", attempt=attempt, error=str(exc))
                self._set(FaultProxyState.RESTARTING, Notice(NoticeKind.RESTART_FAILED, message))
                if attempts is not None and attempt >= attempts:
                    raise EnvironmentUnavailable(message) from exc
                if self._stopping.wait(min(0.1 * 2**attempt, 5.0)):
                    return
        self._process = process
        self._on_restart(process)
        restart = ProxyRestart(
            downtime=time.monotonic() - noticed,
            start=started - began,
            returncode=old.returncode,
            proxies=tuple(proxy.name for proxy in proxy_set.proxies),
            toxics_restored=tuple(restored),
            toxics_dropped=tuple(dropped),
            attempts=attempt,
        )
        self._events.emit("toxiproxy.restarted", downtime_s=round(restart.downtime, 3),
                          start_s=round(restart.start, 3), pid=process.pid,
                          proxies_restored=list(restart.proxies), toxics_restored=restored,
                          toxics_dropped=dropped, attempts=attempt)  # fmt: skip
        message = (
            f"fault proxy restarted in {restart.downtime:.2f}s (exit code {restart.returncode}): "
            f"{len(restart.proxies)} proxies, {len(restored)} toxics restored, {len(dropped)} dropped"
            + (f" ({'; '.join(dropped)})" if dropped else "")
        )
        with self._facts:
            self._restarts.append(restart)
        self._set(FaultProxyState.RUNNING, Notice(NoticeKind.RESTARTED, message))
        self._read_at = time.monotonic()

    def _restore(self, proxy_set: ProxySet) -> tuple[ServiceProcess, float, list[str], list[str]]:
        """A new proxy on the same ports; proxies with toxics are enabled once their toxics are back, a
        partition with an expiry gets the time it had left. Returns it, when it answered, and the toxics
        restored and dropped."""
        read_at = self._read_at  # when the set's expiries were read

        def left(expires_in: int) -> int:
            return math.ceil(expires_in - (time.monotonic() - read_at) * 1000)

        populate = [
            ProxyConfig(name=proxy.name, upstream=proxy.upstream, listen=proxy.listen,
                        enabled=proxy.enabled and not proxy.toxics).model_dump(mode="json")
            for proxy in proxy_set.proxies
        ]  # fmt: skip
        _write_atomically(self._populate_path, json.dumps(populate, indent=2))
        process = self._launch(proxy_set.api_port, self._populate_path)
        restored: list[str] = []
        dropped: list[str] = []
        try:
            process.start()
            started = time.monotonic()
            with ToxiproxyClient(process.url, timeout=5.0) as client:
                for proxy in proxy_set.proxies:
                    for toxic in proxy.toxics:
                        label = f"{proxy.name}/{toxic.name}"
                        attributes = {k: v for k, v in toxic.attributes.items() if isinstance(v, int | str)}
                        expires_in = left(toxic.expires_in) if toxic.expires_in is not None else None
                        if expires_in is not None and expires_in <= 0:
                            dropped.append(f"{label}: its time ran out while the proxy was down")
                            continue
                        try:
                            client.add_toxic(proxy.name, toxic.type, stream=toxic.stream, name=toxic.name,
                                             toxicity=toxic.toxicity, attributes=attributes,
                                             expires_in=expires_in)  # fmt: skip
                        except (FaultApiError, ValueError) as exc:  # refused: the server cannot have it back
                            dropped.append(f"{label}: {exc}")
                        else:
                            restored.append(label)
                    partition_left = left(proxy.expires_in) if proxy.expires_in is not None else None
                    if (proxy.enabled and proxy.toxics) or (
                        partition_left is not None and partition_left <= 0
                    ):
                        client.update_proxy(proxy.name, enabled=True)
                    elif partition_left is not None:
                        client.update_proxy(proxy.name, enabled=False, expires_in=partition_left)
        except BaseException:
            process.kill()
            raise
        return process, started, restored, dropped


class ExternalProxyWatch(_Watch):
    """A Toxiproxy the harness did not start (``TOXIPROXY_URL``): its loss and return are reported, since
    restarting it is its owner's job; on return, proxies it no longer has are named. It cannot end a fault
    by itself, so this watch ends the faults of the workdir's ledger whose time is up.

    ``workdir``: the stack's; by default the one the stack's event log is in (``<workdir>/events/``)."""

    def __init__(
        self, url: str, events: EventLog, *, interval: float = 0.5, workdir: Path | None = None
    ) -> None:
        super().__init__(events, interval, "fault-proxy-watch")
        self.url = url
        self._client = ToxiproxyClient(url, timeout=min(interval * 2, 2.0))
        self._known: set[str] = set()
        self._lost_at = 0.0
        if workdir is None and events.path is not None:
            workdir = events.path.parent.parent
        self._expired = ExpiredFaults(url, workdir, interval=interval) if workdir is not None else None

    def start(self) -> None:
        self._start_thread()

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self._client.close()
        if self._expired is not None:
            self._expired.close()

    def _tick(self) -> None:
        try:
            names = set(self._client.proxies())
        except FaultError as exc:
            if self.state is FaultProxyState.RUNNING:
                self._lost_at = time.monotonic()
                self._events.emit("toxiproxy.unreachable", url=self.url, error=str(exc), restartable=False)
                self._set(FaultProxyState.UNREACHABLE, Notice(NoticeKind.UNREACHABLE,
                          f"the Toxiproxy at {self.url} does not answer ({exc}); it is not the harness's to "
                          "restart, so every proxied call fails until it is back"))  # fmt: skip
            return
        if self.state is FaultProxyState.UNREACHABLE:
            downtime = time.monotonic() - self._lost_at
            missing = sorted(self._known - names)
            self._events.emit("toxiproxy.reachable", url=self.url, downtime_s=round(downtime, 3),
                              proxies_missing=missing)  # fmt: skip
            self._set(FaultProxyState.RUNNING, Notice(NoticeKind.REACHABLE,
                      f"the Toxiproxy at {self.url} answers again after {downtime:.1f}s"
                      + (f"; proxies missing: {', '.join(missing)}" if missing else "")))  # fmt: skip
        self._known = names
        if self._expired is not None:
            self._end_expired(self._expired)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
