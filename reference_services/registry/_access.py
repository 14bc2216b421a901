"""Who may change the registry: with a token configured, every write must carry it (like Consul's ACL token).

Writes decide who receives traffic, so without this any process on the machine could register a fake
``users`` instance or deregister a real one. Reads stay open: lookups reveal addresses, not secrets.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from reference_services.common import ApiError, ErrorBody

TOKEN_HEADER = "X-Registry-Token"

_HEADER = APIKeyHeader(
    name=TOKEN_HEADER, auto_error=False, scheme_name="RegistryToken", description="The registry's token."
)
_BEARER = HTTPBearer(auto_error=False, scheme_name="RegistryBearer", description="The registry's token.")

WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No token was sent (`unauthorized`)."},
    403: {"model": ErrorBody, "description": "The token sent is not the registry's (`forbidden`)."},
}


class WriteGuard:
    """A FastAPI dependency for write routes: passes a request that carries the registry's token.

    The token is read from ``X-Registry-Token`` or, failing that, ``Authorization: Bearer``. No token is
    401 ``unauthorized`` (with ``WWW-Authenticate``), a wrong one 403 ``forbidden``; the comparison takes
    the same time whatever the token sent, so it cannot be guessed byte by byte.
    """

    def __init__(self, token: SecretStr) -> None:
        self._expected = token.get_secret_value().encode("ascii")

    async def __call__(
        self,
        header: Annotated[str | None, Security(_HEADER)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> None:
        sent = header if header is not None else (bearer.credentials if bearer is not None else None)
        if sent is None:
            raise ApiError(
                401,
                "unauthorized",
                f"This registry requires its token for writes: send {TOKEN_HEADER} or Authorization: Bearer.",
                headers={"WWW-Authenticate": 'Bearer realm="registry"'},
            )
        # Starlette decodes headers as latin-1, so this gives back the bytes that were sent.
        if not hmac.compare_digest(sent.encode("latin-1"), self._expected):
            raise ApiError(403, "forbidden", "The registry token sent is not this registry's token.")
