"""A proxy: a listener that dials the upstream for each accepted client and joins the two sockets with two
links; closing follows Toxiproxy (no half close; a reset is SO_LINGER 0 on both sockets). A toxic, and the
disabled state, may carry an expiry (an extension): the timer that ends it is held here, cancelled whenever
the fault ends otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from harness.faults._addresses import AddressError, bind_listener, split_host_port
from harness.faults._exchange import HttpExchange
from harness.faults._link import ByteCounter, Direction, Link, LinkEnds, ToxicEntry

logger = logging.getLogger(__name__)

CounterFactory = Callable[[Direction, str, str, str], ByteCounter]

_DIALLING, _DESTINATION_FULL, _QUEUE_FULL = 1, 2, 4  # reasons a socket's reading is paused
_LINGER_ZERO = struct.pack("ii", 1, 0)


class _Side(asyncio.Protocol):
    """One socket of a proxied connection: feeds the link it is the source of."""

    out: Link  # the link reading from this socket, set by the connection right after construction

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self._paused = 0
        self.lost = False
        self.early: list[bytes] = []
        self.early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its interface.
        self.transport = cast(asyncio.Transport, transport)
        self._apply_pause()
        self.connection.side_made(self)

    def data_received(self, data: bytes) -> None:
        link = self.out
        write = link.fast_write
        if write is not None:
            # The fast path, inlined: no toxic on this link, straight to the destination transport.
            write(data)
            counter = link.counter
            counter.received += len(data)
            counter.sent += len(data)
        elif self.connection.started:
            link.feed(data)
        else:
            # uvloop starts reading right after connection_made even when paused there: hold the bytes
            # until the links have started, so they go through the toxics too.
            self.early.append(data)
            self._apply_pause()

    def eof_received(self) -> bool:
        if not self.connection.started:
            self.early_eof = True
        else:
            self.out.feed_eof()
        return True  # the link closes the socket when the EOF has gone through its toxics

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.connection.started:
            self.out.feed_eof()
        self.connection.side_lost()

    def release_early(self) -> None:
        """Feed what arrived before the links started, then read on."""
        for data in self.early:
            self.out.feed(data)
        self.early.clear()
        if self.early_eof or self.lost:
            self.out.feed_eof()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.set_paused(_DESTINATION_FULL, True)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.set_paused(_DESTINATION_FULL, False)

    def set_paused(self, reason: int, paused: bool) -> None:
        self._paused = self._paused | reason if paused else self._paused & ~reason
        self._apply_pause()

    def _apply_pause(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._paused and transport.is_reading():
            transport.pause_reading()
        elif not self._paused and not transport.is_reading():
            transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self, *, reset: bool = False) -> None:
        transport = self.transport
        if transport is None or self.lost:
            return
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        transport.abort()


class _Ends(LinkEnds):
    __slots__ = ("connection", "destination", "source")

    def __init__(self, connection: Connection, source: _Side, destination: _Side) -> None:
        self.connection = connection
        self.source = source
        self.destination = destination

    def write(self, data: bytes) -> None:
        """Write to the destination; bytes for a side already closed are dropped, as a socket would (a
        toxic removed while it held data for a connection that ended meanwhile)."""
        transport = self.destination.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def writer(self) -> Callable[[bytes], None] | None:
        transport = self.destination.transport
        return transport.write if transport is not None and not transport.is_closing() else None

    def close_destination(self) -> None:
        self.destination.close()

    def reset_connection(self) -> None:
        self.connection.abort(reset=True)

    def set_source_paused(self, paused: bool) -> None:
        self.source.set_paused(_QUEUE_FULL, paused)


class Connection:
    """A client socket, its upstream socket, and the upstream and downstream links between them."""

    def __init__(self, proxy: Proxy) -> None:
        loop = proxy.loop
        self.proxy = proxy
        self.client = _Side(self)
        self.client.set_paused(_DIALLING, True)  # nothing is read until the upstream answers
        self.server = _Side(self)
        self.client.peer, self.server.peer = self.server, self.client
        listen, upstream = proxy.listen, proxy.upstream
        self.upstream = Link(
            _Ends(self, self.client, self.server),
            Direction.UPSTREAM,
            proxy.counters(Direction.UPSTREAM, proxy.name, listen, upstream),
            proxy.rng,
            loop,
        )
        self.downstream = Link(
            _Ends(self, self.server, self.client),
            Direction.DOWNSTREAM,
            proxy.counters(Direction.DOWNSTREAM, proxy.name, listen, upstream),
            proxy.rng,
            loop,
        )
        self.client.out, self.server.out = self.upstream, self.downstream
        self._dial: asyncio.Task[None] | None = None
        self._lost = 0
        self.started = False
        self.http: HttpExchange | None = None  # the HTTP layer, while the proxy has HTTP toxics
        self.not_http = False  # the connection turned out not to be HTTP/1.x: it never gets the layer

    def link(self, direction: Direction) -> Link:
        return self.upstream if direction is Direction.UPSTREAM else self.downstream

    def side_made(self, side: _Side) -> None:
        if side is self.client:
            self.proxy.connections.add(self)
            self._dial = self.proxy.loop.create_task(self._connect_upstream())
        else:
            # Links start (and draw their toxicity) before the first byte goes through either of them.
            self.upstream.start(_stages(self.proxy.toxics[Direction.UPSTREAM]))
            self.downstream.start(_stages(self.proxy.toxics[Direction.DOWNSTREAM]))
            self.started = True
            self.http_changed(fresh=True)
            self.server.release_early()
            self.client.release_early()
            self.client.set_paused(_DIALLING, False)

    async def _connect_upstream(self) -> None:
        try:
            host, port = split_host_port(self.proxy.upstream)
            await self.proxy.loop.create_connection(lambda: self.server, host or "127.0.0.1", int(port))
        except (OSError, AddressError, ValueError) as exc:
            logger.info("proxy %s: upstream %s unreachable: %s", self.proxy.name, self.proxy.upstream, exc)
            self.client.close()
            return
        if self.client.lost:
            self.server.close()

    def http_changed(self, *, fresh: bool = False) -> None:
        """HTTP toxics were added to or removed from the proxy: start the HTTP layer (framing from the
        next request), or let the running one go once nothing is in flight."""
        if self.http is not None:
            self.http.rules_changed()
            return
        if self.not_http or not any(entry.toxic.per_request for entry in self.proxy.toxic_list()):
            return
        proxy = self.proxy
        self.http = HttpExchange(
            proxy.toxics,
            proxy.rng,
            proxy.loop,
            to_server=self.upstream,
            to_client=self.downstream,
            fresh=fresh,
            on_detach=self._http_detached,
        )
        self.upstream.set_tap(self.http.requests)
        self.downstream.set_tap(self.http.responses)

    def _http_detached(self, http: bool) -> None:
        self.http = None
        self.not_http = not http
        self.upstream.set_tap(None)
        self.downstream.set_tap(None)

    def side_lost(self) -> None:
        self._lost += 1
        if self._lost == 2 or (self._lost == 1 and self.server.transport is None):
            self._finish()

    def _finish(self) -> None:
        self.proxy.connections.discard(self)
        self.upstream.cancel()
        self.downstream.cancel()
        if self.http is not None:
            self.http.cancel()
        if self._dial is not None and not self._dial.done():
            self._dial.cancel()

    def abort(self, *, reset: bool = False) -> None:
        """Close both sockets now, dropping buffered data; ``reset`` sends a TCP RST to both peers."""
        self.client.abort(reset=reset)
        self.server.abort(reset=reset)
        self._finish()  # the sockets are gone: stop the toxics now rather than when the loop reports it


@dataclass(frozen=True)
class Expiry:
    """When a fault ends by itself, on the loop's clock, and the timer that ends it then."""

    at: float
    timer: asyncio.TimerHandle

    def left_ms(self, now: float) -> int:
        """Milliseconds left, rounded up (what the API shows as ``expires_in``)."""
        return max(0, math.ceil((self.at - now) * 1000))


