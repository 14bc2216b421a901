"""Typed Toxiproxy clients on httpx, sync and async, with proxy handles whose context managers
(``with proxy.toxic(...)``, ``with proxy.down()``) always undo the fault; ``TOXIPROXY_URL`` by default.
``expires_in`` (ms) asks the server to end a toxic or a partition by itself: the embedded server does
(the answer says how long is left), a real Toxiproxy ignores it (the answer's ``expires_in`` is None)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TypeVar

import httpx

from harness.faults import _calls
from harness.faults._calls import DEFAULT_TOXIPROXY_URL, Call
from harness.faults._errors import ToxicNotFound
from harness.faults._models import (
    Attribute,
    ProxyConfig,
    ProxyInfo,
    ProxyUpdate,
    Stream,
    ToxicInfo,
    ToxicSpec,
    ToxicUpdate,
)

T = TypeVar("T")


def _resolve_url(url: str | None) -> str:
    return (url or os.environ.get("TOXIPROXY_URL") or DEFAULT_TOXIPROXY_URL).rstrip("/")


def _spec(
    type: str,
    stream: Stream | str,
    toxicity: float,
    name: str | None,
    attributes: Mapping[str, Attribute] | None,
    expires_in: int | None,
) -> ToxicSpec:
    spec = _calls.toxic_spec(type, stream, toxicity, name, attributes or {})
    if expires_in is None:
        return spec
    return ToxicSpec.model_validate({**spec.model_dump(), "expires_in": expires_in})


class ToxiproxyClient:
    """Synchronous client of the Toxiproxy HTTP API."""

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _resolve_url(url)
        # trust_env=False: Toxiproxy is local infrastructure, never reached through an HTTP proxy.
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport, trust_env=False)

    def _run(self, call: Call[T]) -> T:
        with _calls.transport_errors(self.url, call):
            response = self._http.request(call.method, call.path, json=call.body)
        return _calls.check(call, response)

    def version(self) -> str:
        return self._run(_calls.version())

    def proxies(self) -> dict[str, Proxy]:
        return {name: Proxy(self, info) for name, info in self._run(_calls.proxies()).items()}

    def proxy(self, name: str) -> Proxy:
        return Proxy(self, self._run(_calls.get_proxy(name)))

    def create_proxy(
        self, name: str, upstream: str, *, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> Proxy:
        config = ProxyConfig(name=name, upstream=upstream, listen=listen, enabled=enabled)
        return Proxy(self, self._run(_calls.create_proxy(config)))

    def update_proxy(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
        expires_in: int | None = None,
    ) -> Proxy:
        """Change the proxy; ``expires_in`` (ms, with ``enabled=False``): the server enables it again then."""
        update = ProxyUpdate(listen=listen, upstream=upstream, enabled=enabled, expires_in=expires_in)
        return Proxy(self, self._run(_calls.update_proxy(name, update)))

    def delete_proxy(self, name: str) -> None:
        self._run(_calls.delete_proxy(name))

    def populate(self, configs: Iterable[ProxyConfig]) -> list[Proxy]:
        """Create or replace these proxies (same name and addresses: kept as is); others are left alone."""
        return [Proxy(self, info) for info in self._run(_calls.populate(configs))]

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._run(_calls.reset())

    def toxics(self, proxy: str) -> list[ToxicInfo]:
        return self._run(_calls.toxics(proxy))

    def get_toxic(self, proxy: str, name: str) -> ToxicInfo:
        return self._run(_calls.get_toxic(proxy, name))

    def add_toxic(
        self,
        proxy: str,
        type: str,
        *,
        stream: Stream | str = Stream.DOWNSTREAM,
        toxicity: float = 1.0,
        name: str | None = None,
        attributes: Mapping[str, Attribute] | None = None,
        expires_in: int | None = None,
    ) -> ToxicInfo:
        """Add a toxic; ``expires_in`` (ms): the server removes it then, if it has the extension."""
        spec = _spec(type, stream, toxicity, name, attributes, expires_in)
        return self._run(_calls.add_toxic(proxy, spec))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, Attribute] | None = None,
        toxicity: float | None = None,
        expires_in: int | None = None,
    ) -> ToxicInfo:
        update = ToxicUpdate(
            attributes=dict(attributes) if attributes is not None else None,
            toxicity=toxicity,
            expires_in=expires_in,
        )
        return self._run(_calls.update_toxic(proxy, name, update))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._run(_calls.remove_toxic(proxy, name))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _ProxyFacts:
    """What both proxy handles read from ``info``, the proxy's state as last read."""

    info: ProxyInfo

    def __repr__(self) -> str:
        facts = f"{self.info.name!r}, listen={self.info.listen!r}, upstream={self.info.upstream!r}"
        return f"{type(self).__name__}({facts})"

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def listen(self) -> str:
        return self.info.listen

    @property
    def host(self) -> str:
        return self.info.host

    @property
    def port(self) -> int:
        return self.info.port


