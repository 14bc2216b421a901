"""Bulkhead admission, waiting and cancellation (events, never sleeps); deadlines on a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable

import pytest

from harness.errors import BulkheadFullError
from harness.resilience import Bulkhead, Deadline, ManualClock, SystemClock


async def hold(bulkhead: Bulkhead, entered: asyncio.Event, release: asyncio.Event) -> None:
    async with bulkhead.slot():
        entered.set()
        await release.wait()


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop (no sleeping) until the tasks under test have reached the awaited state."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


@pytest.mark.behaviour("client.bulkhead")
class TestAdmission:
    async def test_rejects_one_over_the_limit_at_once(self) -> None:
        """With max_wait 0 the (limit+1)th concurrent call is rejected immediately, carrying the limit."""
        bulkhead = Bulkhead(2, name="users")
        release = asyncio.Event()
        entered = [asyncio.Event(), asyncio.Event()]
        holders = [asyncio.create_task(hold(bulkhead, e, release)) for e in entered]
        await until(lambda: all(e.is_set() for e in entered))
        assert bulkhead.in_flight == 2
        with pytest.raises(BulkheadFullError) as caught:
            async with bulkhead.slot():
                pytest.fail("entered a full bulkhead")
        assert caught.value.limit == 2
        assert caught.value.service == "users"
        assert "2 of 2" in str(caught.value)
        release.set()
        await asyncio.gather(*holders)
        assert bulkhead.in_flight == 0

    async def test_slots_are_reused(self) -> None:
        """Sequential calls never exhaust the bulkhead."""
        bulkhead = Bulkhead(1)
        for _ in range(10):
            async with bulkhead.slot():
                assert bulkhead.in_flight == 1
        assert (bulkhead.in_flight, bulkhead.limit) == (0, 1)

    async def test_an_error_in_the_body_frees_the_slot(self) -> None:
        """An exception inside the block propagates and the slot is returned."""
        bulkhead = Bulkhead(1)
        with pytest.raises(RuntimeError):
            async with bulkhead.slot():
                raise RuntimeError("boom")
        assert bulkhead.in_flight == 0

    @pytest.mark.parametrize(
        ("limit", "max_wait"),
        [
            pytest.param(0, 0.0, id="no-slots"),
            pytest.param(1, -1.0, id="negative-wait"),
            pytest.param(1, float("nan"), id="nan-wait"),
        ],
    )
    def test_rejects_bad_settings(self, limit: int, max_wait: float) -> None:
        """A bulkhead needs at least one slot and a wait of zero or more seconds."""
        with pytest.raises(ValueError, match=r"max_concurrent|max_wait"):
            Bulkhead(limit, max_wait=max_wait)


@pytest.mark.behaviour("client.bulkhead")
class TestWaiting:
    async def test_waiter_gets_in_as_soon_as_a_slot_frees(self) -> None:
        """With max_wait > 0 a call queues and enters when the holder leaves, not after max_wait."""
        bulkhead = Bulkhead(1, max_wait=30.0)
        release, holder_in, waiter_in = asyncio.Event(), asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold(bulkhead, holder_in, release))
        await until(holder_in.is_set)
        waiter = asyncio.create_task(hold(bulkhead, waiter_in, asyncio.Event()))
        await until(lambda: bulkhead.waiting == 1)
        assert not waiter_in.is_set()
        started = asyncio.get_running_loop().time()
        release.set()
        await asyncio.wait_for(waiter_in.wait(), timeout=5.0)
        assert asyncio.get_running_loop().time() - started < 1.0
        assert (bulkhead.in_flight, bulkhead.waiting) == (1, 0)
        await holder
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        assert bulkhead.in_flight == 0

    async def test_waiters_are_served_in_order(self) -> None:
        """Queued calls enter first come, first served."""
        bulkhead = Bulkhead(1, max_wait=math.inf)
        order: list[int] = []
        gate = asyncio.Event()

        async def call(n: int) -> None:
            async with bulkhead.slot():
                order.append(n)
                await gate.wait()

        first = asyncio.create_task(call(0))
        await until(lambda: order == [0])
        rest = []
        for n in range(1, 5):
            rest.append(asyncio.create_task(call(n)))
            await until(lambda: bulkhead.waiting == len(rest))
        gate.set()
        await asyncio.gather(first, *rest)
        assert order == [0, 1, 2, 3, 4]
        assert bulkhead.in_flight == 0

    async def test_gives_up_after_max_wait(self) -> None:
        """A call that finds no room within max_wait is rejected and leaves the queue (a 10 ms real wait)."""
        bulkhead = Bulkhead(1, max_wait=0.01, name="users")
        release, holder_in = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold(bulkhead, holder_in, release))
        await until(holder_in.is_set)
        with pytest.raises(BulkheadFullError, match=r"within 0\.01s"):
            async with bulkhead.slot():
                pytest.fail("entered a full bulkhead")
        assert bulkhead.waiting == 0
        release.set()
        await holder
        assert bulkhead.in_flight == 0


@pytest.mark.behaviour("client.bulkhead")
class TestCancellation:
    async def test_cancelled_holder_returns_its_slot(self) -> None:
        """Cancelling a task inside the block frees its slot."""
        bulkhead = Bulkhead(1)
        entered = asyncio.Event()
        holder = asyncio.create_task(hold(bulkhead, entered, asyncio.Event()))
        await until(entered.is_set)
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        assert bulkhead.in_flight == 0

    async def test_cancelled_waiter_leaves_the_queue(self) -> None:
        """Cancelling a queued call removes it; the slot later goes back to the pool, not to the ghost."""
        bulkhead = Bulkhead(1, max_wait=math.inf)
        release, holder_in = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold(bulkhead, holder_in, release))
        await until(holder_in.is_set)
        waiter = asyncio.create_task(hold(bulkhead, asyncio.Event(), asyncio.Event()))
        await until(lambda: bulkhead.waiting == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (bulkhead.in_flight, bulkhead.waiting) == (1, 0)
        release.set()
        await holder
        assert bulkhead.in_flight == 0

    async def test_waiter_cancelled_after_the_handover_passes_the_slot_on(self) -> None:
        """A waiter cancelled after a slot was handed to it, before it ran, gives the slot back."""
        bulkhead = Bulkhead(1, max_wait=math.inf)
        waiter_in = asyncio.Event()
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(bulkhead.slot())
            waiter = asyncio.create_task(hold(bulkhead, waiter_in, asyncio.Event()))
            await until(lambda: bulkhead.waiting == 1)
        # Leaving the stack handed the slot to the waiter, which has not run yet.
        assert (bulkhead.in_flight, bulkhead.waiting) == (1, 0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not waiter_in.is_set()
        assert bulkhead.in_flight == 0

    async def test_many_cancellations_leak_nothing(self) -> None:
        """Cancelling a crowd of holders and waiters at random points leaves the bulkhead empty."""
        bulkhead = Bulkhead(3, max_wait=math.inf)
        tasks = [asyncio.create_task(hold(bulkhead, asyncio.Event(), asyncio.Event())) for _ in range(20)]
        await until(lambda: bulkhead.waiting == 17)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.sleep(0)
        for task in tasks[1::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)


@pytest.mark.behaviour("client.timeouts")
class TestDeadline:
    def test_remaining_counts_down_with_the_clock(self) -> None:
        """remaining() follows the clock and never goes below zero."""
        clock = ManualClock(10.0)
        deadline = Deadline.after(5.0, clock)
        assert deadline.expires_at == 15.0
        assert deadline.remaining() == 5.0
        clock.advance(3.0)
        assert deadline.remaining() == 2.0
        assert not deadline.expired
        clock.advance(3.0)
        assert deadline.remaining() == 0.0
        assert deadline.expired

    def test_expires_exactly_at_the_deadline(self) -> None:
        """At expires_at there is no time left."""
        clock = ManualClock()
        deadline = Deadline.after(1.0, clock)
        clock.advance(1.0)
        assert deadline.expired

    def test_cap_shortens_timeouts(self) -> None:
        """cap() returns the smaller of a timeout and the time left."""
        clock = ManualClock()
        deadline = Deadline.after(2.0, clock)
        assert deadline.cap(5.0) == 2.0
        assert deadline.cap(0.5) == 0.5
        clock.advance(10.0)
        assert deadline.cap(5.0) == 0.0

    def test_infinite_deadline_never_expires(self) -> None:
        """math.inf is a deadline that never runs out."""
        clock = ManualClock()
        deadline = Deadline.after(math.inf, clock)
        clock.advance(1e9)
        assert not deadline.expired
        assert deadline.cap(3.0) == 3.0

    @pytest.mark.parametrize("seconds", [-1.0, float("nan")])
    def test_rejects_negative_or_nan(self, seconds: float) -> None:
        """A deadline in the past or of NaN seconds is a programming mistake."""
        with pytest.raises(ValueError, match="seconds"):
            Deadline.after(seconds, ManualClock())

    def test_defaults_to_the_system_clock(self) -> None:
        """Without a clock, a deadline uses the real monotonic clock."""
        deadline = Deadline.after(60.0)
        assert isinstance(deadline.clock, SystemClock)
        assert 59.0 < deadline.remaining() <= 60.0
