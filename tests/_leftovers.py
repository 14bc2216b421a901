"""What a test session must leave behind: nothing. A pytest plugin (tests/conftest.py registers it) that fails
the session naming every child process still running or never waited for, port they listen on, fault on a
fault proxy among them, temporary file, and warning a child could only print, then ends and removes them.

How it finds what is the session's own, with other sessions running beside it on the same machine:
processes descend from pytest or carry the session's token in their environment (``MARK``, inherited
through every ``harness up`` or ``python -m harness serve``, and still there once a killed parent left them
orphaned); temporary files go to a folder of the session's own (``TMPDIR``); a Python child records a
warning raised in a finalizer (an unwaited ``Popen``, an unclosed file), which ``PYTHONWARNINGS=error``
alone would only print, through ``tests/_site/sitecustomize.py``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]  # Locust's dependency; no stubs installed
import pytest

MARK = "HARNESS_TEST_SESSIONS"  # the tokens of every test session a process descends from, os.pathsep-joined
UNRAISABLE = "HARNESS_TEST_UNRAISABLE"  # where tests/_site/sitecustomize.py records finalizer warnings
SITE = Path(__file__).with_name("_site")
GRACE = 10.0  # how long a process that is not pytest's own child may take to end after the session
# Every Python child runs with warnings as errors, as pytest itself does (pyproject.toml's filterwarnings).
CHILD_WARNINGS = (
    "error",
    # chaostoolkit's `chaos` CLI imports python-json-logger's old module name, which now warns at import
    "ignore:pythonjsonlogger.jsonlogger has been moved to pythonjsonlogger.json:DeprecationWarning",
    # ... and lists its CLI plugins through importlib.metadata's old dict interface
    "ignore:SelectableGroups dict interface is deprecated:DeprecationWarning",
    # pytest-asyncio, configuring a pytest the tests start on a project of their own making (no pyproject):
    # raised before pytest's own filters apply, it would be an internal error instead of that run's result
    'ignore:The configuration option "asyncio_default_fixture_loop_scope" is unset:DeprecationWarning',
)


class Kind(StrEnum):
    RUNNING = "still running"
    UNWAITED = "never waited for"
    PORT = "port still listening"
    FAULT = "fault still applied"
    FILE = "temporary file left"
    WARNING = "warning in a child"


@dataclass(frozen=True)
class Leftover:
    kind: Kind
    what: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.what}"


@dataclass(frozen=True)
class Found:
    """The leftovers, and the processes among them to end once they are named."""

    leftovers: tuple[Leftover, ...]
    processes: tuple[psutil.Process, ...]


def marked(environ: dict[str, str], token: str) -> bool:
    return token in environ.get(MARK, "").split(os.pathsep)


def session_processes(root: int, token: str) -> list[psutil.Process]:
    """Every process below ``root`` and every process marked with ``token``, oldest first (not ``root``)."""
    found = {p.pid: p for p in psutil.Process(root).children(recursive=True)}
    for process in psutil.process_iter():
        if process.pid in found or process.pid == root:
            continue
        with contextlib.suppress(psutil.Error):
            if marked(process.environ(), token):
                found[process.pid] = process
    return sorted(found.values(), key=_started)


def leftover_processes(root: int, token: str, *, grace: float = GRACE) -> Found:
    """The session's processes still there: ``root``'s own children at once (nobody will wait for them
    now), any other after ``grace`` seconds (one whose parent was killed may still be shutting down); with
    the ports they listen on and the faults on those ports."""
    processes = session_processes(root, token)
    own = [p for p in processes if _parent(p) == root]
    others = _still_running([p for p in processes if p not in own], grace)
    leftovers: list[Leftover] = []
    found: list[psutil.Process] = []
    for process in [*own, *others]:
        try:
            if _zombie(process):  # only root's own: another's zombie has ended, its parent reaps it
                leftovers.append(Leftover(Kind.UNWAITED, f"{describe(process)} ended, never waited"))
            else:
                kind = Kind.UNWAITED if process in own else Kind.RUNNING
                leftovers.append(Leftover(kind, f"{describe(process)} still running"))
                leftovers += listening(process)
            found.append(process)
        except psutil.NoSuchProcess:  # it ended while we looked
            continue
    return Found(tuple(leftovers), tuple(found))


def listening(process: psutil.Process) -> list[Leftover]:
    """The TCP ports ``process`` listens on, and the faults of a fault proxy among them."""
    found = []
    for address in _listening(process):
        found.append(Leftover(Kind.PORT, f"{address} held by pid {process.pid}"))
        found += faults_at(address)
    return found


def faults_at(address: str) -> list[Leftover]:
    """The toxics and disabled proxies of a fault proxy (the Toxiproxy API) answering at ``address``."""
    try:
        answer = httpx.get(f"http://{address}/proxies", timeout=1.0, trust_env=False)
        proxies = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return []
    if not isinstance(proxies, dict):
        return []
    found = []
    for name, proxy in sorted(proxies.items()):
        if not isinstance(proxy, dict):
            return []
        for toxic in proxy.get("toxics") or []:
            if isinstance(toxic, dict):
                what = f"{toxic.get('type')} {toxic.get('name')!r} on proxy {name!r} at {address}"
                found.append(Leftover(Kind.FAULT, what))
        if proxy.get("enabled") is False:
            found.append(Leftover(Kind.FAULT, f"proxy {name!r} disabled at {address}"))
    return found


def own_ports(before: Iterable[str]) -> list[Leftover]:
    """Ports this process listens on that it did not at the start (a server left running in-process)."""
    me = psutil.Process()
    return [Leftover(Kind.PORT, f"{a} held by pytest itself") for a in _listening(me) if a not in before]


def leftover_files(folder: Path, *, ignore: Sequence[str] = ()) -> list[Leftover]:
    """What is left in the session's temporary folder (``ignore``: names of its own)."""
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name in ignore:
            continue
        inside = sorted(p.name for p in entry.iterdir())[:5] if entry.is_dir() else []
        shown = f" (holding {', '.join(inside)}{', ...' if len(inside) == 5 else ''})" if inside else ""
        found.append(Leftover(Kind.FILE, f"{entry}{shown}"))
    return found


