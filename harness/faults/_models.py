"""Pydantic models of Toxiproxy payloads: strict (extra="forbid") for what the client sends, tolerant for
what it reads, so the client keeps working against any real Toxiproxy. ``expires_in`` (ms) is the embedded
server's extension: sent only when set (a real Toxiproxy ignores it), read only from a server that has it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

Scalar = int | float | str | bool | None
Attribute = int | str  # toxic attributes: integers, and the strings of the HTTP toxics


class ToxicType(StrEnum):
    """The seven toxics every Toxiproxy 2.x server has, and the two HTTP toxics only the embedded server
    has (extensions: a real Toxiproxy answers ``invalid toxic type``)."""

    LATENCY = "latency"
    BANDWIDTH = "bandwidth"
    SLOW_CLOSE = "slow_close"
    TIMEOUT = "timeout"
    RESET_PEER = "reset_peer"
    SLICER = "slicer"
    LIMIT_DATA = "limit_data"
    HTTP_ERROR = "http_error"
    HTTP_LATENCY = "http_latency"

    @property
    def is_extension(self) -> bool:
        """Only the harness's embedded server has it."""
        return self in (ToxicType.HTTP_ERROR, ToxicType.HTTP_LATENCY)


class Stream(StrEnum):
    """Upstream: bytes from the client to the server; downstream: from the server back to the client."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


class _Sent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Read(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ToxicInfo(_Read):
    """A toxic as the server reports it; ``expires_in``: ms until the server removes it by itself (None: it
    has no expiry, or the server does not have the extension)."""

    name: str
    type: str
    stream: str
    toxicity: float = 1.0
    attributes: dict[str, Scalar] = Field(default_factory=dict)
    expires_in: int | None = None


def split_listen(address: str) -> tuple[str, int]:
    """``127.0.0.1:8080`` -> (``127.0.0.1``, 8080); ``[::1]:80`` -> (``::1``, 80)."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class ProxyInfo(_Read):
    """A proxy as the server reports it; ``listen`` is the address actually bound; ``expires_in``: ms until
    the disabled proxy is enabled again by the server itself (None: no expiry, or no extension)."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[ToxicInfo] = Field(default_factory=list)
    expires_in: int | None = None

    @property
    def host(self) -> str:
        """Host part of ``listen``, for connecting to the proxy."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """Port part of ``listen``."""
        return split_listen(self.listen)[1]


class ProxyConfig(_Sent):
    """A proxy to create (``POST /proxies``) or to populate (``POST /populate``)."""

    name: str = Field(min_length=1)
    upstream: str = Field(min_length=1)
    listen: str = "127.0.0.1:0"
    enabled: bool = True


class ProxyUpdate(_Sent):
    """Fields of a proxy to change; those left None are kept by the server. ``expires_in`` (ms, with
    ``enabled=False``): the server enables the proxy again then; 0 clears it."""

    listen: str | None = None
    upstream: str | None = None
    enabled: bool | None = None
    expires_in: int | None = Field(default=None, ge=0)


class ToxicSpec(_Sent):
    """A toxic to add. ``type`` is usually a ToxicType; other names are passed on for custom toxics."""

    type: str = Field(min_length=1)
    name: str | None = None  # the server names it "<type>_<stream>" when left out
    stream: Stream = Stream.DOWNSTREAM
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0)
    attributes: dict[str, Attribute] = Field(default_factory=dict)
    expires_in: int | None = Field(default=None, ge=0)  # ms: the server removes it then (extension)


class ToxicUpdate(_Sent):
    """A change to a toxic: attributes are merged onto the current ones, toxicity kept when None;
    ``expires_in`` (ms) replaces its expiry, 0 clears it, None keeps it."""

    attributes: dict[str, Attribute] | None = None
    toxicity: float | None = Field(default=None, ge=0.0, le=1.0)
    expires_in: int | None = Field(default=None, ge=0)
