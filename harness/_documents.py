"""A user's JSON, YAML or TOML file read into plain data within fixed bounds (size, nesting, what YAML aliases
expand to), so every loader gets data or one ConfigError line naming the file and the place: never a
RecursionError from a deep file, a MemoryError from an alias bomb, or a duplicate key silently dropped.

Nesting is measured before a recursive parser sees the text (JSON, TOML) or while composing (YAML), so a
deep file is refused by its depth, not by whatever recursion limit the parser meets: the deepest file
allowed needs at most about 210 frames (YAML), far below Python's default limit of 1,000, so
``sys.setrecursionlimit`` is never needed. A RecursionError that escapes a parser anyway is said the same way.
"""

from __future__ import annotations

import enum
import json
import math
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic_core import ErrorDetails, PydanticCustomError
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.errors import ConfigError

MAX_BYTES = 1 << 20
"""Experiments, profiles and topologies are a few kilobytes; anything near this is not one of them (and
PyYAML, pure Python, reads a megabyte in seconds)."""
MAX_DEPTH = 64
"""Levels of arrays and objects; the harness's own files nest about six."""
MAX_EXPANDED_NODES = 10_000
EXPANSION_RATIO = 100
"""A YAML document may hold at most max(MAX_EXPANDED_NODES, EXPANSION_RATIO x its length in characters)
values once its aliases are expanded (what a journal or a model ends up holding)."""


class Format(enum.StrEnum):
    JSON = "JSON"
    YAML = "YAML"
    TOML = "TOML"

    @classmethod
    def of(cls, path: Path) -> Format | None:
        """The format a file's extension names, or None."""
        return {".json": cls.JSON, ".yaml": cls.YAML, ".yml": cls.YAML, ".toml": cls.TOML}.get(
            path.suffix.lower()
        )


class DocumentError(ValueError):
    """The text is not a bounded document of its format; the message is one line, without the file."""


def read_document(path: Path, form: Format, *, label: str | None = None) -> dict[str, Any]:
    """The object at the top of the file ``path`` in ``form``; one ConfigError ``"<label>: <problem>"``
    otherwise (``label`` defaults to the path)."""
    name = label or str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError as exc:
        raise ConfigError(f"{name}: no such file") from exc
    except OSError as exc:
        raise ConfigError(f"{name}: cannot be read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_BYTES >> 20} MiB; not a {form} file the harness reads")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text (byte {exc.start})") from exc
    try:
        data = parse(text, form)
    except DocumentError as exc:
        raise ConfigError(f"{name}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: the top level must be an object of keys, not {kind_of(data)}")
    return data


def parse(text: str, form: Format) -> Any:
    """``text`` as plain data (dicts, lists, strings, numbers, booleans, None; TOML's dates too); a
    DocumentError otherwise."""
    try:
        match form:
            case Format.JSON:
                return parse_json(text)
            case Format.YAML:
                return parse_yaml(text)
            case Format.TOML:
                return parse_toml(text)
    except DocumentError:
        raise
    except RecursionError:  # a parser's own recursion, should a bound above ever let one through
        raise DocumentError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # a value the parser read but Python refuses (an integer of 5,000 digits)
        raise DocumentError(f"not valid {form}: {str(exc).splitlines()[0]}") from None


def kind_of(value: object) -> str:
    """How a message names a value's type, in the files' words."""
    match value:
        case dict():
            return "an object"
        case list():
            return "a list"
        case str():
            return "a string"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case None:
            return "null"
    return type(value).__name__


# JSON


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)  # "? : an unclosed one too, in one pass


def parse_json(text: str) -> Any:
    """JSON, refusing duplicate keys and nesting deeper than MAX_DEPTH (measured before parsing)."""
    _check_brackets(_JSON_STRING.sub('""', text))
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DocumentError(f"duplicate key {key!r}")
        found[key] = value
    return found


def _check_brackets(text: str, limit: int = MAX_DEPTH) -> None:
    """Refuse text whose brackets (outside strings, already removed) nest deeper than ``limit``."""
    depth = 0
    for match in re.finditer(r"[\[\]{}]", text):
        depth += 1 if match.group() in "[{" else -1
        if depth > limit:
            line = text.count("\n", 0, match.start()) + 1
            raise DocumentError(f"line {line}: nested deeper than {MAX_DEPTH} levels")


