"""The notifications reference service: notifications deduplicated by id, listed per user."""

from ._app import create_app
from ._settings import NotificationsSettings

__all__ = ["NotificationsSettings", "create_app"]
