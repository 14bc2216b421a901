"""JSON as Go's encoding/json reads and writes it (first value only, case-insensitive keys, Go's syntax and
type messages; compact output, HTML-safe escapes, shortest float32), so bodies match Toxiproxy's."""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from harness.faults._limits import MAX_JSON_DEPTH


class GoJSONError(ValueError):
    """A body Go's decoder would reject; ``str(exc)`` is Go's message (``EOF``, ``invalid character ...``)."""


@dataclass(frozen=True, slots=True)
class Number:
    """A JSON number kept as its literal, because Go checks the literal against the target type."""

    literal: str


class JsonObject(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in order, duplicates kept (Go assigns each, the last one wins)."""


class Kind(Enum):
    STRING = "string"
    BOOL = "bool"
    INT = "int"
    FLOAT32 = "float32"
    STRUCT = "struct"


@dataclass(frozen=True)
class GoField:
    """One exported field: its JSON key, kind, Go type name (for messages) and, for structs, its layout."""

    key: str
    kind: Kind
    go_type: str
    struct: GoStruct | None = None


@dataclass(frozen=True)
class GoStruct:
    """A Go struct type as the decoder sees it: ``name`` is ``reflect.Type.Name()`` ("" when anonymous)."""

    name: str
    type_string: str
    fields: tuple[GoField, ...] = field(default=())


_SPACE_RUN = re.compile(rb"[ \t\r\n]*")
_STRING_RUN = re.compile(rb'[^"\\\x00-\x1f]*')  # what a string may hold unescaped
_DIGIT_RUN = re.compile(rb"[0-9]*")
_OBJECT, _ARRAY = ord("{"), ord("[")
_INT64 = (-(2**63), 2**63 - 1)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _quote_char(byte: int) -> str:
    """Go's ``quoteChar``: the offending byte as a Go rune literal."""
    if byte == ord("'"):
        return "'\\''"
    if byte == ord('"'):
        return "'\"'"
    special = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 92: "\\\\"}
    if byte in special:
        return f"'{special[byte]}'"
    char = chr(byte)
    if byte < 0x20 or byte == 0x7F:
        return f"'\\x{byte:02x}'"
    if not char.isprintable():
        return f"'\\u{byte:04x}'"
    return f"'{char}'"


def _run_end(pattern: re.Pattern[bytes], data: bytes, start: int) -> int:
    """Where the run of ``pattern`` (which also matches nothing) starting at ``start`` ends."""
    match = pattern.match(data, start)
    assert match is not None
    return match.end()


