"""What needs an operator: sagas that stopped as NEEDS_ATTENTION and outbox events that became dead letters.

Read from the services' APIs, for ``harness status`` and the status line of ``harness up``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Stuck:
    what: str  # an order id or an event id
    reason: str


@dataclass
class Attention:
    orders_by_state: dict[str, int] = field(default_factory=dict)
    needs_attention: list[Stuck] = field(default_factory=list)
    dead_letters: list[Stuck] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # what could not be asked

    @property
    def clear(self) -> bool:
        return not (self.needs_attention or self.dead_letters)


def read_attention(orchestrator_url: str | None, users_url: str | None, *, timeout: float = 2.0) -> Attention:
    """Orders by state and what needs attention; a service that does not answer is listed in ``unknown``."""
    found = Attention()
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        if orchestrator_url is not None:
            try:
                body = http.get(f"{orchestrator_url}/orders", params={"state": "NEEDS_ATTENTION"}).json()
                found.orders_by_state = dict(body["counts"])
                found.needs_attention = [Stuck(o["order_id"], o.get("reason") or "") for o in body["orders"]]
            except (httpx.HTTPError, ValueError, KeyError):
                found.unknown.append("orchestrator")
        if users_url is not None:
            try:
                body = http.get(f"{users_url}/outbox/dead-letters").json()
                found.dead_letters = [Stuck(d["event_id"], d["reason"]) for d in body["dead_letters"]]
            except (httpx.HTTPError, ValueError, KeyError):
                found.unknown.append("users")
    return found
