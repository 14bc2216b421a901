"""Request bodies decoded as Go's ``json.Decoder.Decode`` decodes them into a struct: the first value only,
Go's syntax and type messages, keys matched case-insensitively, unknown keys checked but never built.

Building only the fields the struct has keeps a hostile body from allocating (and from waking the garbage
collector); the work is iterative (depth costs no recursion) and done in steps that yield every
STEP_ITEMS values, so the server can spread one large body over many short turns of its event loop. Runs of
plain members are taken a pattern match at a time, so the work itself is small: 30 ms of CPU for 1 MiB of
values only checked, 120 ms for a 1 MiB /populate of thousands of proxies (0.8 s and 0.4 s value by value).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from harness.faults._gojson import GoField, GoJSONError, GoStruct, Kind, float32
from harness.faults._limits import MAX_JSON_DEPTH

T = TypeVar("T")
Steps = Generator[None, None, T]  # work done in steps: it yields between them and returns its result
STEP_ITEMS = 64  # values, members or escapes per step: a fraction of a millisecond

_SPACE_RUN = re.compile(rb"[ \t\r\n]*")
_STRING_RUN = re.compile(rb'[^"\\\x00-\x1f]*')  # what a string may hold unescaped
_DIGIT_RUN = re.compile(rb"[0-9]*")
_INTEGER = re.compile(r"-?\d+")
_INT64 = (-(2**63), 2**63 - 1)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_LITERALS = {ord("t"): (b"true", True), ord("f"): (b"false", False), ord("n"): (b"null", None)}
_SLICE = "slice"  # the kind of a top-level slot that takes a JSON array of structs

# Patterns that take many members in one match, so a large body costs the proxy milliseconds of CPU rather
# than a second (on a busy machine a process that decodes for a second is time-sliced against every other
# busy process, and the traffic it proxies waits with it, however often its loop gets a turn). A pattern takes
# only whole, valid members: where it stops, the decoder is in the state it would have reached value by
# value, and whatever it does not take (a container, an escape in a plain key, a bad token) is decoded as
# before, so every message is Go's, at the same byte. Possessive quantifiers: no backtracking.
_WS = rb"[ \t\r\n]*+"
_NUMBER = rb"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"  # Go's number grammar
_STRING = rb'"(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+"'  # escapes checked, not decoded
_SIMPLE = rb"(?:%s|%s|true|false|null)" % (_NUMBER, _STRING)
# Members of a container that is only checked, never built (a key the struct lacks, a type mismatch): runs
# of ``value,`` or ``"key":value,``, at most RUN_WINDOW bytes per step.
_CHECKED_ELEMENTS = re.compile(rb"(?:%s%s%s,)*+" % (_WS, _SIMPLE, _WS))
_CHECKED_MEMBERS = re.compile(rb"(?:%s%s%s:%s%s%s,)*+" % (_WS, _STRING, _WS, _WS, _SIMPLE, _WS))
RUN_WINDOW = 8 << 10  # bytes a run may cover in one step: a fraction of a millisecond
# A member of a struct being built whose key and value are plain (no escapes) and whose value is a scalar;
# the separator after it is left for the decoder, or for _PLAIN_NEXT_MEMBER.
_PLAIN_STRING = rb'"([^"\\\x00-\x1f]*+)"'
_PLAIN_VALUE = rb"(?:%s|(%s)|(true|false|null))" % (_PLAIN_STRING, _NUMBER)
_PLAIN = _WS + _PLAIN_STRING + _WS + b":" + _WS + _PLAIN_VALUE + _WS + rb"(?=[,}])"
_PLAIN_MEMBER = re.compile(_PLAIN)
_PLAIN_NEXT_MEMBER = re.compile(rb"," + _PLAIN)  # at the separator after a member taken
_WORDS: dict[bytes, bool | None] = {b"true": True, b"false": False, b"null": None}


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


def _int_value(literal: str) -> int | None:
    if not _INTEGER.fullmatch(literal) or len(literal.lstrip("-")) > len(str(_INT64[1])):
        return None  # not an integer, or past int64 (and past what int() reads: 4,300 digits)
    value = int(literal)
    return value if _INT64[0] <= value <= _INT64[1] else None


def _float32_value(literal: str) -> float | None:
    try:
        rounded = float32(float(literal))
    except OverflowError:
        return None
    return None if math.isinf(rounded) else rounded


class _Slot(NamedTuple):  # a tuple: made for every member and element, it must be cheap to build
    """Where the next value goes and the Go type it must have.

    ``kind`` is a Kind, or _SLICE for a top-level slice of ``layout`` structs. ``struct_name`` and ``path``
    name it in type errors (``Go struct field Proxy.enabled``), or neither for a top-level value.
    """

    kind: Kind | str
    go_type: str
    struct_name: str | None = None
    path: tuple[str, ...] = ()
    layout: GoStruct | None = None
    owner: dict[str, Any] | list[Any] | None = None  # the struct or slice it goes into; None at the top
    key: str = ""


@dataclass
class _Container:
    """An open object or array; ``layout`` when it is decoded into a struct, ``element`` into a slice."""

    is_object: bool
    layout: GoStruct | None = None
    element: GoStruct | None = None
    path: tuple[str, ...] = ()
    result: dict[str, Any] | list[Any] = field(default_factory=dict)

    def slot_for_key(self, key: str | None) -> _Slot | None:
        """Where the value of member ``key`` goes: the struct's field of that name, or nowhere (None)."""
        if self.layout is None or key is None:
            return None
        found = self.layout.field_for(key)
        return None if found is None else self.slot_for(found)

    def slot_for(self, found: GoField) -> _Slot:
        """Where the value of the struct's field ``found`` goes."""
        assert self.layout is not None
        assert isinstance(self.result, dict)
        return _Slot(
            found.kind,
            found.go_type,
            self.layout.name,
            (*self.path, found.key),
            found.struct,
            self.result,
            found.key,
        )

    def slot_for_element(self) -> _Slot | None:
        if self.element is None:
            return None
        return _Slot(Kind.STRUCT, self.element.type_string, layout=self.element, owner=self.result)