class _Scanner:
    """Finds the end of the first JSON value in ``data`` or fails with Go's message.

    Iterative, with an explicit stack of open containers, so depth costs no recursion; runs of string
    characters, digits and spaces are skipped by regular expressions, so long values cost little.
    """

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.i = 0
        self.max_depth = max_depth

    def fail(self, context: str) -> GoJSONError:
        if self.i >= len(self.data):
            return GoJSONError("unexpected EOF")
        return GoJSONError(f"invalid character {_quote_char(self.data[self.i])} {context}")

    def peek(self) -> int:
        if self.i >= len(self.data):
            raise GoJSONError("unexpected EOF")
        return self.data[self.i]

    def skip_space(self) -> None:
        self.i = _run_end(_SPACE_RUN, self.data, self.i)

    def value(self) -> None:
        open_containers: list[int] = []  # b"{" or b"[" for each container not yet closed
        while True:
            if self._begin_value(open_containers):
                continue  # a container was opened and a value is expected inside it
            while open_containers:  # the value is complete: close containers or move to the next value
                self.skip_space()
                c = self.peek()
                if open_containers[-1] == _OBJECT:
                    if c == ord("}"):
                        self.i += 1
                        open_containers.pop()
                        continue
                    if c != ord(","):
                        raise self.fail("after object key:value pair")
                    self.i += 1
                    self.skip_space()
                    self.key()
                    break
                if c == ord("]"):
                    self.i += 1
                    open_containers.pop()
                    continue
                if c != ord(","):
                    raise self.fail("after array element")
                self.i += 1
                break
            else:
                return

    def _begin_value(self, open_containers: list[int]) -> bool:
        """Scan a scalar or an empty container (False), or open a container and its first member (True)."""
        self.skip_space()
        c = self.peek()
        if c in (_OBJECT, _ARRAY):
            if len(open_containers) >= self.max_depth:
                raise self.fail("exceeded max depth")  # Go's message (its limit is 10,000)
            self.i += 1
            self.skip_space()
            if self.peek() == (ord("}") if c == _OBJECT else ord("]")):
                self.i += 1
                return False
            if c == _OBJECT:
                self.key()
            open_containers.append(c)
            return True
        if c == ord('"'):
            self.string()
        elif c == ord("-") or ord("0") <= c <= ord("9"):
            self.number()
        elif c in b"tfn":
            self.literal({ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}[c])
        else:
            raise self.fail("looking for beginning of value")
        return False

    def key(self) -> None:
        """An object key and its colon."""
        if self.peek() != ord('"'):
            raise self.fail("looking for beginning of object key string")
        self.string()
        self.skip_space()
        if self.peek() != ord(":"):
            raise self.fail("after object key")
        self.i += 1

    def string(self) -> None:
        self.i += 1
        while True:
            self.i = _run_end(_STRING_RUN, self.data, self.i)
            c = self.peek()
            if c == ord('"'):
                self.i += 1
                return
            if c == ord("\\"):
                self.i += 1
                e = self.peek()
                if e == ord("u"):
                    for _ in range(4):
                        self.i += 1
                        if self.peek() not in b"0123456789abcdefABCDEF":
                            raise self.fail("in \\u hexadecimal character escape")
                elif e not in b'"\\/bfnrt':
                    raise self.fail("in string escape code")
            else:  # a control character: the run stops only at a quote, a backslash or one of these
                raise self.fail("in string literal")
            self.i += 1

    def _digits(self) -> None:
        self.i = _run_end(_DIGIT_RUN, self.data, self.i)

    def number(self) -> None:
        if self.data[self.i] == ord("-"):
            self.i += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.fail("in numeric literal")
        if self.data[self.i] == ord("0"):
            self.i += 1
        else:
            self._digits()
        if self.i < len(self.data) and self.data[self.i] == ord("."):
            self.i += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.fail("after decimal point in numeric literal")
            self._digits()
        if self.i < len(self.data) and self.data[self.i] in b"eE":
            self.i += 1
            if self.peek() in b"+-":
                self.i += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.fail("in exponent of numeric literal")
            self._digits()

    def literal(self, word: bytes) -> None:
        self.i += 1
        for expected in word[1:]:
            if self.peek() != expected:
                raise self.fail(f"in literal {word.decode()} (expecting {_quote_char(expected)})")
            self.i += 1


