"""Run the harness command as a user would: a subprocess with its own exit code and output."""

from __future__ import annotations

import subprocess
import sys

FAST_TOPOLOGY = """
[registry]
ttl = 1.5
check_interval = 0.5
check_timeout = 0.5
check_failures = 2
[services.users]
heartbeat_interval = 0.3
[services.notifications]
heartbeat_interval = 0.3
[services.orchestrator]
heartbeat_interval = 0.3
"""
"""A stack that notices faults in a second or two: the e2e tests' topology file."""


def harness(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
