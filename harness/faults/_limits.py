"""What the embedded server refuses that a real Toxiproxy accepts: oversized or deeply nested bodies, names
that no URL can address, and toxic values that are meaningless or hold a connection for ever. Each limit
is written once here, with a message naming the attribute and the range (docs/toxiproxy.md lists them)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_BODY_BYTES = 1 << 20  # a /populate of thousands of proxies fits; a real client never sends more
MAX_JSON_DEPTH = 100  # Toxiproxy bodies nest 3 levels; Go allows 10,000, Python's parser recurses
MAX_NAME_LENGTH = 255
MAX_DELAY_MS = 3_600_000  # one hour: the longest any toxic may hold, delay or close a connection
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Bound:
    """The accepted range of one integer toxic attribute, in its unit; ``high`` None is only Go's int64."""

    low: int
    high: int | None
    unit: str

    def refusal(self, attribute: str, value: int) -> str | None:
        """Why ``value`` is refused, naming the attribute, or None when it is in range."""
        unit = f" {self.unit}" if self.unit else ""
        if self.high is None:
            return None if value >= self.low else f"{attribute}: must be at least {self.low}{unit}"
        if self.low <= value <= self.high:
            return None
        return f"{attribute}: must be between {self.low} and {self.high}{unit}"


MILLISECONDS = Bound(0, MAX_DELAY_MS, "ms")
MICROSECONDS = Bound(0, MAX_DELAY_MS * 1000, "µs")
BYTES = Bound(0, None, "bytes")
KB_PER_SECOND = Bound(0, None, "KB/s")
HTTP_ERROR_STATUS = Bound(400, 599, "")  # an error status: 1xx, 204 and 304 would frame differently
SECONDS = Bound(0, MAX_DELAY_MS // 1000, "s")
MAX_BODY_ATTRIBUTE = 64 << 10  # the body http_error answers with, in bytes of UTF-8


def toxicity_refusal(toxicity: float) -> str | None:
    """A toxicity is a probability: outside [0, 1] it means nothing (the real server does not check)."""
    return None if 0.0 <= toxicity <= 1.0 else "toxicity: must be between 0 and 1"


def name_refusal(name: str) -> str | None:
    """Why a proxy or toxic name is refused: it could never be read, updated or deleted through its URL."""
    if len(name) > MAX_NAME_LENGTH:
        return f"name: must be at most {MAX_NAME_LENGTH} characters, not {len(name)}"
    if "/" in name:
        return "name: must not contain '/'"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        return "name: must not contain control characters"
    if name in (".", ".."):
        return f"name: must not be {name!r}"
    return None


def body_too_large(length: int | None) -> str:
    """The 413 message; ``length`` is the declared Content-Length, None for a chunked body."""
    size = "" if length is None else f" ({length} bytes)"
    return f"request body too large{size}: the limit is {MAX_BODY_BYTES} bytes"
