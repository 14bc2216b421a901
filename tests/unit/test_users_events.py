"""The users service's pure parts: the ``user.created`` message, the notification it becomes, backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reference_services.users._relay import backoff_delay
from reference_services.users.events import UserCreatedEvent, user_created_event, welcome_notification


@dataclass(frozen=True)
class _User:
    id: str
    name: str
    email: str


ALICE = _User("alice", "Alice Liddell", "alice@example.org")
EVENT_ID = "3f0c8a52-8f4e-4c7e-9a61-0d2a4b6c8e10"


@pytest.mark.behaviour("contract.notifications-users")
class TestUserCreatedEvent:
    """The message shape a future message pact pins, built in one place."""

    def test_message_shape(self) -> None:
        """event_id, type, occurred_at in UTC with +00:00, and the user's id, name and email."""
        moment = datetime(2024, 5, 1, 12, 30, 0, 250_000, tzinfo=UTC)
        assert user_created_event(ALICE, EVENT_ID, moment) == {
            "event_id": EVENT_ID,
            "type": "user.created",
            "occurred_at": "2024-05-01T12:30:00.250000+00:00",
            "user": {"id": "alice", "name": "Alice Liddell", "email": "alice@example.org"},
        }

    def test_other_timezones_are_written_in_utc(self) -> None:
        """A time given in +02:00 is the same instant written in UTC."""
        moment = datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
        assert (
            user_created_event(ALICE, EVENT_ID, moment)["occurred_at"] == "2024-05-01T12:30:00.000000+00:00"
        )

    def test_naive_time_is_refused(self) -> None:
        """Without a timezone the instant is ambiguous: a programming error."""
        with pytest.raises(ValueError, match="timezone-aware"):
            user_created_event(ALICE, EVENT_ID, datetime(2024, 5, 1))

    def test_message_round_trips_through_the_relay_model(self) -> None:
        """What the outbox stores is what the relay reads back."""
        message = user_created_event(ALICE, EVENT_ID, datetime.now(UTC))
        assert UserCreatedEvent.model_validate(message).model_dump() == message

    def test_welcome_notification_is_keyed_by_the_event_id(self) -> None:
        """Redeliveries of one event carry the same notification id, so the receiver deduplicates them."""
        event = UserCreatedEvent.model_validate(user_created_event(ALICE, EVENT_ID, datetime.now(UTC)))
        assert welcome_notification(event) == {
            "notification_id": EVENT_ID,
            "user_id": "alice",
            "type": "user.created",
            "message": "Welcome, Alice Liddell",
        }


@pytest.mark.behaviour("outbox.at_least_once")
class TestBackoff:
    """Failed deliveries wait longer each time, up to a cap, with jitter."""

    @pytest.mark.parametrize(
        ("attempts", "low", "high"),
        [
            pytest.param(1, 0.1, 0.2, id="first-failure-waits-about-base"),
            pytest.param(2, 0.2, 0.4, id="doubles"),
            pytest.param(4, 0.8, 1.6, id="keeps-doubling"),
            pytest.param(10, 2.5, 5.0, id="capped"),
            pytest.param(10_000, 2.5, 5.0, id="huge-attempt-counts-stay-capped"),
        ],
    )
    def test_delay_range(self, attempts: int, low: float, high: float) -> None:
        """The delay lies in [50%, 100%] of min(cap, base * 2 ** (attempts - 1))."""
        rng = random.Random(7)
        delays = [backoff_delay(attempts, base=0.2, cap=5.0, rng=rng) for _ in range(200)]
        assert all(low <= d <= high for d in delays)
        assert max(delays) - min(delays) > (high - low) / 2  # jittered, not constant

    def test_attempts_count_from_one(self) -> None:
        with pytest.raises(ValueError, match="counts from 1"):
            backoff_delay(0, base=0.2, cap=5.0, rng=random.Random())