# TOML


_TOML_SKIPPED = re.compile(  # every alternative also takes an unclosed string, so one pass is linear
    r'"""(?:\\[\s\S]|[^\\])*?(?:"""|\Z)'  # multi-line basic string
    r"|'''[\s\S]*?(?:'''|\Z)"  # multi-line literal string
    r'|"(?:\\.|[^"\\\n])*"?'  # basic string
    r"|'[^'\n]*'?"  # literal string
    r"|#[^\n]*"  # comment
)


_TOML_DOTTED = re.compile(  # MAX_DEPTH parts of a dotted key (a quoted part is an "s" by then)
    rf"(?<![\w. \t-])(?:[\w-]++[ \t]*+\.[ \t]*+){{{MAX_DEPTH}}}"
)


def parse_toml(text: str) -> dict[str, Any]:
    """TOML, refusing arrays and inline tables nested deeper than MAX_DEPTH (measured before parsing: the
    parser recurses), and dotted keys or tables that nest deeper (measured after)."""
    bare = _TOML_SKIPPED.sub(lambda m: "s" + "\n" * m.group().count("\n"), text)
    _check_brackets(bare, MAX_DEPTH - 1)  # the top table is a level without brackets
    dotted = _TOML_DOTTED.search(bare)
    if dotted is not None:  # tomllib takes time quadratic in a dotted key's length
        line = bare.count("\n", 0, dotted.start()) + 1
        raise DocumentError(f"line {line}: a dotted key nested deeper than {MAX_DEPTH} levels")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DocumentError(f"not valid TOML: {exc}") from None
    _check_depth(data)
    return data


