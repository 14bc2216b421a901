"""The server's proxies and what the API does to them, HTTP-free: Toxiproxy's checks in its order, with its
messages, raised as ApiError; request bodies are decoded with Go's rules, in slices of the loop's time,
then held to the limits of _limits, which only this server has. One extension: ``expires_in`` (ms) on a
toxic, or on a disabled proxy, ends that fault by itself when the time is up (a timer on the loop), so a
fault held for a while ends on time even when whoever set it is gone."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any

from harness.faults._addresses import AddressError, remote_address_refusal, resolve_tcp
from harness.faults._decoding import BodyDecoder
from harness.faults._godecode import STEP_ITEMS
from harness.faults._gojson import GoField, GoJSONError, GoStruct, Kind
from harness.faults._http_toxics import HTTP_TOXICS
from harness.faults._limits import MAX_DELAY_MS, Bound, name_refusal, toxicity_refusal
from harness.faults._link import Direction, ToxicEntry
from harness.faults._proxy import CounterFactory, Expiry, Proxy
from harness.faults._toxics import TOXICS, Toxic

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An API failure: the message and status code of Toxiproxy's ``{"error":..,"status":..}`` body."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class PopulateError(ApiError):
    """A failed ``/populate``, with the proxies it had created before failing (None before any)."""

    def __init__(self, message: str, status: int, proxies: list[Proxy] | None) -> None:
        super().__init__(message, status)
        self.proxies = proxies


_EMPTY_STRUCT = GoStruct("Logger", "zerolog.Logger")
_PROXY_FIELDS = (
    GoField("name", Kind.STRING, "string"),
    GoField("listen", Kind.STRING, "string"),
    GoField("upstream", Kind.STRING, "string"),
    GoField("enabled", Kind.BOOL, "bool"),
    GoField("Logger", Kind.STRUCT, "zerolog.Logger", _EMPTY_STRUCT),  # exported by accident upstream
)
# The extension's key, in the bodies of proxy and toxic creates and updates (a real Toxiproxy ignores it). The
# type strings stay Toxiproxy's, so every decode message of the real server is unchanged.
EXPIRES_IN = GoField("expires_in", Kind.INT, "int64")
EXPIRY = Bound(0, 168 * MAX_DELAY_MS, "ms")  # up to one week; 0: no expiry
PROXY = GoStruct("Proxy", "toxiproxy.Proxy", (*_PROXY_FIELDS, EXPIRES_IN))
POPULATE_ENTRY = GoStruct("", 'struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }', _PROXY_FIELDS)
POPULATE_SLICE = f"[]{POPULATE_ENTRY.type_string}"
TOXIC_WRAPPER = GoStruct(
    "ToxicWrapper",
    "toxics.ToxicWrapper",
    (
        GoField("attributes", Kind.STRUCT, "toxics.NoopToxic", GoStruct("NoopToxic", "toxics.NoopToxic")),
        GoField("name", Kind.STRING, "string"),
        GoField("type", Kind.STRING, "string"),
        GoField("stream", Kind.STRING, "string"),
        GoField("toxicity", Kind.FLOAT32, "float32"),
        EXPIRES_IN,
    ),
)
KINDS: dict[str, type[Toxic]] = {**TOXICS, **HTTP_TOXICS}  # Toxiproxy's seven and the HTTP extensions
LOOPBACK_ANY_PORT = "127.0.0.1:0"  # an empty listen, unless remote addresses are allowed
_ATTRIBUTES_TAG = 'Attributes interface {} "json:\\"attributes\\""'


def _attributes_layout(kind: type[Toxic], *, with_toxicity: bool) -> GoStruct:
    layout = kind.layout()
    attributes = GoField("attributes", Kind.STRUCT, layout.type_string, layout)
    if not with_toxicity:
        return GoStruct("", f"struct {{ {_ATTRIBUTES_TAG} }}", (attributes,))
    toxicity = GoField("toxicity", Kind.FLOAT32, "float32")
    return GoStruct(
        "",
        f'struct {{ {_ATTRIBUTES_TAG}; Toxicity float32 "json:\\"toxicity\\"" }}',
        (attributes, toxicity, EXPIRES_IN),
    )


def _bad_body(exc: GoJSONError) -> ApiError:
    return ApiError(f"bad request body: {exc}", 400)


def _check_values(toxic: Toxic, toxicity: float) -> None:
    """Refuse (400, naming the attribute) a toxicity or attribute that is meaningless or unbounded."""
    refusal = toxicity_refusal(toxicity) or toxic.refusal()
    if refusal:
        raise ApiError(refusal, 400)


async def _pace(count: int) -> None:
    """Give the loop a turn every STEP_ITEMS entries, so a populate of thousands never holds it long."""
    if count % STEP_ITEMS == 0:
        await asyncio.sleep(0)


def _expires_in(fields: dict[str, Any]) -> int | None:
    """The body's ``expires_in`` (ms; 0: none), None when absent; a 400 naming it when out of range."""
    value: int | None = fields.get("expires_in")
    refusal = EXPIRY.refusal("expires_in", value) if value is not None else None
    if refusal:
        raise ApiError(refusal, 400)
    return value


