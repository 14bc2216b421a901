"""What the toxics' server puts on the wire and reads from it: Go's JSON, addresses and request ids."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import pytest

from harness.faults._addresses import AddressError, remote_address_refusal, split_host_port
from harness.faults._api import RequestIds, _clean_path
from harness.faults._collection import POPULATE_ENTRY, POPULATE_SLICE, PROXY, TOXIC_WRAPPER
from harness.faults._decoding import BodyDecoder
from harness.faults._godecode import decode, decode_list
from harness.faults._gojson import GoJSONError, go_float32, go_string
from harness.faults._limits import (
    MAX_JSON_DEPTH,
    MAX_NAME_LENGTH,
    Bound,
    body_too_large,
    name_refusal,
    toxicity_refusal,
)
from harness.faults._toxics import LatencyToxic


@pytest.mark.behaviour("proxy.api")
class TestDecodeSyntax:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(b"", "EOF", id="empty"),
            pytest.param(b" \n\t", "EOF", id="only-space"),
            pytest.param(b'{"a":', "unexpected EOF", id="truncated"),
            pytest.param(b"x", "invalid character 'x' looking for beginning of value", id="junk"),
            pytest.param(
                b"{1}", "invalid character '1' looking for beginning of object key string", id="key"
            ),
            pytest.param(b'{"a" 1}', "invalid character '1' after object key", id="colon"),
            pytest.param(b'{"a":1 "b"}', "invalid character '\"' after object key:value pair", id="comma"),
            pytest.param(b"[1 2]", "invalid character '2' after array element", id="array"),
            pytest.param(
                b"[1,]", "invalid character ']' looking for beginning of value", id="trailing-comma"
            ),
            pytest.param(b'"\x01"', "invalid character '\\x01' in string literal", id="control"),
            pytest.param(b'"\\q"', "invalid character 'q' in string escape code", id="escape"),
            pytest.param(b"-a", "invalid character 'a' in numeric literal", id="minus"),
            pytest.param(
                b"1.x", "invalid character 'x' after decimal point in numeric literal", id="decimal"
            ),
            pytest.param(b"1ex", "invalid character 'x' in exponent of numeric literal", id="exponent"),
            pytest.param(b"tru ", "invalid character ' ' in literal true (expecting 'e')", id="literal"),
            pytest.param(
                b"\xc3", "invalid character '\u00c3' looking for beginning of value", id="latin1-byte"
            ),
        ],
    )
    def test_errors_read_like_go(self, body: bytes, message: str) -> None:
        with pytest.raises(GoJSONError) as caught:
            decode(body, PROXY)
        assert str(caught.value) == message

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(
                b'"' + b"a" * 5000 + b'\\q"', "invalid character 'q' in string escape code", id="escape"
            ),
            pytest.param(
                b'"' + b"a" * 5000 + b'\n"', "invalid character '\\n' in string literal", id="control"
            ),
            pytest.param(b'"' + b"a" * 5000, "unexpected EOF", id="unterminated"),
            pytest.param(b"[" + b"1" * 5000 + b"x", "invalid character 'x' after array element", id="digits"),
        ],
    )
    def test_long_runs_end_where_go_would_fail(self, body: bytes, message: str) -> None:
        """Runs of string characters and digits are skipped in one step; the error is still Go's."""
        with pytest.raises(GoJSONError) as caught:
            decode(body, PROXY)
        assert str(caught.value) == message

    def test_first_value_only(self) -> None:
        """Like json.Decoder.Decode, bytes after the first value are not read."""
        assert decode(b'{"name":"a"} trailing junk', PROXY) == {"name": "a"}


@pytest.mark.behaviour("proxy.api")
class TestDecodeDepth:
    def test_nesting_at_the_limit_decodes(self) -> None:
        deep = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)  # inside the outer object
        assert decode(b'{"x":' + deep + b',"name":"n"}', PROXY) == {"name": "n"}

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(
                b"[" * (MAX_JSON_DEPTH + 1), "invalid character '[' exceeded max depth", id="one-over"
            ),
            pytest.param(b"[" * 5000, "invalid character '[' exceeded max depth", id="arrays"),
            pytest.param(b'{"a":' * 5000, "invalid character '{' exceeded max depth", id="objects"),
            pytest.param(b'[{"a":[' * 2000, "invalid character '{' exceeded max depth", id="mixed"),
        ],
    )
    def test_deeper_is_gos_max_depth_error_not_a_recursion_error(self, body: bytes, message: str) -> None:
        with pytest.raises(GoJSONError) as caught:
            decode(body, PROXY)
        assert str(caught.value) == message


