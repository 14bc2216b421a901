"""Reading a user's file, and what the harness checks in it before anything starts: a bounded document
(nesting, duplicate keys, what YAML aliases expand to), an experiment's shape, each harness activity's
arguments by its parameters' types, fault values as the fault proxy takes them. Every refusal is one
ConfigError line naming the file and the key."""

from __future__ import annotations

import copy
import json
import re
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from harness._documents import (
    MAX_DEPTH,
    DocumentError,
    Format,
    parse,
    parse_json,
    parse_toml,
    parse_yaml,
    read_document,
)
from harness._fault_values import fault_refusal
from harness.chaos import load_and_validate
from harness.chaos._arguments import NAMES
from harness.chaos._validation import argument_problem, names_of
from harness.errors import ConfigError
from harness.load import load_profile
from harness.stack import Topology, load_topology

ROOT = Path(__file__).parents[2]
CONTROL = '  - {"name": "harness", "provider": {"type": "python", "module": "harness.chaos.control"}}'
SHIPPED = sorted((ROOT / "chaos_experiments").glob("*.json"))
LATENCY = ROOT / "chaos_experiments" / "01-latency-on-one-users-instance.json"
INVENTORY = ROOT / "examples" / "inventory" / "topology.toml"
ACTIONS, PROBES = "harness.chaos.actions", "harness.chaos.probes"
KNOWN = {NAMES: names_of(Topology())}
TOXIC = {"instance": "users-1", "type": "latency"}


def billion_laughs(levels: int = 9) -> str:
    """A YAML experiment of under a kilobyte whose aliases expand to 10**levels strings."""
    lines = ['title: "laughs"', 'description: "an alias bomb"', "method: []", "controls:", CONTROL, "bomb:"]
    lines.append('  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]')
    for level in range(1, levels):
        lines.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def experiment(**changes: Any) -> dict[str, Any]:
    """The shipped latency experiment, with ``changes`` applied by key path (``method.1.provider``)."""
    data: dict[str, Any] = json.loads(LATENCY.read_text())
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return data


def window(*, instance: str = "users-2", latency: int = 100) -> dict[str, Any]:
    fault = {"kind": "latency", "instance": instance, "attributes": {"latency": latency}}
    return {"name": "w", "start": 0, "end": 1, "fault": fault}


def refusal(tmp_path: Path, data: object, name: str = "exp.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else str(data))
    with pytest.raises(ConfigError) as caught:
        load_and_validate(path, topology=Topology())
    [line] = str(caught.value).splitlines()
    assert line.startswith(f"{path}: "), line
    return line.removeprefix(f"{path}: ")


class TestJson:
    """JSON: duplicate keys and deep nesting refused by name, before the recursive parser sees them."""

    def test_a_duplicate_key_is_refused_not_dropped(self) -> None:
        with pytest.raises(DocumentError, match="duplicate key 'title'"):
            parse_json('{"title": "a", "method": [], "title": "b"}')

    @pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 10_000, 1_000_000])
    def test_nesting_past_the_bound_is_refused_without_recursing(self, depth: int) -> None:
        with pytest.raises(DocumentError, match=f"nested deeper than {MAX_DEPTH} levels"):
            parse_json("[" * depth + "]" * depth)

    def test_nesting_at_the_bound_reads_and_brackets_in_strings_do_not_count(self) -> None:
        deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
        assert parse_json(deepest) is not None
        assert parse_json(json.dumps({"s": "[" * 5000})) == {"s": "[" * 5000}

    def test_an_integer_python_refuses_is_a_document_error(self) -> None:
        with pytest.raises(DocumentError, match="not valid JSON"):
            parse(json.dumps({"n": 1}).replace("1", "1" * 5000), Format.JSON)


