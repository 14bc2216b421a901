"""A proxied connection's HTTP layer, there while its proxy has HTTP toxics: it frames the requests (client
to server) and the responses (server to client) in front of both links' toxic stages, applies the HTTP
toxics to each request, and keeps every response in request order, the answers it writes itself included.

Toxiproxy's design is one toxic chain per direction; an ``http_error`` on the request stream must answer on
the response direction, after the responses to every request before it. So the layer spans both
directions of one connection: a queue of the requests in flight says, for each, whether the server or the
proxy answers it, and the response side writes the proxy's answers into the gaps between the server's.
It stays bounded: while the client does not take what is written to it, or too many requests are in
flight, no more of its requests are framed and its socket is not read. Time comes from an injected
scheduler (the event loop, or a virtual clock in tests).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from harness.faults._http_framing import (
    Body,
    Data,
    End,
    Event,
    Head,
    Malformed,
    NotHttp,
    ResponseFramer,
    Start,
)
from harness.faults._http_outlets import ClientFlow, Handle, Held, LinkFlow, Outlet, Scheduler
from harness.faults._http_toxics import HttpErrorToxic, HttpLatencyToxic
from harness.faults._link import HIGH_WATER, LOW_WATER, Direction, Link, ToxicEntry
from harness.faults._request_framing import RequestFramer, starts_request

MAX_IN_FLIGHT = 256  # requests read and not yet answered, above which the client is not read
POLL = 0.005  # seconds between looks at a client that is not taking its answers

_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n%s"
)


@dataclass
class _InFlight:
    """A request read from the client, and who answers it: the server, or the proxy (``error``, or a
    ``refusal`` when ``request`` is None)."""

    request: Head | None
    error: tuple[str, HttpErrorToxic] | None = None  # the http_error that answers it, and its name
    refusal: bytes = b""  # the proxy's 400 for what it refused
    done: bool = False  # read to its end, or not waited for: the proxy's answer may go out
    close: bool = False  # the connection closes after the proxy's answer
    delay: float = 0.0  # the http_latency toxics' delay on the request, paid by the proxy's answer too

    @property
    def by_proxy(self) -> bool:
        return self.error is not None or self.request is None

    def finish(self, *, close: bool) -> None:
        """The request has been read (or will not be waited for): the proxy's answer may go out."""
        if self.error is not None:
            self.done = True
            self.close = close

    def answer(self) -> bytes | None:
        """The proxy's answer, rendered as it goes out (requests waiting in line hold no body of one); None
        while it may not go out yet, or the server answers."""
        if self.request is None:
            return self.refusal
        if self.error is None or not self.done:
            return None
        name, toxic = self.error
        return toxic.answer(self.request, name, close=self.close)

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
    ends: bool = False  # the connection ends with it (a body up to the close, or the server says close)


