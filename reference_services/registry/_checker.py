"""The registry's background work: active health checks of every instance, and the TTL sweeper.

Both are plain coroutines started and cancelled by the app's lifespan; all state changes go through
the store, so these loops only do the waiting and the networking.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from ._journal import CheckResult, RegistryJournal
from ._store import CheckTarget, InstanceStore

logger = logging.getLogger(__name__)

MAX_SWEEP_DELAY = 0.25
MIN_SWEEP_DELAY = 0.02


class HealthChecker:
    """Checks every instance that has a health URL once per ``interval``, concurrently, and a newly
    registered one at once, so it does not wait out a whole interval as critical.

    A check passes on a 2xx answer; a non-2xx answer, a connection error or no answer within ``timeout``
    is a failure. At most ``concurrency`` checks run at once; the timeout starts when a check gets its
    slot, so a crowd of instances does not make healthy ones look slow. A registration is never checked
    twice at the same time (a round skips one whose first check is still running).
    """

    def __init__(
        self,
        store: InstanceStore,
        journal: RegistryJournal,
        client: httpx.AsyncClient,
        *,
        interval: float,
        timeout: float,
        concurrency: int = 100,
    ) -> None:
        self._store = store
        self._journal = journal
        self._client = client
        self.interval = interval
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[tuple[str, int]] = set()  # (instance id, revision) being checked now

    async def run(self) -> None:
        """Check rounds and first checks until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._rounds(), name="registry-check-rounds")
            group.create_task(self._first_checks(), name="registry-first-checks")

    async def _rounds(self) -> None:
        """One round every ``interval`` (or back to back if a round overruns)."""
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while True:
            try:
                await self.check_round()
            except Exception:  # a bug here must not stop health checking for good
                logger.exception("health check round failed")
            next_round = max(next_round + self.interval, loop.time())
            await asyncio.sleep(next_round - loop.time())

    async def _first_checks(self) -> None:
        """Check each new registration as soon as it arrives, without waiting for the next round."""
        async with asyncio.TaskGroup() as group:
            while True:
                await self._store.wait_for_new_targets()
                for target in self._store.check_targets(unchecked_only=True):
                    if (target.instance_id, target.revision) not in self._running:
                        group.create_task(self._check_and_record(target))

    async def check_round(self) -> None:
        """Check every current target once (except those being checked already) and apply the results."""
        async with asyncio.TaskGroup() as group:
            for target in self._store.check_targets():
                if (target.instance_id, target.revision) not in self._running:
                    group.create_task(self._check_and_record(target))

    async def _check_and_record(self, target: CheckTarget) -> None:
        key = (target.instance_id, target.revision)
        self._running.add(key)
        try:
            async with self._slots:
                result, reason = await self.check(target.url)
            self._journal.check_done(result)
            self._store.record_check(target, passed=result is CheckResult.PASSING, reason=reason)
        except Exception:  # one bad result must not cancel the other checks of its group
            logger.exception("recording the health check of %s failed", target.instance_id)
        finally:
            self._running.discard(key)

    async def check(self, url: str) -> tuple[CheckResult, str]:
        """One GET of ``url``, bounded by ``timeout`` overall; returns the result and a short reason."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.get(url)
        except (TimeoutError, httpx.TimeoutException):
            return CheckResult.TIMEOUT, f"no answer within {self.timeout:g}s"
        except httpx.TransportError as exc:
            return CheckResult.CONNECT_ERROR, f"{type(exc).__name__}: {exc}"[:200]
        except Exception as exc:  # e.g. a URL httpx refuses: a failed check, never a dead checker
            return CheckResult.ERROR, f"{type(exc).__name__}: {exc}"[:200]
        if response.is_success:
            return CheckResult.PASSING, f"status {response.status_code}"
        return CheckResult.HTTP_ERROR, f"status {response.status_code}"


def health_check_client(timeout: float, concurrency: int = 100) -> httpx.AsyncClient:
    """An HTTP client for health checks: no proxies from the environment, no redirects, no keep-alive.

    A fresh connection per check notices a dead listener and avoids races with the target's idle
    timeout closing a pooled connection.
    """
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=0),
        headers={"User-Agent": "harness-registry-health-check"},
    )


async def sweep_forever(store: InstanceStore) -> None:
    """Expire overdue instances, waking at the next expiry (at most every 0.25 s, at least every 20 ms)."""
    while True:
        try:
            next_expiry = store.sweep()
        except Exception:  # keep sweeping whatever happens
            logger.exception("sweep failed")
            next_expiry = None
        delay = MAX_SWEEP_DELAY
        if next_expiry is not None:
            delay = min(MAX_SWEEP_DELAY, max(MIN_SWEEP_DELAY, next_expiry - store.clock.monotonic()))
        await asyncio.sleep(delay)
