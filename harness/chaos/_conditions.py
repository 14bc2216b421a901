"""Conditions ``wait_until`` waits for: a breaker state, registry membership, or every saga settled."""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, model_validator

from ._evidence import breaker_state, registry_members
from ._session import ChaosSession

FINAL = frozenset({"COMPLETED", "COMPENSATED", "NEEDS_ATTENTION"})


class Condition(BaseModel):
    """Exactly one of: ``breaker`` (with ``caller`` and ``instance``), ``member`` (with ``service`` and
    ``instance``), ``sagas_settled``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    breaker: Literal["closed", "open", "half_open"] | None = None
    member: bool | None = None
    sagas_settled: bool | None = None
    caller: str | None = None
    service: str | None = None
    instance: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        kinds = [k for k in ("breaker", "member", "sagas_settled") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a condition names exactly one of breaker, member, sagas_settled")
        if self.breaker is not None and not (self.caller and self.instance):
            raise ValueError("a breaker condition needs caller and instance")
        if self.member is not None and not (self.service and self.instance):
            raise ValueError("a member condition needs service and instance")
        return self

    def describe(self) -> str:
        if self.breaker is not None:
            return f"{self.caller}'s breaker towards {self.instance} {self.breaker}"
        if self.member is not None:
            return f"{self.instance} {'listed' if self.member else 'not listed'} for {self.service}"
        return "every saga settled"


def condition_holds(session: ChaosSession, condition: Condition) -> bool:
    if condition.breaker is not None:
        assert condition.caller is not None
        assert condition.instance is not None
        session.instance(condition.caller)
        return breaker_state(session.timeline(), condition.caller, condition.instance) == condition.breaker
    if condition.member is not None:
        assert condition.service is not None
        assert condition.instance is not None
        return (condition.instance in registry_members(session, condition.service)) == condition.member
    return sagas_settled(session)


def sagas_settled(session: ChaosSession) -> bool:
    """Every saga the orchestrator knows is final (completed, compensated or needing attention)."""
    url = session.first("orchestrator").url
    try:
        counts = httpx.get(f"{url}/orders", params={"limit": 1}, timeout=5.0, trust_env=False).json()[
            "counts"
        ]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return all(state in FINAL for state in counts)
