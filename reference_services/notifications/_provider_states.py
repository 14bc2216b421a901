"""The notifications service's provider states for contract verification (test mode only), via its store.

Every setup first removes what an earlier run may have left, so states hold on a reused database too.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict

from reference_services.common import LoadShedSwitch, NoParams, ProviderState, provider_states_router

from ._store import NewNotification, NotificationsStore


class NotificationParams(BaseModel):
    """A notification to be stored, exactly as a sender would post it."""

    model_config = ConfigDict(extra="forbid")

    notification_id: str
    user_id: str
    type: str
    message: str


class AbsentNotificationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notification_id: str


def provider_states(store: NotificationsStore, app: FastAPI) -> list[ProviderState[Any]]:
    """Every state the notifications pacts name."""

    async def stored(params: NotificationParams) -> None:
        await store.delete(params.notification_id)
        new = NewNotification(params.notification_id, params.user_id, params.type, params.message)
        await store.accept(new)

    async def absent(params: AbsentNotificationParams) -> None:
        await store.delete(params.notification_id)

    async def remove(params: NotificationParams) -> None:
        await store.delete(params.notification_id)

    shedding = LoadShedSwitch(app)
    return [
        ProviderState("a stored notification", NotificationParams, stored, remove),
        ProviderState("no such notification", AbsentNotificationParams, absent, absent),
        ProviderState("notifications is shedding load", NoParams, shedding.saturate, shedding.release),
    ]


def router(store: NotificationsStore, app: FastAPI) -> APIRouter:
    """``POST /_pact/provider_states`` for this service."""
    return provider_states_router(provider_states(store, app))
