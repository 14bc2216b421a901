"""The users service's provider states for contract verification (test mode only), set through its store.

Every setup first removes what an earlier run may have left, so states hold on a reused database too.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict

from reference_services.common import LoadShedSwitch, NoParams, ProviderState, provider_states_router

from ._store import NewUser, UsersStore


class UserParams(BaseModel):
    """A user to exist, with its credit."""

    model_config = ConfigDict(extra="forbid")

    user_id: str
    credit: int = 100
    name: str = "Ada Lovelace"
    email: str = "ada@example.org"


class ReservationParams(UserParams):
    """A user holding one reservation in the given status."""

    reservation_id: str
    amount: int
    order_id: str | None = None
    status: Literal["reserved", "confirmed", "released"] = "reserved"


class AbsentUserParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str


def provider_states(store: UsersStore, app: FastAPI) -> list[ProviderState[Any]]:
    """Every state the users pacts name."""

    async def user(params: UserParams) -> None:
        await store.delete_user(params.user_id)
        new = NewUser(params.user_id, params.name, params.email, params.credit)
        await store.create_user(new, str(uuid.uuid4()))

    async def reservation(params: ReservationParams) -> None:
        await user(params)
        await store.reserve(params.user_id, params.reservation_id, params.amount, params.order_id)
        if params.status == "confirmed":
            await store.confirm(params.user_id, params.reservation_id)
        elif params.status == "released":
            await store.release(params.user_id, params.reservation_id)

    async def absent(params: AbsentUserParams) -> None:
        await store.delete_user(params.user_id)

    async def remove(params: UserParams) -> None:
        await store.delete_user(params.user_id)

    shedding = LoadShedSwitch(app)
    return [
        ProviderState("a user with available credit", UserParams, user, remove),
        ProviderState("a user with a reservation", ReservationParams, reservation, remove),
        ProviderState("no such user", AbsentUserParams, absent),
        ProviderState("users is shedding load", NoParams, shedding.saturate, shedding.release),
    ]


def router(store: UsersStore, app: FastAPI) -> APIRouter:
    """``POST /_pact/provider_states`` for this service."""
    return provider_states_router(provider_states(store, app))
