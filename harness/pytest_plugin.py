"""The harness as a pytest plugin: a stack from a topology for the tests that ask for one, faults on its
instances by name (always removed), and the timeline of what happened. See docs/pytest.md.

Installed as the ``pytest11`` entry point ``harness`` (or loaded with ``-p harness.pytest_plugin``). It is
inert until a test requests one of its fixtures: loading it registers options and nothing else (the
harness's stack, faults and timeline modules are imported inside the fixtures), so no process, thread or
socket exists in a run that does not use it.

Options (command line over ini file): ``--harness-topology`` / ``harness_topology`` (a TOML topology;
an ini path is relative to the rootdir), ``--harness-scope`` / ``harness_scope`` (how long one stack lives:
session by default, or package, module, class, function), ``--harness-workdir`` / ``harness_workdir``
(where its logs and events go; default a temporary folder per stack).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.stack._handle import StackFaults, StackHandle
    from harness.timeline import Timeline

SCOPES = ("session", "package", "module", "class", "function")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "the resilience harness (a stack of services under faults)")
    group.addoption(
        "--harness-topology", metavar="FILE", help="TOML topology of the stack the fixtures start."
    )
    group.addoption("--harness-scope", choices=SCOPES, help="Lifetime of one stack (default: session).")
    group.addoption("--harness-workdir", metavar="DIR", help="Folder of the stack's logs and events.")
    parser.addini("harness_topology", "TOML topology of the stack, relative to the rootdir.", default="")
    parser.addini("harness_scope", f"Lifetime of one stack: {', '.join(SCOPES)}.", default="session")
    parser.addini(
        "harness_workdir", "Folder of the stack's logs and events, relative to the rootdir.", default=""
    )


def _setting(config: pytest.Config, name: str) -> tuple[str, Path]:
    """An option's value and the folder a relative path in it is relative to (cwd for a flag)."""
    flag = config.getoption(f"harness_{name}")
    if flag:
        return str(flag), Path.cwd()
    return str(config.getini(f"harness_{name}")), config.rootpath


def _scope(fixture_name: str, config: pytest.Config) -> str:
    scope, _where = _setting(config, "scope")
    if scope not in SCOPES:
        raise pytest.UsageError(f"harness_scope = {scope!r}; one of {', '.join(SCOPES)}")
    return scope


def _path(config: pytest.Config, name: str) -> Path | None:
    value, where = _setting(config, name)
    return (where / value).resolve() if value else None


@pytest.fixture(scope=_scope)  # type: ignore[arg-type]  # pytest accepts a callable scope
def harness_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackHandle]:
    """A running stack from the topology (``--harness-topology``; default: the reference stack), for the
    scope asked (``--harness-scope``); every fault applied through it is removed, the stack stopped."""
    from harness.stack import Stack, load_topology
    from harness.stack._handle import StackHandle

    config = request.config
    workdir = _path(config, "workdir")
    if workdir is not None and request.scope != "session":
        workdir = workdir / request.node.name
    stack = Stack(load_topology(_path(config, "topology")), workdir or tmp_path_factory.mktemp("harness"))
    with stack:
        handle = StackHandle(stack)
        try:
            yield handle
        finally:
            left = handle.close()
    if left:
        pytest.fail(f"faults the harness could not remove: {'; '.join(left)}")


@pytest.fixture
def harness_faults(harness_stack: StackHandle) -> Iterator[StackFaults]:
    """Faults on the stack's instances by name for one test (``apply``/``remove``/``fault``); whatever the
    test leaves applied is removed after it."""
    yield harness_stack.faults
    left = harness_stack.faults.remove_all()
    if left:
        pytest.fail(f"faults the harness could not remove: {'; '.join(left)}")


@pytest.fixture
def harness_timeline(harness_stack: StackHandle) -> Callable[[], Timeline]:
    """A function returning the timeline from the start of the test to now (call it after the action)."""
    began = time.monotonic()
    return lambda: harness_stack.timeline(since=began)
