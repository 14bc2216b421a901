"""The order saga across real processes: registry, users x3, notifications, orchestrator on loopback."""

from __future__ import annotations

import concurrent.futures
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.checks import check_saga_invariants, collect_saga_snapshot
from harness.faults import ToxiproxyClient
from harness.settings import ClientSettings
from harness.stack import Stack, Topology, fast_topology
from harness.stack._topology import ServiceTopology

FAST = fast_topology()
# One instance of each, and an attempt towards notifications long enough to outlast a held request.
CUT = Topology(
    registry=FAST.registry,
    services={
        "users": ServiceTopology(instances=1, heartbeat_interval=0.5),
        "notifications": ServiceTopology(instances=1, heartbeat_interval=0.5),
        "orchestrator": ServiceTopology(instances=1, heartbeat_interval=0.5,
                                        clients={"notifications": ClientSettings(attempt_timeout=10.0,
                                                                                 deadline=30.0)}),
    },
    toxiproxy_seed=7,
)  # fmt: skip
FINAL = frozenset({"COMPLETED", "COMPENSATED", "NEEDS_ATTENTION"})
UVICORN_400 = "400 Invalid HTTP request received."  # what the server's HTTP layer says to garbled bytes


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the tests that leave every process running."""
    with Stack(FAST, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own, for a test that kills or stops processes."""
    with Stack(FAST, tmp_path) as running:
        yield running


def create_user(stack: Stack, credit: int) -> str:
    user = f"u-{uuid.uuid4().hex[:10]}"
    answer = httpx.post(
        f"{stack.instances('users')[0].url}/users",
        json={"id": user, "name": "Test User", "email": f"{user}@example.test", "credit": credit},
    )
    assert answer.status_code == 201, answer.text
    return user


def place(
    stack: Stack, user: str, amount: int, key: str | None = None, timeout: float = 30.0
) -> httpx.Response:
    return httpx.post(
        f"{stack.url('orchestrator-1')}/orders",
        json={"user_id": user, "amount": amount},
        headers={"Idempotency-Key": key or uuid.uuid4().hex},
        timeout=timeout,
    )


def invariant_violations(stack: Stack) -> list[str]:
    snapshot = collect_saga_snapshot(
        stack.url("orchestrator-1"), stack.instances("users")[0].url, stack.instances("notifications")[0].url
    )
    return check_saga_invariants(snapshot)