_ENABLED_EXPIRY = 'expires_in: only a disabled proxy expires (it is enabled again then); send "enabled":false'


def parse_direction(stream: str) -> Direction | None:
    return {"upstream": Direction.UPSTREAM, "downstream": Direction.DOWNSTREAM}.get(stream.lower())


class ProxyCollection:
    """Every proxy of one server, by name in creation order; mutations are serialised by one lock."""

    def __init__(
        self,
        *,
        rng: random.Random,
        counters: CounterFactory,
        allow_remote: bool,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.proxies: dict[str, Proxy] = {}
        self._rng = rng
        self._counters = counters
        self._allow_remote = allow_remote
        self._loop = loop
        self._decoder = BodyDecoder()
        self._lock = asyncio.Lock()
        self._endings: set[asyncio.Task[None]] = set()  # faults being ended by their expiry

    def _expiry(self, milliseconds: int, end: Callable[[], Coroutine[Any, Any, None]]) -> Expiry:
        """A timer that runs ``end`` in ``milliseconds``."""
        at = self._loop.time() + milliseconds / 1000
        return Expiry(at, self._loop.call_at(at, self._spawn, end))

    def _spawn(self, end: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = self._loop.create_task(end())
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    def _expire_toxic(self, proxy: Proxy, entry: ToxicEntry, milliseconds: int) -> None:
        """Remove ``entry`` in ``milliseconds`` (0: never), unless it ends otherwise first."""
        if not milliseconds:
            proxy.expire_toxic(entry.name, None)
            return

        expiry: Expiry | None = None

        async def end() -> None:
            async with self._lock:
                if self.proxies.get(proxy.name) is not proxy or proxy.find_toxic(entry.name) is not entry:
                    return  # removed (or replaced) meanwhile
                if proxy.toxic_expiries.get(entry.name) is not expiry:
                    return  # its expiry was changed or cleared while this waited for the lock
                await proxy.remove_toxic(entry)
            logger.info("proxy %s: toxic %s expired and was removed", proxy.name, entry.name)

        expiry = self._expiry(milliseconds, end)
        proxy.expire_toxic(entry.name, expiry)

    def _expire_disabled(self, proxy: Proxy, milliseconds: int) -> None:
        """Enable the disabled ``proxy`` in ``milliseconds`` (0: never), unless it is enabled first."""
        if not milliseconds:
            proxy.expire_disabled(None)
            return

        expiry: Expiry | None = None

        async def end() -> None:
            async with self._lock:
                if self.proxies.get(proxy.name) is not proxy or proxy.enabled:
                    return  # deleted, replaced or enabled meanwhile
                if proxy.enable_expiry is not expiry:
                    return  # its expiry was changed or cleared while this waited for the lock
                try:
                    await proxy.start()
                except AddressError as exc:
                    proxy.expire_disabled(None)
                    logger.warning("proxy %s: could not be enabled when its expiry came: %s", proxy.name, exc)
                    return
            logger.info("proxy %s: disabled state expired; enabled again", proxy.name)

        expiry = self._expiry(milliseconds, end)
        proxy.expire_disabled(expiry)

    def _new_proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        return Proxy(name, listen, upstream, rng=self._rng, counters=self._counters, loop=self._loop)

    def _listen(self, listen: str) -> str:
        """An empty listen: every interface in Toxiproxy, a random loopback port under the loopback policy."""
        return listen or ("" if self._allow_remote else LOOPBACK_ANY_PORT)

    async def _decode(self, body: bytes, layout: GoStruct) -> dict[str, Any]:
        try:
            return await self._decoder.decode(body, layout)
        except GoJSONError as exc:
            raise _bad_body(exc) from None

    def _refusal(self, listen: str, upstream: str) -> str | None:
        if self._allow_remote:
            return None
        return remote_address_refusal(listen, "listen") or remote_address_refusal(upstream, "upstream")

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError("proxy not found", 404)
        return proxy

    @staticmethod
    async def _differs(proxy: Proxy, listen: str, upstream: str) -> bool:
        """Toxiproxy's ``Differs``: the resolved new listen or the upstream differ from the current ones."""
        resolved = str(await resolve_tcp(listen))
        return proxy.listen != resolved or proxy.upstream != upstream

    async def create(self, body: bytes) -> Proxy:
        fields = await self._decode(body, PROXY)
        name, upstream = fields.get("name", ""), fields.get("upstream", "")
        if not name:
            raise ApiError("missing required field: name", 400)
        if not upstream:
            raise ApiError("missing required field: upstream", 400)
        refusal = name_refusal(name)
        if refusal:
            raise ApiError(refusal, 400)
        async with self._lock:
            if name in self.proxies:
                raise ApiError("proxy already exists", 409)
            listen = self._listen(fields.get("listen", ""))
            refusal = self._refusal(listen, upstream)
            if refusal:
                raise ApiError(refusal, 400)
            enabled = fields.get("enabled", True)
            expires_in = _expires_in(fields)
            if expires_in and enabled:
                raise ApiError(_ENABLED_EXPIRY, 400)
            proxy = self._new_proxy(name, listen, upstream)
            if enabled:
                await self._start(proxy)
            elif expires_in:
                self._expire_disabled(proxy, expires_in)
            self.proxies[name] = proxy
            return proxy

    @staticmethod
    async def _start(proxy: Proxy) -> None:
        try:
            await proxy.start()
        except AddressError as exc:
            raise ApiError(str(exc), 500) from None

    async def update(self, name: str, body: bytes) -> Proxy:
        async with self._lock:
            proxy = self.get(name)
            fields = await self._decode(body, PROXY)
            listen = self._listen(fields["listen"]) if "listen" in fields else proxy.listen
            upstream = fields.get("upstream", proxy.upstream)
            enabled = fields.get("enabled", proxy.enabled)
            refusal = self._refusal(listen, upstream)
            if refusal:
                raise ApiError(refusal, 400)
            expires_in = _expires_in(fields)
            if expires_in and enabled:
                raise ApiError(_ENABLED_EXPIRY, 400)
            try:
                differs = await self._differs(proxy, listen, upstream)
            except AddressError as exc:
                raise ApiError(str(exc), 500) from None
            if differs:
                proxy.stop()
                proxy.listen, proxy.upstream = listen, upstream
            if enabled and not proxy.enabled:
                await self._start(proxy)  # on failure the proxy stays disabled, with the new listen value
            elif not enabled:
                proxy.stop()
                if expires_in is not None:  # omitted: an expiry the proxy has is kept
                    self._expire_disabled(proxy, expires_in)
            return proxy

    async def delete(self, name: str) -> None:
        async with self._lock:
            proxy = self.get(name)
            proxy.stop()
            proxy.cancel_expiries()
            del self.proxies[name]

    async def populate(self, body: bytes) -> list[Proxy]:
        try:
            entries = await self._decoder.decode_list(body, POPULATE_ENTRY, POPULATE_SLICE)
        except GoJSONError as exc:
            raise PopulateError(f"bad request body: {exc}", 400, None) from None
        for number, entry in enumerate(entries, start=1):
            await _pace(number)
            for required in ("name", "upstream"):
                if not entry.get(required):
                    raise PopulateError(f"missing required field: {required} at proxy {number}", 400, None)
        for number, entry in enumerate(entries, start=1):
            await _pace(number)
            refusal = name_refusal(entry["name"]) or self._refusal(
                self._listen(entry.get("listen", "")), entry["upstream"]
            )
            if refusal:
                raise PopulateError(f"{refusal} (proxy {number})", 400, None)
        created: list[Proxy] = []
        async with self._lock:
            for number, entry in enumerate(entries, start=1):
                await _pace(number)
                name, listen, upstream = (
                    entry["name"],
                    self._listen(entry.get("listen", "")),
                    entry["upstream"],
                )
                existing = self.proxies.get(name)
                if existing is not None:
                    try:
                        differs = await self._differs(existing, listen, upstream)
                    except AddressError as exc:
                        raise PopulateError(str(exc), 500, created or None) from None
                    if not differs:
                        created.append(existing)  # kept as it is: toxics and enabled state stay
                        continue
                    existing.stop()
                    existing.cancel_expiries()
                proxy = self._new_proxy(name, listen, upstream)
                if entry.get("enabled", True):
                    try:
                        await proxy.start()
                    except AddressError as exc:
                        raise PopulateError(str(exc), 500, created or None) from None
                self.proxies[name] = proxy
                created.append(proxy)
        return created

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic; stops at the first proxy that cannot listen."""
        async with self._lock:
            for proxy in list(self.proxies.values()):
                await self._start(proxy)
                await proxy.remove_all_toxics()

    def toxic(self, proxy: Proxy, name: str) -> ToxicEntry:
        entry = proxy.find_toxic(name)
        if entry is None:
            raise ApiError("toxic not found", 404)
        return entry

    async def add_toxic(self, proxy_name: str, body: bytes) -> ToxicEntry:
        async with self._lock:
            proxy = self.get(proxy_name)
            fields = await self._decode(body, TOXIC_WRAPPER)
            stream = fields.get("stream", "downstream")
            direction = parse_direction(stream)
            if direction is None:
                raise ApiError("stream was invalid, can be either upstream or downstream", 400)
            type_name = fields.get("type", "")
            name = fields.get("name") or f"{type_name}_{stream}"
            kind = KINDS.get(type_name)
            if kind is None:
                raise ApiError("invalid toxic type", 400)
            refusal = name_refusal(name)
            if refusal:
                raise ApiError(refusal, 400)
            if proxy.find_toxic(name) is not None:
                raise ApiError("toxic already exists", 409)
            layout = _attributes_layout(kind, with_toxicity=False)
            toxic = kind(**(await self._decode(body, layout)).get("attributes", {}))  # a second pass, as Go
            toxicity = fields.get("toxicity", 1.0)
            _check_values(toxic, toxicity)
            expires_in = _expires_in(fields)
            entry = ToxicEntry(name, type_name, stream, direction, toxicity, toxic)
            proxy.add_toxic(entry)
            if expires_in:
                self._expire_toxic(proxy, entry, expires_in)
            return entry

    async def update_toxic(self, proxy_name: str, toxic_name: str, body: bytes) -> ToxicEntry:
        async with self._lock:
            proxy = self.get(proxy_name)
            entry = self.toxic(proxy, toxic_name)
            layout = _attributes_layout(type(entry.toxic), with_toxicity=True)
            fields = await self._decode(body, layout)
            # Only attributes (merged) and toxicity change; type, name and stream in the body are ignored.
            toxic = dataclasses.replace(entry.toxic, **fields.get("attributes", {}))
            toxicity = fields.get("toxicity", entry.toxicity)
            _check_values(toxic, toxicity)
            expires_in = _expires_in(fields)
            entry.toxic, entry.toxicity = toxic, toxicity
            proxy.update_toxic(entry)
            if expires_in is not None:  # omitted: an expiry the toxic has is kept; 0 clears it
                self._expire_toxic(proxy, entry, expires_in)
            return entry

    async def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        async with self._lock:
            proxy = self.get(proxy_name)
            await proxy.remove_toxic(self.toxic(proxy, toxic_name))

    def close(self) -> None:
        """Stop every proxy (listeners and open connections) and every expiry's timer."""
        for proxy in self.proxies.values():
            proxy.stop()
            proxy.cancel_expiries()
        for task in self._endings:
            task.cancel()
