"""Telling a refusal from a failure to deliver, for a service that calls another.

A refusal is only what the callee's contract defines: a 4xx (other than the "not now" ones: 408, 425,
429) whose body is the services' documented JSON error, ``{"error": <snake_case code>, "message": ...}``.
Anything else without a success may not have been read at all: a cut or garbled request gets a plain-text
400 from the server's HTTP layer (uvicorn), never a JSON error. Such answers are retried, never given up
on as if the callee had said no.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

NOT_NOW = frozenset({408, 425, 429})
"""4xx statuses that say "not now" rather than "no": retried."""


class ContractRefusal(BaseModel):
    """The documented error body (``ErrorBody``), read leniently: a service may add facts to a refusal (the
    users' 409 ``insufficient_credit`` adds ``available``), and validation ``details`` are not needed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    error: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)
    message: str = Field(min_length=1)


def contract_refusal(response: httpx.Response) -> ContractRefusal | None:
    """The refusal ``response`` carries when it is one the callee's contract defines; None otherwise."""
    if not 400 <= response.status_code < 500 or response.status_code in NOT_NOW:
        return None
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return None
    try:
        return ContractRefusal.model_validate_json(response.content)
    except ValidationError:
        return None
