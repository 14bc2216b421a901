"""llhttp, the parser uvicorn reads requests with (through httptools), as the fault proxy's judge of what a
request is: fed a request stream piece by piece, it says what each piece completed (a head, a message) and
why it refuses what it refuses. Configured as uvicorn configures it, so what the proxy frames as a request
is exactly what the reference services would serve."""

from __future__ import annotations

from dataclasses import dataclass

import httptools

# llhttp's reasons for the refusals that matter most (request smuggling shapes), in the proxy's words; any
# other reason is given as llhttp words it.
_REASONS = {
    "Transfer-Encoding can't be present with Content-Length": "both Content-Length and Transfer-Encoding",
    "Content-Length can't be present with Transfer-Encoding": "both Content-Length and Transfer-Encoding",
    "Request has invalid `Transfer-Encoding`": "Transfer-Encoding does not end with chunked",
    "Duplicate Content-Length": "conflicting Content-Length values",
    "Invalid character in Content-Length": "invalid Content-Length",
    "Content-Length overflow": "invalid Content-Length",
    "Unexpected whitespace after header value": "obsolete line folding in a header",
    "Invalid header token": "invalid header line",
}


@dataclass(frozen=True)
class RequestFacts:
    """What llhttp read in one request head: the start line, the fields (names lower-cased, values without
    surrounding whitespace, in order), and whether it asks to switch protocols."""

    method: str
    target: str
    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]
    upgrade: bool  # CONNECT, or Connection: upgrade with an Upgrade field: llhttp reads no body after it


class LlhttpRequests:
    """One llhttp request parser over one stream. ``feed`` gives it the next bytes; ``begun``, ``heads`` and
    ``completed`` count the messages it has started, read the head of, and read to the end; ``facts`` is
    the last head read. After a refusal it accepts nothing more."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        # uvicorn's setting: requests after one that asked to close are still read
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self.begun = 0
        self.heads = 0
        self.completed = 0
        self.facts: RequestFacts | None = None
        self.refusal: str | None = None

    def feed(self, data: bytes) -> str | None:
        """Parse ``data``; the refusal, if llhttp refuses (now or before), else None."""
        if self.refusal is not None or not data:
            return self.refusal
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            # llhttp stops after a request that switches protocols; httptools has it read on from there. The
            # framer never feeds past such a head, so nothing of ``data`` may be left over.
            if upgrade.args[0] != len(data):
                self.refusal = "bytes after a request that switches protocols"
        except httptools.HttpParserError as error:
            reason = str(error) or type(error).__name__
            self.refusal = _REASONS.get(reason, reason)
        return self.refusal

    # -- llhttp's callbacks (httptools calls them by name) ------------------------------------------------
    def on_message_begin(self) -> None:
        self.begun += 1
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1").strip(" \t")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        major, _, minor = parser.get_http_version().partition(".")
        self.facts = RequestFacts(
            method=parser.get_method().decode("ascii"),
            target=self._url.decode("latin-1"),
            version=(int(major), int(minor)),
            headers=tuple(self._headers),
            upgrade=parser.should_upgrade(),
        )
        self.heads += 1

    def on_message_complete(self) -> None:
        self.completed += 1


def begins_request_line(data: bytes) -> bool:
    """Whether llhttp reads the first line of ``data`` (LF included) as the start of a request."""
    parser = LlhttpRequests()
    return parser.feed(data) is None and parser.begun == 1
