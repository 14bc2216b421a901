"""Run the harness command as a user would: a subprocess with its own exit code and output."""

from __future__ import annotations

import subprocess
import sys


def harness(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
