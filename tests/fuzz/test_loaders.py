"""The loaders of the user's files fuzzed with hypothesis: chaos experiments (JSON and YAML), load profiles
and topologies (TOML). Random documents of every shape, mutations of the shipped files (values swapped for
random ones, keys dropped or added, parts shared so YAML writes aliases, text cut and spliced), deep
nesting and alias bombs: each is answered by a result or by one ConfigError line naming the file, within
bounded time (and memory, for the alias bombs), never by another exception. Deterministic (derandomize)
and bounded (max_examples): about 20 s in all."""

from __future__ import annotations

import copy
import json
import math
import re
import time
import tomllib
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.chaos import load_and_validate
from harness.errors import ConfigError
from harness.load import load_profile
from harness.stack import Topology, load_topology

ROOT = Path(__file__).parents[2]
EXPERIMENTS = sorted((ROOT / "chaos_experiments").glob("*.json"))
PROFILES = sorted((ROOT / "load_profiles").glob("*.toml"))
TOPOLOGIES = [
    *sorted((ROOT / "load_profiles" / "topologies").glob("*.toml")),
    ROOT / "examples/inventory/topology.toml",
]
ANSWER_WITHIN = 5.0  # seconds for one file, on a busy machine
BOMB_MEMORY = 64 << 20  # bytes an alias bomb may cost while it is refused

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Loader = Callable[[Path], object]


def experiment_loader(path: Path) -> object:
    return load_and_validate(path, topology=Topology())


def topology_loader(path: Path) -> object:
    return load_topology(path)


LOADERS: dict[str, tuple[Loader, str]] = {
    "json": (experiment_loader, "{path}: "),
    "yaml": (experiment_loader, "{path}: "),
    "toml-profile": (load_profile, "{path}: "),
    "toml-topology": (topology_loader, "topology file {path}: "),
}


def answered(kind: str, path: Path) -> object | None:
    """Load ``path``: a result, or None after one ConfigError line naming the file; anything else fails."""
    load, label = LOADERS[kind]
    began = time.monotonic()
    try:
        return load(path)
    except ConfigError as exc:
        line = str(exc)
        assert "\n" not in line, line
        assert line.startswith(label.format(path=path)), line
        return None
    finally:
        assert time.monotonic() - began < ANSWER_WITHIN


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loaders")


# Documents


WORDS = [
    "title", "description", "method", "rollbacks", "controls", "steady-state-hypothesis", "probes",
    "provider", "type", "python", "http", "process", "module", "func", "arguments", "tolerance", "pauses",
    "configuration", "harness.chaos.actions", "harness.chaos.probes", "harness.chaos.control", "add_toxic",
    "start_traffic", "play_fault_schedule", "wait_until", "instance", "users-2", "users-9", "latency",
    "attributes", "rate", "windows", "fault", "kind", "load", "users", "duration", "stages", "faults",
    "checks", "caller", "services", "registry", "command", "external", "${x}", "", "<<", "on", "2024-01-01",
    "http://[::1", "http://192.0.2.1/",
]  # fmt: skip
keys = st.sampled_from(WORDS) | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(WORDS)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=24,
)
documents = st.dictionaries(keys, values, max_size=6) | values


def paths(document: Any) -> list[list[Any]]:
    """Every place in the document (the keys and indexes that lead to it), the top first."""
    found: list[list[Any]] = [[]]
    stack: list[tuple[Any, list[Any]]] = [(document, [])]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, child in items:
            found.append([*path, key])
            stack.append((child, [*path, key]))
    return found


def at(document: Any, path: list[Any]) -> Any:
    for key in path:
        document = document[key]
    return document


@st.composite
def mutated(draw: st.DrawFn, bases: list[Any]) -> Any:
    """One of ``bases`` with a few changes: a value replaced, a key dropped or added, a part shared."""
    document = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 4))):
        places = paths(document)
        path = places[draw(st.integers(0, len(places) - 1))]
        if not path:
            continue
        parent, key = at(document, path[:-1]), path[-1]
        match draw(st.sampled_from(["replace", "drop", "add", "share", "wrap"])):
            case "replace":
                parent[key] = draw(values)
            case "drop":
                del parent[key]
            case "add" if isinstance(parent, dict):
                parent[draw(keys)] = draw(values)
            case "add":
                parent.append(draw(values))
            case "share":  # the same object twice: YAML writes an anchor and an alias
                source = at(document, places[draw(st.integers(0, len(places) - 1))])
                if not any(source is at(document, path[:n]) for n in range(len(path))):
                    parent[key] = source
            case "wrap":
                parent[key] = [parent[key]]
    return document


def spliced(text: str, data: st.DataObject) -> str:
    """The text with a few slices cut, repeated or replaced by structural characters."""
    for _ in range(data.draw(st.integers(1, 3))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 40)))
        match data.draw(st.sampled_from(["cut", "repeat", "insert"])):
            case "cut":
                text = text[:start] + text[end:]
            case "repeat":
                text = text[:end] + text[start:end] * data.draw(st.integers(2, 50)) + text[end:]
            case "insert":
                text = text[:start] + data.draw(st.text(alphabet=STRUCTURE, max_size=20)) + text[start:]
    return text


STRUCTURE = "[]{}:,\"'&*!#-=.\n \t0123456789abcdeflnrtu\\"


