"""Wire models of the users API (pydantic v2, ``extra="forbid"``, strict types: "5" is not a number).

Amounts are integers in minor units, bounded so every sum fits SQLite's 64-bit integers; ``5.0`` is the
integer 5, as JSON Schema has it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints

from reference_services.common import NAME_PATTERN, JsonInteger

from ._store import ReservationStatus

MAX_AMOUNT = 10**15
USER_ID_MAX_LENGTH = 63
KEY_MAX_LENGTH = 128
# Keys appear in URL paths, so they use URL-safe characters only (no "/", "%", "?", "#" or spaces).
KEY_PATTERN = r"^[A-Za-z0-9._:@+=~-]+$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

UserId = Annotated[str, StringConstraints(min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=NAME_PATTERN)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=KEY_MAX_LENGTH, pattern=KEY_PATTERN)]
Timestamp = Annotated[
    datetime, PlainSerializer(lambda moment: moment.isoformat(timespec="microseconds"), return_type=str)
]


class CreateUser(BaseModel):
    """Body of ``POST /users``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: UserId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    email: Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=EMAIL_PATTERN)]
    credit: Annotated[int, Field(ge=0, le=MAX_AMOUNT), JsonInteger] = 0


class UserView(BaseModel):
    """A user and its credit: ``available = credit - reserved``."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    email: str
    credit: int
    reserved: int = Field(description="Sum of reservations that are reserved or confirmed.")
    available: int
    created_at: Timestamp


class ReserveRequest(BaseModel):
    """Body of ``POST /users/{id}/reservations``; ``reservation_id`` is the idempotency key."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reservation_id: Key
    amount: Annotated[int, Field(gt=0, le=MAX_AMOUNT), JsonInteger]
    order_id: Annotated[str, StringConstraints(min_length=1, max_length=KEY_MAX_LENGTH)] | None = None


class ReservationView(BaseModel):
    """One reservation (a release of an unknown id shows as released with amount 0)."""

    model_config = ConfigDict(extra="forbid")

    reservation_id: str
    user_id: str
    amount: int
    status: ReservationStatus
    order_id: str | None
    created_at: Timestamp


class ReservationList(BaseModel):
    """Answer of ``GET /users/{id}/reservations``, oldest first."""

    model_config = ConfigDict(extra="forbid")

    reservations: list[ReservationView]


class InsufficientCreditBody(BaseModel):
    """The 409 answer when a reservation asks for more than the user has available."""

    model_config = ConfigDict(extra="forbid")

    error: Literal["insufficient_credit"] = "insufficient_credit"
    message: str
    available: int
