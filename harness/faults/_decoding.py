"""Request bodies decoded off the event loop: the loop carries every proxied byte, so a body larger than a
few kilobytes is scanned in one worker thread that the server owns (one at a time, so a burst of bodies
competes with the loop as one thread, not many). The size and depth limits bound the cost of each."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.faults._gojson import decode

INLINE_BYTES = 4096  # at most ~2 ms of scanning: cheaper on the loop than a hop to the thread


class BodyDecoder:
    """Go-style JSON decoding of request bodies; the worker thread starts with the first large body."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    async def decode(self, body: bytes) -> Any:
        """The first JSON value of ``body``; raises GoJSONError with Go's message."""
        if len(body) <= INLINE_BYTES:
            return decode(body)
        if self._closed:
            raise RuntimeError("the body decoder is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toxiproxy-decode")
        return await asyncio.get_running_loop().run_in_executor(self._executor, decode, body)

    def close(self) -> None:
        """Stop the worker thread (a decode in progress finishes; queued ones are cancelled)."""
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
