"""The outbox's dead letters over HTTP: what an operator sees and requeues once the cause is fixed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from harness.events import EventLog
from reference_services.common import ApiError, ErrorBody

from ._outbox import Outbox
from ._relay import OutboxRelay

EventId = Annotated[str, Path(min_length=1, max_length=128)]


class DeadLetterView(BaseModel):
    event_id: str
    type: str
    attempts: int
    reason: str
    dead_at: str


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterView]


def outbox_router(outbox: Outbox, relay: OutboxRelay, events: EventLog) -> APIRouter:
    router = APIRouter(tags=["outbox"])

    @router.get("/outbox/dead-letters")
    async def dead_letters() -> DeadLetterList:
        """Events the receiver refused outright (or that cannot be sent), oldest first."""
        letters = await outbox.dead_letters()
        return DeadLetterList(dead_letters=[DeadLetterView(**vars(letter)) for letter in letters])

    @router.post(
        "/outbox/dead-letters/{event_id}/requeue", status_code=202, responses={404: {"model": ErrorBody}}
    )
    async def requeue(event_id: EventId) -> dict[str, str]:
        """Put a dead letter back in the outbox with fresh attempts; the relay sends it at once."""
        if not await outbox.requeue(event_id):
            raise ApiError(404, "not_found", f"No dead letter {event_id!r}.")
        events.emit("outbox.requeued", event_id=event_id)
        relay.wake()
        return {"event_id": event_id, "status": "requeued"}

    return router