def child_warnings(folder: Path) -> list[Leftover]:
    """Warnings the session's Python children raised in finalizers (tests/_site/sitecustomize.py)."""
    if not folder.is_dir():
        return []
    texts = (path.read_text(errors="replace") for path in sorted(folder.iterdir()))
    return [Leftover(Kind.WARNING, line) for text in texts for line in text.splitlines() if line.strip()]


def end(processes: Iterable[psutil.Process], root: int, *, timeout: float = 10.0) -> None:
    """SIGKILL what was left and wait until it is gone (``root``'s own children reaped, zombies included),
    so no run leaks into the next one on a shared machine."""
    processes = list(processes)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    own = [p for p in processes if _parent(p) == root]
    for process in own:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(process.pid, 0)
    _still_running([p for p in processes if p not in own], timeout)


def _still_running(processes: Sequence[psutil.Process], within: float) -> list[psutil.Process]:
    """Those of ``processes`` still running (not ended, not a zombie) after at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        running = [p for p in processes if _running(p)]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.05)


def _running(process: psutil.Process) -> bool:
    return bool(process.is_running()) and not _zombie(process)


def describe(process: psutil.Process) -> str:
    try:
        argv = " ".join(process.cmdline()) or process.name()
    except psutil.ZombieProcess:
        argv = process.name()
    except psutil.AccessDenied:
        argv = "?"
    if len(argv) > 160:
        argv = argv[:157] + "..."
    return f"pid {process.pid} ({argv})"


def _listening(process: psutil.Process) -> list[str]:
    try:
        connections = process.net_connections(kind="tcp")
    except psutil.Error:
        return []
    found = {
        f"[{c.laddr.ip}]:{c.laddr.port}" if ":" in c.laddr.ip else f"{c.laddr.ip}:{c.laddr.port}"
        for c in connections
        if c.status == psutil.CONN_LISTEN and c.laddr
    }
    return sorted(found)


def _parent(process: psutil.Process) -> int | None:
    try:
        return int(process.ppid())
    except psutil.Error:
        return None


def _zombie(process: psutil.Process) -> bool:
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.ZombieProcess:
        return True
    except psutil.Error:
        return False


def _started(process: psutil.Process) -> tuple[float, int]:
    try:
        return process.create_time(), process.pid
    except psutil.Error:
        return 0.0, process.pid


class SessionHygiene:
    """The plugin: sets the children's environment up when pytest configures, checks after the last
    teardown (session fixtures included), fails the session and names each leftover in the summary."""

    UNRAISABLE_FOLDER = ".child-warnings"

    def __init__(self, *, grace: float = GRACE) -> None:
        self.grace = grace
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.root = os.getpid()
        self.folder: Path | None = None
        self.found: Found = Found((), ())
        self._ports: list[str] = []
        self._saved: dict[str, str | None] = {}
        self._tempdir: str | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        # pytest's own tmp_path stays where it was: only what the tests make themselves lands in our folder
        base = tempfile.gettempdir()
        self.folder = Path(tempfile.mkdtemp(prefix="harness-tests-", dir=base))
        unraisable = self.folder / self.UNRAISABLE_FOLDER
        unraisable.mkdir()
        inherited = os.environ.get(MARK)
        path = os.environ.get("PYTHONPATH")
        self._set({
            "PYTEST_DEBUG_TEMPROOT": os.environ.get("PYTEST_DEBUG_TEMPROOT") or base,
            "TMPDIR": str(self.folder),
            MARK: os.pathsep.join(filter(None, [inherited, self.token])),
            "PYTHONWARNINGS": ",".join(CHILD_WARNINGS),
            UNRAISABLE: str(unraisable),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SITE), path])),
        })  # fmt: skip
        self._tempdir, tempfile.tempdir = tempfile.tempdir, str(self.folder)
        self._ports = _listening(psutil.Process())

    def _set(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    @pytest.hookimpl(trylast=True)  # after pytest's own pytest_sessionfinish tore the session fixtures down
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.folder is None:
            return
        found = leftover_processes(self.root, self.token, grace=self.grace)
        leftovers = [
            *found.leftovers,
            *own_ports(self._ports),
            *child_warnings(self.folder / self.UNRAISABLE_FOLDER),
            *leftover_files(self.folder, ignore=[self.UNRAISABLE_FOLDER]),
        ]
        end(found.processes, self.root)
        self.found = Found(tuple(leftovers), found.processes)
        shutil.rmtree(self.folder, ignore_errors=True)
        if leftovers and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if leftovers and session.config.pluginmanager.get_plugin("terminalreporter") is None:
            print(self.summary(), file=sys.stderr)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.found.leftovers:
            terminalreporter.section("left behind by this session", red=True, bold=True)
            terminalreporter.line(self.summary(), red=True)

    def summary(self) -> str:
        lines = [f"  {leftover}" for leftover in self.found.leftovers]
        return "\n".join(
            [f"{len(lines)} leftover(s); the session fails (processes were killed, files removed):", *lines]
        )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        tempfile.tempdir = self._tempdir
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
