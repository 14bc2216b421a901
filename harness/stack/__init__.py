"""Start, watch and stop reference services as real processes on loopback."""

from harness.stack._process import ServiceProcess

__all__ = ["ServiceProcess"]
