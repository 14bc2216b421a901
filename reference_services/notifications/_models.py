"""Wire models of the notifications API (pydantic v2, ``extra="forbid"``, strict types)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, StringConstraints

from reference_services.common import NAME_PATTERN

USER_ID_MAX_LENGTH = 63
ID_MAX_LENGTH = 128
# Ids appear in URL paths, so they use URL-safe characters only (no "/", "%", "?", "#" or spaces).
ID_PATTERN = r"^[A-Za-z0-9._:@+=~-]+$"

UserId = Annotated[str, StringConstraints(min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=NAME_PATTERN)]
Timestamp = Annotated[
    datetime, PlainSerializer(lambda moment: moment.isoformat(timespec="microseconds"), return_type=str)
]


class NotificationRequest(BaseModel):
    """Body of ``POST /notifications``; ``notification_id`` (an event id) is the idempotency key."""

    model_config = ConfigDict(extra="forbid", strict=True)

    notification_id: Annotated[
        str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    ]
    user_id: UserId
    type: Annotated[str, StringConstraints(min_length=1, max_length=63)]
    message: Annotated[str, StringConstraints(max_length=2000)]


class NotificationView(BaseModel):
    """One stored notification."""

    model_config = ConfigDict(extra="forbid")

    notification_id: str
    user_id: str
    type: str
    message: str
    created_at: Timestamp


class NotificationList(BaseModel):
    """Answer of ``GET /notifications?user_id=...``, oldest first."""

    model_config = ConfigDict(extra="forbid")

    notifications: list[NotificationView]