class Proxy(_ProxyFacts):
    """A proxy on the server and what can be done to it."""

    def __init__(self, client: ToxiproxyClient, info: ProxyInfo) -> None:
        self.client = client
        self.info = info

    def refresh(self) -> Proxy:
        self.info = self.client.proxy(self.name).info
        return self

    def update(
        self, *, listen: str | None = None, upstream: str | None = None, enabled: bool | None = None
    ) -> Proxy:
        self.info = self.client.update_proxy(
            self.name, listen=listen, upstream=upstream, enabled=enabled
        ).info
        return self

    def enable(self) -> Proxy:
        return self.update(enabled=True)

    def disable(self, *, expires_in: int | None = None) -> Proxy:
        """Stop listening and close every open connection (until the server enables it again
        ``expires_in`` ms later, if it has the extension)."""
        self.info = self.client.update_proxy(self.name, enabled=False, expires_in=expires_in).info
        return self

    def delete(self) -> None:
        self.client.delete_proxy(self.name)

    def toxics(self) -> list[ToxicInfo]:
        return self.client.toxics(self.name)

    def add_toxic(
        self,
        type: str,
        *,
        stream: Stream | str = Stream.DOWNSTREAM,
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: Attribute,
    ) -> ToxicInfo:
        return self.client.add_toxic(
            self.name, type, stream=stream, toxicity=toxicity, name=name, attributes=attributes
        )

    def update_toxic(self, name: str, *, toxicity: float | None = None, **attributes: Attribute) -> ToxicInfo:
        return self.client.update_toxic(self.name, name, attributes=attributes or None, toxicity=toxicity)

    def remove_toxic(self, name: str) -> None:
        self.client.remove_toxic(self.name, name)

    @contextlib.contextmanager
    def toxic(
        self,
        type: str,
        *,
        stream: Stream | str = Stream.DOWNSTREAM,
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: Attribute,
    ) -> Iterator[ToxicInfo]:
        """Add a toxic for the duration of the block; it is removed however the block ends."""
        added = self.add_toxic(type, stream=stream, toxicity=toxicity, name=name, **attributes)
        try:
            yield added
        finally:
            with contextlib.suppress(ToxicNotFound):  # already gone (a reset): the goal is met
                self.remove_toxic(added.name)

    @contextlib.contextmanager
    def down(self) -> Iterator[Proxy]:
        """Disable the proxy for the duration of the block, and enable it again however the block ends."""
        self.disable()
        try:
            yield self
        finally:
            self.enable()


