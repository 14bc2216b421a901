"""A loopback HTTP server the verifier calls back: provider states set by a function, messages to verify.

pact-python can run such servers itself, but never closes their sockets and answers a failing state
with a 500, which the verifier retries with backoff for minutes; this one closes cleanly, remembers why
a state failed and answers 400, so the interaction fails at once with a reason.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

STATE_PATH = "/_pact/state"
MESSAGE_PATH = "/_pact/message"


@dataclass(frozen=True)
class ProducedMessage:
    """One message as the provider would publish it."""

    contents: bytes
    content_type: str = "application/json"
    metadata: dict[str, str] = field(default_factory=dict)


StateFunction = Callable[[str, str, dict[str, Any]], None]
"""``(state, action, params)``: set up or tear down one provider state; raise when it cannot."""
MessageFunction = Callable[[str], ProducedMessage]
"""``description`` -> the message the provider publishes for that interaction."""


class CallbackServer:
    """Serves ``POST /_pact/state`` and ``POST /_pact/message`` on 127.0.0.1 while in a ``with`` block."""

    def __init__(
        self, *, states: StateFunction | None = None, messages: MessageFunction | None = None
    ) -> None:
        self._states = states
        self._messages = messages
        self._lock = threading.Lock()
        self.state_errors: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the callback server is not running")
        return int(self._server.server_address[1])

    @property
    def state_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{STATE_PATH}"

    def change_state(self, body: dict[str, Any]) -> str | None:
        """Apply one state change; the reason it failed, or None."""
        state, action = str(body.get("state", "")), str(body.get("action", "setup"))
        if state == "" or self._states is None:
            return None
        try:
            self._states(state, action, body.get("params") or {})
        except Exception as exc:
            reason = f"provider state {state!r} ({action}) failed: {exc}"
            with self._lock:
                self.state_errors.setdefault(state, reason)
            return reason
        return None

    def produce(self, body: dict[str, Any]) -> ProducedMessage:
        if self._messages is None:
            raise LookupError("this provider publishes no messages")
        return self._messages(str(body.get("description", "")))

    def __enter__(self) -> CallbackServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="pact-callbacks"
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None


def _handler_class(callbacks: CallbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.close_connection = True
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(400, b"not JSON", "text/plain")
                return
            if self.path.split("?")[0] == STATE_PATH:
                reason = callbacks.change_state(body)
                # 400, not 500: the verifier retries a 5xx with backoff for minutes.
                self._answer(400 if reason else 200, (reason or "").encode(), "text/plain")
            elif self.path.split("?")[0] == MESSAGE_PATH:
                self._message(body)
            else:
                self._answer(404, b"not found", "text/plain")

        def _message(self, body: dict[str, Any]) -> None:
            try:
                message = callbacks.produce(body)
            except Exception as exc:
                self._answer(400, f"no message: {exc}".encode(), "text/plain")
                return
            metadata = {"contentType": message.content_type, **message.metadata}
            encoded = base64.b64encode(json.dumps(metadata).encode()).decode()
            self._answer(200, message.contents, message.content_type, {"Pact-Message-Metadata": encoded})

        def _answer(
            self, status: int, content: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the verifier's report says what happened

    return Handler
