"""Bulkhead: bounded concurrency for async calls, so one slow dependency cannot take every task and socket.

Waiters are served first come, first served; a freed slot is handed straight to the oldest waiter, so a
waiter gets in as soon as there is room, and cancellation at any point never leaks a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from harness.errors import BulkheadFullError


class Bulkhead:
    """Bounded concurrency for async calls; a call that finds no room within max_wait is rejected with
    BulkheadFullError."""

    def __init__(self, max_concurrent: int, *, max_wait: float = 0.0, name: str = "") -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0 seconds (math.inf waits forever), got {max_wait}")
        self.name = name
        self.max_wait = max_wait
        self._limit = max_concurrent
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Slots taken now."""
        return self._in_flight

    @property
    def limit(self) -> int:
        """Slots in total."""
        return self._limit

    @property
    def waiting(self) -> int:
        """Calls queued for a slot."""
        return len(self._waiters)

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Hold one slot for the body of `async with bulkhead.slot(): ...`."""
        return self._slot()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self._in_flight < self._limit and not self._waiters:
            self._in_flight += 1
            return
        if self.max_wait == 0:
            raise self._full()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(None if math.isinf(self.max_wait) else self.max_wait):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot was handed over just as the wait ran out: take it
            self._forget(waiter)
            raise self._full() from None
        except BaseException:
            # Cancelled: if the slot was already handed over, pass it on rather than lose it.
            if waiter.done() and not waiter.cancelled():
                self._release()
            else:
                self._forget(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; in_flight stays the same
                return
        self._in_flight -= 1

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        waiter.cancel()
        with contextlib.suppress(ValueError):  # already taken off the queue
            self._waiters.remove(waiter)

    def _full(self) -> BulkheadFullError:
        label = f"bulkhead {self.name!r}" if self.name else "bulkhead"
        waited = f" within {self.max_wait}s" if self.max_wait else ""
        return BulkheadFullError(
            f"{label} is full: {self._in_flight} of {self._limit} slots in use, no room{waited}",
            service=self.name,
            limit=self._limit,
        )
