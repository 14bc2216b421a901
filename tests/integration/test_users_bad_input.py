"""Bad input to a real users process: always a JSON 4xx that names the problem, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.stack import ServiceProcess

from ._support import users_process

JSON_HEADERS = {"Content-Type": "application/json"}
USER: dict[str, Any] = {"id": "bob", "name": "Bob", "email": "bob@example.org", "credit": 10}
RESERVATION: dict[str, Any] = {"reservation_id": "r-1", "amount": 5}
CREATE = "/users"
RESERVE = "/users/existing/reservations"
BIG = 70_000  # over the default 64 KiB body limit


def case(
    case_id: str, method: str, path: str, status: int, error: str, hint: str, **request: Any
) -> pytest.ParameterSet:
    """One bad request and what the answer must say; ``hint`` must appear in the message."""
    return pytest.param(method, path, request, status, error, hint, id=case_id)


def bad_user(case_id: str, hint: str, **fields: Any) -> pytest.ParameterSet:
    """A user whose body differs from a valid one in ``fields`` (None removes the field): 422."""
    body = {k: v for k, v in {**USER, **fields}.items() if v is not None}
    return case(case_id, "POST", CREATE, 422, "validation_error", hint, json=body)


def bad_reservation(case_id: str, hint: str, **fields: Any) -> pytest.ParameterSet:
    body = {k: v for k, v in {**RESERVATION, **fields}.items() if v is not None}
    return case(case_id, "POST", RESERVE, 422, "validation_error", hint, json=body)


BAD_INPUT = [
    case("malformed-json", "POST", CREATE, 400, "malformed_json", "not valid JSON", content=b'{"id": ',
         headers=JSON_HEADERS),
    case("empty-body", "POST", CREATE, 422, "validation_error", "body is required", content=b"",
         headers=JSON_HEADERS),
    case("json-array", "POST", CREATE, 422, "validation_error", "JSON object", json=[USER]),
    case("wrong-content-type", "POST", CREATE, 415, "unsupported_media_type", "application/json",
         content=json.dumps(USER), headers={"Content-Type": "text/plain"}),
    case("oversized-body", "POST", CREATE, 413, "body_too_large", "limit", content=b"x" * BIG,
         headers=JSON_HEADERS),
    case("lone-surrogate-in-name", "POST", CREATE, 422, "validation_error", "name",
         content=b'{"id": "bob", "name": "\\ud800", "email": "bob@example.org"}', headers=JSON_HEADERS),
    bad_user("unknown-field", "nickname", nickname="bobby"),
    bad_user("missing-email", "email", email=None),
    bad_user("missing-id", "id", id=None),
    bad_user("negative-credit", "credit", credit=-1),
    bad_user("credit-as-string", "credit", credit="10"),
    bad_user("credit-as-float", "credit", credit=10.5),
    bad_user("credit-as-boolean", "credit", credit=True),
    bad_user("credit-beyond-64-bits", "credit", credit=2**70),
    bad_user("email-without-at", "email", email="bob.example.org"),
    bad_user("email-without-domain-dot", "email", email="bob@localhost"),
    bad_user("email-with-space", "email", email="bo b@example.org"),
    bad_user("email-over-254", "email", email="b" * 250 + "@x.io"),
    bad_user("empty-id", "id", id=""),
    bad_user("over-long-id", "id", id="u" * 64),
    bad_user("id-with-space", "id", id="bo b"),
    bad_user("id-starting-with-dash", "id", id="-bob"),
    bad_user("id-as-number", "id", id=7),
    bad_user("empty-name", "name", name=""),
    bad_user("over-long-name", "name", name="n" * 201),
    bad_reservation("zero-amount", "amount", amount=0),
    bad_reservation("negative-amount", "amount", amount=-5),
    bad_reservation("amount-as-string", "amount", amount="5"),
    bad_reservation("missing-amount", "amount", amount=None),
    bad_reservation("empty-reservation-id", "reservation_id", reservation_id=""),
    bad_reservation("over-long-reservation-id", "reservation_id", reservation_id="r" * 129),
    bad_reservation("reservation-id-with-slash", "reservation_id", reservation_id="a/b"),
    bad_reservation("over-long-order-id", "order_id", order_id="o" * 129),
    bad_reservation("unknown-reservation-field", "currency", currency="EUR"),
    case("over-long-user-id-in-path", "GET", f"/users/{'u' * 64}", 422, "validation_error", "user_id"),
    case("bad-user-id-in-path", "GET", "/users/a%20b", 422, "validation_error", "user_id"),
    case("over-long-reservation-id-in-path", "POST", f"/users/existing/reservations/{'r' * 129}/confirm",
         422, "validation_error", "reservation_id"),
    case("unknown-action", "POST", "/users/existing/reservations/r-1/cancel", 404, "not_found", "cancel"),
    case("wrong-method", "DELETE", "/users/existing", 405, "method_not_allowed", "DELETE"),
]  # fmt: skip


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One users process with a user ``existing`` for the reservation cases."""
    workdir = tmp_path_factory.mktemp("users-bad-input")
    process = users_process(workdir, workdir / "users.db").start()
    with httpx.Client(base_url=process.url, timeout=10.0) as http:
        body = {"id": "existing", "name": "E", "email": "e@example.org", "credit": 100}
        assert http.post("/users", json=body).status_code == 201
    yield process
    process.stop()


