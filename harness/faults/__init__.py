"""Faults through Toxiproxy: a typed client (sync and async) and an embedded Toxiproxy 2.12-compatible
server (in-process, in a thread or as ``harness toxiproxy``), whose HTTP toxics are extensions; the client
works against a real one too. And faults on the client side of calls: the ChaosMonkey transport."""

from harness.faults._api import TOXIPROXY_VERSION
from harness.faults._calls import DEFAULT_TOXIPROXY_URL
from harness.faults._client import AsyncProxy, AsyncToxiproxyClient, Proxy, ToxiproxyClient
from harness.faults._console import ActiveFault, FaultConsole, FaultTarget, active_faults, faults_summary
from harness.faults._errors import (
    FaultApiError,
    FaultError,
    FaultNotApplied,
    ProxyExists,
    ProxyNotFound,
    ToxicExists,
    ToxicNotFound,
    ToxicUnsupported,
    ToxiproxyUnavailable,
)
from harness.faults._models import ProxyConfig, ProxyInfo, Stream, ToxicInfo, ToxicType
from harness.faults._monkey import ChaosMonkey, MonkeyConfig
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
    "ActiveFault",
    "AsyncProxy",
    "AsyncToxiproxyClient",
    "ChaosMonkey",
    "FaultApiError",
    "FaultApplier",
    "FaultConsole",
    "FaultError",
    "FaultInjector",
    "FaultKind",
    "FaultNotApplied",
    "FaultSchedule",
    "FaultSpec",
    "FaultTarget",
    "FaultWindow",
    "MonkeyConfig",
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
    "ToxicUnsupported",
    "ToxiproxyClient",
    "ToxiproxyInjector",
    "ToxiproxyProcess",
    "ToxiproxyServer",
    "ToxiproxySettings",
    "ToxiproxyUnavailable",
    "active_faults",
    "faults_summary",
    "random_schedule",
    "read_ledger",
    "run_toxiproxy",
]
