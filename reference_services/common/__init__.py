"""What every reference service shares: the app factory, JSON errors, body guards, the socket runner."""

from ._app import create_service_app
from ._errors import ApiError, ErrorBody, ErrorDetail, error_response
from ._guards import BodyTooLarge, require_json
from ._server import run_app, stopping_event

__all__ = [
    "ApiError",
    "BodyTooLarge",
    "ErrorBody",
    "ErrorDetail",
    "create_service_app",
    "error_response",
    "require_json",
    "run_app",
    "stopping_event",
]