class _Decoder:
    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.i = 0
        self.max_depth = max_depth
        self.type_error: str | None = None  # Go reports the first one, after checking the whole value
        self.plain_taken = 0  # members plain_members took, for its steps
        self.root: Any = None

    # -- syntax ---------------------------------------------------------------------------------------------
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

    def decode(self, top: _Slot) -> Steps[Any]:
        self.skip_space()
        if self.i >= len(self.data):
            raise GoJSONError("EOF")
        containers: list[_Container] = []
        slot: _Slot | None = top
        values = 0
        while True:
            self.skip_space()
            c = self.peek()
            if c in b"{[":
                if len(containers) >= self.max_depth:
                    raise self.fail("exceeded max depth")  # Go's message (its limit is 10,000)
                self.i += 1
                container = self.open(slot, is_object=c == ord("{"))
                self.skip_space()
                if self.peek() != (ord("}") if container.is_object else ord("]")):
                    containers.append(container)
                    slot = yield from self.first_member(containers)
                    if slot is _DONE:
                        return self.result(top)
                    continue
                self.i += 1  # an empty container is a complete value
            else:
                yield from self.scalar(c, slot)
            values += 1
            if values % STEP_ITEMS == 0:
                yield
            if not containers:
                return self.result(top)
            slot = yield from self.next_member(containers)
            if slot is _DONE:
                return self.result(top)

    def first_member(self, containers: list[_Container]) -> Steps[_Slot | None]:
        """The slot of the first member of the container just opened, or what next_member gives after it."""
        container = containers[-1]
        if container.is_object:
            if container.layout is not None and (yield from self.plain_members(container)):
                return (yield from self.next_member(containers))
            return container.slot_for_key((yield from self.key_and_colon(container)))
        return container.slot_for_element()

    def next_member(self, containers: list[_Container]) -> Steps[_Slot | None]:
        """Close containers, or pass the comma (and key) to the next member: its slot, or _DONE."""
        while containers:
            self.skip_space()
            c = self.peek()
            container = containers[-1]
            if container.is_object:
                if c == ord("}"):
                    self.i += 1
                    containers.pop()
                    continue
                if c != ord(","):
                    raise self.fail("after object key:value pair")
                self.i += 1
                if container.layout is None:
                    yield from self.pass_run(_CHECKED_MEMBERS)
                elif (yield from self.plain_members(container)):
                    continue  # at the separator after the last member taken
                self.skip_space()
                return container.slot_for_key((yield from self.key_and_colon(container)))
            if c == ord("]"):
                self.i += 1
                containers.pop()
                continue
            if c != ord(","):
                raise self.fail("after array element")
            self.i += 1
            if container.element is None:
                yield from self.pass_run(_CHECKED_ELEMENTS)
            return container.slot_for_element()
        return _DONE

    def pass_run(self, members: re.Pattern[bytes]) -> Steps[None]:
        """Pass a run of complete simple members of a checked container, one window per step."""
        while True:
            match = members.match(self.data, self.i, self.i + RUN_WINDOW)
            assert match is not None  # the pattern also matches nothing
            if match.end() == self.i:
                return
            self.i = match.end()
            yield

    def plain_members(self, container: _Container) -> Steps[bool]:
        """Decode a run of plain scalar members into the struct being built; whether it took any."""
        layout, result = container.layout, container.result
        assert layout is not None
        assert isinstance(result, dict)
        taken = 0
        pattern = _PLAIN_MEMBER
        while (match := pattern.match(self.data, self.i)) is not None:
            self.i = match.end()
            pattern = _PLAIN_NEXT_MEMBER
            key, text, number, word = match.groups()
            found = layout.field_for(key.decode("utf-8", errors="replace"))
            if found is None:
                pass  # a key the struct does not have: its value is only checked, and the pattern did that
            elif text is not None and found.kind is Kind.STRING:  # the common case, without a slot
                result[found.key] = text.decode("utf-8", errors="replace")
            elif text is not None:
                self.wrong_scalar("string", container.slot_for(found))
            elif number is not None:
                self.assign_number(number.decode("ascii"), container.slot_for(found))
            else:
                self.assign_literal(container.slot_for(found), _WORDS[word])
            taken += 1
            self.plain_taken += 1
            if self.plain_taken % STEP_ITEMS == 0:
                yield
        return taken > 0

    def key_and_colon(self, container: _Container) -> Steps[str | None]:
        """The key (None when the object is only checked) and the colon after it."""
        if self.peek() != ord('"'):
            raise self.fail("looking for beginning of object key string")
        key = yield from self.string(keep=container.layout is not None)
        self.skip_space()
        if self.peek() != ord(":"):
            raise self.fail("after object key")
        self.i += 1
        return key

    def string(self, *, keep: bool) -> Steps[str | None]:
        start = self.i
        self.i += 1
        escapes = 0
        while True:
            self.i = _run_end(_STRING_RUN, self.data, self.i)
            c = self.peek()
            if c == ord('"'):
                self.i += 1
                break
            if c != ord("\\"):  # the run stops only at a quote, a backslash or a control character
                raise self.fail("in string literal")
            escapes += 1
            if escapes % STEP_ITEMS == 0:
                yield
            self.i += 1
            e = self.peek()
            if e == ord("u"):
                for _ in range(4):
                    self.i += 1
                    if self.peek() not in b"0123456789abcdefABCDEF":
                        raise self.fail("in \\u hexadecimal character escape")
            elif e not in b'"\\/bfnrt':
                raise self.fail("in string escape code")
            self.i += 1
        if not keep:
            return None
        if not escapes:  # invalid UTF-8 becomes U+FFFD, as in Go
            return self.data[start + 1 : self.i - 1].decode("utf-8", errors="replace")
        text: str = json.loads(self.data[start : self.i].decode("utf-8", errors="replace"))
        return _LONE_SURROGATE.sub("\ufffd", text)  # Go replaces an unpaired surrogate escape too

    def number(self) -> str:
        start = self.i
        if self.data[self.i] == ord("-"):
            self.i += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.fail("in numeric literal")
        if self.data[self.i] == ord("0"):
            self.i += 1
        else:
            self.i = _run_end(_DIGIT_RUN, self.data, self.i)
        if self.i < len(self.data) and self.data[self.i] == ord("."):
            self.i += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.fail("after decimal point in numeric literal")
            self.i = _run_end(_DIGIT_RUN, self.data, self.i)
        if self.i < len(self.data) and self.data[self.i] in b"eE":
            self.i += 1
            if self.peek() in b"+-":
                self.i += 1
            if not ord("0") <= self.peek() <= ord("9"):
                raise self.fail("in exponent of numeric literal")
            self.i = _run_end(_DIGIT_RUN, self.data, self.i)
        return self.data[start : self.i].decode("ascii")

    def literal(self, word: bytes) -> None:
        self.i += 1
        for expected in word[1:]:
            if self.peek() != expected:
                raise self.fail(f"in literal {word.decode()} (expecting {_quote_char(expected)})")
            self.i += 1

    # -- assignment -----------------------------------------------------------------------------------------
    def mismatch(self, value: str, slot: _Slot) -> None:
        """Record Go's type error (the first one wins, as Go's decoder saves only the first)."""
        if self.type_error is not None:
            return
        if slot.struct_name is None and not slot.path:
            self.type_error = f"json: cannot unmarshal {value} into Go value of type {slot.go_type}"
        else:
            where = f"{slot.struct_name or ''}.{'.'.join(slot.path)}"
            self.type_error = (
                f"json: cannot unmarshal {value} into Go struct field {where} of type {slot.go_type}"
            )

    def put(self, slot: _Slot, value: Any) -> None:
        if isinstance(slot.owner, dict):
            slot.owner[slot.key] = value
        elif isinstance(slot.owner, list):
            slot.owner.append(value)
        else:
            self.root = value

    def open(self, slot: _Slot | None, *, is_object: bool) -> _Container:
        if slot is None:
            return _CHECKED_OBJECT if is_object else _CHECKED_ARRAY
        if is_object and slot.kind is Kind.STRUCT:
            assert slot.layout is not None
            container = _Container(True, layout=slot.layout, path=slot.path)
            self.put(slot, container.result)
            return container
        if not is_object and slot.kind == _SLICE:
            container = _Container(False, element=slot.layout, result=[])
            self.put(slot, container.result)
            return container
        self.mismatch("object" if is_object else "array", slot)
        if slot.owner is None or isinstance(slot.owner, list):
            self.put(slot, {})  # a top-level value or a slice element that is not a struct: Go's zero value
        return _CHECKED_OBJECT if is_object else _CHECKED_ARRAY

    def scalar(self, c: int, slot: _Slot | None) -> Steps[None]:
        if c == ord('"'):
            keep = slot is not None and slot.kind is Kind.STRING
            self.assign_string(slot, (yield from self.string(keep=keep)))
        elif c == ord("-") or ord("0") <= c <= ord("9"):
            literal = self.number()
            if slot is not None:
                self.assign_number(literal, slot)
        elif c in _LITERALS:
            word, value = _LITERALS[c]
            self.literal(word)
            self.assign_literal(slot, value)
        else:
            raise self.fail("looking for beginning of value")

    def assign_string(self, slot: _Slot | None, text: str | None) -> None:
        """``text`` is the string when ``slot`` keeps strings, else None (it was only checked)."""
        if slot is None:
            return
        if slot.kind is Kind.STRING:
            self.put(slot, text)
        else:
            self.wrong_scalar("string", slot)

    def assign_literal(self, slot: _Slot | None, value: bool | None) -> None:
        if slot is None:
            return
        if value is None:  # null keeps the field's value; a null slice element is a zero struct
            if isinstance(slot.owner, list):
                self.put(slot, {})
        elif slot.kind is Kind.BOOL:
            self.put(slot, value)
        else:
            self.wrong_scalar("bool", slot)

    def assign_number(self, literal: str, slot: _Slot) -> None:
        if slot.kind is Kind.INT or slot.kind is Kind.FLOAT32:
            number = _int_value(literal) if slot.kind is Kind.INT else _float32_value(literal)
            if number is not None:
                self.put(slot, number)
                return
            self.wrong_scalar(f"number {literal}", slot)
            return
        self.wrong_scalar("number", slot)

    def wrong_scalar(self, value: str, slot: _Slot) -> None:
        self.mismatch(value, slot)
        if isinstance(slot.owner, list):
            self.put(slot, {})

    def result(self, top: _Slot) -> Any:
        if self.type_error is not None:
            raise GoJSONError(self.type_error)
        if self.root is None:  # null: the zero value
            return [] if top.kind == _SLICE else {}
        return self.root


