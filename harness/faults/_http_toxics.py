"""The two HTTP toxics, extensions only this server has (a real Toxiproxy answers ``invalid toxic type``):
``http_error`` answers a request itself and ``http_latency`` delays it, per HTTP/1.1 request, with the
toxic's ``toxicity`` as the probability for each request. Here: their attributes, the checks on them,
and what each does to one request; the connection's HTTP layer (``_exchange``) applies them."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import ClassVar
from urllib.parse import unquote

from harness.faults._http_framing import Head
from harness.faults._limits import HTTP_ERROR_STATUS, MAX_BODY_ATTRIBUTE, MILLISECONDS, SECONDS, Bound
from harness.faults._toxics import Toxic

_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PATH_PREFIX = re.compile(r"/[\x21-\x7e]*")
INJECTED_HEADER = "X-Harness-Fault"  # on every answer http_error writes: the toxic's name


def _filter_refusal(path_prefix: str, method: str) -> str | None:
    if path_prefix and not _PATH_PREFIX.fullmatch(path_prefix):
        return "path_prefix: must be empty (every path) or start with '/', without spaces"
    if method and not _METHOD.fullmatch(method):
        return "method: must be empty (every method) or one HTTP method, such as GET or POST"
    return None


def _matches(head: Head, path_prefix: str, method: str) -> bool:
    """Whether the request is one the filters name. The path is compared as sent, and as servers route it:
    percent-decoded as uvicorn does (``/%62locked``), leading slashes folded as http.server does
    (``//blocked``), so neither spelling slips past ``path_prefix``."""
    if method and head.method.upper() != method.upper():
        return False
    path = head.path
    if path.startswith(path_prefix):
        return True
    routed = unquote(path)
    if routed.startswith("/"):
        routed = "/" + routed.lstrip("/")
    return routed.startswith(unquote(path_prefix))


@dataclass(frozen=True)
class HttpErrorToxic(Toxic):
    """Answers a matching request with ``status`` instead of forwarding it (upstream), or replaces the
    server's response to it (downstream); the connection stays usable either way."""

    type_name: ClassVar[str] = "http_error"
    go_name: ClassVar[str] = "HttpErrorToxic"
    go_types: ClassVar[dict[str, str]] = {
        "status": "int",
        "retry_after": "int",
        "body": "string",
        "path_prefix": "string",
        "method": "string",
    }
    bounds: ClassVar[dict[str, Bound]] = {"status": HTTP_ERROR_STATUS, "retry_after": SECONDS}
    per_request: ClassVar[bool] = True
    status: int = 503
    retry_after: int = 0  # seconds; 0: no Retry-After header
    body: str = ""
    path_prefix: str = ""  # only requests whose path starts with it ("": every path)
    method: str = ""  # only requests with this method ("": every method)

    def refusal(self) -> str | None:
        if len(self.body.encode()) > MAX_BODY_ATTRIBUTE:
            return f"body: must be at most {MAX_BODY_ATTRIBUTE} bytes"
        return super().refusal() or _filter_refusal(self.path_prefix, self.method)

    def matches(self, head: Head) -> bool:
        return _matches(head, self.path_prefix, self.method)

    def answer(self, request: Head, toxic_name: str, *, close: bool) -> bytes:
        """The response to ``request``: valid HTTP/1.1, closing the connection only when ``close``."""
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Error"
        body = self.body.encode()
        lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: text/plain; charset=utf-8")
        if self.retry_after > 0:
            lines.append(f"Retry-After: {self.retry_after}")
        lines.append(f"{INJECTED_HEADER}: {toxic_name}")
        lines.append("Connection: close" if close else "Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        return head if request.method == "HEAD" else head + body


@dataclass(frozen=True)
class HttpLatencyToxic(Toxic):
    """Delays a matching request (upstream) or its response (downstream) by a uniform draw in
    [``latency_min``, ``latency_max``] ms; later messages on the connection wait behind it, in order."""

    type_name: ClassVar[str] = "http_latency"
    go_name: ClassVar[str] = "HttpLatencyToxic"
    go_types: ClassVar[dict[str, str]] = {
        "latency_min": "int64",
        "latency_max": "int64",
        "path_prefix": "string",
        "method": "string",
    }
    bounds: ClassVar[dict[str, Bound]] = {"latency_min": MILLISECONDS, "latency_max": MILLISECONDS}
    per_request: ClassVar[bool] = True
    latency_min: int = 0
    latency_max: int = 0
    path_prefix: str = ""
    method: str = ""

    def refusal(self) -> str | None:
        refusal = super().refusal()
        if refusal is None and self.latency_max < self.latency_min:
            refusal = f"latency_max: must be at least latency_min ({self.latency_min} ms)"
        return refusal or _filter_refusal(self.path_prefix, self.method)

    def matches(self, head: Head) -> bool:
        return _matches(head, self.path_prefix, self.method)

    def delay(self, rng: random.Random) -> float:
        """Seconds to hold one message: uniform in [latency_min, latency_max] ms."""
        return rng.uniform(self.latency_min, self.latency_max) / 1000.0


HTTP_TOXICS: dict[str, type[Toxic]] = {kind.type_name: kind for kind in (HttpErrorToxic, HttpLatencyToxic)}
