"""Provider states for contract verification: ``POST /_pact/provider_states``, mounted only in test mode.

The pact verifier posts ``{"state", "params", "action"}`` before (setup) and after (teardown) each
interaction; each service names its states and seeds or cleans data through its own store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from ._errors import ApiError, ErrorBody
from ._guards import LoadShedMiddleware

logger = logging.getLogger(__name__)

PROVIDER_STATES_PATH = "/_pact/provider_states"

P = TypeVar("P", bound=BaseModel)


class StateChange(BaseModel):
    """What the pact verifier posts (the state-change URL variant with ``body=True``)."""

    model_config = ConfigDict(extra="forbid")

    state: str
    action: Literal["setup", "teardown"] = "setup"
    params: dict[str, JsonValue] = Field(default_factory=dict)


class NoParams(BaseModel):
    """Parameters of a state that takes none (any sent are ignored)."""

    model_config = ConfigDict(extra="ignore")


@dataclass(frozen=True)
class ProviderState(Generic[P]):
    """One named state: its parameter model, how to set it up, and how to clean it up (optional)."""

    name: str
    params: type[P]
    setup: Callable[[P], Awaitable[None]]
    teardown: Callable[[P], Awaitable[None]] | None = None

    async def apply(self, action: Literal["setup", "teardown"], raw: dict[str, JsonValue]) -> None:
        try:
            params = self.params.model_validate(raw)
        except ValidationError as exc:
            raise ApiError(400, "invalid_state_params", f"State {self.name!r}: {exc}") from exc
        handler = self.setup if action == "setup" else self.teardown
        if handler is None:
            return
        try:
            await handler(params)
        except Exception as exc:
            # A 4xx, not a 5xx: the verifier retries a 5xx with backoff for about two minutes.
            message = f"State {self.name!r} ({action}) failed: {type(exc).__name__}: {exc}"
            raise ApiError(400, "provider_state_failed", message) from exc


def provider_states_router(states: Iterable[ProviderState[Any]]) -> APIRouter:
    """The test-mode route; an unknown state is a 400 naming the known ones, so a pact typo is obvious."""
    by_name = {state.name: state for state in states}
    router = APIRouter(tags=["contract testing"], include_in_schema=False)

    @router.post(PROVIDER_STATES_PATH, responses={400: {"model": ErrorBody}})
    async def change_state(change: StateChange) -> dict[str, str]:
        """Set up or tear down one provider state for the next interaction."""
        if change.state == "":  # the verifier's generic hook around every interaction
            return {}
        state = by_name.get(change.state)
        if state is None:
            known = ", ".join(repr(name) for name in sorted(by_name))
            raise ApiError(400, "unknown_provider_state", f"Unknown state {change.state!r}; known: {known}.")
        logger.info("provider state %s: %s %s", change.action, change.state, change.params)
        await state.apply(change.action, change.params)
        return {}

    return router


class LoadShedSwitch:
    """Makes the app's real LoadShedMiddleware believe it is full, so it sheds every counted request.

    The middleware is found in the built middleware stack at the first switch (a request is being
    served then, so the stack exists); its slots are occupied, never its code replaced.
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._occupied = 0

    def _shedder(self) -> LoadShedMiddleware:
        layer: object = self._app.middleware_stack
        while layer is not None:
            if isinstance(layer, LoadShedMiddleware):
                return layer
            layer = getattr(layer, "app", None)
        raise RuntimeError("the app has no LoadShedMiddleware")

    async def saturate(self, _params: BaseModel) -> None:
        if self._occupied == 0:
            shedder = self._shedder()
            self._occupied = shedder.max_in_flight
            shedder.in_flight += self._occupied

    async def release(self, _params: BaseModel) -> None:
        if self._occupied:
            self._shedder().in_flight -= self._occupied
            self._occupied = 0


def exempt_paths(test_mode: bool) -> tuple[str, ...]:
    """Paths load shedding never counts: probes, and in test mode the state route (it must switch back)."""
    return ("/health", "/metrics", *((PROVIDER_STATES_PATH,) if test_mode else ()))
