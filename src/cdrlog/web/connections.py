"""Connection limits under uvicorn: deadlines for each request's head and body, and a
cap on the connections one client address holds open at once.

uvicorn closes a keep-alive connection left idle after a response, and nothing else: a
client that opens connections and sends its requests slowly, or never, holds a file
descriptor for each until it gives up, and once the process runs out of them nobody
else is served. So each connection here gets one deadline at a time, kept by a plain
loop timer (no task) that is not set again for every request: it stays set, and when it
goes off early it is set again for the deadline then in force:

* waiting for a head (from when the connection opens, or goes idle after an answer):
  a complete head within `header_timeout`, or the connection is closed (after a 408 if
  part of a head had come);
* reading a body: all of it within `body_timeout` of the head, or a 408 (when no answer
  has started) and the connection is closed;
* while the app answers: none of ours; the app takes the time it needs.

uvicorn's own keep-alive timeout stays in force beside these.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from cdrlog.service.settings import Settings

# The Push event URL answers a slow body itself (a JSON 408, see `push.receive`), its
# clock starting once the token is checked; the connection's deadline is the backstop
# for every other path and gives that answer time to go first.
BODY_GRACE_SECONDS = 1.0


def _plain(status: str, text: str, *headers: str) -> bytes:
    """A whole answer that closes its connection: status line, headers and text."""
    body = text.encode()
    lines = [f"HTTP/1.1 {status}", "content-type: text/plain; charset=utf-8"]
    lines += [*headers, f"content-length: {len(body)}", "connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


TOO_MANY_CONNECTIONS = _plain(
    "429 Too Many Requests", "too many connections from this address\n", "retry-after: 1"
)
REQUEST_TIMEOUT = _plain("408 Request Timeout", "the request took too long to arrive\n")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    per_address: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            per_address=settings.max_connections_per_address,
        )


class AddressSlots:
    """The connections each client address has open in this process, at most `most`.

    Addresses are compared as written: each of 127.0.0.0/8 is an address of its own,
    and loopback is not exempt (a local process can exhaust descriptors as well)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._open: dict[str, int] = {}

    def take(self, address: str) -> bool:
        held = self._open.get(address, 0)
        if held >= self.most:
            return False
        self._open[address] = held + 1
        return True

    def give_back(self, address: str) -> None:
        held = self._open[address] - 1
        if held:
            self._open[address] = held
        else:
            del self._open[address]  # only open connections take memory


class _Phase(enum.Enum):
    HEAD = "head"  # waiting for a request's head: the header deadline runs
    BODY = "body"  # reading a body: the body deadline runs
    ANSWER = "answer"  # the app is answering: no deadline of ours
    GONE = "gone"  # closed, refused or handed to another protocol: never again


class _Cycle(Protocol):
    """What the limits need of uvicorn's request-response cycle (both flavours)."""

    response_started: bool
    response_complete: bool
    disconnected: bool
    message_event: asyncio.Event


