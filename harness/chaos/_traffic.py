"""Background traffic of the harness's own: bounded in rate, count and time, every request recorded.

Each request becomes a ``traffic.request`` event (outcome, status, latency) on the run's timeline, so
probes of latency and error ratio, and the report, read what the traffic really saw. Runs in a thread of
its own with its own event loop, so it goes on while the experiment's method blocks.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from harness.events import EventLog


class TrafficSpec(BaseModel):
    """What to send: orders through the orchestrator, or one HTTP route of an instance or service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="orders", min_length=1, max_length=63)
    kind: Literal["orders", "http"] = "orders"
    rate: float = Field(default=10.0, gt=0, le=2000, description="requests started per second")
    duration: float = Field(default=30.0, gt=0, le=3600, description="seconds")
    concurrency: int = Field(default=16, ge=1, le=512)
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per request")
    target: str | None = Field(default=None, description="http: an instance (through its proxy)")
    method: str = "GET"
    path: str = "/health"
    keepalive: bool = Field(default=True, description="False: a new connection for every request")
    amount: int = Field(default=10, ge=1, description="orders: the amount of each order")


@dataclass
class TrafficStats:
    sent: int = 0
    ok: int = 0
    errors: int = 0  # an answer, but not a success (4xx/5xx)
    failed: int = 0  # no answer at all
    latencies: list[float] = field(default_factory=list)


class Traffic:
    """One running stream of requests; ``stop`` ends it early, ``join`` waits for its end."""

    def __init__(self, spec: TrafficSpec, url: str, events: EventLog, *, customer: str | None = None) -> None:
        self.spec = spec
        self.url = url.rstrip("/")
        self.events = events
        self.customer = customer
        self.stats = TrafficStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"traffic-{spec.name}", daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the traffic to end; True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        spec = self.spec
        keepalive = spec.concurrency if spec.keepalive else 0
        limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=keepalive)
        slots = asyncio.Semaphore(spec.concurrency)
        began = time.monotonic()
        total = int(spec.rate * spec.duration)
        async with httpx.AsyncClient(timeout=spec.timeout, limits=limits, trust_env=False) as http:
            tasks: set[asyncio.Task[None]] = set()
            for index in range(total):
                if await self._sleep_until(began + index / spec.rate):
                    break
                await slots.acquire()
                self.stats.sent += 1
                task = asyncio.create_task(self._one(http, index, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)

    async def _sleep_until(self, moment: float) -> bool:
        """Sleep until ``moment`` (monotonic) in short steps; True when stopped meanwhile."""
        while not self._stop.is_set():
            delay = moment - time.monotonic()
            if delay <= 0:
                return False
            await asyncio.sleep(min(delay, 0.1))
        return True

    async def _one(self, http: httpx.AsyncClient, index: int, slots: asyncio.Semaphore) -> None:
        spec = self.spec
        started = time.monotonic()
        status: int | None = None
        detail = ""
        try:
            if spec.kind == "orders":
                key = f"{spec.name}-{uuid.uuid4().hex}"
                order = {"user_id": self.customer, "amount": spec.amount}
                answer = await http.post(f"{self.url}/orders", json=order, headers={"Idempotency-Key": key})
                ok = answer.status_code in (200, 201) and answer.json().get("state") == "COMPLETED"
                detail = "" if ok else str(answer.json().get("state", answer.text[:80]))
            else:
                headers = {} if spec.keepalive else {"Connection": "close"}
                answer = await http.request(spec.method, f"{self.url}{spec.path}", headers=headers)
                ok = answer.is_success
            status = answer.status_code
            outcome = "ok" if ok else "error"
        except (httpx.HTTPError, ValueError) as exc:
            outcome, detail = "failed", type(exc).__name__
        finally:
            slots.release()
        latency = time.monotonic() - started
        self._record(outcome, status, latency, detail)

    def _record(self, outcome: str, status: int | None, latency: float, detail: str) -> None:
        stats = self.stats
        if outcome == "ok":
            stats.ok += 1
        elif outcome == "error":
            stats.errors += 1
        else:
            stats.failed += 1
        stats.latencies.append(latency)
        self.events.emit(
            "traffic.request",
            target=self.spec.name,
            outcome=outcome,
            status=status,
            latency=round(latency, 6),
            detail=detail,
        )
