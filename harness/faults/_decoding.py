"""Request bodies decoded on the event loop in short slices: the loop carries every proxied byte, so decoding
a large or hostile body gives the loop back every SLICE_SECONDS. A worker thread would not do: while a
CPU-bound Python thread runs, every uvloop callback waits up to the interpreter's 5 ms switch interval."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

from harness.faults._godecode import Steps, decoding, decoding_list
from harness.faults._gojson import GoStruct

SLICE_SECONDS = 0.001
T = TypeVar("T")


async def run_sliced(steps: Steps[T], slice_seconds: float = SLICE_SECONDS) -> T:
    """Do stepwise work, yielding to the loop whenever a slice of ``slice_seconds`` is used up."""
    deadline = time.perf_counter() + slice_seconds
    try:
        while True:
            next(steps)
            if time.perf_counter() >= deadline:
                await asyncio.sleep(0)
                deadline = time.perf_counter() + slice_seconds
    except StopIteration as done:
        result: T = done.value
        return result


class BodyDecoder:
    """Go-style decoding of request bodies into struct layouts, one body at a time, in slices of the loop.

    One at a time: while a body is worked on, the loop runs its slice and then everything else that is
    ready, so proxied traffic waits at most one slice however many bodies arrive together.
    """

    def __init__(self, slice_seconds: float = SLICE_SECONDS) -> None:
        self._slice = slice_seconds
        self._turn = asyncio.Lock()

    async def _run(self, steps: Steps[T]) -> T:
        async with self._turn:
            return await run_sliced(steps, self._slice)

    async def decode(self, body: bytes, layout: GoStruct) -> dict[str, Any]:
        """The fields of ``layout`` in ``body``, as Go decodes them; raises GoJSONError with Go's message."""
        return await self._run(decoding(body, layout))

    async def decode_list(self, body: bytes, element: GoStruct, slice_type: str) -> list[dict[str, Any]]:
        """A JSON array decoded into a Go slice of ``element``; raises GoJSONError with Go's message."""
        return await self._run(decoding_list(body, element, slice_type))