def _check_depth(data: object) -> None:
    """Refuse plain data nested deeper than MAX_DEPTH, walking it without recursion."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    raise DocumentError(f"nested deeper than {MAX_DEPTH} levels")
                stack.append((child, depth + 1))


# YAML


_JSON_TAGS = {f"tag:yaml.org,2002:{name}": name for name in ("str", "int", "float", "bool", "null")}
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that stops composing past MAX_DEPTH levels (composing recurses per level)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._nesting = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._nesting += 1
        try:
            if self._nesting > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]  # stub
                raise DocumentError(f"line {line}: nested deeper than {MAX_DEPTH} levels")
            node: Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._nesting -= 1


def parse_yaml(text: str) -> Any:
    """One YAML document of JSON's values (no dates, sets or binary; string keys, each once), whose aliases
    expand to a bounded number of values and levels. The node graph is measured before anything is
    built: an alias is counted each time it is used, without being expanded."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, max(MAX_EXPANDED_NODES, EXPANSION_RATIO * len(text)))
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise DocumentError(f"not valid YAML: {_yaml_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    problem = exc.problem or exc.context or "not YAML"
    if isinstance(exc, ComposerError) and exc.context and exc.problem:
        problem = f"{exc.context}: {exc.problem}"
    return where + " ".join(problem.split())


def _measure(root: Node, budget: int) -> None:
    """Refuse a node graph that expands to more than ``budget`` values or MAX_DEPTH levels, refers to
    itself, or holds what JSON cannot say. Each node is visited once: its expanded size and depth are
    remembered by identity, so an alias used a million times costs one lookup each."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values once expanded, levels below it)
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if children_done:
            open_nodes.discard(id(node))
            below = [sizes[id(child)] for child in _children(node)]
            size = 1 + sum(s for s, _ in below)
            depth = (
                1 + max((d for _, d in below), default=0)
                if isinstance(node, SequenceNode | MappingNode)
                else 0
            )
            if size > budget:
                raise DocumentError(
                    f"line {node.start_mark.line + 1}: its aliases expand to more than {budget} values"
                )
            if depth > MAX_DEPTH:
                raise DocumentError(
                    f"line {node.start_mark.line + 1}: its aliases nest it deeper than {MAX_DEPTH} levels"
                )
            sizes[id(node)] = (size, depth)
            continue
        if id(node) in open_nodes:
            raise DocumentError(f"line {node.start_mark.line + 1}: an alias refers to a value that holds it")
        _check_node(node)
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _check_node(node: Node) -> None:
    line = node.start_mark.line + 1
    if isinstance(node, ScalarNode):
        if node.tag not in _JSON_TAGS and node.tag != _MERGE:
            kind = node.tag.rpartition(":")[2]
            raise DocumentError(
                f"line {line}: {node.value!r} is read as a YAML {kind}; quote it for a string"
            )
        return
    if node.tag not in (_SEQ, _MAP):
        raise DocumentError(f"line {line}: the YAML tag {node.tag} is not a JSON value")
    if isinstance(node, MappingNode):
        keys: set[str] = set()
        for key, _value in node.value:
            if key.tag == _MERGE:
                continue
            if not isinstance(key, ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                shown = repr(key.value) if isinstance(key, ScalarNode) else "a list or object"
                raise DocumentError(
                    f"line {key.start_mark.line + 1}: the key {shown} is not read as a string; quote it"
                )
            if key.value in keys:
                raise DocumentError(f"line {key.start_mark.line + 1}: duplicate key {key.value!r}")
            keys.add(key.value)


# Messages


KEY_ERROR = "harness_key"
"""A pydantic error type whose ``ctx`` carries ``where`` (keys below the error's own place) and
``message``: how a validator names the part of a value it refuses (``attributes.latency``)."""


def key_error(where: str, message: str) -> PydanticCustomError:
    """An error that says which key below the validated value is wrong, and why."""
    return PydanticCustomError(KEY_ERROR, "{where}: {message}", {"where": where, "message": message})


def error_line(error: ErrorDetails, *, within: str = "") -> str:
    """One ``key: problem`` phrase for a pydantic error on a document's data (see ``error_parts``)."""
    where, message = error_parts(error, within=within)
    return f"{where}: {message}" if where else message


def error_parts(error: ErrorDetails, *, within: str = "") -> tuple[str, str]:
    """The key of a pydantic error as the file spells it (``method[2].provider.arguments.rate``, ``within``
    first) and the problem, with the value it got. Parts of the location in parentheses name union
    members, not keys, and are left out."""
    where = within
    for part in error["loc"]:
        if isinstance(part, int):
            where = subkey(where, f"[{part}]")
        elif not part.startswith("("):
            where = subkey(where, key_name(part))
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == KEY_ERROR:
        return subkey(where, str(ctx["where"])), str(ctx["message"])
    if kind == "missing":
        return where, "required"
    if kind == "extra_forbidden":
        return where, "unknown key"
    if kind == "union_tag_not_found":
        return subkey(where, str(ctx["discriminator"]).strip("'")), "required"
    if kind == "union_tag_invalid":
        got = shown(ctx["tag"])
        return subkey(
            where, str(ctx["discriminator"]).strip("'")
        ), f"must be {ctx['expected_tags']}, got {got}"
    if kind in ("value_error", "assertion_error"):
        return where, error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return where, f"{_EXPECTED.get(kind) or _plain(error['msg'])}, got {shown(error['input'])}"


def key_name(key: str) -> str:
    """A key as a message writes it: as it is when it is a plain word, else quoted (``["a b"]``), so a key
    of spaces, dots or newlines can neither break the line nor pass for a path."""
    return key if _PLAIN_KEY.fullmatch(key) else f"[{json.dumps(key)}]"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_$-]*")


def subkey(where: str, key: str) -> str:
    """``where`` and a key below it: ``a`` and ``b`` is ``a.b``, ``a`` and ``[0]`` is ``a[0]``."""
    if not where or not key:
        return where or key
    return where + key if key.startswith("[") else f"{where}.{key}"


_EXPECTED = {
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
}


def _plain(message: str) -> str:
    return message.replace("Input should be", "must be").replace("String should", "must")


def shown(value: object) -> str:
    """A value as a message shows it: short scalars as written, objects and lists by their kind."""
    if isinstance(value, dict | list) or value is None:
        return kind_of(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
