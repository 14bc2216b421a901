"""``harness toxiproxy`` as a child process: for benchmarks, tests and stacks that want the proxy in its own
process (its own CPU, its own event loop). Readiness is the port file and then ``GET /version``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness._process import ServiceProcess


class ToxiproxyProcess(ServiceProcess):
    """A ``python -m harness toxiproxy`` child process on loopback."""

    def __init__(self, args: Sequence[str] = (), **options: Any) -> None:
        super().__init__(
            "toxiproxy", "toxiproxy", args, subcommand=["toxiproxy"], ready_path="/version", **options
        )
