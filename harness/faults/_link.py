"""One direction of one proxied connection: toxic stages between a source and a destination, which can be
added, restarted and removed while it is open without losing or reordering a byte; no stage, no overhead."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from harness.faults._toxics import Chunk, Signal, StubIO, Toxic, ToxicState, noop

logger = logging.getLogger(__name__)

# Queued bytes in a link's stages above which the source is paused, and below which it resumes.
HIGH_WATER = 1 << 20
LOW_WATER = 1 << 18


class Direction(IntEnum):
    """Upstream is client to server bytes, downstream server to client; toxics list upstream ones first."""

    UPSTREAM = 0
    DOWNSTREAM = 1


@dataclass
class ToxicEntry:
    """A toxic as the proxy holds it; links share the entry, so an update reaches every open connection."""

    name: str
    type: str
    stream: str  # as the client spelled it, echoed verbatim
    direction: Direction
    toxicity: float
    toxic: Toxic


class ByteCounter:
    """Bytes received from the source and sent to the destination, for the Prometheus metrics."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0


class Tap(Protocol):
    """What a link feeds instead of its stages while its connection has an HTTP layer (``_exchange``); the
    tap passes bytes on with ``Link.forward`` and ``Link.forward_eof``."""

    def feed(self, data: bytes) -> None: ...

    def feed_eof(self) -> None: ...


class LinkEnds:
    """What a link needs from its connection: the destination, and pausing the source."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def writer(self) -> Callable[[bytes], None] | None:
        """The destination's write function, for the fast path (None while it is not connected)."""
        raise NotImplementedError

    def close_destination(self) -> None:
        raise NotImplementedError

    def reset_connection(self) -> None:
        raise NotImplementedError

    def set_source_paused(self, paused: bool) -> None:
        raise NotImplementedError

    def backlog(self) -> int:
        """Bytes written to the destination that its socket has not taken yet (0 while it is not connected).
        By default read from the transport whose ``write`` the ``writer`` is (asyncio's and uvloop's have
        ``get_write_buffer_size``); an implementation that holds the transport may ask it directly."""
        transport = getattr(self.writer(), "__self__", None)
        size = getattr(transport, "get_write_buffer_size", None)
        return int(size()) if callable(size) else 0


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Channel:
    """An unbounded FIFO between stages; the link counts its bytes to pause the source when they pile up."""

    __slots__ = ("_items", "_link", "discarding", "waiter")

    def __init__(self, link: Link) -> None:
        self._items: deque[Chunk | Signal] = deque()
        self._link = link
        self.waiter: asyncio.Future[None] | None = None
        self.discarding = False

    def put(self, item: Chunk | Signal) -> None:
        if self.discarding:
            return
        self._items.append(item)
        if isinstance(item, Chunk):
            self._link.queued(len(item.data))
        if self.waiter is not None:
            _wake(self.waiter)

    def put_front(self, item: Chunk | Signal) -> None:
        self._items.appendleft(item)
        if isinstance(item, Chunk):
            self._link.queued(len(item.data))

    def pop(self) -> Chunk | Signal | None:
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, Chunk):
            self._link.queued(-len(item.data))
        return item

    def take_all(self) -> list[Chunk | Signal]:
        items = []
        while (item := self.pop()) is not None:
            items.append(item)
        return items

    def discard(self) -> None:
        self.take_all()
        self.discarding = True


class Sink:
    """The end of the chain: writes to the destination socket, and closes it on EOF."""

    __slots__ = ("_counter", "_ends", "closed")

    def __init__(self, ends: LinkEnds, counter: ByteCounter) -> None:
        self._ends = ends
        self._counter = counter
        self.closed = False

    def put(self, item: Chunk | Signal) -> None:
        if self.closed:
            return
        if isinstance(item, Chunk):
            self._ends.write(item.data)
            self._counter.sent += len(item.data)
        elif item is Signal.EOF:
            self.closed = True
            self._ends.close_destination()


Output = Channel | Sink


