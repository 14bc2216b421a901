"""The seven toxics' logic, driven through a fake stub with a virtual clock: no sockets, no real sleeps."""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.faults._toxics import (
    TOXICS,
    BandwidthToxic,
    Chunk,
    LatencyToxic,
    LimitDataToxic,
    ResetPeerToxic,
    Signal,
    SlicerToxic,
    SlowCloseToxic,
    TimeoutToxic,
    Toxic,
    ToxicState,
    bandwidth_schedule,
    latency_delay,
    noop,
    slice_bounds,
)


class FakeIO:
    """A StubIO whose clock only moves when the toxic sleeps or waits; runs out of input as an interrupt."""

    def __init__(self, *items: Chunk | Signal, interrupt_at: float | None = None, seed: int = 1) -> None:
        self.clock = 0.0
        self.inbox: deque[Chunk | Signal] = deque(items)
        self.sent: list[tuple[float, bytes]] = []
        self.closed: tuple[float, bool] | None = None  # (time, reset)
        self.rng = random.Random(seed)
        self.state = ToxicState()
        self.interrupt_at = interrupt_at

    def now(self) -> float:
        return self.clock

    async def recv(self, until: float | None = None) -> Chunk | Signal:
        if self.inbox:
            return self.inbox.popleft()
        if until is not None and (self.interrupt_at is None or until <= self.interrupt_at):
            self.clock = max(self.clock, until)
            return Signal.TIMEOUT
        return Signal.INTERRUPTED

    def unrecv(self, item: Chunk | Signal) -> None:
        self.inbox.appendleft(item)

    def send(self, chunk: Chunk) -> None:
        self.sent.append((self.clock, chunk.data))

    async def sleep_until(self, deadline: float) -> bool:
        if self.interrupt_at is not None and deadline > self.interrupt_at:
            self.clock = max(self.clock, self.interrupt_at)
            return False
        self.clock = max(self.clock, deadline)
        return True

    def close(self, *, reset: bool = False) -> None:
        assert self.closed is None, "closed twice"
        self.closed = (self.clock, reset)

    @property
    def data(self) -> bytes:
        return b"".join(data for _, data in self.sent)


def at(data: bytes, timestamp: float = 0.0) -> Chunk:
    return Chunk(data, timestamp)


class TestRegistry:
    def test_seven_toxics_with_attributes_in_json_order(self) -> None:
        """Every Toxiproxy toxic is there; attributes default to 0, in the order the server prints them."""
        assert {name: kind().attributes() for name, kind in TOXICS.items()} == {
            "latency": {"latency": 0, "jitter": 0},
            "bandwidth": {"rate": 0},
            "slow_close": {"delay": 0},
            "timeout": {"timeout": 0},
            "reset_peer": {"timeout": 0},
            "slicer": {"average_size": 0, "size_variation": 0, "delay": 0},
            "limit_data": {"bytes": 0},
        }

    def test_only_timeout_closes_when_removed(self) -> None:
        """Removing a timeout toxic closes the links it held, as Toxiproxy's Cleanup does; no other toxic."""
        assert [name for name, kind in TOXICS.items() if kind.closes_on_removal] == ["timeout"]


@pytest.mark.behaviour("proxy.api")
class TestBounds:
    @pytest.mark.parametrize(
        ("toxic", "message"),
        [
            pytest.param(LatencyToxic(latency=-1), "latency: must be between 0 and 3600000 ms", id="latency"),
            pytest.param(
                LatencyToxic(latency=2**62), "latency: must be between 0 and 3600000 ms", id="for-ever"
            ),
            pytest.param(LatencyToxic(jitter=-1), "jitter: must be between 0 and 3600000 ms", id="jitter"),
            pytest.param(BandwidthToxic(rate=-1), "rate: must be at least 0 KB/s", id="rate"),
            pytest.param(
                SlowCloseToxic(delay=3_600_001), "delay: must be between 0 and 3600000 ms", id="delay"
            ),
            pytest.param(TimeoutToxic(timeout=-1), "timeout: must be between 0 and 3600000 ms", id="timeout"),
            pytest.param(ResetPeerToxic(timeout=-1), "timeout: must be between 0 and 3600000 ms", id="reset"),
            pytest.param(SlicerToxic(average_size=-1), "average_size: must be at least 0 bytes", id="slice"),
            pytest.param(
                SlicerToxic(delay=-1), "delay: must be between 0 and 3600000000 µs", id="slicer-delay"
            ),
            pytest.param(LimitDataToxic(bytes=-1), "bytes: must be at least 0 bytes", id="bytes"),
        ],
    )
    def test_out_of_range_attribute_is_named(self, toxic: Toxic, message: str) -> None:
        assert toxic.refusal() == message

    def test_defaults_and_an_hour_are_accepted(self) -> None:
        """Zero is every attribute's default (and timeout's "hold for ever"); an hour is the longest delay."""
        assert [name for name, kind in TOXICS.items() if kind().refusal() is not None] == []
        assert LatencyToxic(latency=3_600_000, jitter=3_600_000).refusal() is None

    def test_every_attribute_has_a_bound(self) -> None:
        assert {name: set(kind.bounds) for name, kind in TOXICS.items()} == {
            name: set(kind().attributes()) for name, kind in TOXICS.items()
        }


