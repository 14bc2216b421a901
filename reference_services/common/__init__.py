"""What every reference service shares: the app factory, JSON errors, body guards, the socket runner."""

from ._app import create_service_app
from ._discovery import Peers, joined, registration
from ._errors import ApiError, ErrorBody, ErrorDetail, error_response
from ._guards import BodyTooLarge, LoadShedMiddleware, require_json
from ._provider_states import (
    PROVIDER_STATES_PATH,
    LoadShedSwitch,
    NoParams,
    ProviderState,
    StateChange,
    exempt_paths,
    provider_states_router,
)
from ._refusals import ContractRefusal, contract_refusal
from ._server import run_app, stopping_event
from ._settings import NAME_PATTERN, ServiceSettings
from ._sqlite import Database, StorageBusy, read_transaction, write_transaction
from ._wire import JsonInteger

__all__ = [
    "NAME_PATTERN",
    "PROVIDER_STATES_PATH",
    "ApiError",
    "BodyTooLarge",
    "ContractRefusal",
    "Database",
    "ErrorBody",
    "ErrorDetail",
    "JsonInteger",
    "LoadShedMiddleware",
    "LoadShedSwitch",
    "NoParams",
    "Peers",
    "ProviderState",
    "ServiceSettings",
    "StateChange",
    "StorageBusy",
    "contract_refusal",
    "create_service_app",
    "error_response",
    "exempt_paths",
    "joined",
    "provider_states_router",
    "read_transaction",
    "registration",
    "require_json",
    "run_app",
    "stopping_event",
    "write_transaction",
]