class TestOrderSaga:
    @pytest.mark.behaviour("saga.completes")
    def test_order_completes_and_holds_credit(self, stack: Stack) -> None:
        """201 COMPLETED; credit held at users; exactly one notification for the order."""
        user = create_user(stack, credit=1000)
        answer = place(stack, user, 300)
        assert answer.status_code == 201
        order = answer.json()
        assert order["state"] == "COMPLETED"
        assert [s["step"] for s in order["steps"] if s["status"] == "succeeded"] == [
            "reserve_credit", "record_order", "confirm_credit", "notify"]  # fmt: skip
        held = httpx.get(f"{stack.instances('users')[1].url}/users/{user}").json()
        assert (held["reserved"], held["available"]) == (300, 700)
        notes = httpx.get(
            f"{stack.instances('notifications')[0].url}/notifications", params={"user_id": user}
        )
        order_notes = [n for n in notes.json()["notifications"] if n["type"] == "order.completed"]
        assert [n["notification_id"] for n in order_notes] == [f"order-{order['order_id']}-completed"]
        assert invariant_violations(stack) == []

    @pytest.mark.behaviour("saga.idempotent_orders")
    def test_replayed_post_creates_one_order(self, stack: Stack) -> None:
        """The same Idempotency-Key twice: one order, the second answer 200 with the same id."""
        user = create_user(stack, credit=1000)
        first = place(stack, user, 100, key=f"{user}-k")
        again = place(stack, user, 100, key=f"{user}-k")
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["order_id"] == again.json()["order_id"]
        orders = httpx.get(f"{stack.url('orchestrator-1')}/orders", params={"user_id": user}).json()["orders"]
        assert len(orders) == 1
        reservations = httpx.get(f"{stack.instances('users')[2].url}/users/{user}/reservations").json()
        assert len(reservations["reservations"]) == 1

    @pytest.mark.behaviour("saga.idempotent_orders")
    def test_same_key_for_a_different_order_conflicts(self, stack: Stack) -> None:
        """A key reused with another amount is a 409 naming the first order."""
        user = create_user(stack, credit=1000)
        first = place(stack, user, 100, key=f"{user}-k").json()
        conflict = place(stack, user, 200, key=f"{user}-k")
        assert conflict.status_code == 409
        assert first["order_id"] in conflict.json()["message"]

    @pytest.mark.behaviour("saga.compensation")
    def test_insufficient_credit_compensates(self, stack: Stack) -> None:
        """More than the credit: users says no, the saga ends COMPENSATED and nothing is held."""
        user = create_user(stack, credit=50)
        order = place(stack, user, 100).json()
        assert order["state"] == "COMPENSATED"
        assert order["reason"].startswith("reserve_credit rejected")
        assert httpx.get(f"{stack.instances('users')[0].url}/users/{user}").json()["reserved"] == 0

    @pytest.mark.behaviour("services.bad_input")
    @pytest.mark.parametrize(
        ("body", "headers"),
        [
            pytest.param({"user_id": "u", "amount": 0}, {"Idempotency-Key": "k"}, id="zero-amount"),
            pytest.param({"user_id": "u", "amount": "10"}, {"Idempotency-Key": "k"}, id="amount-as-string"),
            pytest.param(
                {"user_id": "u", "amount": 10, "x": 1}, {"Idempotency-Key": "k"}, id="unknown-field"
            ),
            pytest.param({"user_id": "bad id", "amount": 10}, {"Idempotency-Key": "k"}, id="bad-user-id"),
            pytest.param({"user_id": "u", "amount": 10}, {}, id="no-idempotency-key"),
        ],
    )
    def test_bad_orders_are_4xx_json(
        self, stack: Stack, body: dict[str, object], headers: dict[str, str]
    ) -> None:
        """Bad input never reaches the saga and never yields a 5xx."""
        answer = httpx.post(f"{stack.url('orchestrator-1')}/orders", json=body, headers=headers)
        assert 400 <= answer.status_code < 500
        assert answer.json()["error"]

    @pytest.mark.behaviour("services.bad_input")
    def test_unknown_order_is_404(self, stack: Stack) -> None:
        """GET of an order that does not exist is a JSON 404."""
        answer = httpx.get(f"{stack.url('orchestrator-1')}/orders/nope")
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"


class TestFailures:
    @pytest.mark.behaviour("saga.pivot_rule")
    def test_notifications_down_after_the_pivot_delays_the_customer_but_undoes_nothing(
        self, own_stack: Stack
    ) -> None:
        """Notifications stopped: the credit is confirmed (the pivot) and the saga waits to notify; when
        notifications is back the customer is told and the order completes; nothing is compensated."""
        user = create_user(own_stack, credit=1000)
        own_stack.processes["notifications-1"].stop()
        with contextlib.suppress(httpx.TimeoutException):  # the saga goes on without the client
            place(own_stack, user, 100, timeout=1.0)
        order = order_reaching(own_stack, user, "NOTIFYING")
        held = httpx.get(f"{own_stack.instances('users')[0].url}/users/{user}").json()
        assert held["reserved"] == 100
        own_stack.restart("notifications-1")
        order = order_reaching(own_stack, user, "COMPLETED")
        done = [(s["step"], s["status"]) for s in order["steps"]]
        assert ("notify", "failed") in done
        assert not [step for step, _ in done if step in ("cancel_order", "release_credit")]
        assert invariant_violations(own_stack) == []

    @pytest.mark.behaviour("saga.crash_recovery", "saga.invariants")
    def test_orchestrator_killed_with_sagas_in_flight_leaves_no_half_done_order(
        self, own_stack: Stack
    ) -> None:
        """SIGKILL with 50 sagas in flight, restart: every order ends COMPLETED or COMPENSATED, consistent."""
        users = [create_user(own_stack, credit=1000) for _ in range(5)]
        keys = [(users[n % 5], f"kill-{n}") for n in range(50)]
        database = own_stack.database("orchestrator")

        def post(user_key: tuple[str, str]) -> int | None:
            try:
                return place(own_stack, user_key[0], 150, key=user_key[1], timeout=10.0).status_code
            except httpx.TransportError:
                return None

        # A slow database at users (its write lock held here) keeps every saga in flight until the kill.
        users_db = sqlite3.connect(own_stack.database("users"), timeout=5.0, isolation_level=None)
        users_db.execute("BEGIN IMMEDIATE")
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
                futures = [pool.submit(post, item) for item in keys]
                deadline = time.monotonic() + 20.0
                while count_orders(database) < len(keys) and time.monotonic() < deadline:
                    time.sleep(0.01)
                own_stack.kill("orchestrator-1")
                concurrent.futures.wait(futures, timeout=30.0)
        finally:
            users_db.execute("ROLLBACK")
            users_db.close()
        unfinished_at_kill = count_orders(database, unfinished=True)
        assert unfinished_at_kill > 0, "the kill came after every saga had finished: nothing was tested"

        own_stack.restart("orchestrator-1")
        deadline = time.monotonic() + 30.0
        while count_orders(database, unfinished=True) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_orders(database, unfinished=True) == 0
        # Clients retry what failed; the same keys must not create new orders.
        before = count_orders(database)
        replays = [place(own_stack, user, 150, key=key) for user, key in keys]
        assert all(r.status_code in (200, 201) for r in replays)
        assert count_orders(database) == len(keys) >= before
        assert invariant_violations(own_stack) == []


