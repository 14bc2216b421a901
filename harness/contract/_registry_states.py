"""The registry's provider states, set through its public API (it has no test mode, and needs none).

Instances registered for a state have no health URL, so they are healthy at once and never evicted
mid-interaction. A registry with a write token gets it with every write.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from harness.discovery import REGISTRY_TOKEN_HEADER


class InstanceParams(BaseModel):
    """An instance that must be registered (and healthy) for the interaction."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str
    service: str
    address: str = "127.0.0.1"
    port: int = 8000


class AbsentInstanceParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    instance_id: str


class RegistryStates:
    """``(state, action, parameters)`` handler for the registry pacts, talking to the registry at ``url``."""

    STATES = ("a registered instance", "a service with a healthy instance", "no such instance")

    def __init__(self, url: str, *, timeout: float = 5.0, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {REGISTRY_TOKEN_HEADER: token} if token else {}
        # Built once: a new client would load the CA bundle again (tens of ms per state change).
        self._tls = httpx.create_ssl_context()

    def __call__(self, state: str, action: str, parameters: dict[str, Any] | None) -> None:
        params = parameters or {}
        if state in ("a registered instance", "a service with a healthy instance"):
            instance = InstanceParams.model_validate(params)
            if action == "setup":
                self._register(instance)
            else:
                self._deregister(instance.instance_id)
        elif state == "no such instance":
            # Teardown too: the interaction may have registered it.
            self._deregister(AbsentInstanceParams.model_validate(params).instance_id)
        else:
            raise ValueError(f"unknown registry state {state!r}; known: {', '.join(self.STATES)}")

    def _register(self, instance: InstanceParams) -> None:
        body = {"service": instance.service, "address": instance.address, "port": instance.port}
        with httpx.Client(timeout=self.timeout, trust_env=False, verify=self._tls) as http:
            answer = http.put(
                f"{self.url}/v1/instances/{instance.instance_id}", json=body, headers=self._headers
            )
        if answer.status_code not in (200, 201):
            raise RuntimeError(
                f"registering {instance.instance_id} answered {answer.status_code}: {answer.text}"
            )

    def _deregister(self, instance_id: str) -> None:
        with httpx.Client(timeout=self.timeout, trust_env=False, verify=self._tls) as http:
            answer = http.delete(f"{self.url}/v1/instances/{instance_id}", headers=self._headers)
        if answer.status_code not in (204, 404):
            raise RuntimeError(f"deregistering {instance_id} answered {answer.status_code}: {answer.text}")