class TestToml:
    def test_a_deep_array_is_refused_before_tomllib_recurses(self) -> None:
        with pytest.raises(DocumentError, match=f"line 2: nested deeper than {MAX_DEPTH} levels"):
            parse_toml('title = "t"\nx = ' + "[" * 10_000 + "]" * 10_000 + "\n")

    def test_deep_dotted_keys_are_refused_after_parsing(self) -> None:
        with pytest.raises(DocumentError, match="nested deeper"):
            parse_toml(".".join(f"k{i}" for i in range(MAX_DEPTH + 2)) + " = 1\n")

    def test_a_long_dotted_key_is_refused_before_tomllib_reads_it(self) -> None:
        """tomllib takes time quadratic in a dotted key's parts: 100,000 parts would take minutes."""
        began = time.monotonic()
        with pytest.raises(DocumentError, match="a dotted key nested deeper than"):
            parse_toml("a." * 100_000 + "b = 1\n")
        assert time.monotonic() - began < 1.0

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param('"\\' * 200_000, id="escaped-quotes-never-closed"),
            pytest.param('a = """' + "x\\" * 200_000, id="multi-line-never-closed"),
            pytest.param("'" * 400_000, id="literal-quotes"),
        ],
    )
    def test_strings_are_skipped_in_linear_time(self, text: str) -> None:
        began = time.monotonic()
        with pytest.raises(DocumentError, match="not valid TOML"):
            parse_toml(text)
        assert time.monotonic() - began < 2.0

    def test_brackets_in_strings_and_comments_do_not_count(self) -> None:
        text = 'a = "[[[[[[[["\nb = \'{{{{\'\n# [[[[[[[\nc = """\n[[[[\n"""\n[[t]]\nx = [[1], [2]]\n'
        assert parse_toml(text.replace("[[[[", "[" * 200))["t"] == [{"x": [[1], [2]]}]


class TestYaml:
    """YAML: aliases stay allowed, but what they expand to is bounded, measured without expanding."""

    def test_a_billion_laughs_is_refused_at_once_within_little_memory(self) -> None:
        text = billion_laughs()
        assert len(text.encode()) < 1024
        tracemalloc.start()
        began = time.monotonic()
        try:
            with pytest.raises(DocumentError, match="aliases expand to more than"):
                parse_yaml(text)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert time.monotonic() - began < 2.0
        assert peak < 20 << 20

    def test_aliases_within_the_bound_read_as_shared_values(self) -> None:
        data = parse_yaml("base: &b {latency: 100}\none: *b\ntwo: {<<: *b, jitter: 5}\n")
        assert data == {
            "base": {"latency": 100},
            "one": {"latency": 100},
            "two": {"latency": 100, "jitter": 5},
        }

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            pytest.param("a: &a [*a]\n", "an alias refers to a value that holds it", id="cycle"),
            pytest.param("a: 1\na: 2\n", "duplicate key 'a'", id="duplicate-key"),
            pytest.param("on: 1\n", "the key 'on' is not read as a string", id="bool-key"),
            pytest.param("d: 2024-01-01\n", "read as a YAML timestamp; quote it", id="date"),
            pytest.param("b: !!binary aGk=\n", "read as a YAML binary", id="binary"),
            pytest.param("d: " + "[" * 500 + "]" * 500, "nested deeper than", id="deep-flow"),
            pytest.param("a: [1\n", "not valid YAML: line", id="unclosed"),
            pytest.param("a: *nope\n", "undefined alias", id="undefined-alias"),
            pytest.param("a: 1\n---\nb: 2\n", "not valid YAML", id="two-documents"),
        ],
    )
    def test_what_is_not_a_bounded_json_document_is_one_line(self, text: str, says: str) -> None:
        with pytest.raises(DocumentError, match=says) as caught:
            parse_yaml(text)
        assert "\n" not in str(caught.value)

    def test_an_alias_chain_that_nests_deeper_than_the_bound_is_refused(self) -> None:
        chain = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, MAX_DEPTH + 2)]
        with pytest.raises(DocumentError, match="aliases nest it deeper"):
            parse_yaml("\n".join(chain) + "\n")