def _ends_connection(head: Head) -> bool:
    """Whether nothing may follow this final response on its connection."""
    return head.body is Body.UNTIL_CLOSE or not head.keep_alive


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
    flight (``http`` True), or the connection turned out not to be HTTP/1.x (``http`` False). ``flow``
    bounds what the client is owed (by default the links', when the outlets are the connection's links)."""

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
        flow: ClientFlow | None = None,
    ) -> None:
        self._toxics = toxics
        self._rng = rng
        self._scheduler = scheduler
        self._on_detach = on_detach
        if flow is None and isinstance(to_server, Link) and isinstance(to_client, Link):
            flow = LinkFlow(to_server, to_client)
        self._flow = flow
        self._up = Held(to_server, scheduler)
        self._down = Held(to_client, scheduler)
        self._requests = RequestFramer()
        self._responses = ResponseFramer(self._method_answered)
        self._in_flight: deque[_InFlight] = deque()
        self._reading: _InFlight | None = None
        self._response: _Response | None = None
        self._synced = fresh
        self._closing = False  # the proxy answered and closes: what the client sends now is dropped
        self._not_http = False  # a stream that is not HTTP/1.x, or a tunnel: every byte passes as it is
        self._stalled = False  # the client is owed too much: its requests wait unframed, it is not read
        self._client_closed = False  # the client closed while its requests waited
        self._poll: Handle | None = None
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
        self._frame_requests(data)
        self._after_requests()

    def _frame_requests(self, data: bytes) -> bool:
        """Frame and handle the client's requests, until the client is owed too much (``_stall``); whether
        the client is held."""
        if self._stalled:
            self._requests.keep(data)
            return True
        for event in self._requests.events(data):
            self._on_request(event)
            if isinstance(event, End):
                self._emit_answers()  # now, so what the client is owed counts them
                if self._closing:  # an answer that closes went out: what follows is dropped
                    return False
                if self._over():
                    self._stall()
                    return True
        return False

    def _after_requests(self) -> None:
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
                    # After answering a request that asked to switch protocols, the client's next bytes could
                    # be either protocol: the proxy's answer closes.
                    request = reading.request
                    reading.finish(close=not request.keep_alive or request.upgrade)
            case NotHttp(data=data):
                self._not_http = True
                self._up.push(data)
            case Malformed(reason=reason):
                # What a server would refuse (a request with both Content-Length and Transfer-Encoding, ...)
                # is refused here, never forwarded: the framing past it could differ from the server's. A
                # request cut short by it is answered by the refusal, whoever would have answered it.
                if self._reading is not None and self._in_flight and self._in_flight[-1] is self._reading:
                    self._in_flight.pop()
                body = f"{reason}\n".encode()
                self._in_flight.append(_InFlight(None, refusal=_BAD_REQUEST % (len(body), body), close=True))
                self._reading = None
                self._closing = True

    def _request_eof(self) -> None:
        if self._stalled:
            self._client_closed = True  # after the requests it sent before are framed and answered
            return
        self._client_closed = False
        if not self._closing and self._synced:
            for event in self._requests.feed_eof():
                self._on_request(event)
            self._emit_answers()
        self._up.push(None)
        self._check_idle()

    # -- bounds: what the client is owed -------------------------------------------------------------------
    def _owed(self) -> int:
        """Bytes for the client it has not taken: in its socket's buffer, and held here."""
        backlog = self._flow.backlog() if self._flow is not None else 0
        return backlog + self._down.pending

    def _over(self) -> bool:
        return self._owed() > HIGH_WATER or len(self._in_flight) > MAX_IN_FLIGHT

    def _stall(self) -> None:
        """Frame no more of the client's requests and stop reading it, until it has taken its answers."""
        self._stalled = True
        if self._flow is not None:
            self._flow.hold(True)
        self._look_later()

    def _look_later(self) -> None:
        if self._poll is None:
            self._poll = self._scheduler.call_at(self._scheduler.time() + POLL, self._look)

    def _look(self) -> None:
        self._poll = None
        self._unstall()
        self.flush()

    def _unstall(self) -> None:
        """Frame the client's requests and read it again once it owes little enough (low water)."""
        if not self._stalled:
            return
        if self._owed() > LOW_WATER or len(self._in_flight) > MAX_IN_FLIGHT // 2:
            self._look_later()
            return
        self._release()
        held = False
        if not self._closing and not self._not_http:
            held = self._frame_requests(b"")
            self._after_requests()
        if self._client_closed and not held:
            self._request_eof()

    def _release(self) -> None:
        self._stalled = False
        if self._flow is not None:
            self._flow.hold(False)
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

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
                    self._response = _Response(None, ends=not head.interim and _ends_connection(head))
                    self._down.push(data)
                else:
                    self._response = self._respond(flight, flight.request, head, data)
            case Data(data=data):
                if self._response is None or self._response.replacement is None:
                    self._down.push(data)
            case End():
                self._response_end()
            case NotHttp(data=data) | Malformed(data=data):
                self._down.push(data)
                self._give_up()

    def _response_end(self) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        flight = response.request
        if flight is not None and self._in_flight and self._in_flight[0] is flight:
            self._in_flight.popleft()
        if response.replacement is not None:
            self._down.push(response.replacement, response.delay)
        if response.ends or (response.replacement is not None and response.close):
            # Nothing may follow it: a body that ends with the connection, or a server that closes.
            self._close_client()
            return
        if flight is not None and flight.request is not None and flight.request.upgrade:
            self._requests.resume()  # the server declined the switch: the client's bytes are requests again
            self._frame_requests(b"")
            self._after_requests()
        # The proxy's answers next in line go now, before the server's next response begins.
        self._emit_answers()
        self._unstall()

    def _respond(self, flight: _InFlight, request: Head, head: Head, data: bytes) -> _Response:
        """Start passing on the final response to ``request``, as the response stream's toxics say."""
        error, delay = self._apply(Direction.DOWNSTREAM, request)
        response = _Response(flight, delay=delay, ends=_ends_connection(head))
        if error is None:
            self._down.push(data, delay)
        else:
            name, toxic = error
            response.close = not request.keep_alive or response.ends
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
            answer = flight.answer()
            if answer is None:
                return
            self._in_flight.popleft()
            self._down.push(answer, flight.delay)
            if flight.close:
                self._close_client()
                return

    def _close_client(self) -> None:
        """Close the connection once what is already on its way to the client has gone."""
        self._down.push(None)
        self._in_flight.clear()
        self._closing = True
        self._release()

    def _tunnel(self) -> None:
        self._responses.pass_through()
        self._requests.pass_through()
        self._not_http = True
        self._in_flight.clear()
        self._response = None
        self._release()
        for event in self._requests.events(b""):  # what the client sent after the upgrade request
            if isinstance(event, Data):
                self._up.push(event.data)

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
        self._release()
        self._on_detach(http)

    def flush(self) -> None:
        """Write what the last event let through, one write per direction."""
        self._up.flush()
        self._down.flush()

    def cancel(self) -> None:
        """The connection is gone: stop the timers."""
        self._up.cancel()
        self._down.cancel()
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
