"""The public surface of ``harness.contract``: a short sorted ``__all__`` whose names all resolve."""

from __future__ import annotations

import harness.contract
from harness.contract import ContractError
from harness.errors import HarnessError


def test_exports_are_sorted_and_resolve() -> None:
    names = harness.contract.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(harness.contract, name) is not None


def test_contract_errors_are_harness_errors() -> None:
    """One error tree: the CLI maps every contract error to a message and an exit code."""
    assert issubclass(ContractError, HarnessError)
    codes = {cls.__name__: cls.exit_code for cls in ContractError.__subclasses__()}
    assert codes == {
        "PactFileError": 2,
        "StaleContract": 1,
        "VerificationFailed": 1,
        "DeployBlocked": 1,
        "NoVerificationResults": 3,
    }
