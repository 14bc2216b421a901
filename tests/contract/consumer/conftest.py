"""Consumer fixtures: one Pact per test, written to a run folder, then compared with ``contracts/``.

After the last consumer test the run's pacts must equal the committed ones (a stale contract fails here,
naming the file and the difference); with ``UPDATE_CONTRACTS=1`` they are rewritten instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pact import Pact

from harness.contract import StaleContract, check_contracts

from .._support import (
    CONSUMER_TESTS,
    CONTRACTS,
    NewPact,
    consumer_deselected,
    consumer_failures,
    update_requested,
)


def _run_is_complete(session: pytest.Session) -> bool:
    """True when every consumer test was selected: no -k/-m deselection, no narrower path or node id."""
    if session.config.stash.get(consumer_deselected, 0):
        return False
    base = session.config.invocation_params.dir
    for arg in session.config.args:
        path_part, _, node = arg.partition("::")
        path = (base / path_part).resolve()
        if path.is_relative_to(CONSUMER_TESTS) and (node or path != CONSUMER_TESTS):
            return False
    return True


@pytest.fixture(scope="package", autouse=True)
def produced_pacts(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """The folder this run's pacts go to; afterwards, the check that ``contracts/`` is current."""
    folder = tmp_path_factory.mktemp("pacts")
    yield folder
    session = request.session
    if session.config.stash.get(consumer_failures, set()):
        return  # the failing consumer test is the news; its pact proves nothing
    stale: StaleContract | None = None
    try:
        updated = check_contracts(
            folder, CONTRACTS, complete=_run_is_complete(session), update=update_requested()
        )
    except StaleContract as exc:
        stale, updated = exc, []
    if stale is not None:
        pytest.fail(str(stale), pytrace=False)
    for path in updated:
        print(f"UPDATE_CONTRACTS=1: rewrote {path}")


@pytest.fixture
def new_pact(produced_pacts: Path) -> Iterator[NewPact]:
    """``new_pact(consumer, provider)``: a fresh V4 Pact (a Pact is locked once served: one per test)."""
    made: list[Pact] = []

    def make(consumer: str, provider: str) -> Pact:
        pact = Pact(consumer, provider).with_specification("V4")
        made.append(pact)
        return pact

    yield make
    for pact in made:
        pact.write_file(produced_pacts, overwrite=False)  # merges with this run's earlier interactions
