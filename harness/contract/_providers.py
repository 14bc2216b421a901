"""The providers to verify: how each is reached and given its states, and starting them as processes.

users and notifications run with ``--test-mode`` (their provider-state route); the registry's and
Toxiproxy's states go through their public APIs (``toxiproxy`` is the embedded server). Each provider runs
alone on loopback, so a verification depends on nothing else.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from harness.contract._messages import users_messages
from harness.contract._registry_states import RegistryStates
from harness.contract._toxiproxy_states import ToxiproxyStates
from harness.contract._verify import ProviderTarget
from harness.discovery import REGISTRY_TOKEN_ENV, REGISTRY_TOKEN_HEADER
from harness.errors import ConfigError
from harness.faults import ToxiproxyProcess
from harness.stack import ProcessSpec, ServiceProcess, SettingValue
from reference_services.common import PROVIDER_STATES_PATH

PROVIDERS = ("notifications", "registry", "toxiproxy", "users")


def provider_target(name: str, url: str, *, registry_token: str | None = None) -> ProviderTarget:
    """How to verify provider ``name`` running at ``url`` (users and notifications must be in test mode).

    A registry started with a token needs it in ``registry_token``: for its states and the writes replayed.
    """
    url = url.rstrip("/")
    if name == "registry":
        headers = ((REGISTRY_TOKEN_HEADER, registry_token),) if registry_token else ()
        states = RegistryStates(url, token=registry_token)
        return ProviderTarget(name, url=url, state_function=states, headers=headers)
    if name == "users":
        return ProviderTarget(name, url=url, state_url=url + PROVIDER_STATES_PATH, messages=users_messages)
    if name == "notifications":
        return ProviderTarget(name, url=url, state_url=url + PROVIDER_STATES_PATH)
    if name == "toxiproxy":
        return ProviderTarget(name, url=url, state_function=ToxiproxyStates(url))
    raise ConfigError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")


def _process(
    name: str, workdir: Path, host: str, startup_timeout: float, env: dict[str, str] | None
) -> ServiceProcess:
    logs = workdir / "logs"
    if name == "toxiproxy":
        return ToxiproxyProcess(host=host, workdir=logs, startup_timeout=startup_timeout, env=env)
    settings: dict[str, SettingValue] = {"event_log": workdir / "events" / f"{name}.jsonl"}
    if name != "registry":
        settings |= {"instance_id": f"{name}-1", "database": workdir / "data" / f"{name}.sqlite3",
                     "test_mode": True}  # fmt: skip
    spec = ProcessSpec(name, name, settings, host=host, env=env or {})
    return ServiceProcess(spec, workdir=logs, startup_timeout=startup_timeout)


@contextlib.contextmanager
def running_providers(
    names: Iterable[str],
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    startup_timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[dict[str, ProviderTarget]]:
    """Start each named provider as its own process (in parallel), yield their targets, stop them all.

    The registry runs with a fresh write token, as under ``harness up``, so its pacts are verified with
    writes guarded.
    """
    wanted = sorted(set(names))
    for name in wanted:
        if name not in PROVIDERS:
            raise ConfigError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
    for folder in ("data", "events", "logs"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    processes = [
        _process(name, workdir, host, startup_timeout,
                 {**(env or {}), REGISTRY_TOKEN_ENV: token} if name == "registry" else env)
        for name in wanted
    ]  # fmt: skip
    try:
        for process in processes:
            process.spawn()
        for process in processes:
            process.wait_ready()
        yield {p.name: provider_target(p.name, p.url, registry_token=token) for p in processes}
    finally:
        for process in processes:
            process.stop()