@pytest.fixture(scope="class")
def cut_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own whose notifications proxy gets toxics that cut or garble the saga's calls."""
    with Stack(CUT, tmp_path_factory.mktemp("cut")) as running:
        yield running


@pytest.mark.behaviour("saga.pivot_rule", "saga.bounded_retries")
class TestBrokenConnectionsAfterThePivot:
    """A request or answer a toxic cut is a failure to deliver, never a refusal: the saga finishes."""

    def test_a_garbled_request_answered_400_by_the_http_layer_is_retried_and_completes(
        self, cut_stack: Stack
    ) -> None:
        """The stuck case: a toxic loses the first bytes of the notify request, so uvicorn answers the
        rest with its plain-text 400. The status-only rule took that 400 for a clear no and left the saga
        NEEDS_ATTENTION in NOTIFYING ("notify rejected: 400 Invalid HTTP request received."); it is a
        failure to deliver, retried once the toxic goes, and the order completes."""
        stack, proxy = cut_stack, toxiproxy(cut_stack)
        user = settled_user(stack)
        before = proxy_bytes_received(stack, "notifications-1")
        # Slices of at most 8 bytes; the reset_peer toxic swallows the first one (the request's first
        # bytes) and holds the rest until it is removed, which lets the rest through: garbage for uvicorn.
        proxy.add_toxic("notifications-1", "slicer", stream="upstream", name="slices",
                        attributes={"average_size": 8, "size_variation": 0, "delay": 0})  # fmt: skip
        proxy.add_toxic("notifications-1", "reset_peer", stream="upstream", name="lose-first-bytes",
                        attributes={"timeout": 600_000})  # fmt: skip
        try:
            with contextlib.suppress(httpx.TimeoutException):  # the saga goes on without the client
                place(stack, user, 100, timeout=0.5)
            order_reaching(stack, user, "NOTIFYING")
            deadline = time.monotonic() + 20.0
            while proxy_bytes_received(stack, "notifications-1") <= before + 8:  # more than the lost slice
                assert time.monotonic() < deadline, "the notify request never reached the proxy"
                time.sleep(0.01)
        finally:
            proxy.remove_toxic("notifications-1", "lose-first-bytes")
            proxy.remove_toxic("notifications-1", "slices")
        order = order_reaching(stack, user, "COMPLETED")
        done = [(s["step"], s["status"], s["detail"].get("detail", "")) for s in order["steps"]]
        answered = [detail for step, status, detail in done if (step, status) == ("notify", "failed")]
        assert answered, "the notify call was never garbled: nothing was reproduced"
        assert answered[0].startswith(UVICORN_400)  # the old rule: 400 is a clear no -> NEEDS_ATTENTION
        assert not [
            row for row in done if row[1] == "stalled" or row[0] in ("cancel_order", "release_credit")
        ]
        assert_one_notification_and_credit_held(stack, user, order)

    @pytest.mark.parametrize(
        ("stream", "cut_after"),
        [pytest.param("upstream", 400, id="request-cut-mid-body"),
         pytest.param("downstream", 200, id="answer-cut-mid-body")],
    )  # fmt: skip
    def test_a_connection_closed_mid_message_is_retried_and_completes(
        self, cut_stack: Stack, stream: str, cut_after: int
    ) -> None:
        """limit_data closes the connection after part of the notify request (the request never counts)
        or of its answer (the notification was stored: the retry is deduplicated); both are failures to
        deliver, retried until the toxic goes, and the order completes with one notification."""
        stack, proxy = cut_stack, toxiproxy(cut_stack)
        user = settled_user(stack)
        proxy.add_toxic(
            "notifications-1", "limit_data", stream=stream, name="cut", attributes={"bytes": cut_after}
        )
        try:
            with contextlib.suppress(httpx.TimeoutException):
                place(stack, user, 100, timeout=0.5)
            failed = order_with_step(stack, user, "notify", "failed")
            assert failed["state"] == "NOTIFYING"
        finally:
            proxy.remove_toxic("notifications-1", "cut")
        order = order_reaching(stack, user, "COMPLETED")
        assert not [s for s in order["steps"] if s["status"] == "stalled"]
        assert_one_notification_and_credit_held(stack, user, order)


