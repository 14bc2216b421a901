"""Faults through Toxiproxy: a typed client (sync and async) and an embedded Toxiproxy 2.12-compatible
server (in-process, in a thread or as ``harness toxiproxy``); the client works against a real one too."""

from harness.faults._api import TOXIPROXY_VERSION
from harness.faults._calls import DEFAULT_TOXIPROXY_URL
from harness.faults._client import AsyncProxy, AsyncToxiproxyClient, Proxy, ToxiproxyClient
from harness.faults._errors import (
    FaultApiError,
    FaultError,
    ProxyExists,
    ProxyNotFound,
    ToxicExists,
    ToxicNotFound,
    ToxiproxyUnavailable,
)
from harness.faults._models import ProxyConfig, ProxyInfo, Stream, ToxicInfo, ToxicType
from harness.faults._process import ToxiproxyProcess
from harness.faults._schedule import (
    FaultApplier,
    FaultInjector,
    FaultKind,
    FaultSchedule,
    FaultSpec,
    FaultWindow,
    RandomFaults,
    ScheduleRunner,
    ToxiproxyInjector,
    random_schedule,
    read_ledger,
)
from harness.faults._server import ThreadedToxiproxyServer, ToxiproxyServer, ToxiproxySettings, run_toxiproxy

__all__ = [
    "DEFAULT_TOXIPROXY_URL",
    "TOXIPROXY_VERSION",
    "AsyncProxy",
    "AsyncToxiproxyClient",
    "FaultApiError",
    "FaultApplier",
    "FaultError",
    "FaultInjector",
    "FaultKind",
    "FaultSchedule",
    "FaultSpec",
    "FaultWindow",
    "Proxy",
    "ProxyConfig",
    "ProxyExists",
    "ProxyInfo",
    "ProxyNotFound",
    "RandomFaults",
    "ScheduleRunner",
    "Stream",
    "ThreadedToxiproxyServer",
    "ToxicExists",
    "ToxicInfo",
    "ToxicNotFound",
    "ToxicType",
    "ToxiproxyClient",
    "ToxiproxyInjector",
    "ToxiproxyProcess",
    "ToxiproxyServer",
    "ToxiproxySettings",
    "ToxiproxyUnavailable",
    "random_schedule",
    "read_ledger",
    "run_toxiproxy",
]