def to_toml(document: dict[str, Any]) -> str:
    """A TOML text of the document's keys, every table inline; nulls left out (TOML has none)."""

    def key(name: str) -> str:
        return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)

    def value(item: Any) -> str:
        if isinstance(item, dict):
            return "{ " + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items() if v is not None) + " }"
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item if v is not None) + "]"
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, float) and not math.isfinite(item):
            return "nan" if math.isnan(item) else ("inf" if item > 0 else "-inf")
        if isinstance(item, int | float):
            return repr(item)
        return json.dumps(str(item), ensure_ascii=False)

    return "".join(f"{key(k)} = {value(v)}\n" for k, v in document.items() if v is not None)


def write(workdir: Path, name: str, text: str) -> Path:
    path = workdir / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def serialised(kind: str, document: Any) -> str:
    if kind == "json":
        return json.dumps(document)
    if kind == "yaml":
        return str(yaml.safe_dump(document, allow_unicode=True))
    return to_toml(document if isinstance(document, dict) else {"value": document})


SUFFIX = {
    "json": "exp.json",
    "yaml": "exp.yaml",
    "toml-profile": "profile.toml",
    "toml-topology": "stack.toml",
}
BASES: dict[str, list[Any]] = {
    "json": [json.loads(p.read_text()) for p in EXPERIMENTS],
    "yaml": [json.loads(p.read_text()) for p in EXPERIMENTS],
    "toml-profile": [load_profile(p).model_dump(mode="json", exclude_defaults=True) for p in PROFILES],
    "toml-topology": [tomllib.loads(p.read_text()) for p in TOPOLOGIES],
}
SHIPPED_TEXT = {
    "json": [p.read_text() for p in EXPERIMENTS],
    "yaml": [str(yaml.safe_dump(json.loads(p.read_text()), sort_keys=False)) for p in EXPERIMENTS],
    "toml-profile": [p.read_text() for p in PROFILES],
    "toml-topology": [p.read_text() for p in TOPOLOGIES],
}
KINDS = list(LOADERS)


class TestLoaders:
    """Whatever the file holds, the loader answers with a result or one ConfigError line."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_the_shipped_files_load(self, workdir: Path, kind: str) -> None:
        """What the mutations start from is valid, so they test more than refusals."""
        for index, text in enumerate(SHIPPED_TEXT[kind]):
            path = write(workdir, f"{index}-{SUFFIX[kind]}", text)
            if kind in ("json", "yaml") and "own-service" in EXPERIMENTS[index].stem:
                assert load_and_validate(path, topology=load_topology(TOPOLOGIES[-1]))  # names its instances
            else:
                assert answered(kind, path) is not None

    @pytest.mark.parametrize("kind", KINDS)
    @FUZZ
    @given(data=st.data())
    def test_mutations_of_the_shipped_files(self, workdir: Path, kind: str, data: st.DataObject) -> None:
        document = data.draw(mutated(BASES[kind]))
        try:
            text = serialised(kind, document)
        except ValueError:  # a part shared inside itself: JSON cannot write it (YAML can, and does)
            hypothesis.assume(False)
        answered(kind, write(workdir, SUFFIX[kind], text))

    @pytest.mark.parametrize("kind", KINDS)
    @FUZZ
    @given(data=st.data())
    def test_random_documents_of_every_shape(self, workdir: Path, kind: str, data: st.DataObject) -> None:
        answered(kind, write(workdir, SUFFIX[kind], serialised(kind, data.draw(documents))))

    @pytest.mark.parametrize("kind", KINDS)
    @FUZZ
    @given(data=st.data())
    def test_spliced_text_of_the_shipped_files(self, workdir: Path, kind: str, data: st.DataObject) -> None:
        text = spliced(data.draw(st.sampled_from(SHIPPED_TEXT[kind])), data)
        answered(kind, write(workdir, SUFFIX[kind], text))

    @pytest.mark.parametrize("kind", KINDS)
    @settings(FUZZ, max_examples=15)
    @given(depth=st.integers(1, 30_000), opening=st.sampled_from(["[", "{"]))
    def test_deep_nesting(self, workdir: Path, kind: str, depth: int, opening: str) -> None:
        inner = "[" * depth + "]" * depth if opening == "[" else '{"a": ' * depth + "1" + "}" * depth
        text = {"json": f'{{"x": {inner}}}', "yaml": f"x: {inner}\n"}.get(
            kind, f"x = {inner}\n".replace('"a": ', "a = ")
        )
        answered(kind, write(workdir, SUFFIX[kind], text))


class TestAliasBombs:
    """YAML aliases that expand to far more than the file says are refused while composing, in memory
    proportional to the file."""

    @settings(FUZZ, max_examples=20)
    @given(levels=st.integers(2, 12), fanout=st.integers(2, 16))
    def test_an_alias_bomb_is_answered_in_bounded_memory(
        self, workdir: Path, levels: int, fanout: int
    ) -> None:
        lines = [f"  a0: &a0 [{', '.join(['lol'] * fanout)}]"]
        lines += [f"  a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * fanout) + "]" for n in range(1, levels)]
        base = SHIPPED_TEXT["yaml"][0]
        path = write(workdir, "bomb.yaml", base + "bomb:\n" + "\n".join(lines) + "\n")
        tracemalloc.start()
        try:
            result = answered("yaml", path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < BOMB_MEMORY
        expanded = sum(fanout**n for n in range(1, levels + 1))
        if expanded > 100 * len(path.read_bytes()):
            assert result is None  # refused: what it expands to is far more than the file
