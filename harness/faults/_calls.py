"""The Toxiproxy API calls without I/O (what to send, how to read the answer, which error it becomes), so
the sync and async clients cannot drift apart and errors are translated in exactly one place."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from harness.faults._errors import (
    FaultApiError,
    ProxyExists,
    ProxyNotFound,
    ToxicExists,
    ToxicNotFound,
    ToxicUnsupported,
    ToxiproxyUnavailable,
)
from harness.faults._models import (
    Attribute,
    ProxyConfig,
    ProxyInfo,
    ProxyUpdate,
    ToxicInfo,
    ToxicSpec,
    ToxicType,
    ToxicUpdate,
)

T = TypeVar("T")
DEFAULT_TOXIPROXY_URL = "http://127.0.0.1:8474"


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its successful answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None
    proxy: str | None = None
    toxic: str | None = None
    toxic_type: str | None = None  # of a toxic being added


def _segment(name: str) -> str:
    return quote(name, safe="")


def _none(response: httpx.Response) -> None:
    return None


def _proxy(response: httpx.Response) -> ProxyInfo:
    return ProxyInfo.model_validate_json(response.content)


def _toxic(response: httpx.Response) -> ToxicInfo:
    return ToxicInfo.model_validate_json(response.content)


def _toxic_list(response: httpx.Response) -> list[ToxicInfo]:
    return [ToxicInfo.model_validate(item) for item in response.json()]


def _proxy_map(response: httpx.Response) -> dict[str, ProxyInfo]:
    return {name: ProxyInfo.model_validate(item) for name, item in response.json().items()}


def _populated(response: httpx.Response) -> list[ProxyInfo]:
    return [ProxyInfo.model_validate(item) for item in response.json().get("proxies") or []]


def _version(response: httpx.Response) -> str:
    return str(response.json()["version"])


def version() -> Call[str]:
    return Call("GET", "/version", _version)


def proxies() -> Call[dict[str, ProxyInfo]]:
    return Call("GET", "/proxies", _proxy_map)


def get_proxy(name: str) -> Call[ProxyInfo]:
    return Call("GET", f"/proxies/{_segment(name)}", _proxy, proxy=name)


def create_proxy(config: ProxyConfig) -> Call[ProxyInfo]:
    return Call("POST", "/proxies", _proxy, config.model_dump(), proxy=config.name)


def update_proxy(name: str, update: ProxyUpdate) -> Call[ProxyInfo]:
    # POST rather than PATCH: the one form every Toxiproxy 2.x server accepts.
    body = update.model_dump(exclude_none=True)
    return Call("POST", f"/proxies/{_segment(name)}", _proxy, body, proxy=name)


def delete_proxy(name: str) -> Call[None]:
    return Call("DELETE", f"/proxies/{_segment(name)}", _none, proxy=name)


def populate(configs: Iterable[ProxyConfig]) -> Call[list[ProxyInfo]]:
    return Call("POST", "/populate", _populated, [config.model_dump() for config in configs])


def reset() -> Call[None]:
    return Call("POST", "/reset", _none)


def toxics(proxy: str) -> Call[list[ToxicInfo]]:
    return Call("GET", f"/proxies/{_segment(proxy)}/toxics", _toxic_list, proxy=proxy)


def get_toxic(proxy: str, name: str) -> Call[ToxicInfo]:
    path = f"/proxies/{_segment(proxy)}/toxics/{_segment(name)}"
    return Call("GET", path, _toxic, proxy=proxy, toxic=name)


def add_toxic(proxy: str, spec: ToxicSpec) -> Call[ToxicInfo]:
    body = spec.model_dump(exclude_none=True, mode="json")
    path = f"/proxies/{_segment(proxy)}/toxics"
    return Call("POST", path, _toxic, body, proxy=proxy, toxic=spec.name, toxic_type=spec.type)


def update_toxic(proxy: str, name: str, update: ToxicUpdate) -> Call[ToxicInfo]:
    path = f"/proxies/{_segment(proxy)}/toxics/{_segment(name)}"
    return Call("POST", path, _toxic, update.model_dump(exclude_none=True), proxy=proxy, toxic=name)


def remove_toxic(proxy: str, name: str) -> Call[None]:
    path = f"/proxies/{_segment(proxy)}/toxics/{_segment(name)}"
    return Call("DELETE", path, _none, proxy=proxy, toxic=name)


def toxic_spec(
    type: str, stream: str, toxicity: float, name: str | None, attributes: Mapping[str, Attribute]
) -> ToxicSpec:
    """Validate the arguments of add_toxic into the body to send (ValueError if they are not valid)."""
    return ToxicSpec.model_validate(
        {
            "type": str(type),
            "stream": stream,
            "toxicity": toxicity,
            "name": name,
            "attributes": dict(attributes),
        }
    )


def _error_message(response: httpx.Response) -> str:
    try:
        data = json.loads(response.content)
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else response.text.strip()


def check(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer of a successful call, or the FaultError for a failed one."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            return call.parse(response)
        except (ValueError, KeyError, TypeError, pydantic.ValidationError) as exc:
            raise FaultApiError(
                f"unexpected answer to {call.method} {call.path}: {exc}", status=status, proxy=call.proxy
            ) from exc
    message = _error_message(response)
    where = f"{call.method} {call.path}: {message}"
    if status == 404 and message == "toxic not found":
        raise ToxicNotFound(where, status=status, proxy=call.proxy, toxic=call.toxic or "")
    if status == 404 and message == "proxy not found":
        raise ProxyNotFound(where, status=status, proxy=call.proxy)
    if status == 409 and message == "proxy already exists":
        raise ProxyExists(where, status=status, proxy=call.proxy)
    if status == 409 and message == "toxic already exists":
        raise ToxicExists(where, status=status, proxy=call.proxy)
    if status == 400 and message == "invalid toxic type" and call.toxic_type is not None:
        raise ToxicUnsupported(_unsupported(call.toxic_type, response), status=status, proxy=call.proxy)
    raise FaultApiError(where, status=status, proxy=call.proxy)


def _unsupported(toxic_type: str, response: httpx.Response) -> str:
    """Why a server refused a toxic type: said plainly for the HTTP toxics, which only the harness has."""
    where = str(response.request.url.copy_with(path="/", query=None)).rstrip("/")
    if toxic_type in (ToxicType.HTTP_ERROR, ToxicType.HTTP_LATENCY):
        return (
            f"the Toxiproxy at {where} has no {toxic_type} toxic: http_error and http_latency are "
            "extensions of the harness's embedded fault proxy, which a real Toxiproxy does not have; "
            "unset TOXIPROXY_URL to use the embedded one, or inject HTTP faults on the client side with "
            "harness.faults.ChaosMonkey"
        )
    return f"the Toxiproxy at {where} has no toxic of type {toxic_type!r} (invalid toxic type)"


@contextlib.contextmanager
def transport_errors(url: str, call: Call[Any]) -> Iterator[None]:
    """Turn httpx's transport failures into ToxiproxyUnavailable (the one edge for them)."""
    try:
        yield
    except httpx.TransportError as exc:
        raise ToxiproxyUnavailable(
            f"Toxiproxy at {url} unreachable ({call.method} {call.path}): {exc!r}", proxy=call.proxy
        ) from exc
