"""The users reference service: users with credit, idempotent reservations for sagas, and an outbox."""

from ._app import create_app
from ._settings import UsersSettings

__all__ = ["UsersSettings", "create_app"]
