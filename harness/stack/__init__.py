"""Start, watch and stop the reference services as real processes on loopback."""

from harness._process import ServiceProcess, Spawner
from harness.stack._stack import InstanceStatus, Stack, read_status
from harness.stack._supervisor import (
    ExternalProxyWatch,
    FaultProxyState,
    FaultProxySupervisor,
    Notice,
    NoticeKind,
    ProxyRestart,
    ProxySet,
)
from harness.stack._topology import Topology, load_topology

__all__ = [
    "ExternalProxyWatch",
    "FaultProxyState",
    "FaultProxySupervisor",
    "InstanceStatus",
    "Notice",
    "NoticeKind",
    "ProxyRestart",
    "ProxySet",
    "ServiceProcess",
    "Spawner",
    "Stack",
    "Topology",
    "load_topology",
    "read_status",
]