def _clean_string(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def decode(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The first JSON value of ``body`` as Python data (objects as JsonObject, numbers as Number).

    Nesting deeper than ``max_depth`` is refused with Go's message for its own (deeper) limit, before
    Python's parser, which recurses, sees the value. The cost is linear in the length of ``body``.
    """
    scanner = _Scanner(body, max_depth)
    scanner.skip_space()
    if scanner.i >= len(body):
        raise GoJSONError("EOF")
    start = scanner.i
    scanner.value()
    text = body[start : scanner.i].decode("utf-8", errors="replace")
    return json.loads(
        text,
        object_pairs_hook=lambda pairs: JsonObject((_clean_string(k), v) for k, v in pairs),
        parse_int=Number,
        parse_float=Number,
    )


def _kind_of(value: Any) -> str:
    if isinstance(value, JsonObject):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Number):
        return "number"
    return "string"


def _int_value(number: Number) -> int | None:
    if not re.fullmatch(r"-?\d+", number.literal):
        return None
    if len(number.literal.lstrip("-")) > len(str(_INT64[1])):
        return None  # past int64 (JSON has no leading zeros); int() would refuse past 4,300 digits
    value = int(number.literal)
    return value if _INT64[0] <= value <= _INT64[1] else None


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (raises OverflowError past its range)."""
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def _float32_value(number: Number) -> float | None:
    value = float(number.literal)
    try:
        rounded = float32(value)
    except OverflowError:
        return None
    return None if math.isinf(rounded) else rounded


class _Binder:
    def __init__(self) -> None:
        self.error: str | None = None

    def type_error(self, value: str, go_type: str, struct_name: str | None, path: Sequence[str]) -> None:
        if self.error is not None:
            return
        if struct_name is None and not path:
            self.error = f"json: cannot unmarshal {value} into Go value of type {go_type}"
        else:
            where = f"{struct_name or ''}.{'.'.join(path)}"
            self.error = f"json: cannot unmarshal {value} into Go struct field {where} of type {go_type}"

    def bind_struct(
        self, value: Any, layout: GoStruct, outer: str | None, path: tuple[str, ...]
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, JsonObject):
            self.type_error(_kind_of(value), layout.type_string, outer, path)
            return None
        result: dict[str, Any] = {}
        exact = {f.key: f for f in layout.fields}
        folded = {f.key.upper(): f for f in layout.fields}
        for key, item in value:
            found = exact.get(key) or folded.get(key.upper())
            if found is None or item is None:
                continue
            bound = self.bind_field(item, found, layout.name, (*path, found.key))
            if bound is not None:
                result[found.key] = bound
        return result

    def bind_field(self, item: Any, spec: GoField, struct_name: str, path: tuple[str, ...]) -> Any:
        if spec.kind is Kind.STRUCT:
            assert spec.struct is not None
            if not isinstance(item, JsonObject):
                self.type_error(_kind_of(item), spec.go_type, struct_name, path)
                return None
            return self.bind_struct(item, spec.struct, struct_name, path)
        kind = _kind_of(item)
        if spec.kind is Kind.STRING and kind == "string":
            return item
        if spec.kind is Kind.BOOL and kind == "bool":
            return item
        if spec.kind in (Kind.INT, Kind.FLOAT32) and isinstance(item, Number):
            number = _int_value(item) if spec.kind is Kind.INT else _float32_value(item)
            if number is None:
                kind = f"number {item.literal}"
            else:
                return number
        self.type_error(kind, spec.go_type, struct_name, path)
        return None


def bind(value: Any, layout: GoStruct) -> dict[str, Any]:
    """Assign decoded JSON to ``layout`` as Go would: the fields present and well typed, by JSON key.

    Raises GoJSONError with Go's message for the first type mismatch (Go reports it after decoding the rest).
    """
    binder = _Binder()
    result = binder.bind_struct(value, layout, None, ())
    if binder.error is not None:
        raise GoJSONError(binder.error)
    return result or {}


def bind_list(value: Any, element: GoStruct, slice_type: str) -> list[dict[str, Any]]:
    """Assign a decoded JSON array to a Go slice of ``element`` structs (``null`` is an empty slice)."""
    binder = _Binder()
    if value is None:
        return []
    if not isinstance(value, list) or isinstance(value, JsonObject):
        binder.type_error(_kind_of(value), slice_type, None, ())
        raise GoJSONError(binder.error or "")
    items = [binder.bind_struct(item, element, None, ()) or {} for item in value]
    if binder.error is not None:
        raise GoJSONError(binder.error)
    return items


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML_PATTERN = re.compile("[<>&\u2028\u2029]")


def go_string(text: str) -> str:
    """A JSON string literal as ``json.Marshal`` writes it (HTML-safe escapes included)."""
    encoded = json.dumps(text, ensure_ascii=False)
    return _HTML_PATTERN.sub(lambda m: _HTML_ESCAPES[m.group()], encoded)


def go_float32(value: float) -> str:
    """A float32 as ``json.Marshal`` prints it: the shortest digits that read back to the same float32."""
    target = float32(value)
    if target == 0:
        return "-0" if str(target).startswith("-") else "0"
    for digits in range(1, 10):
        text = f"{target:.{digits - 1}e}"
        if float32(float(text)) == target:
            break
    magnitude = abs(target)
    if magnitude < 1e-6 or magnitude >= 1e21:
        mantissa, exponent = text.split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        exp = int(exponent)
        return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}".replace("e-0", "e-", 1)
    return format(Decimal(text).normalize(), "f")


def go_bool(value: bool) -> str:
    return "true" if value else "false"
