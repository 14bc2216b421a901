"""Start, watch and stop the stack as processes on loopback: the reference services and the user's own."""

from harness._process import ServiceProcess, Spawner
from harness._spec import PLACEHOLDERS, ProcessSpec, SettingValue
from harness.stack._agent import AgentTarget, RegistrationAgent
from harness.stack._external import ExternalService
from harness.stack._handle import StackFaults, StackHandle
from harness.stack._probe import InstanceStatus, read_status
from harness.stack._stack import Member, Stack
from harness.stack._state import InstanceRecord, Origin, StackState
from harness.stack._supervisor import (
    ExternalProxyWatch,
    FaultProxyState,
    FaultProxySupervisor,
    Notice,
    NoticeKind,
    ProxyRestart,
    ProxySet,
)
from harness.stack._topology import OwnServiceTopology, Topology, fast_topology, load_topology

__all__ = [
    "PLACEHOLDERS",
    "AgentTarget",
    "ExternalProxyWatch",
    "ExternalService",
    "FaultProxyState",
    "FaultProxySupervisor",
    "InstanceRecord",
    "InstanceStatus",
    "Member",
    "Notice",
    "NoticeKind",
    "Origin",
    "OwnServiceTopology",
    "ProcessSpec",
    "ProxyRestart",
    "ProxySet",
    "RegistrationAgent",
    "ServiceProcess",
    "SettingValue",
    "Spawner",
    "Stack",
    "StackFaults",
    "StackHandle",
    "StackState",
    "Topology",
    "fast_topology",
    "load_topology",
    "read_status",
]
