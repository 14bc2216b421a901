"""The Toxiproxy HTTP API: gorilla/mux-style routing (request ids and the browser check on matched routes
only, plain 404 and empty 405 otherwise) and handlers that answer with the real server's bytes. A toxic or
proxy with an expiry (the ``expires_in`` extension) has one more key, last: the milliseconds left."""

from __future__ import annotations

import base64
import os
import posixpath
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from harness.faults._collection import ApiError, PopulateError, ProxyCollection
from harness.faults._gojson import go_bool, go_float32, go_string
from harness.faults._http import TEXT_HEADERS, Request, Response, http_error
from harness.faults._link import ToxicEntry
from harness.faults._metrics import CONTENT_TYPE, ServerMetrics
from harness.faults._proxy import Proxy

TOXIPROXY_VERSION = "2.12.0"
_JSON = (("Content-Type", "application/json"),)


def _attribute(value: int | str) -> str:
    return go_string(value) if isinstance(value, str) else str(value)


def _expiry(expires_in: int | None) -> str:
    """The extension's key, only when there is an expiry: every other answer keeps Toxiproxy's keys."""
    return "" if expires_in is None else f',"expires_in":{expires_in}'


def toxic_json(entry: ToxicEntry, expires_in: int | None = None) -> str:
    attributes = ",".join(
        f"{go_string(key)}:{_attribute(value)}" for key, value in entry.toxic.attributes().items()
    )
    return (
        f'{{"attributes":{{{attributes}}},"name":{go_string(entry.name)},"type":{go_string(entry.type)},'
        f'"stream":{go_string(entry.stream)},"toxicity":{go_float32(entry.toxicity)}{_expiry(expires_in)}}}'
    )


def proxy_toxic_json(proxy: Proxy, entry: ToxicEntry) -> str:
    """A toxic of ``proxy``, with the time it has left if it expires."""
    return toxic_json(entry, proxy.toxic_expires_in(entry.name))


def proxy_json(proxy: Proxy) -> str:
    toxics = ",".join(proxy_toxic_json(proxy, entry) for entry in proxy.toxic_list())
    return (
        f'{{"name":{go_string(proxy.name)},"listen":{go_string(proxy.listen)},'
        f'"upstream":{go_string(proxy.upstream)},"enabled":{go_bool(proxy.enabled)},'
        f'"Logger":{{}},"toxics":[{toxics}]{_expiry(proxy.enabled_in())}}}'
    )


def _json(text: str, status: int = 200) -> Response:
    return Response(status, text.encode(), _JSON)


class RequestIds:
    """20-character xid-style ids (time, machine, pid, counter in base32hex), like zerolog's hlog."""

    def __init__(self) -> None:
        self._machine = secrets.token_bytes(3)
        self._pid = (os.getpid() & 0xFFFF).to_bytes(2, "big")
        self._counter = int.from_bytes(secrets.token_bytes(3), "big")

    def next(self) -> str:
        self._counter = (self._counter + 1) & 0xFFFFFF
        raw = (
            int(time.time()).to_bytes(4, "big") + self._machine + self._pid + self._counter.to_bytes(3, "big")
        )
        return base64.b32hexencode(raw).decode()[:20].lower()


_Route = Callable[[Request, tuple[str, ...]], Awaitable[Response]]


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    methods: dict[str, _Route]  # "*" matches any method


