"""Provider fixtures: every provider as its own real process on loopback, in test mode, for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.contract import PROVIDERS, ProviderTarget, provider_target, running_providers
from tests._children import child_env


@pytest.fixture(scope="session")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ProviderTarget]]:
    """Every provider started once (users and notifications with ``--test-mode``); with ``TOXIPROXY_URL``
    set, the Toxiproxy pact is verified against that server (a real Toxiproxy; it gets reset) instead."""
    real_toxiproxy = os.environ.get("TOXIPROXY_URL")
    names = [name for name in PROVIDERS if not (real_toxiproxy and name == "toxiproxy")]
    with running_providers(names, tmp_path_factory.mktemp("providers"), env=child_env()) as targets:
        if real_toxiproxy:
            targets["toxiproxy"] = provider_target("toxiproxy", real_toxiproxy)
        yield targets
