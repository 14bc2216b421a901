"""JSON as Go's encoding/json sees it: the struct layouts bodies are decoded into (by _godecode), the
decoder's error, and output as ``json.Marshal`` writes it (compact, HTML-safe escapes, shortest float32),
so bodies match Toxiproxy's."""

from __future__ import annotations

import functools
import json
import re
import struct
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum


class GoJSONError(ValueError):
    """A body Go's decoder would reject; ``str(exc)`` is Go's message (``EOF``, ``invalid character ...``)."""


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

    def field_for(self, key: str) -> GoField | None:
        """The field a JSON key sets, as Go matches it: the same key first, else one equal ignoring case."""
        same, folded = self._index
        return same.get(key) or folded.get(key.upper())

    @functools.cached_property
    def _index(self) -> tuple[dict[str, GoField], dict[str, GoField]]:
        same: dict[str, GoField] = {}
        folded: dict[str, GoField] = {}
        for each in self.fields:  # the first field of a key wins, as in the struct's field order
            same.setdefault(each.key, each)
            folded.setdefault(each.key.upper(), each)
        return same, folded


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (raises OverflowError past its range)."""
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


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
