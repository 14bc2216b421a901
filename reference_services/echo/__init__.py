"""A backend whose answers, latency and health can be switched at run time, for client tests and demos."""

from reference_services.echo._app import EchoSettings, create_app

__all__ = ["EchoSettings", "create_app"]