class TestReadDocument:
    @pytest.mark.parametrize(
        ("content", "says"),
        [
            pytest.param(b"[1, 2]", "the top level must be an object of keys, not a list", id="array"),
            pytest.param(b'"x"', "not a string", id="string"),
            pytest.param(b"\xff\xfe{}", "not UTF-8 text (byte 0)", id="not-utf8"),
            pytest.param(b"{", "not valid JSON: line 1 column 2", id="truncated"),
        ],
    )
    def test_a_file_that_is_not_an_object_is_one_line_naming_it(
        self, tmp_path: Path, content: bytes, says: str
    ) -> None:
        path = tmp_path / "doc.json"
        path.write_bytes(content)
        with pytest.raises(ConfigError, match=re.escape(says)) as caught:
            read_document(path, Format.JSON)
        assert str(caught.value).startswith(f"{path}: ")

    def test_a_huge_file_is_refused_by_its_size(self, tmp_path: Path) -> None:
        path = tmp_path / "big.json"
        path.write_text('{"a": "' + "x" * (2 << 20) + '"}')
        with pytest.raises(ConfigError, match="larger than 1 MiB"):
            read_document(path, Format.JSON)


class TestFaultValues:
    """A fault's values are checked as the fault proxy checks them, the attribute named."""

    @pytest.mark.parametrize(
        ("kind", "attributes", "toxicity", "says"),
        [
            pytest.param(
                "latency", {"latency": -3000}, 1.0, "attributes.latency: must be between 0 and", id="neg"
            ),
            pytest.param(
                "latency", {"latancy": 5}, 1.0, "attributes.latancy: latency has no such", id="typo"
            ),
            pytest.param(
                "latency", {"latency": True}, 1.0, "must be a whole number (ms), got True", id="bool"
            ),
            pytest.param("latency", {"latency": 2**63}, 1.0, "must be a whole number", id="past-int64"),
            pytest.param("kill", {"latency": 5}, 1.0, "attributes: kill takes no attributes", id="kill"),
            pytest.param("latency", {}, 1.5, "toxicity: must be between 0 and 1, got 1.5", id="toxicity"),
            pytest.param("latncy", {}, 1.0, "kind: unknown fault 'latncy'", id="kind"),
            pytest.param(
                "http_error", {"status": 200}, 1.0, "attributes.status: must be between 400", id="status"
            ),
        ],
    )
    def test_a_value_the_proxy_refuses_is_named(
        self, kind: str, attributes: dict[str, object], toxicity: float, says: str
    ) -> None:
        found = fault_refusal(kind, attributes, toxicity)
        assert found is not None
        assert says in found

    def test_values_the_proxy_takes_pass(self) -> None:
        assert fault_refusal("latency", {"latency": 2500, "jitter": 100}) is None
        assert fault_refusal("http_error", {"status": 503, "path_prefix": "/users"}, 0.5) is None
        assert fault_refusal("down", None) is None