def _stages(entries: list[ToxicEntry]) -> list[ToxicEntry]:
    """The toxics that run as stages of a link: all but the HTTP ones (the connection's HTTP layer)."""
    return [entry for entry in entries if not entry.toxic.per_request]


class Proxy:
    """A named proxy: its addresses, its toxics per direction, its listener and open connections."""

    def __init__(
        self,
        name: str,
        listen: str,
        upstream: str,
        *,
        rng: random.Random,
        counters: CounterFactory,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.rng = rng
        self.counters = counters
        self.loop = loop
        self.toxics: tuple[list[ToxicEntry], list[ToxicEntry]] = ([], [])
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self.toxic_expiries: dict[str, Expiry] = {}  # by toxic name: toxics removed when their time is up
        self.enable_expiry: Expiry | None = None  # while disabled: when the proxy is enabled again

    def expire_toxic(self, name: str, expiry: Expiry | None) -> None:
        """Give the toxic ``name`` this expiry (None: none), cancelling the timer of the one it had."""
        old = self.toxic_expiries.pop(name, None)
        if old is not None:
            old.timer.cancel()
        if expiry is not None:
            self.toxic_expiries[name] = expiry

    def expire_disabled(self, expiry: Expiry | None) -> None:
        """Give the disabled state this expiry (None: none), cancelling the timer of the one it had."""
        if self.enable_expiry is not None:
            self.enable_expiry.timer.cancel()
        self.enable_expiry = expiry

    def toxic_expires_in(self, name: str) -> int | None:
        """Milliseconds until the toxic ``name`` is removed by itself; None when it has no expiry."""
        expiry = self.toxic_expiries.get(name)
        return None if expiry is None else expiry.left_ms(self.loop.time())

    def enabled_in(self) -> int | None:
        """Milliseconds until the disabled proxy is enabled by itself; None when it has no expiry."""
        expiry = self.enable_expiry
        return None if expiry is None else expiry.left_ms(self.loop.time())

    def cancel_expiries(self) -> None:
        """Cancel every timer (the proxy is deleted or replaced)."""
        for name in list(self.toxic_expiries):
            self.expire_toxic(name, None)
        self.expire_disabled(None)

    async def start(self) -> None:
        """Listen on ``listen`` and accept clients; ``listen`` becomes the bound address (AddressError)."""
        if self.enabled:
            return
        sock, bound = await bind_listener(self.listen)
        self.listen = bound
        try:
            self._server = await self.loop.create_server(lambda: Connection(self).client, sock=sock)
        except OSError as exc:
            sock.close()
            raise AddressError(f"listen tcp {bound}: {exc}") from None
        self.enabled = True
        self.expire_disabled(None)  # enabled, by whoever: nothing left to end

    def stop(self) -> None:
        """Close the listener and every open connection."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self.connections):
            connection.abort()

    def toxic_list(self) -> list[ToxicEntry]:
        return [*self.toxics[Direction.UPSTREAM], *self.toxics[Direction.DOWNSTREAM]]

    def find_toxic(self, name: str) -> ToxicEntry | None:
        return next((entry for entry in self.toxic_list() if entry.name == name), None)

    def add_toxic(self, entry: ToxicEntry) -> None:
        self.toxics[entry.direction].append(entry)
        for connection in self._started_connections():
            if entry.toxic.per_request:
                connection.http_changed()
            else:
                connection.link(entry.direction).add_toxic(entry)

    def update_toxic(self, entry: ToxicEntry) -> None:
        if entry.toxic.per_request:
            return  # the HTTP layer reads the entry at every request
        for connection in self._started_connections():
            connection.link(entry.direction).update_toxic(entry)

    async def remove_toxic(self, entry: ToxicEntry) -> None:
        self.toxics[entry.direction].remove(entry)
        self.expire_toxic(entry.name, None)
        if entry.toxic.per_request:
            for connection in self._started_connections():
                connection.http_changed()
            return
        links = [connection.link(entry.direction) for connection in self._started_connections()]
        await asyncio.gather(*(link.remove_toxic(entry) for link in links))

    async def remove_all_toxics(self) -> None:
        for entry in self.toxic_list():
            await self.remove_toxic(entry)

    def _started_connections(self) -> list[Connection]:
        """Connections whose links run; the others pick up the current toxics when the upstream answers."""
        return [c for c in self.connections if c.server.transport is not None]