class Stub(StubIO):
    """A running toxic stage; draws its toxicity each time it (re)starts, as Toxiproxy's ToxicStub does."""

    def __init__(self, link: Link, entry: ToxicEntry, output: Output) -> None:
        self.link = link
        self.entry = entry
        self.input = Channel(link)
        self.output: Output = output
        self.rng: random.Random = link.rng
        self.state = ToxicState()
        self.interrupted = False
        self.removing = False
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._loop = link.loop

    def start(self) -> None:
        self.task = self._loop.create_task(self._run(), name=f"toxic {self.entry.name}")

    async def _run(self) -> None:
        try:
            while not self.closed:
                self.interrupted = False
                entry = self.entry
                if self.rng.random() < entry.toxicity:
                    await entry.toxic.pipe(self)
                else:
                    await noop(self)
                if self.removing:
                    return
                if not self.interrupted and not self.closed:
                    raise RuntimeError(f"toxic {entry.name} returned without closing")
        except Exception:
            logger.exception("toxic %s failed; closing its link", self.entry.name)
            self.close()

    def interrupt(self) -> None:
        self.interrupted = True
        if self._wake is not None:
            _wake(self._wake)

    def now(self) -> float:
        return self._loop.time()

    async def _wait(self, deadline: float | None, channel: Channel | None = None) -> None:
        """Wait for the deadline, an interrupt, or (with ``channel``) an item on it."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._wake = future
        if channel is not None:
            channel.waiter = future
        handle = self._loop.call_at(deadline, _wake, future) if deadline is not None else None
        try:
            await future
        finally:
            self._wake = None
            if channel is not None:
                channel.waiter = None
            if handle is not None:
                handle.cancel()

    async def recv(self, until: float | None = None) -> Chunk | Signal:
        while True:
            if self.interrupted:
                return Signal.INTERRUPTED
            item = self.input.pop()
            if item is not None:
                return item
            if until is not None and self._loop.time() >= until:
                return Signal.TIMEOUT
            await self._wait(until, self.input)

    async def sleep_until(self, deadline: float) -> bool:
        if self.interrupted:
            return False
        if deadline > self._loop.time():
            await self._wait(deadline)
        return not self.interrupted

    def unrecv(self, item: Chunk | Signal) -> None:
        self.input.put_front(item)

    def send(self, chunk: Chunk) -> None:
        if not self.closed:
            self.output.put(chunk)

    def close(self, *, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.input.discard()
        if reset:
            self.link.ends.reset_connection()
        else:
            self.output.put(Signal.EOF)


class Link:
    """Source -> [toxic stages] -> destination for one direction of one connection."""

    def __init__(
        self,
        ends: LinkEnds,
        direction: Direction,
        counter: ByteCounter,
        rng: random.Random,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.ends = ends
        self.direction = direction
        self.counter = counter
        self.rng = rng
        self.loop = loop
        self.sink = Sink(ends, counter)
        self.stubs: list[Stub] = []
        self._head: Channel | None = None  # None: no stage, bytes go straight to the sink
        # Set while the link has no stage and its destination is open: the source's protocol then writes
        # to it directly, the cheapest path a byte can take through the proxy.
        self.fast_write: Callable[[bytes], None] | None = None
        self.tap: Tap | None = None
        self._queued = 0
        self._queue_paused = False
        self._held = False  # the HTTP layer holds the source (its answers to it are not being read)
        self._eof = False

    def start(self, entries: list[ToxicEntry]) -> None:
        for entry in entries:
            self.add_toxic(entry)
        self._update_fast_path()

    def _update_fast_path(self) -> None:
        fast = self._head is None and self.tap is None and not self.sink.closed and not self._eof
        self.fast_write = self.ends.writer() if fast else None

    def set_tap(self, tap: Tap | None) -> None:
        """Feed ``tap`` instead of the stages (None: feed the stages again, and take the fast path if
        there is no stage)."""
        self.tap = tap
        self._update_fast_path()

    # -- data from the source ------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.counter.received += len(data)
        if self.tap is not None:
            self.tap.feed(data)
        else:
            self.forward(data)

    def forward(self, data: bytes) -> None:
        """Pass bytes on to the stages (or straight to the destination when there is none)."""
        head = self._head
        if head is None:
            if not self.sink.closed:
                self.ends.write(data)
                self.counter.sent += len(data)
        else:
            head.put(Chunk(data, self.loop.time()))

    def feed_eof(self) -> None:
        if self._eof:
            return
        self._eof = True
        self.fast_write = None
        if self.tap is not None:
            self.tap.feed_eof()
        else:
            self.forward_eof()

    def forward_eof(self) -> None:
        """Pass the close on, after every byte passed on before it."""
        if self._head is None:
            self.sink.put(Signal.EOF)
        else:
            self._head.put(Signal.EOF)

    def queued(self, delta: int) -> None:
        self._queued += delta
        if not self._queue_paused and self._queued > HIGH_WATER:
            self._queue_paused = True
            self._apply_pause()
        elif self._queue_paused and self._queued <= LOW_WATER:
            self._queue_paused = False
            self._apply_pause()

    def hold_source(self, held: bool) -> None:
        """Stop reading the source (or read it again), whatever the stages hold: the HTTP layer's answers
        to a client that does not read them are bounded this way."""
        if held != self._held:
            self._held = held
            self._apply_pause()

    def _apply_pause(self) -> None:
        self.ends.set_source_paused(self._queue_paused or self._held)

    def backlog(self) -> int:
        """Bytes written to the destination that its socket has not taken yet."""
        return self.ends.backlog()

    # -- toxics added, updated, removed while the connection is open --------------------------------------
    def add_toxic(self, entry: ToxicEntry) -> None:
        self.fast_write = None
        stub = Stub(self, entry, self.sink)
        if self.stubs:
            self.stubs[-1].output = stub.input
        else:
            self._head = stub.input
        self.stubs.append(stub)
        stub.start()

    def _find(self, entry: ToxicEntry) -> Stub | None:
        return next((stub for stub in self.stubs if stub.entry is entry), None)

    def update_toxic(self, entry: ToxicEntry) -> None:
        stub = self._find(entry)
        if stub is not None:
            stub.interrupt()  # it returns, forwarding what it holds, and restarts with the new attributes

    async def remove_toxic(self, entry: ToxicEntry) -> None:
        stub = self._find(entry)
        if stub is None:
            return
        stub.removing = True
        stub.interrupt()
        if stub.task is not None and not stub.task.done():
            await asyncio.wait([stub.task])
        # From here on nothing awaits, so no byte can slip past while the chain is rewired.
        if entry.toxic.closes_on_removal:
            stub.close()
        if not stub.closed:
            for item in stub.input.take_all():
                stub.output.put(item)
        index = self.stubs.index(stub)
        if index == 0:
            self._head = stub.output if isinstance(stub.output, Channel) else None
        else:
            self.stubs[index - 1].output = stub.output
        self.stubs.remove(stub)
        self._update_fast_path()

    def cancel(self) -> None:
        """The connection is gone: stop every stage."""
        for stub in self.stubs:
            if stub.task is not None:
                stub.task.cancel()
            if stub._wake is not None:
                _wake(stub._wake)