class _Limits(asyncio.Protocol):
    """The deadlines and the cap, for both of uvicorn's HTTP/1.1 protocols (mixed in
    before one, so its hooks run around the protocol's own). Each protocol says when a
    body is being read (`_in_body`) and which cycle is current, and calls `_settle`
    after each answer."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None
    limits: ConnectionLimits
    slots: AddressSlots
    _phase = _Phase.GONE
    _due = math.inf  # when the deadline of the phase passes
    _timer: asyncio.TimerHandle | None = None
    _timer_at = math.inf  # when the timer goes off
    _heard = False  # whether bytes came since the wait for a head began
    _address: str | None = None  # set while a slot is held

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
        slots: AddressSlots,
    ) -> None:
        # The protocol this is mixed in before takes uvicorn's arguments; the limits
        # are this mixin's own.
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        self.limits = limits
        self.slots = slots

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._admit()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        super().data_received(data)
        self._settle()

    def _in_body(self) -> bool:
        raise NotImplementedError

    def _current(self) -> _Cycle | None:
        raise NotImplementedError

    def _admit(self) -> None:
        """Refuse the connection beyond the cap; otherwise start waiting for a head."""
        if self.client is not None:
            address = self.client[0]
            if not self.slots.take(address):
                # At once and in full: waiting for the request would hold the slot
                # the cap is there to keep free.
                self.transport.write(TOO_MANY_CONNECTIONS)
                self.transport.close()
                return
            self._address = address
        self._enter(_Phase.HEAD)

    def _release(self) -> None:
        self._enter(_Phase.GONE)
        if self._address is not None:
            self.slots.give_back(self._address)
            self._address = None

    def _settle(self) -> None:
        """Set the deadline the connection's state calls for, unless it is set."""
        if self._phase is _Phase.GONE:
            return
        if self._in_body():
            wanted = _Phase.BODY
        else:
            cycle = self._current()
            answering = cycle is not None and not cycle.response_complete
            wanted = _Phase.ANSWER if answering else _Phase.HEAD
        if wanted is not self._phase:
            self._enter(wanted)

    def _enter(self, phase: _Phase) -> None:
        self._phase = phase
        if phase is _Phase.HEAD:
            self._heard = False
            self._due = self.loop.time() + self.limits.header_timeout
        elif phase is _Phase.BODY:
            self._due = self.loop.time() + self.limits.body_timeout + BODY_GRACE_SECONDS
        else:
            self._due = math.inf
            if phase is _Phase.GONE:
                self._stop_timer()
            return
        # A timer going off before the deadline only sets itself again.
        if self._timer_at > self._due:
            self._stop_timer()
            self._timer = self.loop.call_at(self._due, self._wake)
            self._timer_at = self._due

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _wake(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self._due == math.inf:
            return  # answering, or gone: no deadline now
        # The loop's clock may read a millisecond short of the timer's own.
        if self.loop.time() + 0.001 < self._due:
            self._timer = self.loop.call_at(self._due, self._wake)
            self._timer_at = self._due
        elif self._phase is _Phase.HEAD:
            self._head_overdue()
        else:
            self._body_overdue()

    def _head_overdue(self) -> None:
        self._due = math.inf
        if self.transport.is_closing():
            return
        if self._heard:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def _body_overdue(self) -> None:
        self._due = math.inf
        if self.transport.is_closing():
            return
        cycle = self._current()
        if cycle is not None:
            if not cycle.response_started:
                self.transport.write(REQUEST_TIMEOUT)
            # The app reads a disconnect now, and nothing it sends follows the 408.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


class LimitedH11Protocol(_Limits, H11Protocol):
    """uvicorn's h11 protocol under the connection limits."""

    def _in_body(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    def _current(self) -> _Cycle | None:
        return self.cycle

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._settle()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._release()  # the connection is the WebSocket protocol's from here on
        super().handle_websocket_upgrade(event)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: uvicorn's "auto" takes h11, and so does cdrlog
    AUTO_PROTOCOL: Callable[..., asyncio.Protocol] = LimitedH11Protocol
else:

    class LimitedHttpToolsProtocol(_Limits, HttpToolsProtocol):
        """uvicorn's httptools protocol under the connection limits."""

        _reading_body = False

        def _in_body(self) -> bool:
            # A pipelined request's body is not read until the answers before it are
            # done (uvicorn pauses reading): its clock starts then.
            return self._reading_body and not self.pipeline

        def _current(self) -> _Cycle | None:
            return self.cycle

        def on_headers_complete(self) -> None:
            self._reading_body = True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            # Before uvicorn's, which ignores the end of a body answered already.
            self._reading_body = False
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._settle()

        def handle_websocket_upgrade(self) -> None:
            self._release()  # the connection is the WebSocket protocol's from here on
            super().handle_websocket_upgrade()

    AUTO_PROTOCOL = LimitedHttpToolsProtocol


def limited_protocol(
    settings: Settings, implementation: Callable[..., asyncio.Protocol] = AUTO_PROTOCOL
) -> type[asyncio.Protocol]:
    """For uvicorn's `http`: the protocol under `settings`' connection limits, with one
    count of connections per address for the process that serves with it."""
    limits = ConnectionLimits.of(settings)
    slots = AddressSlots(limits.per_address)
    # uvicorn calls `http` with keyword arguments only, so a partial carrying the limits
    # serves as the class; unlike a class made on the fly, it pickles into the
    # processes of `serve --workers N`, each unpickling its own, empty, count.
    made = functools.partial(implementation, limits=limits, slots=slots)
    return cast("type[asyncio.Protocol]", made)