class TestActivityArguments:
    """One rule for every harness activity: its arguments against its parameters' annotated types."""

    @pytest.mark.parametrize(
        ("module", "func", "arguments", "says"),
        [
            pytest.param(
                ACTIONS, "add_toxic", {"instance": ["users-2"], "type": "latency"},
                ".instance: must be a string, got a list", id="instance-list",
            ),
            pytest.param(
                ACTIONS, "add_toxic", {"instance": "users-2", "type": "latncy"},
                ".type: unknown toxic 'latncy'; known: latency", id="unknown-toxic",
            ),
            pytest.param(
                ACTIONS, "add_toxic", {**TOXIC, "attributes": {"jitter": -3}},
                ".attributes.jitter: must be between 0 and 3600000 ms, got -3", id="negative-jitter",
            ),
            pytest.param(
                ACTIONS, "add_toxic", {"instance": "users-9", "type": "latency"},
                ".instance: no instance named 'users-9'; known: notifications-1", id="unknown-instance",
            ),
            pytest.param(
                ACTIONS, "add_toxic", {"instance": "users-2", "type": "latency", "stream": "up"},
                ".stream: must be 'upstream' or 'downstream'", id="stream",
            ),
            pytest.param(
                ACTIONS, "start_traffic", {"rate": float("nan")}, ".rate: must be a finite number, got nan",
                id="nan-rate",
            ),
            pytest.param(
                ACTIONS, "start_traffic", {"rate": float("inf")}, ".rate: must be a finite number, got inf",
                id="infinite-rate",
            ),
            pytest.param(
                ACTIONS, "start_traffic", {"rate": 5000}, ".rate: must be less than or equal to 2000",
                id="rate-past-bound",
            ),
            pytest.param(
                ACTIONS, "start_traffic", {"rate": "10"}, ".rate: must be a number, got '10'",
                id="rate-as-string",
            ),
            pytest.param(
                ACTIONS, "start_traffic", {"speed": 3}, ".speed: not a parameter of start_traffic",
                id="unknown-parameter",
            ),
            pytest.param(ACTIONS, "kill_instance", {}, ".instance: required", id="missing"),
            pytest.param(
                ACTIONS, "play_fault_schedule", {"windows": [window(latency=-1)]},
                ".windows[0].fault.attributes.latency: must be between 0", id="window-latency",
            ),
            pytest.param(
                ACTIONS, "play_fault_schedule", {"windows": [window(instance="users-7")]},
                ".windows[0].fault.instance: no instance named 'users-7'", id="window-instance",
            ),
            pytest.param(
                ACTIONS, "wait_until", {"condition": {"breaker": "ajar"}},
                ".condition.breaker: must be 'closed', 'open' or 'half_open'", id="condition",
            ),
            pytest.param(
                PROBES, "traffic_share", {"caller": "users-1", "service": "pay", "instance": "users-2"},
                ".service: no service named 'pay'", id="unknown-service",
            ),
            pytest.param(
                PROBES, "traffic_latency", {"percentile": 120}, ".percentile: must be less than or equal",
                id="percentile",
            ),
        ],
    )  # fmt: skip
    def test_a_wrong_argument_is_named_with_its_problem(
        self, module: str, func: str, arguments: dict[str, Any], says: str
    ) -> None:
        problem = argument_problem(module, func, arguments, KNOWN)
        assert problem is not None
        assert problem.startswith(says), problem

    def test_a_placeholder_is_left_to_chaos_toolkit(self) -> None:
        arguments = {"instance": "${instance}", "type": "latency", "attributes": {"latency": "${ms}"}}
        assert argument_problem(ACTIONS, "add_toxic", arguments, KNOWN) is None

    def test_names_are_checked_only_against_a_known_topology(self) -> None:
        assert argument_problem(ACTIONS, "kill_instance", {"instance": "users-9"}, {}) is None


