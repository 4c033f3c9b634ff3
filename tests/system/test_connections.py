"""Connection limits of a real `cdrlog serve` at an open-file limit of 256: connections
held open by a slow or silent client are cut off in time and never starve the others.
Last, both of uvicorn's HTTP/1.1 protocols under the same limits, served in process.

Every test comes from loopback addresses of its own (each of 127.0.0.0/8 is an address
to the server), so one test's connections never count against another's cap.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from cdrlog.service.settings import Settings
from cdrlog.web.connections import (
    AUTO_PROTOCOL,
    BODY_GRACE_SECONDS,
    LimitedH11Protocol,
    limited_protocol,
)
from support.servers import free_port, running_server
from system.conftest import event_body

# It times pushes and /healthz while connections are held: nothing runs beside it.
pytestmark = [pytest.mark.slow, pytest.mark.alone]

OPEN_FILES = 256
HELD = 300
CAP = 64  # the default --max-connections-per-address
HEADER_TIMEOUT = 4.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE = 1
# How much later than its deadline the server may act (the target).
SLACK = 2.0
HEALTHZ_WITHIN = 1.0
PUSH_P99_WITHIN = 0.050
PUSHES = 50
TRICKLE_EVERY = 0.25
QUICK = 0.5  # the deadlines of the in-process server
FORM = {"content-type": "application/x-www-form-urlencoded"}
PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"

Record = Callable[[str, object], None]


@dataclass(frozen=True)
class Limited:
    """The server under test: where it listens."""

    base: str
    port: int

    def http_head(self, method: str, path: str, *headers: str) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", *headers, "", ""]
        return "\r\n".join(lines).encode()


@dataclass
class Ending:
    """What one connection received before the server closed it, and when it closed
    (seconds after `since`; None while still open)."""

    received: bytes = b""
    after: float | None = None

    @property
    def seconds(self) -> float:
        return math.inf if self.after is None else self.after

    @property
    def status(self) -> int:
        """The status the server answered, 0 when it closed without a word."""
        if not self.received.startswith(b"HTTP/1.1 "):
            return 0
        return int(self.received[9:12])


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    directory = tmp_path_factory.mktemp("connections")
    options = [
        "--spool-dir",
        str(directory / "spool"),
        "--header-timeout-seconds",
        str(HEADER_TIMEOUT),
        "--body-timeout-seconds",
        str(BODY_TIMEOUT),
        "--keep-alive-seconds",
        str(KEEP_ALIVE),
    ]
    url = f"sqlite:///{directory / 'cdrlog.db'}"
    log = directory / "server.log"
    with running_server(url, log, options, open_files=OPEN_FILES) as base:
        yield Limited(base, int(base.rsplit(":", 1)[1]))


def figure(record_property: Record, name: str, value: float | int) -> None:
    shown = round(value, 3) if isinstance(value, float) else value
    record_property(name, shown)
    print(f"{name} = {shown}")


def connect(limited: Limited, source: str, sending: bytes = b"") -> socket.socket:
    """A raw connection from `source` that has sent `sending` (if the server let it)."""
    connection = socket.create_connection(
        ("127.0.0.1", limited.port), timeout=5, source_address=(source, 0)
    )
    if sending:
        with suppress(OSError):  # refused already: what it received tells
            connection.sendall(sending)
    return connection


def endings(connections: list[socket.socket], since: float, until: float) -> list[Ending]:
    """Read every connection until the server closes it or `until` (monotonic) passes."""
    found = [Ending() for _ in connections]
    with selectors.DefaultSelector() as selector:
        for index, connection in enumerate(connections):
            connection.setblocking(False)
            selector.register(connection, selectors.EVENT_READ, index)
        while selector.get_map() and time.monotonic() < until:
            for key, _ in selector.select(timeout=max(0.0, until - time.monotonic())):
                index = key.data
                try:
                    chunk = connections[index].recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""  # reset: closed all the same
                if chunk:
                    found[index].received += chunk
                else:
                    found[index].after = time.monotonic() - since
                    selector.unregister(connections[index])
    return found


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def client_from(
    source: str, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(transport=transport, timeout=timeout, headers=headers)


def test_held_connections_leave_the_server_to_others(
    limited: Limited, record_property: Record
) -> None:
    opened = time.monotonic()
    held = [connect(limited, "127.0.0.1", PARTIAL_HEAD) for _ in range(HELD)]
    healthz: list[float] = []
    statuses: list[int] = []
    pushes: list[float] = []
    try:
        # A new connection per probe: what the finding took away was new connections.
        with (
            client_from(
                "127.0.0.2", timeout=HEALTHZ_WITHIN, headers={"connection": "close"}
            ) as prober,
            client_from("127.0.0.3") as pusher,
        ):
            # Not counted: a new connection and the server's first event cost what no
            # held connection does.
            pusher.post(
                f"{limited.base}/astercc/1/events", content=event_body("warm"), headers=FORM
            )
            for n in range(PUSHES):
                if n % 5 == 0:
                    began = time.perf_counter()
                    statuses.append(prober.get(f"{limited.base}/healthz").status_code)
                    healthz.append(time.perf_counter() - began)
                began = time.perf_counter()
                answer = pusher.post(
                    f"{limited.base}/astercc/1/events", content=event_body(f"s{n}"), headers=FORM
                )
                pushes.append(time.perf_counter() - began)
                assert answer.status_code == 200, answer.text
        probed = time.monotonic() - opened
        found = endings(held, opened, opened + HEADER_TIMEOUT + SLACK)
    finally:
        for connection in held:
            connection.close()

    refused = sum(1 for ending in found if ending.status == 429)
    timed_out = sum(1 for ending in found if ending.status == 408)
    still_open = sum(1 for ending in found if ending.after is None)
    figure(record_property, "probing_seconds", probed)
    figure(record_property, "healthz_max_ms", max(healthz) * 1000)
    figure(record_property, "push_p50_ms", nearest_rank(pushes, 0.50) * 1000)
    figure(record_property, "push_p99_ms", nearest_rank(pushes, 0.99) * 1000)
    figure(record_property, "held_refused_429", refused)
    figure(record_property, "held_timed_out_408", timed_out)
    figure(record_property, "held_closed_silently", HELD - refused - timed_out - still_open)
    figure(record_property, "held_still_open", still_open)
    figure(record_property, "held_last_closed_s", max(ending.seconds for ending in found))
    assert statuses == [200] * len(statuses)
    assert max(healthz) < HEALTHZ_WITHIN
    assert nearest_rank(pushes, 0.99) < PUSH_P99_WITHIN
    assert still_open == 0, f"{still_open} held connections outlived the header timeout"
    assert refused >= HELD - CAP


def test_a_connection_beyond_the_cap_gets_429_at_once(
    limited: Limited, record_property: Record
) -> None:
    held = [connect(limited, "127.0.0.4") for _ in range(CAP)]
    try:
        began = time.monotonic()
        beyond = connect(limited, "127.0.0.4")
        [ending] = endings([beyond], began, began + HEADER_TIMEOUT / 2)
        beyond.close()
        figure(record_property, "refused_after_s", ending.seconds)
        assert ending.status == 429, ending
        assert ending.after is not None
        head = ending.received.lower()
        assert b"\r\nretry-after: 1\r\n" in head
        assert b"\r\nconnection: close\r\n" in head
        held.pop().close()
        assert _serves_again(limited, "127.0.0.4"), "a closed connection freed no slot"
    finally:
        for connection in held:
            connection.close()


def _serves_again(limited: Limited, source: str) -> bool:
    """Whether `source` is served again within a second (the server notices a closed
    connection on its own time)."""
    with client_from(source, timeout=5) as client:
        for _ in range(20):
            if client.get(f"{limited.base}/healthz").status_code == 200:
                return True
            time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("path", "content_type", "source"),
    [
        ("/api/v1/session", "application/json", "127.0.0.5"),
        ("/astercc/1/events", FORM["content-type"], "127.0.0.6"),
    ],
)
def test_a_body_that_stalls_gets_408_and_a_close(
    limited: Limited, record_property: Record, path: str, content_type: str, source: str
) -> None:
    head = limited.http_head("POST", path, f"content-type: {content_type}", "content-length: 1000")
    began = time.monotonic()
    connection = connect(limited, source, head + b"0123456789")
    try:
        [ending] = endings([connection], began, began + BODY_TIMEOUT + SLACK)
    finally:
        connection.close()
    figure(record_property, "closed_after_s", ending.seconds)
    assert ending.after is not None, "the connection outlived the body timeout"
    assert ending.status in (0, 408), ending
    if path.startswith("/astercc/"):
        # The Push event URL still answers a slow body itself, as JSON.
        assert b'"the body took too long to arrive"' in ending.received


def test_an_idle_keep_alive_connection_is_closed(limited: Limited, record_property: Record) -> None:
    connection = connect(limited, "127.0.0.7", limited.http_head("GET", "/healthz"))
    try:
        answered = _whole_answer(connection)
        began = time.monotonic()
        [ending] = endings([connection], began, began + KEEP_ALIVE + SLACK)
    finally:
        connection.close()
    figure(record_property, "closed_after_s", ending.seconds)
    assert answered.startswith(b"HTTP/1.1 200 ")
    # Sooner than the header timeout: the keep-alive timeout closed it.
    assert ending.after is not None, "the idle connection outlived the keep-alive timeout"
    assert ending.received == b""


def test_a_head_trickled_after_an_answer_is_cut_off(
    limited: Limited, record_property: Record
) -> None:
    """Any byte stops uvicorn's keep-alive clock; the header timeout still runs."""
    connection = connect(limited, "127.0.0.8", limited.http_head("GET", "/healthz"))
    try:
        _whole_answer(connection)
        began = time.monotonic()
        ending = _trickled(connection, PARTIAL_HEAD, began, began + HEADER_TIMEOUT + SLACK)
    finally:
        connection.close()
    figure(record_property, "closed_after_s", ending.seconds)
    assert ending.after is not None, "a trickled head outlived the header timeout"
    assert ending.status == 408, ending


