"""Start, watch and stop the reference services as real processes on loopback."""

from harness._process import ServiceProcess
from harness.stack._stack import InstanceStatus, Stack, read_status
from harness.stack._topology import Topology, load_topology

__all__ = ["InstanceStatus", "ServiceProcess", "Stack", "Topology", "load_topology", "read_status"]
