"""``harness toxiproxy`` as a child process: for benchmarks, tests and stacks that want the proxy in its own
process (its own CPU, its own event loop). Readiness is the port file and then ``GET /version``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness._process import ServiceProcess, Spawner
from harness._spec import ProcessSpec, SettingValue


class ToxiproxyProcess(ServiceProcess):
    """A ``python -m harness toxiproxy`` child process on loopback; ``settings`` are its flags by name
    (``{"config": path, "seed": 5, "proxy_metrics": True}``)."""

    def __init__(
        self,
        settings: Mapping[str, SettingValue] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        startup_timeout: float = 20.0,
        spawner: Spawner | None = None,
    ) -> None:
        spec = ProcessSpec("toxiproxy", "toxiproxy", dict(settings or {}), host=host, port=port,
                           env=dict(env or {}), ready_path="/version")  # fmt: skip
        super().__init__(spec, workdir=workdir, startup_timeout=startup_timeout, spawner=spawner)