def _trickled(connection: socket.socket, data: bytes, since: float, until: float) -> Ending:
    """Send `data` a byte every TRICKLE_EVERY seconds until the server closes the
    connection, `data` runs out or `until` passes; what came back."""
    received = b""
    for byte in data:
        with suppress(OSError):  # closed already: the reading below tells
            connection.sendall(bytes([byte]))
        [part] = endings([connection], since, min(until, time.monotonic() + TRICKLE_EVERY))
        received += part.received
        if part.after is not None or time.monotonic() >= until:
            return Ending(received, part.after)
    return Ending(received)


def _whole_answer(connection: socket.socket) -> bytes:
    """One answer with a content-length, read whole."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(4096)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(4096)
    return received


Message = MutableMapping[str, object]


async def _read_then_answer(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """A bare app: the whole body is read, then 200."""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = bool(message.get("more_body", False))
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def serving_in_thread(protocol: type[asyncio.Protocol]) -> Iterator[Limited]:
    port = free_port()
    config = uvicorn.Config(
        _read_then_answer,
        host="127.0.0.1",
        port=port,
        http=protocol,
        ws="none",
        lifespan="off",
        loop="asyncio",
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        yield Limited(f"http://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("implementation", [AUTO_PROTOCOL, LimitedH11Protocol])
def test_both_protocols_keep_the_limits(implementation: Callable[..., asyncio.Protocol]) -> None:
    """uvicorn's h11 protocol is the fallback where httptools is missing: it keeps the
    same limits (fast settings, a bare app, in this process)."""
    settings = Settings(
        header_timeout_seconds=QUICK, body_timeout_seconds=QUICK, max_connections_per_address=3
    )
    with serving_in_thread(limited_protocol(settings, implementation)) as server:
        body = server.http_head("POST", "/", "content-length: 10") + b"01234"
        began = time.monotonic()
        silent = connect(server, "127.0.0.9")
        partial = connect(server, "127.0.0.9", PARTIAL_HEAD)
        slow_body = connect(server, "127.0.0.9", body)
        beyond = connect(server, "127.0.0.9")
        answered = connect(server, "127.0.0.10", server.http_head("GET", "/"))
        assert _whole_answer(answered).startswith(b"HTTP/1.1 200 ")
        connections = [silent, partial, slow_body, beyond, answered]
        try:
            found = endings(connections, began, began + QUICK + BODY_GRACE_SECONDS + SLACK)
        finally:
            for connection in connections:
                connection.close()
    assert [ending.status for ending in found] == [0, 408, 408, 429, 0], found
    assert all(ending.after is not None for ending in found), found
