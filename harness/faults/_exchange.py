"""A proxied connection's HTTP layer, there while its proxy has HTTP toxics: it frames the requests (client
to server) and the responses (server to client) in front of both links' toxic stages, applies the HTTP
toxics to each request, and keeps every response in request order, the answers it writes itself included.

Toxiproxy's design is one toxic chain per direction; an ``http_error`` on the request stream must answer on
the response direction, after the responses to every request before it. So the layer spans both
directions of one connection: a queue of the requests in flight says, for each, whether the server or the
proxy answers it, and the response side writes the proxy's answers into the gaps between the server's.
Time comes from an injected scheduler (the event loop, or a virtual clock in tests).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from harness.faults._http_framing import (
    Body,
    Data,
    End,
    Event,
    Head,
    Malformed,
    NotHttp,
    RequestFramer,
    ResponseFramer,
    Start,
    starts_request,
)
from harness.faults._http_toxics import HttpErrorToxic, HttpLatencyToxic
from harness.faults._link import Direction, ToxicEntry

_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n%s"
)


class Outlet(Protocol):
    """Where one direction's bytes go on: its toxic stages, or its destination socket."""

    def forward(self, data: bytes) -> None: ...

    def forward_eof(self) -> None: ...

    def queued(self, delta: int) -> None:
        """Bytes held back (negative: released), so the source is paused while too many are held."""
        ...


class Handle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """The event loop's clock and timers (``asyncio.AbstractEventLoop`` is one)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> Handle: ...


class _Held:
    """One direction's output: bytes go on at once, unless an http_latency holds them until a due time;
    what comes later waits behind (every byte in order). ``None`` stands for the close. What one event
    loop turn lets through is written at ``flush``, as one write (a head and its body in one segment)."""

    def __init__(self, outlet: Outlet, scheduler: Scheduler) -> None:
        self._outlet = outlet
        self._scheduler = scheduler
        self._items: deque[tuple[float, bytes | None]] = deque()
        self._batch: list[bytes] = []
        self._timer: Handle | None = None
        self._last_due = 0.0
        self.ended = False

    @property
    def empty(self) -> bool:
        return not self._items

    def push(self, data: bytes | None, delay: float = 0.0) -> None:
        """Send ``data`` (None: the close) ``delay`` seconds from now, and never before what came earlier."""
        if self.ended:
            return
        now = self._scheduler.time()
        due = max(now + delay, self._last_due)
        self._last_due = due
        if not self._items and due <= now:
            self._send(data)
            return
        self._items.append((due, data))
        if data:
            self._outlet.queued(len(data))
        if self._timer is None:
            self._timer = self._scheduler.call_at(self._items[0][0], self._release)

    def _send(self, data: bytes | None) -> None:
        if data is None:
            self.ended = True
            self.flush()
            self._outlet.forward_eof()
        elif data:
            self._batch.append(data)

    def flush(self) -> None:
        if self._batch:
            data = b"".join(self._batch) if len(self._batch) > 1 else self._batch[0]
            self._batch.clear()
            self._outlet.forward(data)

    def _release(self) -> None:
        self._timer = None
        now = self._scheduler.time()
        while self._items and self._items[0][0] <= now:
            _, data = self._items.popleft()
            if data:
                self._outlet.queued(-len(data))
            self._send(data)
        self.flush()
        if self._items:
            self._timer = self._scheduler.call_at(self._items[0][0], self._release)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@dataclass
class _InFlight:
    """A request read from the client, and who answers it: the server, or the proxy (``error``, or a
    refusal when ``request`` is None); ``answer`` holds the proxy's bytes once they may go out."""

    request: Head | None
    error: tuple[str, HttpErrorToxic] | None = None  # the http_error that answers it, and its name
    answer: bytes | None = None
    close: bool = False  # the connection closes after the proxy's answer
    delay: float = 0.0  # the http_latency toxics' delay on the request, paid by the proxy's answer too

    @property
    def by_proxy(self) -> bool:
        return self.error is not None or self.request is None

    def finish(self, *, close: bool) -> None:
        """The request has been read (or will not be waited for): render the proxy's answer."""
        if self.error is not None and self.request is not None:
            name, toxic = self.error
            self.close = close
            self.answer = toxic.answer(self.request, name, close=close)

    @property
    def answered_before_body(self) -> bool:
        """The proxy answers it, and the client may wait for 100 Continue before sending the body."""
        return self.error is not None and self.request is not None and self.request.expects_continue


@dataclass
class _Response:
    """The server's response being passed on, and what the HTTP toxics on the response stream do to it."""

    request: _InFlight | None  # None: interim (1xx), or a response nobody asked for
    replacement: bytes | None = None
    close: bool = False  # after the replacement
    delay: float = 0.0