@pytest.mark.behaviour("proxy.api")
class TestBind:
    def test_keys_are_case_insensitive_and_null_keeps_defaults(self) -> None:
        assert decode(b'{"NAME":"a","Upstream":"b:1","enabled":null}', PROXY) == {
            "name": "a",
            "upstream": "b:1",
        }

    def test_unpaired_surrogate_escape_becomes_replacement_character(self) -> None:
        """As in Go; a string that keeps a lone surrogate could not even be encoded back into a response."""
        assert decode(b'{"name":"a\\ud800b\\ud83d\\ude00"}', PROXY) == {"name": "a\ufffdb\U0001f600"}

    def test_slice_elements_that_are_not_structs_are_type_errors(self) -> None:
        with pytest.raises(GoJSONError) as caught:
            decode_list(b'[{"name":"a"},null,7]', POPULATE_ENTRY, POPULATE_SLICE)
        assert (
            str(caught.value)
            == f"json: cannot unmarshal number into Go value of type {POPULATE_ENTRY.type_string}"
        )
        assert decode_list(b'[{"name":"a"},null]', POPULATE_ENTRY, POPULATE_SLICE) == [{"name": "a"}, {}]

    def test_syntax_errors_win_over_type_errors(self) -> None:
        """Go checks the whole value before it assigns anything."""
        with pytest.raises(GoJSONError, match="unexpected EOF"):
            decode(b'{"name":1,"upstream":', PROXY)

    def test_last_duplicate_wins(self) -> None:
        assert decode(b'{"name":"a","name":"b"}', PROXY) == {"name": "b"}

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param(
                b'{"name":1}',
                "json: cannot unmarshal number into Go struct field Proxy.name of type string",
                id="number-into-string",
            ),
            pytest.param(
                b'{"Logger":3}',
                "json: cannot unmarshal number into Go struct field Proxy.Logger of type zerolog.Logger",
                id="logger",
            ),
            pytest.param(
                b"[]", "json: cannot unmarshal array into Go value of type toxiproxy.Proxy", id="top-level"
            ),
        ],
    )
    def test_type_errors_read_like_go(self, body: bytes, message: str) -> None:
        with pytest.raises(GoJSONError) as caught:
            decode(body, PROXY)
        assert str(caught.value) == message

    def test_integer_literal_past_int64_is_gos_type_error(self) -> None:
        """Even one too long for Python's int() (4,300 digits): a 400 with Go's message, never a 500."""
        digits = "9" * 5000
        layout = LatencyToxic.layout()
        with pytest.raises(GoJSONError) as caught:
            decode(f'{{"latency":{digits}}}'.encode(), layout)
        assert str(caught.value) == (
            f"json: cannot unmarshal number {digits} into Go struct field LatencyToxic.latency of type int64"
        )

    @pytest.mark.parametrize(
        ("literal", "expected"),
        [
            pytest.param(b"0.5", 0.5, id="half"),
            pytest.param(b"1e-3", pytest.approx(0.001), id="exponent"),
            pytest.param(b"1e39", None, id="overflow"),
        ],
    )
    def test_float32_fields(self, literal: bytes, expected: object) -> None:
        body = b'{"toxicity":' + literal + b"}"
        if expected is None:
            with pytest.raises(GoJSONError, match=r"number 1e39 into Go struct field ToxicWrapper\.toxicity"):
                decode(body, TOXIC_WRAPPER)
        else:
            assert decode(body, TOXIC_WRAPPER)["toxicity"] == expected


@pytest.mark.behaviour("proxy.api")
class TestEncode:
    @pytest.mark.parametrize(
        ("value", "printed"),
        [
            pytest.param(1.0, "1", id="one"),
            pytest.param(0.5, "0.5", id="half"),
            pytest.param(0.1, "0.1", id="tenth"),
            pytest.param(1 / 3, "0.33333334", id="third"),
            pytest.param(1e-7, "1e-7", id="small"),
            pytest.param(1e21, "1e+21", id="large"),
            pytest.param(123456789.0, "123456790", id="float32-rounding"),
        ],
    )
    def test_float32_is_shortest_round_trip(self, value: float, printed: str) -> None:
        assert go_float32(value) == printed

    def test_strings_escape_html_like_go(self) -> None:
        assert go_string("<a&b>\u2028") == '"\\u003ca\\u0026b\\u003e\\u2028"'


