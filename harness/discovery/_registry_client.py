"""Async HTTP client of the registry API; translates transport failures and odd answers at this one edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TypeVar

import httpx
from pydantic import ValidationError

from harness.discovery._models import HeartbeatAnswer, InstanceList, InstanceView, Registration
from harness.errors import RegistryError, RegistryRefused, RegistryUnavailable

_M = TypeVar("_M", InstanceView, InstanceList, HeartbeatAnswer)
REGISTRY_TOKEN_HEADER = "X-Registry-Token"
# Where `harness serve` reads the token when no token file is given: the registry and its instances
# alike, so one exported variable configures a whole hand-started stack.
REGISTRY_TOKEN_ENV = "HARNESS_REGISTRY_TOKEN"


class RegistryClient:
    """Register, heartbeat, deregister and look up instances at one registry URL.

    With ``token`` every write carries it in ``X-Registry-Token`` (reads need none); a registry that
    refuses a write (401/403) raises RegistryRefused.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 2.0,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._write_headers = {REGISTRY_TOKEN_HEADER: token} if token else {}

    def __repr__(self) -> str:  # never the token
        return f"RegistryClient({self.base_url!r}, token={'set' if self._write_headers else 'none'})"

    async def register(self, registration: Registration) -> InstanceView:
        """Register or refresh an instance; the registry answers 201 (new) or 200 (known)."""
        async with self._call("register") as call:
            response = await self._http.put(
                self._url(f"/v1/instances/{registration.instance_id}"),
                json=registration.body(),
                headers=self._write_headers,
            )
            call.expect(response, 200, 201)
            return call.parse(InstanceView, response)

    async def heartbeat(self, instance_id: str) -> bool:
        """True when the registry knew the instance; False means it forgot it and wants a re-register."""
        async with self._call("heartbeat") as call:
            response = await self._http.put(
                self._url(f"/v1/instances/{instance_id}/heartbeat"), headers=self._write_headers
            )
            if response.status_code == 404:
                return False
            call.expect(response, 200)
            call.parse(HeartbeatAnswer, response)
            return True

    async def deregister(self, instance_id: str) -> bool:
        """True when the instance was removed, False when the registry did not know it."""
        async with self._call("deregister") as call:
            response = await self._http.delete(
                self._url(f"/v1/instances/{instance_id}"), headers=self._write_headers
            )
            if response.status_code == 404:
                return False
            call.expect(response, 204)
            return True

    async def instances(
        self, service: str, *, index: int | None = None, wait: float | None = None, healthy: bool = True
    ) -> InstanceList:
        """Healthy instances of ``service``; with ``index`` the registry holds the answer until a change."""
        params: dict[str, str] = {"healthy": "true" if healthy else "false"}
        timeout = self._timeout
        if index is not None:
            params["index"] = str(index)
        if wait is not None:
            params["wait"] = f"{wait:g}"
            timeout = wait + self._timeout
        async with self._call("lookup") as call:
            response = await self._http.get(
                self._url(f"/v1/services/{service}/instances"), params=params, timeout=timeout
            )
            call.expect(response, 200)
            return call.parse(InstanceList, response)

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    @asynccontextmanager
    async def _call(self, operation: str) -> AsyncIterator[_Call]:
        try:
            yield _Call(operation, self.base_url)
        except httpx.TransportError as exc:
            raise RegistryUnavailable(
                f"registry at {self.base_url} unreachable during {operation}: {exc!r}"
            ) from exc

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _Call:
    """Checks one answer of the registry and names the operation when it is not what was expected."""

    def __init__(self, operation: str, base_url: str) -> None:
        self.operation = operation
        self.base_url = base_url

    def expect(self, response: httpx.Response, *statuses: int) -> None:
        if response.status_code in (401, 403) and response.status_code not in statuses:
            sent = "a wrong token" if response.status_code == 403 else "no token"
            raise RegistryRefused(
                f"registry at {self.base_url} refused {self.operation} ({response.status_code}): it "
                f"requires its token and this client sent {sent} (--registry-token-file or "
                "$HARNESS_REGISTRY_TOKEN)"
            )
        if response.status_code not in statuses:
            raise RegistryError(
                f"registry {self.operation} answered {response.status_code}: {response.text[:200]}"
            )

    def parse(self, model: type[_M], response: httpx.Response) -> _M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise RegistryError(f"registry {self.operation} answered an unexpected body: {exc}") from exc
