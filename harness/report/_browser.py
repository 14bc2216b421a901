"""A headless Chromium driven over the DevTools protocol on a pipe: open a report, check it, screenshot it.

Why our own small client: the protocol over ``--remote-debugging-pipe`` is JSON messages ending in a NUL
byte on file descriptors 3 and 4, so it needs no driver binary, no websocket library and no port. The
browser runs in its own process group, which is killed with it, so no renderer outlives a check.
Every wait has a deadline; nothing sleeps.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.errors import EnvironmentUnavailable

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
)  # fmt: skip
_READ_FD, _WRITE_FD = 3, 4  # the browser reads commands from fd 3 and writes answers to fd 4


def find_chromium() -> Path | None:
    """Chromium (or Chrome) on PATH, or ``HARNESS_CHROMIUM`` when set."""
    explicit = os.environ.get("HARNESS_CHROMIUM")
    if explicit:
        return Path(explicit) if Path(explicit).exists() else None
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


@dataclass
class PageLog:
    """What the page did: every URL it requested, its console messages, and every problem (uncaught
    exceptions, console errors, failed loads, policy violations, a crash)."""

    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class CdpError(EnvironmentUnavailable):
    """The browser refused a command, crashed, or did not answer in time."""


class HeadlessChromium:
    """``with HeadlessChromium(path) as browser: browser.open(url); browser.evaluate(js)``."""

    def __init__(self, executable: Path, *, timeout: float = 30.0, width: int = 1280, height: int = 900):
        self.executable = executable
        self.timeout = timeout
        self.width, self.height = width, height
        self.log = PageLog()
        self._pid: int | None = None
        self._send_fd = self._recv_fd = -1
        self._buffer = b""
        self._next_id = 0
        self._session = ""
        self._loaded = False
        self._profile: tempfile.TemporaryDirectory[str] | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def __enter__(self) -> HeadlessChromium:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Spawn the browser and attach to a blank page; on any failure nothing is left (process, pipes,
        profile folder)."""
        self._profile = tempfile.TemporaryDirectory(prefix="harness-chromium-")
        try:
            self._spawn(Path(self._profile.name))
            self._attach()
        except BaseException:
            self.close()
            raise

    def _spawn(self, profile: Path) -> None:
        commands_r, self._send_fd = os.pipe()
        self._recv_fd, answers_w = os.pipe()
        # Above 4, so that the dup2 onto 3 and 4 in the child always happens (and clears close-on-exec).
        child_r, child_w = (_high(fd) for fd in (commands_r, answers_w))
        log = os.open(profile / "chromium.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        argv = [str(self.executable), *FLAGS, f"--user-data-dir={profile / 'profile'}",
                f"--window-size={self.width},{self.height}", "about:blank"]  # fmt: skip
        try:
            self._pid = os.posix_spawn(
                str(self.executable), argv, dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, child_r, _READ_FD), (os.POSIX_SPAWN_DUP2, child_w, _WRITE_FD),
                    (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2),
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                ],
                setpgroup=0,
            )  # fmt: skip
        except OSError as exc:
            raise CdpError(f"cannot start {self.executable}: {exc}") from exc
        finally:
            for fd in (child_r, child_w, log):
                os.close(fd)

    def _attach(self) -> None:
        target = self._command("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        attached = self._command(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self._command(f"{domain}.enable")
        metrics = {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False}
        self._command("Emulation.setDeviceMetricsOverride", metrics)

    def close(self) -> None:
        """Ask the browser to quit and wait (bounded) for it to exit; then kill what is left of its process
        group (all of it if it has not exited) and reap it. Safe to call after a failed start, and twice."""
        if self._pid is not None:
            try:
                self._send({"id": self._new_id(), "method": "Browser.close"})
                self._drain_until_eof()
                _wait_for_exit(self._pid, min(self.timeout, 10.0))
            except (CdpError, OSError):
                pass
            finally:  # even on Ctrl-C: while the browser is unreaped its pid surely names its group, so
                _kill_group(self._pid)  # renderers, or a browser that would not quit, die before the reap
                os.waitpid(self._pid, 0)
                self._pid = None
        for fd in (self._send_fd, self._recv_fd):
            if fd >= 0:
                os.close(fd)
        self._send_fd = self._recv_fd = -1
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    # -- pages ------------------------------------------------------------------------------------

    def open(self, url: str) -> PageLog:
        """Navigate to ``url`` and return once its load event fired (scripts ran)."""
        self._loaded = False
        result = self._command("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"cannot open {url}: {result['errorText']}")
        deadline = _deadline(self.timeout)
        while not self._loaded:
            self._dispatch(self._read_message(deadline, f"the load event of {url}"))
        return self.log

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The JSON value of a JavaScript expression in the page (a thrown error is a CdpError)."""
        answer = self._command(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            message = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"the page threw while evaluating {expression[:80]!r}: {message}")
        return answer.get("result", {}).get("value")

    def wait_for(self, condition: str, *, timeout: float = 10.0) -> bool:
        """Whether the JavaScript ``condition`` became true within ``timeout`` (polled in the page)."""
        script = (
            "new Promise(function (resolve) { var end = Date.now() + MS; (function poll() {"
            " var value = false; try { value = Boolean(CONDITION); } catch (err) { value = false; }"
            " if (value) { resolve(true); } else if (Date.now() > end) { resolve(false); }"
            " else { setTimeout(poll, 20); } })(); })"
        )
        script = script.replace("MS", str(int(timeout * 1000))).replace("CONDITION", condition)
        return bool(self.evaluate(script, await_promise=True))

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the page (all of it when ``full_page``), written to ``path``."""
        height = self.height
        if full_page:
            size = self._command("Page.getLayoutMetrics")["cssContentSize"]
            height = max(self.height, int(size["height"]) + 1)
        shot = self._command("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1},
        })  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    # -- protocol ---------------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _command(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> Any:
        ident = self._new_id()
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        self._send(message)
        deadline = _deadline(self.timeout)
        while True:
            answer = self._read_message(deadline, f"the answer to {method}")
            if answer.get("id") != ident:
                self._dispatch(answer)
                continue
            if "error" in answer:
                raise CdpError(f"{method} failed: {answer['error'].get('message', answer['error'])}")
            return answer.get("result", {})

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._send_fd, data) :]

    def _read_message(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = self._read_chunk(deadline, waiting_for)
            if not chunk:
                raise CdpError(f"the browser exited while waiting for {waiting_for}{self._log_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _read_chunk(self, deadline: float, waiting_for: str) -> bytes:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([self._recv_fd], [], [], max(0.0, remaining))
        if not ready:
            raise CdpError(f"no answer from the browser within {self.timeout:g} s waiting for {waiting_for}")
        return os.read(self._recv_fd, 1 << 20)

    def _drain_until_eof(self) -> None:
        deadline = _deadline(min(self.timeout, 10.0))
        while self._read_chunk(deadline, "the browser to exit"):
            pass

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Record what an event says about the page."""
        params = message.get("params", {})
        match message.get("method"):
            case "Page.loadEventFired":
                self._loaded = True
            case "Network.requestWillBeSent":
                self.log.requests.append(params["request"]["url"])
            case "Network.loadingFailed":
                self.log.problems.append(f"load failed: {params.get('errorText', '')}")
            case "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get("text", "")
                self.log.problems.append(f"uncaught exception: {text}")
            case "Runtime.consoleAPICalled":
                words = " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
                )
                self.log.console.append(f"{params['type']}: {words}")
                if params["type"] in ("error", "assert"):
                    self.log.problems.append(f"console {params['type']}: {words}")
            case "Log.entryAdded":
                entry = params["entry"]
                if entry.get("level") == "error":
                    self.log.problems.append(f"{entry.get('source', 'log')}: {entry.get('text', '')}")
            case "Inspector.targetCrashed" | "Target.targetCrashed":
                self.log.problems.append("the page crashed")
            case _:
                pass

    def _log_tail(self) -> str:
        if self._profile is None:
            return ""
        log = Path(self._profile.name) / "chromium.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return f"; its log ends with:\n{tail}" if tail else ""


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def _wait_for_exit(pid: int, timeout: float) -> None:
    """Block until the child ``pid`` has exited (without reaping it) or ``timeout`` passed."""
    if not hasattr(os, "pidfd_open"):
        return
    fd = os.pidfd_open(pid)
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _deadline(seconds: float) -> float:
    return time.monotonic() + seconds