class AsyncToxiproxyClient:
    """Asynchronous client of the Toxiproxy HTTP API; the same calls as ToxiproxyClient."""

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = _resolve_url(url)
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, transport=transport, trust_env=False
        )

    async def _run(self, call: Call[T]) -> T:
        with _calls.transport_errors(self.url, call):
            response = await self._http.request(call.method, call.path, json=call.body)
        return _calls.check(call, response)

    async def version(self) -> str:
        return await self._run(_calls.version())

    async def proxies(self) -> dict[str, AsyncProxy]:
        return {name: AsyncProxy(self, info) for name, info in (await self._run(_calls.proxies())).items()}

    async def proxy(self, name: str) -> AsyncProxy:
        return AsyncProxy(self, await self._run(_calls.get_proxy(name)))

    async def create_proxy(
        self, name: str, upstream: str, *, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> AsyncProxy:
        config = ProxyConfig(name=name, upstream=upstream, listen=listen, enabled=enabled)
        return AsyncProxy(self, await self._run(_calls.create_proxy(config)))

    async def update_proxy(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
        expires_in: int | None = None,
    ) -> AsyncProxy:
        update = ProxyUpdate(listen=listen, upstream=upstream, enabled=enabled, expires_in=expires_in)
        return AsyncProxy(self, await self._run(_calls.update_proxy(name, update)))

    async def delete_proxy(self, name: str) -> None:
        await self._run(_calls.delete_proxy(name))

    async def populate(self, configs: Iterable[ProxyConfig]) -> list[AsyncProxy]:
        return [AsyncProxy(self, info) for info in await self._run(_calls.populate(configs))]

    async def reset(self) -> None:
        await self._run(_calls.reset())

    async def toxics(self, proxy: str) -> list[ToxicInfo]:
        return await self._run(_calls.toxics(proxy))

    async def get_toxic(self, proxy: str, name: str) -> ToxicInfo:
        return await self._run(_calls.get_toxic(proxy, name))

    async def add_toxic(
        self,
        proxy: str,
        type: str,
        *,
        stream: Stream | str = Stream.DOWNSTREAM,
        toxicity: float = 1.0,
        name: str | None = None,
        attributes: Mapping[str, Attribute] | None = None,
        expires_in: int | None = None,
    ) -> ToxicInfo:
        spec = _spec(type, stream, toxicity, name, attributes, expires_in)
        return await self._run(_calls.add_toxic(proxy, spec))

    async def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, Attribute] | None = None,
        toxicity: float | None = None,
        expires_in: int | None = None,
    ) -> ToxicInfo:
        update = ToxicUpdate(
            attributes=dict(attributes) if attributes is not None else None,
            toxicity=toxicity,
            expires_in=expires_in,
        )
        return await self._run(_calls.update_toxic(proxy, name, update))

    async def remove_toxic(self, proxy: str, name: str) -> None:
        await self._run(_calls.remove_toxic(proxy, name))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncToxiproxyClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AsyncProxy(_ProxyFacts):
    """The async counterpart of Proxy."""

    def __init__(self, client: AsyncToxiproxyClient, info: ProxyInfo) -> None:
        self.client = client
        self.info = info

    async def refresh(self) -> AsyncProxy:
        self.info = (await self.client.proxy(self.name)).info
        return self

    async def update(
        self, *, listen: str | None = None, upstream: str | None = None, enabled: bool | None = None
    ) -> AsyncProxy:
        updated = await self.client.update_proxy(self.name, listen=listen, upstream=upstream, enabled=enabled)
        self.info = updated.info
        return self

    async def enable(self) -> AsyncProxy:
        return await self.update(enabled=True)

    async def disable(self, *, expires_in: int | None = None) -> AsyncProxy:
        self.info = (await self.client.update_proxy(self.name, enabled=False, expires_in=expires_in)).info
        return self

    async def delete(self) -> None:
        await self.client.delete_proxy(self.name)

    async def toxics(self) -> list[ToxicInfo]:
        return await self.client.toxics(self.name)

    async def add_toxic(
        self,
        type: str,
        *,
        stream: Stream | str = Stream.DOWNSTREAM,
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: Attribute,
    ) -> ToxicInfo:
        return await self.client.add_toxic(
            self.name, type, stream=stream, toxicity=toxicity, name=name, attributes=attributes
        )

    async def update_toxic(
        self, name: str, *, toxicity: float | None = None, **attributes: Attribute
    ) -> ToxicInfo:
        return await self.client.update_toxic(
            self.name, name, attributes=attributes or None, toxicity=toxicity
        )

    async def remove_toxic(self, name: str) -> None:
        await self.client.remove_toxic(self.name, name)

    @contextlib.asynccontextmanager
    async def toxic(
        self,
        type: str,
        *,
        stream: Stream | str = Stream.DOWNSTREAM,
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: Attribute,
    ) -> AsyncIterator[ToxicInfo]:
        """Add a toxic for the duration of the block; it is removed however the block ends."""
        added = await self.add_toxic(type, stream=stream, toxicity=toxicity, name=name, **attributes)
        try:
            yield added
        finally:
            with contextlib.suppress(ToxicNotFound):
                await self.remove_toxic(added.name)

    @contextlib.asynccontextmanager
    async def down(self) -> AsyncIterator[AsyncProxy]:
        """Disable the proxy for the duration of the block, and enable it again however the block ends."""
        await self.disable()
        try:
            yield self
        finally:
            await self.enable()
