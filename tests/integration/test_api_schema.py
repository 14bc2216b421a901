"""The answers the fuzz level found off their schema, each checked against the spec the process serves.

One regression test per finding: a complete ``Allow``, documented 400s, the reserve 409 bodies, integer-
valued floats taken as integers, and bounded order ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis

from harness.stack import ProcessSpec, ServiceProcess, SettingValue
from tests._children import child_env

from ._support import unique, users_process
from .conftest import RunningRegistry


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One users process for the module; tests use unique ids."""
    workdir = tmp_path_factory.mktemp("users")
    process = users_process(workdir, workdir / "users.db").start()
    try:
        with httpx.Client(base_url=process.url, timeout=10.0, trust_env=False) as http:
            yield http
    finally:
        process.stop()


def conforms(http: httpx.Client, path: str, method: str, response: httpx.Response) -> None:
    """The status is documented for the operation, and the body matches the schema documented for it."""
    spec = http.get("/openapi.json").json()
    documented = spec["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in documented, (
        f"{response.status_code} undocumented: {sorted(documented)}"
    )
    operation = schemathesis.openapi.from_dict(spec)[path][method.upper()]
    operation.validate_response(response)  # raises with the mismatch when the body is off its schema


def new_user(http: httpx.Client, credit: int = 100) -> str:
    user_id = unique()
    body = {"id": user_id, "name": "N", "email": f"{user_id}@example.org", "credit": credit}
    assert http.post("/users", json=body).status_code == 201
    return user_id


@pytest.mark.behaviour("services.schema")
class TestAllowHeader:
    def test_a_405_names_every_method_of_the_resource(self, users: httpx.Client) -> None:
        """OPTIONS on a resource with GET and POST: 405, and Allow lists both (not only the first route's)."""
        response = users.request("OPTIONS", f"/users/{unique()}/reservations")
        assert response.status_code == 405
        assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST"}
        assert response.json()["message"].endswith("allowed: GET, POST.")


@pytest.mark.behaviour("services.schema", "services.bad_input")
class TestDocumentedErrors:
    def test_a_body_that_is_not_json_is_a_documented_400(self, users: httpx.Client) -> None:
        """POST /users with a NUL byte for a body: 400 malformed_json, documented with the error body."""
        response = users.post("/users", content=b"\x00", headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert response.json()["error"] == "malformed_json"
        conforms(users, "/users", "POST", response)

    @pytest.mark.parametrize(
        ("setup", "error"),
        [
            pytest.param("release", "reservation_released", id="released"),
            pytest.param("other-user", "idempotency_conflict", id="id-of-another-user"),
            pytest.param("no-credit", "insufficient_credit", id="insufficient-credit"),
        ],
    )
    def test_every_reserve_409_matches_the_documented_409(
        self, users: httpx.Client, setup: str, error: str
    ) -> None:
        """Each 409 of a reserve (released id, id of another user, no credit) matches the documented 409."""
        user_id, reservation_id = new_user(users, credit=10), unique("r")
        if setup == "release":
            assert users.post(f"/users/{user_id}/reservations/{reservation_id}/release").status_code == 200
        elif setup == "other-user":
            body = {"reservation_id": reservation_id, "amount": 1}
            assert users.post(f"/users/{new_user(users)}/reservations", json=body).status_code == 201
        amount = 11 if setup == "no-credit" else 1
        response = users.post(
            f"/users/{user_id}/reservations", json={"reservation_id": reservation_id, "amount": amount}
        )
        assert response.status_code == 409
        assert response.json()["error"] == error
        conforms(users, "/users/{user_id}/reservations", "POST", response)


@pytest.mark.behaviour("services.schema")
class TestIntegersAsJsonSchemaHasThem:
    def test_integer_valued_floats_are_integers(self, users: httpx.Client) -> None:
        """credit 250.0 and amount 233968741.0 are the integers 250 and 233968741 (JSON Schema's integers)."""
        user_id = unique()
        body = {"id": user_id, "name": "N", "email": f"{user_id}@example.org", "credit": 233968741.0}
        created = users.post("/users", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["credit"] == 233968741
        reserved = users.post(
            f"/users/{user_id}/reservations", json={"reservation_id": unique(), "amount": 5.0}
        )
        assert reserved.status_code == 201, reserved.text
        assert reserved.json()["amount"] == 5

    @pytest.mark.parametrize(
        "amount",
        [pytest.param(5.5, id="fraction"), pytest.param("5", id="string"), pytest.param(True, id="boolean")],
    )
    def test_what_is_not_an_integer_is_still_refused(self, users: httpx.Client, amount: Any) -> None:
        """5.5, "5" and true are not integers: 422 naming the amount."""
        user_id = new_user(users)
        response = users.post(
            f"/users/{user_id}/reservations", json={"reservation_id": unique(), "amount": amount}
        )
        assert response.status_code == 422
        assert "amount" in response.json()["message"]

    def test_every_service_takes_them(self, registry: RunningRegistry, tmp_path: Path) -> None:
        """The registry's port and weight, the orchestrator's amount: 8080.0, 2.0 and 5.0 are integers."""
        with httpx.Client(base_url=registry.url, timeout=10.0, trust_env=False) as http:
            body = {"service": "floats", "address": "127.0.0.1", "port": 8080.0, "weight": 2.0}
            registered = http.put(f"/v1/instances/{unique('i')}", json=body)
            assert registered.status_code == 201, registered.text
            assert (registered.json()["port"], registered.json()["weight"]) == (8080, 2)
        with orchestrator(tmp_path) as http:
            order = http.post(
                "/orders", json={"user_id": "ada", "amount": 5.0}, headers={"Idempotency-Key": unique("k")}
            )
            assert order.status_code != 422, order.text
            assert order.json()["amount"] == 5


@contextlib.contextmanager
def orchestrator(workdir: Path) -> Iterator[httpx.Client]:
    """An orchestrator alone (no registry: its calls fail fast), answering within half a second."""
    settings: dict[str, SettingValue] = {
        "database": workdir / "saga.db", "event_log": workdir / "orchestrator.jsonl", "saga_deadline": 0.5
    }  # fmt: skip
    spec = ProcessSpec("orchestrator-1", "orchestrator", settings, env=child_env())
    process = ServiceProcess(spec, workdir=workdir)
    with process, httpx.Client(base_url=process.url, timeout=10.0, trust_env=False) as http:
        yield http


@pytest.mark.behaviour("services.schema")
class TestOrderIds:
    def test_an_order_id_longer_than_documented_is_refused(self, tmp_path: Path) -> None:
        """GET /orders/{id} documents a bounded id and answers 422 for a longer one, 404 for a fitting one."""
        with orchestrator(tmp_path) as http:
            spec = http.get("/openapi.json").json()
            (param,) = spec["paths"]["/orders/{order_id}"]["get"]["parameters"]
            limit = param["schema"]["maxLength"]
            assert http.get(f"/orders/{'a' * limit}").status_code == 404
            too_long = http.get(f"/orders/{'a' * (limit + 1)}")
            assert too_long.status_code == 422
            conforms(http, "/orders/{order_id}", "GET", too_long)
