"""A provider that renamed one field fails verification, and the report names the interaction and the field.

The broken users provider is the real users app with ``available`` renamed to ``available_credit`` in every
JSON answer, served in this process; the broken publisher renames ``user.email`` in ``user.created``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harness._contract_cli import contract
from harness.contract import ProducedMessage, ProviderTarget, load_pact, provider_target, verify_pact
from reference_services.users import UsersSettings, create_app
from reference_services.users.events import EventUser, user_created_event

from .._support import CONTRACTS


class RenameField:
    """ASGI wrapper: renames a JSON key in every response body (the provider's "harmless refactoring")."""

    def __init__(self, app: ASGIApp, old: str, new: str) -> None:
        self.app = app
        self.old = f'"{old}":'.encode()
        self.new = f'"{new}":'.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def rename(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks).replace(self.old, self.new)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rename)


@pytest.fixture(scope="module")
def broken_users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderTarget]:
    """The users app in test mode, with ``available`` renamed, on a loopback port of this process."""
    settings = UsersSettings(database=tmp_path_factory.mktemp("broken") / "users.sqlite3", test_mode=True)
    app = RenameField(create_app(settings), "available", "available_credit")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="broken-users")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the broken users app exited"
        assert time.monotonic() < deadline, "the broken users app did not start in time"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield provider_target("users", f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.behaviour("contract.broken_provider")
def test_renamed_field_fails_naming_interaction_and_field(broken_users: ProviderTarget) -> None:
    """harness-users pins ``available`` in "a request for a user": that interaction fails on that field."""
    result = verify_pact(load_pact(CONTRACTS / "harness-users.json"), broken_users)
    assert not result.passed
    failed = {i.description: i for i in result.failed}
    assert list(failed) == ["a request for a user"]
    assert any("available" in m for m in failed["a request for a user"].mismatches), failed
    assert "a request for a user" in result.output
    assert "Actual map is missing the following keys: available" in result.output


@pytest.mark.behaviour("contract.broken_provider")
def test_renamed_field_in_an_error_body_fails_too(broken_users: ProviderTarget) -> None:
    """The 409 insufficient-credit body carries ``available`` for the orchestrator: only that one fails."""
    result = verify_pact(load_pact(CONTRACTS / "orchestrator-users.json"), broken_users)
    assert [i.description for i in result.failed] == ["a request to reserve more credit than available"]
    assert "available" in " ".join(result.failed[0].mismatches)


def _renamed_email(_description: str) -> ProducedMessage:
    event = user_created_event(
        EventUser(id="u-1", name="Ada", email="ada@example.org"), str(uuid.uuid4()), datetime.now(UTC)
    )
    event["user"]["mail"] = event["user"].pop("email")
    return ProducedMessage(json.dumps(event).encode(), metadata={"event_type": "user.created"})


@pytest.mark.behaviour("contract.broken_provider")
def test_renamed_field_in_a_message_fails() -> None:
    """A publisher that renamed ``user.email`` breaks the ``user.created`` message contract, by name."""
    target = ProviderTarget("users", messages=_renamed_email)
    result = verify_pact(load_pact(CONTRACTS / "notifications-users.json"), target)
    assert [i.description for i in result.failed] == ["a user.created event"]
    assert result.failed[0].mismatches == (
        "BodyMismatch: $.user -> Actual map is missing the following keys: email",
    )


@pytest.mark.behaviour("contract.broken_provider", "contract.can_i_deploy")
def test_cli_reports_the_broken_provider(broken_users: ProviderTarget, tmp_path: Path) -> None:
    """``harness contract verify`` exits 1, the matrix shows the failing pairs, can-i-deploy says no."""
    results = tmp_path / "results.json"
    args = ["verify", "--provider", "users", "--url", f"users={broken_users.url}", "--results", str(results)]
    run = CliRunner().invoke(contract, args)
    assert run.exit_code == 1
    assert "FAIL  a request for a user (given a user with a reservation)" in run.output
    assert "Actual map is missing the following keys: available" in run.output
    assert "pact(s) not honoured: harness -> users, orchestrator -> users" in run.output
    answer = CliRunner().invoke(contract, ["can-i-deploy", "users", "--results", str(results)])
    assert answer.exit_code == 1
    assert "blocked  harness -> users (harness-users.json): verification failed" in answer.output


@pytest.mark.behaviour("contract.broken_provider")
def test_failing_provider_state_fails_at_once_with_its_reason(providers: dict[str, ProviderTarget]) -> None:
    """A state that cannot be set up fails its interactions at once, with the reason (no verifier retries)."""

    def broken_states(state: str, action: str, params: dict[str, object]) -> None:
        raise RuntimeError("the registry refused the seed")

    target = ProviderTarget("registry", url=providers["registry"].url, state_function=broken_states)
    started = time.monotonic()
    result = verify_pact(load_pact(CONTRACTS / "notifications-registry.json"), target)
    assert time.monotonic() - started < 10  # a 5xx would be retried with backoff for about two minutes
    assert not result.passed
    assert result.interactions
    for interaction in result.interactions:
        assert not interaction.passed
        assert f"provider state {interaction.states[0]!r} (setup) failed: the registry refused the seed" in (
            interaction.mismatches
        )