def toxiproxy(stack: Stack) -> ToxiproxyClient:
    assert stack.toxiproxy is not None
    return stack.toxiproxy


def settled_user(stack: Stack) -> str:
    """A new user whose welcome notification is delivered, so no other call crosses the proxy."""
    user = create_user(stack, credit=1000)
    url = f"{stack.instances('notifications')[0].url}/notifications"
    deadline = time.monotonic() + 20.0
    while not httpx.get(url, params={"user_id": user}).json()["notifications"]:
        assert time.monotonic() < deadline, f"the welcome notification of {user} was not delivered"
        time.sleep(0.05)
    return user


def proxy_bytes_received(stack: Stack, proxy: str) -> float:
    """Bytes the fault proxy has read from the callers of ``proxy`` (its upstream byte counter)."""
    text = httpx.get(f"{stack.processes['toxiproxy'].url}/metrics").text
    labels = ("toxiproxy_proxy_received_bytes_total{", 'direction="upstream"', f'proxy="{proxy}"')
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if all(x in line for x in labels))


def order_with_step(stack: Stack, user: str, step: str, status: str, within: float = 30.0) -> dict[str, Any]:
    """The user's one order once its log has a ``step`` row with ``status``."""
    url = stack.url("orchestrator-1")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        orders = httpx.get(f"{url}/orders", params={"user_id": user}).json()["orders"]
        if orders:
            order: dict[str, Any] = httpx.get(f"{url}/orders/{orders[0]['order_id']}").json()
            if any((s["step"], s["status"]) == (step, status) for s in order["steps"]):
                return order
        time.sleep(0.05)
    raise AssertionError(f"the order of {user} had no {step} {status} row within {within:g}s")


def assert_one_notification_and_credit_held(stack: Stack, user: str, order: dict[str, Any]) -> None:
    notes = httpx.get(f"{stack.instances('notifications')[0].url}/notifications", params={"user_id": user})
    ids = [n["notification_id"] for n in notes.json()["notifications"] if n["type"] == "order.completed"]
    assert ids == [f"order-{order['order_id']}-completed"]
    assert httpx.get(f"{stack.instances('users')[0].url}/users/{user}").json()["reserved"] == order["amount"]
    assert invariant_violations(stack) == []


def order_reaching(stack: Stack, user: str, state: str, within: float = 20.0) -> dict[str, Any]:
    """The user's one order with its steps, once it is in ``state``; fails after ``within`` seconds, or
    at once when the order is final in another state (nothing moves it on by itself)."""
    url = stack.url("orchestrator-1")
    deadline = time.monotonic() + within
    seen = None
    while time.monotonic() < deadline:
        orders = httpx.get(f"{url}/orders", params={"user_id": user}).json()["orders"]
        seen = orders[0]["state"] if orders else None
        if seen == state:
            found: dict[str, Any] = httpx.get(f"{url}/orders/{orders[0]['order_id']}").json()
            return found
        if seen in FINAL:
            raise AssertionError(f"the order of {user} ended {seen}, not {state}: {orders[0]['reason']}")
        time.sleep(0.05)
    raise AssertionError(f"the order of {user} did not reach {state} within {within:g}s (last: {seen})")


def count_orders(database: Path, *, unfinished: bool = False) -> int:
    """Read the orchestrator's own saga log, as an operator would after a crash."""
    if not database.exists():
        return 0
    query = "SELECT COUNT(*) FROM orders"
    if unfinished:
        query += " WHERE state NOT IN ('COMPLETED', 'COMPENSATED')"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5.0) as db:
        try:
            return int(db.execute(query).fetchone()[0])
        except sqlite3.OperationalError:  # the orchestrator has not created its tables yet
            return 0
