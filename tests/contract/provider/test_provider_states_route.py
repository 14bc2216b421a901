"""The provider-state route: mounted only in test mode, and it sets states through the service's store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from harness.contract import ProviderTarget
from reference_services.common import PROVIDER_STATES_PATH
from reference_services.notifications import NotificationsSettings
from reference_services.notifications import create_app as notifications_app
from reference_services.users import UsersSettings
from reference_services.users import create_app as users_app


def _users(database: Path) -> FastAPI:
    return users_app(UsersSettings(database=database))


def _notifications(database: Path) -> FastAPI:
    return notifications_app(NotificationsSettings(database=database))


@pytest.mark.parametrize(
    "factory", [pytest.param(_users, id="users"), pytest.param(_notifications, id="notifications")]
)
async def test_route_is_absent_without_test_mode(factory: Callable[[Path], FastAPI], tmp_path: Path) -> None:
    """A normal instance (as ``harness up`` starts it) answers 404: there is nothing to reach."""
    app = factory(tmp_path / "db.sqlite3")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as http:
        answer = await http.post(
            PROVIDER_STATES_PATH, json={"state": "no such user", "params": {"user_id": "x"}}
        )
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


def change(target: ProviderTarget, state: str, action: str = "setup", **params: object) -> httpx.Response:
    assert target.state_url is not None
    return httpx.post(target.state_url, json={"state": state, "action": action, "params": params})


class TestInTestMode:
    def test_unknown_state_is_refused_by_name(self, providers: dict[str, ProviderTarget]) -> None:
        """400 naming the known states, answered at once (a 5xx would be retried by the verifier)."""
        answer = change(providers["users"], "a user named Bob")
        assert answer.status_code == 400
        assert "'a user with available credit'" in answer.json()["message"]

    def test_user_state_is_set_up_and_torn_down(self, providers: dict[str, ProviderTarget]) -> None:
        """Setup creates the user through the store; teardown removes it again."""
        users = providers["users"]
        assert change(users, "a user with available credit", user_id="u-route", credit=40).status_code == 200
        assert httpx.get(f"{users.url}/users/u-route").json()["available"] == 40
        assert change(users, "a user with available credit", "teardown", user_id="u-route").status_code == 200
        assert httpx.get(f"{users.url}/users/u-route").status_code == 404

    def test_shedding_state_uses_the_real_load_shedder(self, providers: dict[str, ProviderTarget]) -> None:
        """While shedding, every counted request gets 503 with Retry-After; the state route itself never."""
        users = providers["users"]
        assert change(users, "users is shedding load").status_code == 200
        try:
            shed = httpx.get(f"{users.url}/users/u-anyone")
            assert shed.status_code == 503
            assert shed.headers["Retry-After"] == "1"
            assert shed.json()["error"] == "overloaded"
        finally:
            assert change(users, "users is shedding load", "teardown").status_code == 200
        assert httpx.get(f"{users.url}/users/u-anyone").status_code == 404

    def test_notification_state(self, providers: dict[str, ProviderTarget]) -> None:
        """A stored notification is there after setup, gone after teardown."""
        notifications = providers["notifications"]
        fields = {"notification_id": "n-route", "user_id": "u-route", "type": "t", "message": "m"}
        assert change(notifications, "a stored notification", **fields).status_code == 200
        assert httpx.get(f"{notifications.url}/notifications/n-route").status_code == 200
        assert change(notifications, "a stored notification", "teardown", **fields).status_code == 200
        assert httpx.get(f"{notifications.url}/notifications/n-route").status_code == 404