@pytest.fixture
async def http(users: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=users.url, timeout=10.0, trust_env=False) as client:
        yield client


@pytest.mark.behaviour("services.bad_input")
@pytest.mark.parametrize(("method", "path", "request_kwargs", "status", "error", "hint"), BAD_INPUT)
async def test_bad_input_is_a_clear_4xx(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    request_kwargs: dict[str, Any],
    status: int,
    error: str,
    hint: str,
) -> None:
    """Each bad request gets its own status and a JSON error whose message names the problem."""
    response = await http.request(method, path, **request_kwargs)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["error"] == error
    assert hint.lower() in answer["message"].lower()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
_ids = st.text(max_size=70) | st.from_regex(r"\A[a-z0-9]{1,8}\Z")
_users = _json | st.fixed_dictionaries(
    {"id": _ids | _json, "name": st.text(max_size=210) | _json, "email": st.emails() | st.text() | _json},
    optional={"credit": st.integers(-(2**70), 2**70) | _json, "extra": _json},
)
_reservations = _json | st.fixed_dictionaries(
    {"reservation_id": _ids | _json, "amount": st.integers(-(2**70), 2**70) | _json},
    optional={"order_id": st.text(max_size=140) | _json, "extra": _json},
)


@pytest.mark.behaviour("services.bad_input")
def test_fuzzed_requests_never_get_a_5xx(users: ServiceProcess) -> None:
    """Any JSON body to create, reserve, confirm or release, under any ids: a success or a JSON 4xx."""
    with httpx.Client(base_url=users.url, timeout=10.0, trust_env=False) as http:

        @settings(
            max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(
            user=_users,
            reservation=_reservations,
            user_id=_ids | st.just("existing"),
            reservation_id=_ids,
            action=st.sampled_from(["confirm", "release"]),
        )
        def check(user: Any, reservation: Any, user_id: str, reservation_id: str, action: str) -> None:
            base = f"/users/{quote(user_id, safe='')}"
            responses = [
                http.post("/users", content=json.dumps(user), headers=JSON_HEADERS),
                http.post(f"{base}/reservations", content=json.dumps(reservation), headers=JSON_HEADERS),
                http.post(f"{base}/reservations/{quote(reservation_id, safe='')}/{action}"),
                http.get(base),
            ]
            for response in responses:
                assert response.status_code < 500, response.text
                if response.status_code >= 400:
                    answer = response.json()
                    assert answer["error"]
                    assert answer["message"]

        check()