class TestExperiments:
    """An experiment is refused, naming the key, for each shape Chaos Toolkit or the run would crash on."""

    @pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
    def test_every_shipped_experiment_is_valid(self, path: Path) -> None:
        topology = load_topology(INVENTORY) if "own-service" in path.stem else Topology()
        assert load_and_validate(path, topology=topology)["title"]

    @pytest.mark.parametrize(
        ("data", "says"),
        [
            pytest.param([experiment()], "the top level must be an object of keys, not a list", id="array"),
            pytest.param(experiment(method="start"), "method: must be a list, got 'start'", id="method-str"),
            pytest.param(experiment(method=[1, 2]), "method[0]: must be an object, got 1", id="method-nums"),
            pytest.param(
                experiment(**{"steady-state-hypothesis": [1]}),
                "steady-state-hypothesis: must be an object, got a list", id="hypothesis-list",
            ),
            pytest.param(
                experiment(**{"method.0.provider": "x"}), "method[0].provider: must be an object, got 'x'",
                id="provider-string",
            ),
            pytest.param(
                experiment(**{"method.0.provider.arguments": [1]}),
                "method[0].provider.arguments: must be an object, got a list", id="arguments-list",
            ),
            pytest.param(
                experiment(**{"method.0.provider.type": "ftp"}),
                "method[0].provider.type: must be python, http or process", id="provider-type",
            ),
            pytest.param(experiment(title=5), "title: must be a string, got 5", id="title-number"),
            pytest.param(
                experiment(configuration=None), "configuration: must be an object, got null",
                id="configuration-null",
            ),
            pytest.param(
                experiment(**{"method.1.provider.arguments.instance": ["users-2"]}),
                "method[1].provider.arguments.instance: must be a string, got a list", id="instance-list",
            ),
            pytest.param(
                experiment(**{"method.1.provider.arguments.type": "latncy"}),
                "method[1].provider.arguments.type: unknown toxic 'latncy'", id="unknown-toxic",
            ),
            pytest.param(
                experiment(**{"method.1.provider.arguments.attributes.latency": -3}),
                "method[1].provider.arguments.attributes.latency: must be between 0 and 3600000 ms, got -3",
                id="negative-latency",
            ),
            pytest.param(
                experiment(**{"method.0.provider.arguments.rate": float("nan")}),
                "method[0].provider.arguments.rate: must be a finite number, got nan", id="nan-rate",
            ),
            pytest.param(
                experiment(**{"method.0.provider.arguments.rate": float("inf")}),
                "method[0].provider.arguments.rate: must be a finite number, got inf", id="infinite-rate",
            ),
        ],
    )  # fmt: skip
    def test_a_bad_shape_or_argument_is_one_line_naming_the_key(
        self, tmp_path: Path, data: object, says: str
    ) -> None:
        assert refusal(tmp_path, data).startswith(says)

    def test_a_duplicate_key_is_refused(self, tmp_path: Path) -> None:
        text = json.dumps(experiment()).replace('"title": ', '"title": "first", "title": ', 1)
        path = tmp_path / "dup.json"
        path.write_text(text)
        with pytest.raises(ConfigError, match="duplicate key 'title'"):
            load_and_validate(path, topology=Topology())

    def test_a_key_with_a_newline_is_quoted_so_the_line_stays_one(self, tmp_path: Path) -> None:
        data = experiment(method=[], configuration={"a\nb": "http://192.0.2.1/"})
        assert (
            refusal(tmp_path, data)
            == 'configuration["a\\nb"]: http://192.0.2.1/ is not a loopback URL; pass --allow-remote'
        )
        assert (
            refusal(tmp_path, {**experiment(), "tags": {"x\ny": 1}}) == "tags: must be a list, got an object"
        )

    def test_a_yaml_alias_bomb_is_refused_at_load_time(self, tmp_path: Path) -> None:
        says = refusal(tmp_path, billion_laughs(), "laughs.yaml")
        assert "aliases expand to more than" in says

    def test_a_yaml_experiment_with_a_few_aliases_is_valid(self, tmp_path: Path) -> None:
        import yaml

        data = experiment()
        text = yaml.safe_dump(data, sort_keys=False)
        path = tmp_path / "exp.yaml"
        path.write_text(text)
        assert load_and_validate(path, topology=Topology()) == data

    def test_the_shape_check_does_not_change_what_chaos_toolkit_gets(self, tmp_path: Path) -> None:
        data = copy.deepcopy(experiment())
        path = tmp_path / "exp.json"
        path.write_text(json.dumps(data))
        assert load_and_validate(path, topology=Topology()) == data


class TestLoadProfiles:
    BASE = 'title = "t"\n[load]\nusers = 2\nduration = 5\n'

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            pytest.param(
                BASE + "x = " + "[" * 10_000 + "]" * 10_000 + "\n", "line 5: nested deeper than 64 levels",
                id="deep-array",
            ),
            pytest.param(
                BASE + '[[faults.windows]]\nname = "w"\nstart = 1\nend = 2\n'
                'fault = { kind = "latency", instance = "users-2", attributes = { latency = -3000 } }\n',
                "faults.windows.w.fault.attributes.latency: must be between 0 and 3600000 ms, got -3000",
                id="negative-latency",
            ),
            pytest.param(
                BASE.replace("= 5", "= nan"), "load.duration: must be a finite number, got nan",
                id="nan-duration",
            ),
        ],
    )  # fmt: skip
    def test_is_one_line_naming_the_key(self, tmp_path: Path, text: str, says: str) -> None:
        path = tmp_path / "profile.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_profile(path)
        assert str(caught.value) == f"{path}: {says}"