@pytest.mark.behaviour("proxy.api")
class TestAddresses:
    @pytest.mark.parametrize(
        ("address", "expected"),
        [
            pytest.param("127.0.0.1:80", ("127.0.0.1", "80"), id="ipv4"),
            pytest.param("[::1]:80", ("::1", "80"), id="ipv6"),
            pytest.param(":80", ("", "80"), id="empty-host"),
            pytest.param("localhost:", ("localhost", ""), id="empty-port"),
        ],
    )
    def test_split(self, address: str, expected: tuple[str, str]) -> None:
        assert split_host_port(address) == expected

    @pytest.mark.parametrize(
        ("address", "message"),
        [
            pytest.param("foo", "address foo: missing port in address", id="no-port"),
            pytest.param("::1:80", "address ::1:80: too many colons in address", id="colons"),
            pytest.param("[::1:80", "address [::1:80: missing ']' in address", id="bracket"),
        ],
    )
    def test_split_errors_read_like_go(self, address: str, message: str) -> None:
        with pytest.raises(AddressError, match=message.replace("[", r"\[")):
            split_host_port(address)

    @pytest.mark.parametrize(
        ("address", "what", "refused"),
        [
            pytest.param("127.0.0.1:0", "listen", False, id="loopback"),
            pytest.param("localhost:8080", "listen", False, id="localhost"),
            pytest.param("[::1]:0", "listen", False, id="ipv6-loopback"),
            pytest.param("", "listen", True, id="empty-is-every-interface"),
            pytest.param("0.0.0.0:0", "listen", True, id="any"),
            pytest.param("10.0.0.1:80", "upstream", True, id="remote"),
            pytest.param("db.internal:5432", "upstream", True, id="host-name"),
            pytest.param(":5432", "upstream", False, id="upstream-empty-host-is-local"),
            pytest.param("garbage", "upstream", False, id="unparseable-fails-later-anyway"),
        ],
    )
    def test_loopback_policy(self, address: str, what: str, refused: bool) -> None:
        refusal = remote_address_refusal(address, what)
        assert (refusal is not None) == refused
        if refusal:
            assert f"{what} address {address} " in refusal


@pytest.mark.behaviour("proxy.api")
class TestRouting:
    def test_request_ids_are_20_base32hex_chars_and_distinct(self) -> None:
        ids = RequestIds()
        first, second = ids.next(), ids.next()
        assert len(first) == 20
        assert set(first) <= set("0123456789abcdefghijklmnopqrstuv")
        assert first != second

    @pytest.mark.parametrize(
        ("path", "cleaned"),
        [
            pytest.param("/proxies", "/proxies", id="clean"),
            pytest.param("//proxies", "/proxies", id="double-slash"),
            pytest.param("/proxies/./a/../b", "/proxies/b", id="dots"),
            pytest.param("/proxies/", "/proxies/", id="trailing-slash-kept"),
        ],
    )
    def test_paths_are_cleaned_like_gorilla_mux(self, path: str, cleaned: str) -> None:
        assert _clean_path(path) == cleaned


