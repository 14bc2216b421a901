"""The messages providers publish, produced by the providers' own code for message-pact verification.

``users`` writes ``user.created`` to its outbox with ``user_created_event``; the verifier gets the bytes
that same function makes, and the outbox row's type as metadata.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from harness.contract._callbacks import ProducedMessage

USER_CREATED_MESSAGE = "a user.created event"


def _user_created() -> ProducedMessage:
    # Imported when a message is produced: loading the users service is not needed before.
    from reference_services.users.events import USER_CREATED, EventUser, user_created_event

    user = EventUser(id="u-1001", name="Grace Hopper", email="grace@example.org")
    event = user_created_event(user, str(uuid.uuid4()), datetime.now(UTC))
    return ProducedMessage(json.dumps(event).encode(), metadata={"event_type": USER_CREATED})


USERS_MESSAGES: dict[str, Callable[[], ProducedMessage]] = {
    USER_CREATED_MESSAGE: _user_created,
}


def users_messages(description: str) -> ProducedMessage:
    """The message named ``description``, as users would publish it now."""
    produce = USERS_MESSAGES.get(description)
    if produce is None:
        raise KeyError(f"users publishes no message {description!r}; known: {', '.join(USERS_MESSAGES)}")
    return produce()
