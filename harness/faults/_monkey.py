"""ChaosMonkey: faults on the client side of service calls, as the source design's chaos section has them.
Every call first waits a latency drawn from ``latency_range``, then fails with probability
``failure_rate``: with an HTTP status of the user's choice (503 with ``Retry-After``, say) or a transport
error. It is an httpx transport wrapping the real one, so any httpx client can use it, and what sits above
it (ServiceClient's timeouts, breaker and retry) sees its faults exactly as real ones; ServiceClient
builds one per target service from its configuration. Seeded, every injection an event."""

from __future__ import annotations

import asyncio
import enum
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import httpx

from harness.events import EventLog

INJECTED_HEADER = "X-Harness-Fault"
MONKEY_EVENT = "monkey.injected"
Sleep = Callable[[float], Awaitable[None]]


class Failure(enum.StrEnum):
    """How an injected failure shows: an HTTP status, or one of three transport errors."""

    STATUS = "status"
    CONNECT_ERROR = "connect_error"  # httpx.ConnectError: nothing was sent, always safe to retry
    DISCONNECT = "disconnect"  # httpx.RemoteProtocolError: the server closed without an answer
    TIMEOUT = "timeout"  # waits out the read timeout, then httpx.ReadTimeout


ERROR_CHOICES = "an HTTP status from 400 to 599 (such as 503), connect_error, disconnect or timeout"


def parse_error(error: str | int) -> tuple[Failure, int | None]:
    """The kind of failure ``error`` names, and its status; ValueError naming the allowed values."""
    text = str(error).strip().lower()
    if text.isdigit():
        status = int(text)
        if 400 <= status <= 599:
            return Failure.STATUS, status
        raise ValueError(f"error: {status} is not an error status; use {ERROR_CHOICES}")
    try:
        kind = Failure(text)
    except ValueError:
        raise ValueError(f"error: unknown {str(error)!r}; use {ERROR_CHOICES}") from None
    if kind is Failure.STATUS:
        raise ValueError(f"error: give the status itself; use {ERROR_CHOICES}")
    return kind, None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass(frozen=True)
class MonkeyConfig:
    """What a ChaosMonkey injects: ``failure_rate`` per call, ``latency_range`` in milliseconds (every call
    waits a uniform draw from it), ``error`` (a status or a transport error, see ``parse_error``),
    ``retry_after`` seconds on an injected status (None: no header), ``seed`` (None: a fresh one)."""

    failure_rate: float = 0.0
    latency_range: tuple[float, float] = (0.0, 0.0)
    error: str = "503"
    retry_after: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate: must be between 0 and 1, not {self.failure_rate}")
        if len(self.latency_range) != 2:
            raise ValueError("latency_range: must be two numbers of milliseconds, [low, high]")
        low, high = self.latency_range
        if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high):
            raise ValueError(
                f"latency_range: must be [low, high] milliseconds with 0 <= low <= high, not [{low}, {high}]"
            )
        parse_error(self.error)
        if self.retry_after is not None and not (math.isfinite(self.retry_after) and self.retry_after >= 0):
            raise ValueError(f"retry_after: must be 0 or more seconds, not {self.retry_after}")


@dataclass(frozen=True)
class Draw:
    """What the monkey drew for one call: its latency (seconds) and whether it fails."""

    latency: float
    fails: bool


class ChaosMonkey(httpx.AsyncBaseTransport):
    """An httpx transport that injects latency and failures into the calls it carries.

    ``httpx.AsyncClient(transport=ChaosMonkey(0.2, (10, 50), seed=7))``: each call waits 10 to 50 ms, and
    one in five gets a 503. The latency counts against the request's read timeout like real latency (past
    it, the call ends in ``httpx.ReadTimeout`` at the timeout); ``transport`` is the real transport it
    wraps (default: a new ``httpx.AsyncHTTPTransport``). Each call draws its latency, then its failure,
    from one ``random.Random(seed)``: the same seed gives the same sequence. Each call that got anything
    is a ``monkey.injected`` event in ``events``, naming ``target``.
    """

    def __init__(
        self,
        failure_rate: float = 0.0,
        latency_range: tuple[float, float] = (0.0, 0.0),
        *,
        seed: int | None = None,
        error: str = "503",
        retry_after: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        events: EventLog | None = None,
        target: str = "",
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        low, high = latency_range
        self.config = MonkeyConfig(failure_rate, (float(low), float(high)), str(error), retry_after, seed)
        self._failure, self._status = parse_error(self.config.error)
        self._rng = random.Random(seed)
        self._transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.events = events if events is not None else EventLog("chaos-monkey")
        self.target = target
        self._sleep = sleep
        self.calls = 0
        self.failures = 0

    @classmethod
    def from_config(
        cls,
        config: MonkeyConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        events: EventLog | None = None,
        target: str = "",
        sleep: Sleep = asyncio.sleep,
    ) -> ChaosMonkey:
        return cls(
            config.failure_rate,
            config.latency_range,
            seed=config.seed,
            error=config.error,
            retry_after=config.retry_after,
            transport=transport,
            events=events,
            target=target,
            sleep=sleep,
        )

    def draw(self) -> Draw:
        """The next call's latency and failure, drawn independently (latency first)."""
        low, high = self.config.latency_range
        latency = self._rng.uniform(low, high) / 1000.0
        return Draw(latency, self._rng.random() < self.config.failure_rate)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        draw = self.draw()
        self.calls += 1
        read_timeout = request.extensions.get("timeout", {}).get("read")
        if draw.latency > 0:
            if read_timeout is not None and draw.latency > read_timeout:
                await self._sleep(read_timeout)
                self._record(request, draw, Failure.TIMEOUT)
                raise httpx.ReadTimeout(
                    f"injected latency of {draw.latency * 1000:.0f} ms exceeds the read timeout",
                    request=request,
                )
            await self._sleep(draw.latency)
        if not draw.fails:
            if draw.latency > 0:
                self._record(request, draw, None)
            return await self._transport.handle_async_request(request)
        self.failures += 1
        self._record(request, draw, self._failure)
        return await self._fail(request, read_timeout)

    async def _fail(self, request: httpx.Request, read_timeout: float | None) -> httpx.Response:
        match self._failure:
            case Failure.CONNECT_ERROR:
                raise httpx.ConnectError("injected connect error (chaos monkey)", request=request)
            case Failure.DISCONNECT:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response (injected by the chaos monkey)",
                    request=request,
                )
            case Failure.TIMEOUT:
                if read_timeout is not None:
                    await self._sleep(read_timeout)
                raise httpx.ReadTimeout("injected read timeout (chaos monkey)", request=request)
        status = self._status or 503
        headers = {INJECTED_HEADER: "chaos-monkey", "Content-Type": "text/plain; charset=utf-8"}
        if self.config.retry_after is not None:
            headers["Retry-After"] = f"{self.config.retry_after:g}"
        return httpx.Response(
            status, headers=headers, content=f"{_phrase(status)}\n".encode(), request=request
        )

    def _record(self, request: httpx.Request, draw: Draw, failure: Failure | None) -> None:
        what = "" if failure is None else f"status_{self._status}" if failure is Failure.STATUS else failure
        self.events.emit(
            MONKEY_EVENT,
            target=self.target or request.url.host,
            method=request.method,
            path=request.url.path,
            latency=round(draw.latency, 6),
            failure=str(what),
            status=self._status if failure is Failure.STATUS else None,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()