class _Tap:
    """One link's entry into the layer (the ``Tap`` a link feeds instead of its stages): each call is
    handled, then what it lets through is written."""

    def __init__(
        self, exchange: HttpExchange, feed: Callable[[bytes], None], feed_eof: Callable[[], None]
    ) -> None:
        self._exchange = exchange
        self._feed = feed
        self._feed_eof = feed_eof

    def feed(self, data: bytes) -> None:
        try:
            self._feed(data)
        finally:
            self._exchange.flush()

    def feed_eof(self) -> None:
        try:
            self._feed_eof()
        finally:
            self._exchange.flush()


Fired = tuple[str, HttpErrorToxic] | None


class HttpExchange:
    """The HTTP layer of one connection. ``toxics`` are the proxy's toxics per direction, read at every
    message, so adding, updating and removing HTTP toxics needs nothing from open connections but a call
    to ``rules_changed``. ``fresh``: the connection is new, so its first byte starts a request; otherwise
    (added to an open connection) framing starts at the first chunk that begins with a request line.
    ``on_detach`` is called once the layer is no longer needed: no HTTP toxic is left and nothing is in
    flight (``http`` True), or the connection turned out not to be HTTP/1.x (``http`` False)."""

    def __init__(
        self,
        toxics: tuple[list[ToxicEntry], list[ToxicEntry]],
        rng: random.Random,
        scheduler: Scheduler,
        *,
        to_server: Outlet,
        to_client: Outlet,
        fresh: bool = True,
        on_detach: Callable[[bool], None] = lambda _http: None,
    ) -> None:
        self._toxics = toxics
        self._rng = rng
        self._on_detach = on_detach
        self._up = _Held(to_server, scheduler)
        self._down = _Held(to_client, scheduler)
        self._requests = RequestFramer()
        self._responses = ResponseFramer(self._method_answered)
        self._in_flight: deque[_InFlight] = deque()
        self._reading: _InFlight | None = None
        self._response: _Response | None = None
        self._synced = fresh
        self._closing = False  # the proxy answered and closes: what the client sends now is dropped
        self._not_http = False  # a stream that is not HTTP/1.x, or a tunnel: every byte passes as it is
        self.detached = False
        self.requests = _Tap(self, self._feed_request, self._request_eof)
        self.responses = _Tap(self, self._feed_response, self._response_eof)

    # -- the rules -----------------------------------------------------------------------------------------
    def _rules(self, direction: Direction) -> list[ToxicEntry]:
        return [entry for entry in self._toxics[direction] if entry.toxic.per_request]

    def rules_changed(self) -> None:
        """HTTP toxics were added or removed on the proxy: detach now if none is left and nothing waits."""
        self._check_idle()

    def _apply(self, direction: Direction, request: Head) -> tuple[Fired, float]:
        """The first http_error that fires on this message (its name and toxic), and the sum of the delays
        of the http_latency toxics that fire. Each matching toxic draws its toxicity once per message."""
        error: Fired = None
        delay = 0.0
        for entry in self._rules(direction):
            toxic = entry.toxic
            if not isinstance(toxic, HttpErrorToxic | HttpLatencyToxic) or not toxic.matches(request):
                continue
            if self._rng.random() >= entry.toxicity:
                continue
            if isinstance(toxic, HttpLatencyToxic):
                delay += toxic.delay(self._rng)
            elif error is None:
                error = (entry.name, toxic)
        return error, delay

    # -- client to server ----------------------------------------------------------------------------------
    def _feed_request(self, data: bytes) -> None:
        if self._closing:
            return
        if self._not_http:
            self._up.push(data)
            self._check_idle()
            return
        if not self._synced:
            if not starts_request(data):
                self._up.push(data)  # the rest of a message that began before the layer did
                return
            self._synced = True
        for event in self._requests.events(data):
            self._on_request(event)
        reading = self._reading
        if reading is not None and reading.answered_before_body:
            # The client may wait for 100 Continue before it sends the body: answer now, and close, since
            # whether a body follows the answer is then up to the client.
            reading.finish(close=True)
            self._reading = None
            self._closing = True
        self._emit_answers()
        self._check_idle()

    def _on_request(self, event: Event) -> None:
        match event:
            case Start(head=head, data=data):
                flight = _InFlight(head)
                self._in_flight.append(flight)
                self._reading = flight
                flight.error, flight.delay = self._apply(Direction.UPSTREAM, head)
                if flight.error is None:
                    self._up.push(data, flight.delay)
            case Data(data=data):
                if self._reading is None or self._reading.error is None:
                    self._up.push(data)
            case End():
                reading, self._reading = self._reading, None
                if reading is not None and reading.request is not None:
                    reading.finish(close=not reading.request.keep_alive)
            case NotHttp(data=data):
                self._not_http = True
                self._up.push(data)
            case Malformed(reason=reason):
                # What a server would refuse (a request with both Content-Length and Transfer-Encoding, ...)
                # is refused here, never forwarded: the framing past it could differ from the server's.
                body = f"{reason}\n".encode()
                self._in_flight.append(_InFlight(None, answer=_BAD_REQUEST % (len(body), body), close=True))
                self._reading = None
                self._closing = True

    def _request_eof(self) -> None:
        if not self._closing and self._synced:
            for event in self._requests.feed_eof():
                self._on_request(event)
        self._up.push(None)
        self._check_idle()

    # -- server to client ----------------------------------------------------------------------------------
    def _method_answered(self) -> str:
        flight = self._in_flight[0] if self._in_flight else None
        if flight is None or flight.by_proxy or flight.request is None:
            return "GET"  # a response nobody asked for (a 408 before closing, say)
        return flight.request.method

    def _feed_response(self, data: bytes) -> None:
        if not self._synced or self._responses.passing:
            self._down.push(data)  # not framed: before the first request framed, or not HTTP
            self._check_idle()
            return
        for event in self._responses.events(data):
            self._on_response(event)
        self._emit_answers()
        self._check_idle()

    def _on_response(self, event: Event) -> None:
        match event:
            case Start(head=head, data=data):
                flight = self._in_flight[0] if self._in_flight else None
                if head.body is Body.TUNNEL:  # 101 Switching Protocols, or a CONNECT tunnel: not HTTP now
                    self._down.push(data)
                    self._tunnel()
                elif flight is None or flight.by_proxy or flight.request is None or head.interim:
                    self._response = _Response(None)
                    self._down.push(data)
                else:
                    self._response = self._respond(flight, flight.request, head, data)
            case Data(data=data):
                if self._response is None or self._response.replacement is None:
                    self._down.push(data)
            case End():
                response, self._response = self._response, None
                if response is not None and response.request is not None:
                    if self._in_flight and self._in_flight[0] is response.request:
                        self._in_flight.popleft()
                    if response.replacement is not None:
                        self._down.push(response.replacement, response.delay)
                        if response.close:
                            self._close_client()
                # The proxy's answers next in line go now, before the server's next response begins.
                self._emit_answers()
            case NotHttp(data=data) | Malformed(data=data):
                self._down.push(data)
                self._give_up()

    def _respond(self, flight: _InFlight, request: Head, head: Head, data: bytes) -> _Response:
        """Start passing on the final response to ``request``, as the response stream's toxics say."""
        error, delay = self._apply(Direction.DOWNSTREAM, request)
        response = _Response(flight, delay=delay)
        if error is None:
            self._down.push(data, delay)
        else:
            name, toxic = error
            response.close = not (request.keep_alive and head.keep_alive)
            response.replacement = toxic.answer(request, name, close=response.close)
        return response

    def _response_eof(self) -> None:
        if self._synced and not self._responses.passing:
            for event in self._responses.feed_eof():
                self._on_response(event)
        self._in_flight.clear()  # nothing more will be answered on this connection
        self._response = None
        self._down.push(None)
        self._check_idle()

    def _emit_answers(self) -> None:
        """Write the proxy's answers that are next in line: no server response before them is pending."""
        while self._in_flight and self._response is None and self._responses.between:
            flight = self._in_flight[0]
            if flight.answer is None:
                return
            self._in_flight.popleft()
            self._down.push(flight.answer, flight.delay)
            if flight.close:
                self._close_client()
                return

    def _close_client(self) -> None:
        """Close the connection once what is already on its way to the client has gone."""
        self._down.push(None)
        self._in_flight.clear()
        self._closing = True

    def _tunnel(self) -> None:
        self._responses.pass_through()
        self._requests.pass_through()
        self._not_http = True
        self._in_flight.clear()
        self._response = None

    def _give_up(self) -> None:
        """The server's bytes cannot be framed: pass everything on as it is from now on. Answers of the
        proxy still waiting could no longer be put in their place, so the connection is closed instead."""
        waiting = any(flight.by_proxy for flight in self._in_flight)
        self._tunnel()
        if waiting:
            self._close_client()

    # -- lifetime ------------------------------------------------------------------------------------------
    def _check_idle(self) -> None:
        if self.detached or self._closing or not (self._up.empty and self._down.empty):
            return
        if self._not_http and not self._in_flight and self._response is None:
            self._detach(http=False)
            return
        at_rest = (
            not self._in_flight
            and self._reading is None
            and self._response is None
            and self._requests.idle
            and self._responses.idle
        )
        no_rules = not self._rules(Direction.UPSTREAM) and not self._rules(Direction.DOWNSTREAM)
        if no_rules and (at_rest or not self._synced):
            self._detach(http=True)

    def _detach(self, *, http: bool) -> None:
        self.detached = True
        self._on_detach(http)

    def flush(self) -> None:
        """Write what the last event let through, one write per direction."""
        self._up.flush()
        self._down.flush()

    def cancel(self) -> None:
        """The connection is gone: stop the timers."""
        self._up.cancel()
        self._down.cancel()