def _clean_path(path: str) -> str:
    """gorilla/mux's cleanPath: Go's path.Clean, keeping a trailing slash."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = posixpath.normpath(path)
    cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


class ToxiproxyApi:
    """Routes requests to the collection and renders its answers."""

    def __init__(self, collection: ProxyCollection, metrics: ServerMetrics) -> None:
        self._proxies = collection
        self._metrics = metrics
        self._ids = RequestIds()
        name = r"([^/]+)"
        self._routes = [
            _Pattern(re.compile("/reset"), {"POST": self._reset}),
            _Pattern(re.compile("/proxies"), {"GET": self._proxy_index, "POST": self._proxy_create}),
            _Pattern(re.compile("/populate"), {"POST": self._populate}),
            _Pattern(
                re.compile(f"/proxies/{name}"),
                {"GET": self._proxy_show, "POST": self._proxy_update, "PATCH": self._proxy_update},
            ),
            _Pattern(re.compile(f"/proxies/{name}"), {"DELETE": self._proxy_delete}),
            _Pattern(
                re.compile(f"/proxies/{name}/toxics"), {"GET": self._toxic_index, "POST": self._toxic_create}
            ),
            _Pattern(
                re.compile(f"/proxies/{name}/toxics/{name}"),
                {
                    "GET": self._toxic_show,
                    "POST": self._toxic_update,
                    "PATCH": self._toxic_update,
                    "DELETE": self._toxic_delete,
                },
            ),
            _Pattern(re.compile("/version"), {"GET": self._version}),
        ]
        if metrics.enabled:
            self._routes.append(_Pattern(re.compile("/metrics"), {"*": self._metrics_page}))

    async def __call__(self, request: Request) -> Response:
        cleaned = _clean_path(request.path)
        if cleaned != request.path:
            return self._redirect(request, cleaned)
        path_matched = False
        for pattern in self._routes:
            match = pattern.regex.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            route = pattern.methods.get(request.method) or pattern.methods.get("*")
            if route is None:
                continue
            response = await self._matched(route, request, match.groups())
            return Response(
                response.status,
                response.body,
                (*response.headers, ("X-Toxiproxy-Request-Id", self._ids.next())),
            )
        if path_matched:
            return Response(405)
        return Response(404, b"404 page not found\n", TEXT_HEADERS)

    async def _matched(self, route: _Route, request: Request, args: tuple[str, ...]) -> Response:
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return Response(403, b"User agent not allowed\n", TEXT_HEADERS)
        try:
            return await route(request, args)
        except PopulateError as exc:
            proxies = "null" if exc.proxies is None else f"[{','.join(proxy_json(p) for p in exc.proxies)}]"
            body = f'{{"error":{go_string(exc.message)},"status":{exc.status},"proxies":{proxies}}}'
            return _json(body, exc.status)
        except ApiError as exc:
            return http_error(exc.message, exc.status)

    @staticmethod
    def _redirect(request: Request, location: str) -> Response:
        headers: tuple[tuple[str, str], ...] = (("Location", location),)
        body = b""
        if request.method in ("GET", "HEAD"):
            headers += (("Content-Type", "text/html; charset=utf-8"),)
        if request.method == "GET":
            body = f'<a href="{location}">Moved Permanently</a>.\n\n'.encode()
        return Response(301, body, headers)

    async def _reset(self, request: Request, args: tuple[str, ...]) -> Response:
        await self._proxies.reset()
        return Response(204)

    async def _proxy_index(self, request: Request, args: tuple[str, ...]) -> Response:
        proxies = self._proxies.proxies
        items = ",".join(f"{go_string(name)}:{proxy_json(proxies[name])}" for name in sorted(proxies))
        return _json(f"{{{items}}}")

    async def _proxy_create(self, request: Request, args: tuple[str, ...]) -> Response:
        return _json(proxy_json(await self._proxies.create(request.body)), 201)

    async def _populate(self, request: Request, args: tuple[str, ...]) -> Response:
        proxies = await self._proxies.populate(request.body)
        listed = f"[{','.join(proxy_json(p) for p in proxies)}]" if proxies else "null"
        return _json(f'{{"proxies":{listed}}}', 201)

    async def _proxy_show(self, request: Request, args: tuple[str, ...]) -> Response:
        return _json(proxy_json(self._proxies.get(args[0])))

    async def _proxy_update(self, request: Request, args: tuple[str, ...]) -> Response:
        return _json(proxy_json(await self._proxies.update(args[0], request.body)))

    async def _proxy_delete(self, request: Request, args: tuple[str, ...]) -> Response:
        await self._proxies.delete(args[0])
        return Response(204)

    async def _toxic_index(self, request: Request, args: tuple[str, ...]) -> Response:
        proxy = self._proxies.get(args[0])
        return _json(f"[{','.join(proxy_toxic_json(proxy, entry) for entry in proxy.toxic_list())}]")

    async def _toxic_create(self, request: Request, args: tuple[str, ...]) -> Response:
        entry = await self._proxies.add_toxic(args[0], request.body)
        return _json(proxy_toxic_json(self._proxies.get(args[0]), entry))

    async def _toxic_show(self, request: Request, args: tuple[str, ...]) -> Response:
        proxy = self._proxies.get(args[0])
        return _json(proxy_toxic_json(proxy, self._proxies.toxic(proxy, args[1])))

    async def _toxic_update(self, request: Request, args: tuple[str, ...]) -> Response:
        entry = await self._proxies.update_toxic(args[0], args[1], request.body)
        return _json(proxy_toxic_json(self._proxies.get(args[0]), entry))

    async def _toxic_delete(self, request: Request, args: tuple[str, ...]) -> Response:
        await self._proxies.remove_toxic(args[0], args[1])
        return Response(204)

    async def _version(self, request: Request, args: tuple[str, ...]) -> Response:
        body = f'{{"version": "{TOXIPROXY_VERSION}"}}\n'.encode()
        return Response(200, body, (("Content-Type", "application/json;charset=utf-8"),))

    async def _metrics_page(self, request: Request, args: tuple[str, ...]) -> Response:
        return Response(200, self._metrics.render(), (("Content-Type", CONTENT_TYPE),))