class TestNoop:
    async def test_passes_everything_then_closes(self) -> None:
        """What a link runs when the toxicity draw misses: bytes unchanged, EOF passed on."""
        io = FakeIO(at(b"a"), at(b"b"), Signal.EOF)
        await noop(io)
        assert io.data == b"ab"
        assert io.closed == (0.0, False)


@pytest.mark.behaviour("toxic.latency")
class TestLatency:
    async def test_each_chunk_delayed_relative_to_its_read_time(self) -> None:
        """A chunk read at t leaves at t + latency, whatever queued before it."""
        io = FakeIO(at(b"a", 0.0), at(b"b", 0.010), at(b"c", 0.200), Signal.EOF)
        await LatencyToxic(latency=50).pipe(io)
        assert [t for t, _ in io.sent] == pytest.approx([0.05, 0.06, 0.25])
        assert io.data == b"abc"
        assert io.closed is not None

    def test_jitter_is_uniform_around_latency(self) -> None:
        """Delays stay in [latency - jitter, latency + jitter) and average the latency."""
        rng = random.Random(3)
        delays = [latency_delay(100, 10, rng) for _ in range(5000)]
        assert min(delays) >= 0.090
        assert max(delays) < 0.110
        assert sum(delays) / len(delays) == pytest.approx(0.0995, abs=0.001)

    def test_no_jitter_no_randomness(self) -> None:
        """Without jitter the delay is exact and the random source is not touched."""
        rng = random.Random(3)
        state = rng.getstate()
        assert latency_delay(40, 0, rng) == 0.040
        assert rng.getstate() == state

    async def test_interrupt_forwards_the_held_chunk(self) -> None:
        """An update or removal mid-delay sends the chunk on at once instead of dropping it."""
        io = FakeIO(at(b"held", 0.0), interrupt_at=0.01)
        await LatencyToxic(latency=500).pipe(io)
        assert io.sent == [(0.01, b"held")]
        assert io.closed is None


@pytest.mark.behaviour("toxic.bandwidth")
class TestBandwidth:
    def test_schedule_carries_rate_bytes_per_millisecond(self) -> None:
        """200 kB at 100 KB/s: pieces of 100 ms each, the last one out at 2 s."""
        schedule = bandwidth_schedule(200_000, 100, 0.0)
        assert len(schedule) == 20
        assert all(end - start == 10_000 for start, end, _ in schedule)
        assert schedule[0][2] == pytest.approx(0.1)
        assert schedule[-1][2] == pytest.approx(2.0)

    async def test_pipe_paces_chunks_without_drift(self) -> None:
        """Queued chunks are paced from where the previous one ended, not from when they were read."""
        io = FakeIO(at(b"x" * 5_000, 0.0), at(b"y" * 5_000, 0.001), Signal.EOF)
        await BandwidthToxic(rate=10).pipe(io)
        times = [t for t, _ in io.sent]
        assert times[-1] == pytest.approx(1.0)
        assert io.data == b"x" * 5_000 + b"y" * 5_000

    async def test_idle_time_earns_no_credit(self) -> None:
        """A chunk that arrives after a pause is paced from its arrival."""
        io = FakeIO(at(b"x" * 1_000, 0.0), at(b"y" * 1_000, 5.0), Signal.EOF)
        await BandwidthToxic(rate=10).pipe(io)
        assert [t for t, _ in io.sent] == [pytest.approx(0.1), pytest.approx(5.1)]

    async def test_zero_rate_is_unlimited(self) -> None:
        io = FakeIO(at(b"x" * 100_000), Signal.EOF)
        await BandwidthToxic(rate=0).pipe(io)
        assert io.sent == [(0.0, b"x" * 100_000)]

    async def test_interrupt_sends_the_rest_at_once(self) -> None:
        io = FakeIO(at(b"x" * 3_000), interrupt_at=0.15)
        await BandwidthToxic(rate=10).pipe(io)
        assert io.data == b"x" * 3_000
        assert io.sent[-1][0] == 0.15


