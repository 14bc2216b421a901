"""Bad input to a real registry process: always a JSON 4xx that names the problem, never a 5xx.

Also the one deliberate 5xx, 507 when the registry is full (in-process, with a tiny limit).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import cli
from reference_services.registry import RegistrySettings, create_app

from .conftest import RunningRegistry

JSON_HEADERS = {"Content-Type": "application/json"}
OK_BODY: dict[str, Any] = {"service": "svc", "address": "127.0.0.1", "port": 9000}
REGISTER = "/v1/instances/x1"
LOOKUP = "/v1/services/s/instances"
BIG = 70_000  # over the registry's default 64 KiB limit


def case(
    case_id: str, method: str, path: str, status: int, error: str, hint: str, **request: Any
) -> pytest.ParameterSet:
    """One bad request and what the answer must say; ``hint`` must appear in the message."""
    return pytest.param(method, path, request, status, error, hint, id=case_id)


def bad_field(case_id: str, hint: str, **fields: Any) -> pytest.ParameterSet:
    """A registration whose body differs from a valid one in ``fields``: 422 naming ``hint``."""
    return case(case_id, "PUT", REGISTER, 422, "validation_error", hint, json={**OK_BODY, **fields})


BAD_INPUT = [
    bad_field("unknown-field", "colour", colour="red"),
    bad_field("wrong-type-port", "port", port="eighty"),
    bad_field("numeric-string-port-is-not-coerced", "port", port="8080"),
    bad_field("wrong-type-metadata-value", "metadata", metadata={"k": 1}),
    bad_field("empty-service-name", "service", service=""),
    bad_field("64-char-service-name", "service", service="s" * 64),
    bad_field("bad-chars-in-service", "service", service="bad name!"),
    bad_field("port-0", "port", port=0),
    bad_field("port-70000", "port", port=70_000),
    bad_field("weight-0", "weight", weight=0),
    bad_field("weight-1001", "weight", weight=1001),
    bad_field("ttl-too-short", "ttl", ttl=0.01),
    bad_field("empty-address", "address", address=""),
    bad_field("address-not-a-host", "address", address="http://h/"),
    bad_field("health-url-not-http", "health_url", health_url="ftp://h/health"),
    bad_field("33-metadata-keys", "metadata", metadata={f"k{i}": "v" for i in range(33)}),
    case("remote-address", "PUT", REGISTER, 422, "remote_address", "10.1.2.3",
         json={**OK_BODY, "address": "10.1.2.3"}),
    case("remote-health-url", "PUT", REGISTER, 422, "remote_address", "169.254.169.254",
         json={**OK_BODY, "health_url": "http://169.254.169.254/latest"}),
    bad_field("metadata-value-too-long", "metadata", metadata={"k": "v" * 256}),
    case("missing-service", "PUT", REGISTER, 422, "validation_error", "service",
         json={"address": "h", "port": 1}),
    case("id-starting-with-dash", "PUT", "/v1/instances/-x1", 422, "validation_error", "instance_id",
         json=OK_BODY),
    case("64-char-instance-id", "PUT", f"/v1/instances/{'i' * 64}", 422, "validation_error", "instance_id",
         json=OK_BODY),
    case("bad-chars-in-instance-id", "PUT", "/v1/instances/a%20b", 422, "validation_error", "instance_id",
         json=OK_BODY),
    case("non-object-json", "PUT", REGISTER, 422, "validation_error", "JSON object", json=[OK_BODY]),
    case("empty-body", "PUT", REGISTER, 422, "validation_error", "body is required", content=b"",
         headers=JSON_HEADERS),
    case("malformed-json", "PUT", REGISTER, 400, "malformed_json", "not valid JSON", content=b'{"service": ',
         headers=JSON_HEADERS),
    case("wrong-content-type", "PUT", REGISTER, 415, "unsupported_media_type", "application/json",
         content=json.dumps(OK_BODY), headers={"Content-Type": "text/plain"}),
    case("missing-content-type", "PUT", REGISTER, 415, "unsupported_media_type", "application/json",
         content=json.dumps(OK_BODY)),
    case("oversized-body-content-length", "PUT", REGISTER, 413, "body_too_large", "limit", content=b"x" * BIG,
         headers=JSON_HEADERS),
    case("oversized-body-chunked", "PUT", REGISTER, 413, "body_too_large", "limit", content="chunked",
         headers=JSON_HEADERS),
    case("negative-index", "GET", f"{LOOKUP}?index=-1", 422, "validation_error", "index"),
    case("wait-not-a-number", "GET", f"{LOOKUP}?index=1&wait=abc", 422, "validation_error", "wait"),
    case("wait-over-300", "GET", f"{LOOKUP}?index=1&wait=301", 422, "validation_error", "wait"),
    case("healthy-not-a-boolean", "GET", f"{LOOKUP}?healthy=maybe", 422, "validation_error", "healthy"),
    case("bad-service-name-in-path", "GET", "/v1/services/bad%20name/instances", 422, "validation_error",
         "service"),
    case("unknown-route", "GET", "/v1/nothing-here", 404, "not_found", "/v1/nothing-here"),
    case("wrong-method", "POST", REGISTER, 405, "method_not_allowed", "POST", json=OK_BODY),
]  # fmt: skip


async def _chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    """A JSON body streamed without Content-Length, ``total`` bytes and more."""
    yield b'{"service": "svc", "address": "h", "port": 1, "metadata": {"k": "'
    for _ in range(total // size + 1):
        yield b"a" * size
    yield b'"}}'


@pytest.mark.behaviour("services.bad_input")
@pytest.mark.parametrize(("method", "path", "request_kwargs", "status", "error", "hint"), BAD_INPUT)
async def test_bad_input_is_a_clear_4xx(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    request_kwargs: dict[str, Any],
    status: int,
    error: str,
    hint: str,
) -> None:
    """Each bad request gets its own status and a JSON error whose message names the problem."""
    kwargs = dict(request_kwargs)
    chunked = kwargs.get("content") == "chunked"
    if chunked:  # built here: a stream can be read only once
        kwargs["content"] = _chunks(BIG)

    response = await client.request(method, path, **kwargs)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["error"] == error
    assert hint.lower() in answer["message"].lower()
    if chunked:
        assert response.request.headers.get("transfer-encoding") == "chunked"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
_instance_ids = st.text(max_size=70) | st.from_regex(r"\Afuzz-[a-z0-9]{1,8}\Z")
_payloads = _json | st.fixed_dictionaries(
    {
        "service": st.just("fuzz") | st.text(max_size=70),
        "address": st.sampled_from(["127.0.0.1", "::1", "host.local", "", "a b", "-x"]) | _json,
        "port": st.integers(-5, 70_000) | _json,
    },
    optional={
        "health_url": st.sampled_from([None, "http://127.0.0.1:1/h", "https://x", "http://", "ftp://x"])
        | _json,
        "metadata": st.dictionaries(st.text(max_size=70), st.text(max_size=300) | _json, max_size=40),
        "weight": st.integers(-2, 1_002) | _json,
        "ttl": st.floats() | _json,
        "extra": _json,
    },
)


@pytest.mark.behaviour("services.bad_input")
def test_fuzzed_registrations_never_get_a_5xx(registry: RunningRegistry) -> None:
    """Any JSON body (NaN, lone surrogates and all) under any id: a success or a JSON 4xx."""
    with httpx.Client(base_url=registry.url, timeout=10.0, trust_env=False) as http:

        @settings(
            max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(instance_id=_instance_ids, payload=_payloads)
        def check(instance_id: str, payload: Any) -> None:
            response = http.put(
                f"/v1/instances/{quote(instance_id, safe='')}",
                content=json.dumps(payload),
                headers=JSON_HEADERS,
            )
            assert response.status_code < 500, response.text
            if response.status_code >= 400:
                answer = response.json()
                assert answer["error"]
                assert answer["message"]

        check()


@pytest.mark.behaviour("services.bad_input")
async def test_full_registry_refuses_new_ids_with_507() -> None:
    """Past ``max_instances`` a new id gets 507 ``registry_full``; known ids can still refresh."""
    app = create_app(RegistrySettings(max_instances=1))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry") as http:
        first = await http.put("/v1/instances/a", json=OK_BODY)
        refused = await http.put("/v1/instances/b", json=OK_BODY)
        refresh = await http.put("/v1/instances/a", json=OK_BODY)

    assert (first.status_code, refused.status_code, refresh.status_code) == (201, 507, 200)
    assert refused.json() == {
        "error": "registry_full",
        "message": "The registry holds its maximum of 1 instances.",
    }


TOKEN_FILE_CASES = [
    pytest.param("", "is empty", id="empty"),
    pytest.param("short\n", "16 to 512 printable ASCII", id="too-short"),
    pytest.param("has a space in the middle of it\n", "without spaces", id="space"),
]


@pytest.mark.behaviour("registry.write_token")
class TestBadTokenFile:
    """A token file the registry or an instance cannot use: exit 2, one line, the token never echoed."""

    @pytest.mark.parametrize(("content", "hint"), TOKEN_FILE_CASES)
    @pytest.mark.parametrize(
        "command",
        [
            pytest.param(["serve", "registry", "--token-file"], id="registry"),
            pytest.param(["serve", "echo", "--registry-token-file"], id="instance"),
        ],
    )
    def test_unusable_token_file_is_a_config_error(
        self, tmp_path: Path, command: list[str], content: str, hint: str
    ) -> None:
        token_file = tmp_path / "token"
        token_file.write_text(content)
        result = CliRunner().invoke(cli, [*command, str(token_file)])
        assert result.exit_code == 2, result.output
        assert hint in result.output
        assert result.output.count("\n") == 1
        if content.strip():
            assert content.strip() not in result.output

    def test_missing_token_file_is_a_config_error(self, tmp_path: Path) -> None:
        missing = tmp_path / "nowhere" / "token"
        result = CliRunner().invoke(cli, ["serve", "registry", "--token-file", str(missing)])
        assert result.exit_code == 2
        assert f"cannot read the registry token file {missing}" in result.output