_DONE = _Slot(Kind.STRUCT, "")  # next_member's answer when the top-level value is complete
_CHECKED_OBJECT = _Container(is_object=True)  # containers only checked, never built: shared, never written
_CHECKED_ARRAY = _Container(is_object=False)


def run(steps: Steps[T]) -> T:
    """Do stepwise work to its end at once, and return its result."""
    try:
        while True:
            next(steps)
    except StopIteration as done:
        result: T = done.value
        return result


def decoding(body: bytes, layout: GoStruct, max_depth: int = MAX_JSON_DEPTH) -> Steps[dict[str, Any]]:
    """``decode`` in steps."""
    return _Decoder(body, max_depth).decode(_Slot(Kind.STRUCT, layout.type_string, layout=layout))


def decoding_list(
    body: bytes, element: GoStruct, slice_type: str, max_depth: int = MAX_JSON_DEPTH
) -> Steps[list[dict[str, Any]]]:
    """``decode_list`` in steps."""
    return _Decoder(body, max_depth).decode(_Slot(_SLICE, slice_type, layout=element))


def decode(body: bytes, layout: GoStruct, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The fields of ``layout`` present and well typed in the first JSON value of ``body``, by JSON key.

    Raises GoJSONError with Go's message: a syntax error anywhere in the value first, else the first type
    mismatch. Nesting deeper than ``max_depth`` is a syntax error with Go's message for its own limit.
    """
    return run(decoding(body, layout, max_depth))


def decode_list(
    body: bytes, element: GoStruct, slice_type: str, max_depth: int = MAX_JSON_DEPTH
) -> list[dict[str, Any]]:
    """A JSON array decoded into a Go slice of ``element`` structs (``null`` is an empty slice)."""
    return run(decoding_list(body, element, slice_type, max_depth))