@pytest.mark.behaviour("toxic.slow_close")
class TestSlowClose:
    async def test_data_flows_and_eof_is_delayed(self) -> None:
        io = FakeIO(at(b"bye"), Signal.EOF)
        await SlowCloseToxic(delay=300).pipe(io)
        assert io.sent == [(0.0, b"bye")]
        assert io.closed == (0.3, False)

    async def test_interrupted_close_is_kept_for_the_next_run(self) -> None:
        """The EOF goes back on the input, so the restarted (or next) stage still closes the link."""
        io = FakeIO(Signal.EOF, interrupt_at=0.1)
        await SlowCloseToxic(delay=300).pipe(io)
        assert io.closed is None
        assert list(io.inbox) == [Signal.EOF]


@pytest.mark.behaviour("toxic.timeout")
class TestTimeout:
    async def test_swallows_data_and_closes_after_the_timeout(self) -> None:
        """Data stops; the link closes ``timeout`` after the last byte arrived (the countdown restarts)."""
        io = FakeIO(at(b"a"), at(b"b"))
        await TimeoutToxic(timeout=250).pipe(io)
        assert io.sent == []
        assert io.closed == (0.25, False)

    async def test_zero_holds_forever(self) -> None:
        """timeout=0 never closes: the pipe only ends when interrupted."""
        io = FakeIO(at(b"a"))
        await TimeoutToxic(timeout=0).pipe(io)
        assert io.sent == []
        assert io.closed is None

    async def test_eof_closes_at_once(self) -> None:
        io = FakeIO(Signal.EOF)
        await TimeoutToxic(timeout=1000).pipe(io)
        assert io.closed == (0.0, False)


@pytest.mark.behaviour("toxic.reset_peer")
class TestResetPeer:
    async def test_resets_after_timeout_from_first_data(self) -> None:
        io = FakeIO(at(b"a"))
        await ResetPeerToxic(timeout=100).pipe(io)
        assert io.sent == []
        assert io.closed == (0.1, True)

    async def test_zero_resets_at_first_data(self) -> None:
        io = FakeIO(at(b"a"))
        await ResetPeerToxic().pipe(io)
        assert io.closed == (0.0, True)

    async def test_interrupted_before_timeout_does_not_reset(self) -> None:
        io = FakeIO(at(b"a"), interrupt_at=0.05)
        await ResetPeerToxic(timeout=100).pipe(io)
        assert io.closed is None


@pytest.mark.behaviour("toxic.slicer")
class TestSlicer:
    @given(
        length=st.integers(min_value=0, max_value=5000),
        average=st.integers(min_value=-50, max_value=300),
        variation=st.integers(min_value=-10, max_value=300),
        seed=st.integers(min_value=0, max_value=1000),
    )
    def test_slices_cover_every_byte_once_in_order(
        self, length: int, average: int, variation: int, seed: int
    ) -> None:
        """Whatever the attributes, the slices are non-empty, contiguous and cover the chunk exactly."""
        bounds = slice_bounds(length, average, variation, random.Random(seed))
        assert all(end > start for start, end in bounds)
        assert [start for start, _ in bounds] == [0, *(end for _, end in bounds[:-1])][: len(bounds)]
        assert (bounds[-1][1] if bounds else 0) == length

    def test_slices_average_the_requested_size(self) -> None:
        bounds = slice_bounds(10_000, 100, 20, random.Random(5))
        sizes = [end - start for start, end in bounds]
        assert 60 <= sum(sizes) / len(sizes) <= 140

    async def test_pipe_sends_slices_with_delay_between(self) -> None:
        """Every byte arrives in order, one slice every ``delay`` microseconds."""
        payload = bytes(range(256)) * 4
        io = FakeIO(at(payload), Signal.EOF)
        await SlicerToxic(average_size=64, size_variation=0, delay=1000).pipe(io)
        assert io.data == payload
        assert len(io.sent) == 16
        assert io.sent[1][0] - io.sent[0][0] == pytest.approx(0.001)
        assert io.closed is not None


@pytest.mark.behaviour("toxic.limit_data")
class TestLimitData:
    async def test_closes_after_exactly_n_bytes(self) -> None:
        io = FakeIO(at(b"0123456789"), at(b"abcdef"))
        await LimitDataToxic(bytes=13).pipe(io)
        assert io.data == b"0123456789abc"
        assert io.closed == (0.0, False)

    async def test_count_survives_a_restart(self) -> None:
        """The bytes already let through count after an update restarts the toxic on the same link."""
        io = FakeIO(at(b"01234"))
        await LimitDataToxic(bytes=8).pipe(io)  # runs out of input: returns as if interrupted
        io.inbox.extend([at(b"56789")])
        await LimitDataToxic(bytes=8).pipe(io)
        assert io.data == b"01234567"
        assert io.state.transmitted == 8

    async def test_zero_closes_at_first_data(self) -> None:
        io = FakeIO(at(b"ping"))
        await LimitDataToxic(bytes=0).pipe(io)
        assert io.sent == []
        assert io.closed is not None
