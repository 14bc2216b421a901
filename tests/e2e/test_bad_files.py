"""A bad file given to `harness chaos validate` or `harness load validate` is one line naming the file and
the key, and exit 2: never a traceback, never exit 1 (a verdict on the user's system). Each case is one
finding of issue 18; the commands run in-process (click's CliRunner), two of them as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from tests.unit.test_documents import billion_laughs, experiment

ROOT = Path(__file__).parents[2]
PROFILE = 'title = "t"\n[load]\nusers = 2\nduration = 30\n'
WINDOW = (
    '[[faults.windows]]\nname = "w"\nstart = 1\nend = 2\n'
    + 'fault = {{ kind = "latency", instance = "{instance}"{more} }}\n'
)


def refused(args: list[str], path: Path, says: str) -> None:
    """Exit 2, one line on stderr naming the file and holding ``says``; nothing else raised."""
    done = CliRunner().invoke(cli, args)
    assert isinstance(done.exception, SystemExit), done.exception
    assert done.exit_code == 2, done.output
    [line] = done.stderr.splitlines()
    assert line.startswith(f"harness: error: {path}: "), line
    assert says in line, line


CHAOS_CASES = [
    pytest.param([experiment()], "the top level must be an object of keys, not a list", id="top-level-array"),
    pytest.param(experiment(method="all"), "method: must be a list, got 'all'", id="method-string"),
    pytest.param(experiment(method=[1, 2]), "method[0]: must be an object, got 1", id="method-numbers"),
    pytest.param(
        experiment(**{"steady-state-hypothesis": [{"title": "t"}]}),
        "steady-state-hypothesis: must be an object, got a list",
        id="hypothesis-list",
    ),
    pytest.param(
        experiment(**{"method.1.provider": "harness.chaos.actions"}),
        "method[1].provider: must be an object",
        id="provider-string",
    ),
    pytest.param(
        experiment(**{"method.1.provider.arguments": ["users-2", "latency"]}),
        "method[1].provider.arguments: must be an object, got a list",
        id="arguments-list",
    ),
    pytest.param(
        json.dumps(experiment()).replace('"method": ', '"method": [], "method": ', 1),
        "duplicate key 'method'",
        id="duplicate-key",
    ),
    pytest.param("[" * 10_000 + "]" * 10_000, "nested deeper than 64 levels", id="deep-nesting"),
    pytest.param(experiment(title=5), "title: must be a string, got 5", id="title-number"),
    pytest.param(
        experiment(**{"method.1.provider.arguments.instance": ["users-2"]}),
        "method[1].provider.arguments.instance: must be a string, got a list",
        id="instance-list",
    ),
    pytest.param(
        experiment(**{"method.1.provider.arguments.type": "latencyy"}),
        "method[1].provider.arguments.type: unknown toxic 'latencyy'; known: latency",
        id="unknown-toxic",
    ),
    pytest.param(
        experiment(**{"method.1.provider.arguments.attributes.latency": -3000}),
        "method[1].provider.arguments.attributes.latency: must be between 0 and 3600000 ms, got -3000",
        id="negative-latency",
    ),
    pytest.param(
        experiment(**{"method.0.provider.arguments.rate": float("nan")}),
        "method[0].provider.arguments.rate: must be a finite number, got nan",
        id="nan-rate",
    ),
    pytest.param(
        experiment(**{"method.0.provider.arguments.rate": float("inf")}),
        "method[0].provider.arguments.rate: must be a finite number, got inf",
        id="infinite-rate",
    ),
]


@pytest.mark.behaviour("harness.chaos_cli", "harness.exit_codes")
class TestChaosValidate:
    @pytest.mark.parametrize(("content", "says"), CHAOS_CASES)
    def test_is_one_line_and_exit_2(self, tmp_path: Path, content: object, says: str) -> None:
        """`harness chaos validate` refuses it naming the key; a run would have crashed or deviated."""
        path = tmp_path / "exp.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        refused(["chaos", "validate", str(path)], path, says)

    def test_a_yaml_alias_bomb_is_refused_before_it_expands(self, tmp_path: Path) -> None:
        path = tmp_path / "laughs.yaml"
        path.write_text(billion_laughs())
        refused(["chaos", "validate", str(path)], path, "its aliases expand to more than")


@pytest.mark.behaviour("load.profiles", "harness.exit_codes")
class TestLoadValidate:
    @pytest.mark.parametrize(
        ("text", "says"),
        [
            pytest.param(PROFILE + "x = " + "[" * 9_999 + "]" * 9_999, "nested deeper", id="deep-array"),
            pytest.param(
                PROFILE + WINDOW.format(instance="users-9", more=""),
                "faults.windows.w.fault.instance: no instance named 'users-9'; known: notifications-1",
                id="window-on-unknown-instance",
            ),
            pytest.param(
                PROFILE + WINDOW.format(instance="users-2", more=", attributes = { latency = -3000 }"),
                "faults.windows.w.fault.attributes.latency: must be between 0 and 3600000 ms, got -3000",
                id="negative-latency",
            ),
            pytest.param(
                PROFILE + WINDOW.format(instance="users-2", more="")
                + '[checks]\ncaller = "orchestrator-7"\n[checks.breaker]\n',
                "checks.caller: no instance named 'orchestrator-7'",
                id="unknown-caller",
            ),
        ],
    )  # fmt: skip
    def test_is_one_line_and_exit_2(self, tmp_path: Path, text: str, says: str) -> None:
        """`harness load validate` refuses what `harness load run` would refuse or fail on, naming the key."""
        path = tmp_path / "profile.toml"
        path.write_text(text)
        refused(["load", "validate", str(path)], path, says)


@pytest.mark.behaviour("harness.exit_codes")
@pytest.mark.parametrize(
    ("name", "content"),
    [
        pytest.param("deep.json", "[" * 100_000 + "]" * 100_000, id="deep-json"),
        pytest.param("laughs.yaml", billion_laughs(), id="alias-bomb"),
    ],
)
def test_a_real_process_answers_in_one_line_within_seconds(tmp_path: Path, name: str, content: str) -> None:
    """As a user runs it: the interpreter's own recursion limit and memory are never what answers."""
    path = tmp_path / name
    path.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "chaos", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"harness: error: {path}: "), line
