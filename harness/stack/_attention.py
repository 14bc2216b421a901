"""What needs an operator: sagas that stopped as NEEDS_ATTENTION, outbox events that became dead letters,
instances the registry does not list as healthy, breakers that are open.

Read from the services' APIs and ``/metrics``, for ``harness status`` and the status line of ``harness up``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families


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


def healthy_in_registry(registry_url: str, *, timeout: float = 2.0) -> dict[str, int] | None:
    """Per service, how many instances the registry lists as healthy; None when it does not answer."""
    try:
        services = httpx.get(f"{registry_url}/v1/services", timeout=timeout, trust_env=False).json()[
            "services"
        ]
        return {name: int(facts["healthy"]) for name, facts in services.items()}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def open_breakers(caller_urls: list[str], *, timeout: float = 2.0) -> list[str] | None:
    """``service/instance`` of every breaker the callers report OPEN in their ``/metrics``; None when one
    does not answer."""
    found: list[str] = []
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        for url in caller_urls:
            try:
                text = http.get(f"{url}/metrics").text
            except httpx.HTTPError:
                return None
            for family in text_string_to_metric_families(text):
                if family.name != "harness_client_breaker_state":
                    continue
                found += [
                    f"{s.labels['service']}/{s.labels['instance']}" for s in family.samples if s.value == 1
                ]
    return sorted(found)
