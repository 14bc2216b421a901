"""Where the fault proxy's HTTP layer (``_exchange``) writes: each direction's outlet and its output in
order (what an http_latency holds comes out on time, behind what came before), the clock it runs on, and
the client's socket as the layer bounds what it is owed. Protocols, so tests drive the layer with fakes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from harness.faults._link import Link


class Outlet(Protocol):
    """Where one direction's bytes go on: its toxic stages, or its destination socket."""

    def forward(self, data: bytes) -> None: ...

    def forward_eof(self) -> None: ...

    def queued(self, delta: int) -> None:
        """Bytes held back (negative: released), so the source is paused while too many are held."""
        ...


class ClientFlow(Protocol):
    """The client's socket as the layer bounds it: what it has not taken yet, and reading it or not."""

    def backlog(self) -> int:
        """Bytes written to the client that its socket has not taken yet."""
        ...

    def hold(self, held: bool) -> None:
        """Stop reading the client (True), or read it again."""
        ...


class LinkFlow:
    """The ClientFlow of a proxied connection: the downstream link writes to the client, the upstream link
    reads it."""

    def __init__(self, to_server: Link, to_client: Link) -> None:
        self._to_server = to_server
        self._to_client = to_client

    def backlog(self) -> int:
        return self._to_client.backlog()

    def hold(self, held: bool) -> None:
        self._to_server.hold_source(held)


class Handle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """The event loop's clock and timers (``asyncio.AbstractEventLoop`` is one)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Handle: ...


class Held:
    """One direction's output: bytes go on at once, unless an http_latency holds them until a due time;
    what comes later waits behind (every byte in order). ``None`` stands for the close. What one event
    loop turn lets through is written at ``flush``, as one write (a head and its body in one segment)."""

    def __init__(self, outlet: Outlet, scheduler: Scheduler) -> None:
        self._outlet = outlet
        self._scheduler = scheduler
        self._items: deque[tuple[float, bytes | None]] = deque()
        self._batch: list[bytes] = []
        self._batched = 0  # bytes in _batch
        self._timer: Handle | None = None
        self._last_due = 0.0
        self._pending = 0  # bytes in _items
        self.ended = False

    @property
    def empty(self) -> bool:
        return not self._items

    @property
    def pending(self) -> int:
        """Bytes not written yet: held back, or waiting for the end of the event."""
        return self._pending + self._batched

    def push(self, data: bytes | None, delay: float = 0.0) -> None:
        """Send ``data`` (None: the close) ``delay`` seconds from now, and never before what came earlier."""
        if self.ended:
            return
        now = self._scheduler.time()
        due = max(now + delay, self._last_due)
        self._last_due = due
        if not self._items and due <= now:
            self._send(data)
            return
        self._items.append((due, data))
        if data:
            self._pending += len(data)
            self._outlet.queued(len(data))
        if self._timer is None:
            self._timer = self._scheduler.call_at(self._items[0][0], self._release)

    def _send(self, data: bytes | None) -> None:
        if data is None:
            self.ended = True
            self.flush()
            self._outlet.forward_eof()
        elif data:
            self._batch.append(data)
            self._batched += len(data)

    def flush(self) -> None:
        if self._batch:
            data = b"".join(self._batch) if len(self._batch) > 1 else self._batch[0]
            self._batch.clear()
            self._batched = 0
            self._outlet.forward(data)

    def _release(self) -> None:
        self._timer = None
        now = self._scheduler.time()
        while self._items and self._items[0][0] <= now:
            _, data = self._items.popleft()
            if data:
                self._pending -= len(data)
                self._outlet.queued(-len(data))
            self._send(data)
        self.flush()
        if self._items:
            self._timer = self._scheduler.call_at(self._items[0][0], self._release)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
