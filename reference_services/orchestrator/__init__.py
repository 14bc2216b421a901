"""The saga orchestrator: orders as sagas over users and notifications, with a durable saga log."""

from ._app import create_app
from ._settings import OrchestratorSettings

__all__ = ["OrchestratorSettings", "create_app"]