@pytest.mark.behaviour("proxy.api")
class TestLimits:
    @pytest.mark.parametrize(
        ("name", "message"),
        [
            pytest.param("users-1", None, id="ordinary"),
            pytest.param("with space%and?query", None, id="escapable"),
            pytest.param("n" * MAX_NAME_LENGTH, None, id="longest"),
            pytest.param(
                "n" * (MAX_NAME_LENGTH + 1), "name: must be at most 255 characters, not 256", id="long"
            ),
            pytest.param("a/b", "name: must not contain '/'", id="slash"),
            pytest.param("a\x00", "name: must not contain control characters", id="nul"),
            pytest.param("a\x7f", "name: must not contain control characters", id="del"),
            pytest.param(".", "name: must not be '.'", id="dot"),
        ],
    )
    def test_names_a_url_cannot_address_are_refused(self, name: str, message: str | None) -> None:
        assert name_refusal(name) == message

    @pytest.mark.parametrize(
        ("toxicity", "refused"),
        [
            pytest.param(0.0, False, id="zero"),
            pytest.param(1.0, False, id="one"),
            pytest.param(-0.5, True, id="negative"),
            pytest.param(1.0000001, True, id="over-one"),
        ],
    )
    def test_toxicity_is_a_probability(self, toxicity: float, refused: bool) -> None:
        assert (toxicity_refusal(toxicity) is not None) == refused

    @pytest.mark.parametrize(
        ("bound", "value", "message"),
        [
            pytest.param(Bound(0, 10, "ms"), 10, None, id="upper-inclusive"),
            pytest.param(Bound(0, 10, "ms"), 11, "x: must be between 0 and 10 ms", id="over"),
            pytest.param(Bound(0, 10, "ms"), -1, "x: must be between 0 and 10 ms", id="under"),
            pytest.param(Bound(0, None, "bytes"), 2**63 - 1, None, id="open-ended"),
            pytest.param(Bound(0, None, "bytes"), -1, "x: must be at least 0 bytes", id="open-ended-under"),
        ],
    )
    def test_bounds_name_the_attribute_and_the_range(
        self, bound: Bound, value: int, message: str | None
    ) -> None:
        assert bound.refusal("x", value) == message

    def test_413_message_says_the_size_and_the_limit(self) -> None:
        assert (
            body_too_large(2_000_000) == "request body too large (2000000 bytes): the limit is 1048576 bytes"
        )
        assert body_too_large(None) == "request body too large: the limit is 1048576 bytes"


@pytest.mark.behaviour("proxy.api")
class TestBodyDecoder:
    @staticmethod
    async def ticks_during(work: Coroutine[Any, Any, object]) -> int:
        """How many turns other tasks on the loop got while ``work`` ran."""
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        task = asyncio.create_task(ticker())
        try:
            await asyncio.sleep(0)
            before = ticks
            with contextlib.suppress(GoJSONError):
                await work
            return ticks - before
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def test_decodes_like_decode(self) -> None:
        body = b'{"a":[1,"x",null],"name":"n","enabled":false}'
        assert await BodyDecoder().decode(body, PROXY) == {"name": "n", "enabled": False}

    async def test_a_costly_body_leaves_the_loop_running(self) -> None:
        """A body scanned to its end before failing gives the loop back again and again meanwhile."""
        body = b"[" + b"0," * (1 << 19)  # ~1 MiB, then "unexpected EOF"
        assert await self.ticks_during(BodyDecoder().decode(body, PROXY)) > 10

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b"{" + b'"a":0,' * (1 << 17) + b'"name":"x"}', id="many-members"),
            pytest.param(b'{"name":"' + b"\\n" * (1 << 18) + b'"}', id="escapes-in-one-string"),
            pytest.param(b"[" + b'{"name":"p","upstream":"u:1"},' * (1 << 14) + b"null]", id="many-entries"),
        ],
    )
    async def test_large_values_leave_the_loop_running(self, body: bytes) -> None:
        """Steps fall inside long tokens too: a string of 256k escapes is not one step."""
        work: Coroutine[Any, Any, object]
        if body.startswith(b"["):
            work = BodyDecoder().decode_list(body, POPULATE_ENTRY, POPULATE_SLICE)
        else:
            work = BodyDecoder().decode(body, PROXY)
        assert await self.ticks_during(work) > 10

    async def test_slices_give_the_loop_back_within_their_length(self) -> None:
        """The longest the loop waits while a costly body is decoded is about one slice."""
        decoder = BodyDecoder(slice_seconds=0.001)
        loop = asyncio.get_running_loop()
        waits: list[float] = []

        async def watch() -> None:
            while True:
                began = loop.time()
                await asyncio.sleep(0)
                waits.append(loop.time() - began)

        task = asyncio.create_task(watch())
        try:
            with contextlib.suppress(GoJSONError):
                await decoder.decode(b"[" + b"[[[]]]," * (1 << 17), PROXY)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert len(waits) > 10
        assert max(waits) < 0.05  # one slice is 1 ms; the bound leaves room for a busy machine
