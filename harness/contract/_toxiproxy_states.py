"""Toxiproxy's provider states, set through its HTTP API: the embedded server and a real one alike.

Plain HTTP on purpose, not the harness's ToxiproxyClient: the client is what the pact checks.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field


class ProxyParams(BaseModel):
    """A proxy that must exist, optionally with one toxic."""

    model_config = ConfigDict(extra="ignore")

    name: str
    upstream: str = "127.0.0.1:9"
    toxic: str | None = None
    type: str = "latency"
    attributes: dict[str, int] = Field(default_factory=dict)


class AbsentProxyParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class ToxiproxyStates:
    """``(state, action, params)`` handler for the Toxiproxy pact, talking to the API at ``url``."""

    STATES = ("a proxy", "a proxy with a toxic", "no such proxy")

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Built once: a new client would load the CA bundle again (tens of ms per state change).
        self._tls = httpx.create_ssl_context()

    def __call__(self, state: str, action: str, params: dict[str, Any]) -> None:
        if state not in self.STATES:
            raise ValueError(f"unknown Toxiproxy state {state!r}; known: {', '.join(self.STATES)}")
        with httpx.Client(base_url=self.url, timeout=self.timeout, trust_env=False, verify=self._tls) as http:
            if state == "no such proxy" or action == "teardown":
                # Teardown removes what the state or the interaction created.
                self._delete(http, AbsentProxyParams.model_validate(params).name)
                return
            proxy = ProxyParams.model_validate(params)
            self._delete(http, proxy.name)
            body = {"name": proxy.name, "upstream": proxy.upstream, "listen": "127.0.0.1:0", "enabled": True}
            self._expect(http.post("/proxies", json=body), 201)
            if state == "a proxy with a toxic":
                toxic = {"name": proxy.toxic, "type": proxy.type, "attributes": proxy.attributes}
                self._expect(http.post(f"/proxies/{proxy.name}/toxics", json=toxic), 200)

    @staticmethod
    def _delete(http: httpx.Client, name: str) -> None:
        ToxiproxyStates._expect(http.delete(f"/proxies/{name}"), 204, 404)

    @staticmethod
    def _expect(answer: httpx.Response, *statuses: int) -> None:
        if answer.status_code not in statuses:
            request = answer.request
            raise RuntimeError(
                f"{request.method} {request.url.path}: {answer.status_code} {answer.text.strip()}"
            )
