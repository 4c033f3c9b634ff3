"""Harm done on purpose, for the durability tests: a `cdrlog serve` process that can be
killed and started again on the same port and database, a sender that keeps every event
until it has seen that event's 200, and the checks that the journal and the CDRs hold
exactly what was acknowledged.

The sender speaks HTTP/1.1 itself over asyncio streams (one keep-alive connection per
worker): on a two-core machine the server under test needs the CPU more than a full
client library does, and a raw connection shows every refusal and reset as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import Engine, select

from cdrlog.core.events import fingerprint
from cdrlog.service.ingest import DEFAULT_MAX_CALL_LENGTH as MAX_CALL_LENGTH
from cdrlog.sim.traffic import (
    Delivery,
    ExpectedCdr,
    GeneratedCall,
    delivery_order,
    expected_agents,
    generate_calls,
    stored_as_expected,
)
from cdrlog.store import agents
from cdrlog.store.tables import call_event, cdr
from support.servers import free_port, wait_until_healthy

HOST = "127.0.0.1"
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
# What `generate_calls` yields per call on average, with the agents' events that ride
# with it (measured: 9.0 to 9.3 events).
EVENTS_PER_CALL = 9
# A worker that found the server down waits this long before it tries again.
RETRY_PAUSE = 0.05
Key = tuple[str, str]


class ProtocolError(Exception):
    """The server's answer is not the HTTP/1.1 this client understands."""


@dataclass
class Server:
    """`cdrlog serve` on one port and database, started again after each kill."""

    database_url: str
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    extra: tuple[str, ...] = ()

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def spool(self) -> Path:
        """The server's own spool directory, beside its log."""
        return self.log.parent / "spool"

    def start(self, timeout: float = 60.0) -> None:
        command = [sys.executable, "-m", "cdrlog", "serve", "--db", self.database_url]
        command += ["--host", HOST, "--port", str(self.port), "--spool-dir", str(self.spool)]
        command += self.extra
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CDRLOG_")}
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=environment
            )
        self.starts += 1
        wait_until_healthy(self.base, self.process, self.log_tail, timeout)

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye; what was committed is all that is left."""
        process = self._running()
        process.kill()
        process.wait(timeout=30)

    def signal_stop(self) -> subprocess.Popen[bytes]:
        """SIGTERM, the way a service manager asks for a graceful stop."""
        process = self._running()
        process.send_signal(signal.SIGTERM)
        return process

    def stop(self) -> None:
        """Stop whatever still runs (SIGTERM, then SIGKILL after 15 s)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"cdrlog serve is not running:\n{self.log_tail()}")
        return self.process


@dataclass(frozen=True, slots=True)
class Traffic:
    """Calls and the deliveries (events, duplicates included) that play them."""

    calls: list[GeneratedCall]
    deliveries: list[Delivery]

    def requests(self, port: int) -> list[bytes]:
        return [push_request(d.team, d.event, port) for d in self.deliveries]

    def fingerprints(self) -> set[Key]:
        """The journal's key of every distinct event, as the receiver computes it."""
        return {event_key(d.team, d.event) for d in self.deliveries}


def make_traffic(seed: int, events: int, duplicate_ratio: float = 0.1) -> Traffic:
    """At least `events` deliveries of interleaved, shuffled calls of three teams."""
    rng = random.Random(seed)
    wanted_calls = math.ceil(events / (EVENTS_PER_CALL * (1 + duplicate_ratio)) * 1.1) + 1
    calls = generate_calls(rng, START, calls=wanted_calls, teams=3, agents=8, time_format="mixed")
    kept: list[GeneratedCall] = []
    distinct = 0
    for call in calls:
        if round(distinct * (1 + duplicate_ratio)) >= events:
            break
        kept.append(call)
        distinct += len(call.events) + len(call.agent_events)
    deliveries = delivery_order(kept, rng, duplicate_ratio=duplicate_ratio, shuffle_ratio=1.0)
    return Traffic(kept, deliveries)


def event_key(team: str, event: Mapping[str, str]) -> Key:
    """(team, fingerprint): a form-encoded event decodes to exactly these fields."""
    return (team, fingerprint(team, event))


def push_request(team: str, event: Mapping[str, str], port: int) -> bytes:
    """The whole HTTP/1.1 request that pushes `event` form-encoded to its team's URL."""
    body = urlencode(event).encode()
    path = f"/astercc/{quote(team, safe='')}/events"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    closes: bool


class Connection:
    """One keep-alive HTTP/1.1 connection; a request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> Answer:
        self.writer.write(request)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ProtocolError("connection closed before an answer")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line!r}")
        length, closes = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n"):
            if not line:
                raise ProtocolError("connection closed inside the headers")
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                closes = value == b"close"
            elif name == b"transfer-encoding":
                raise ProtocolError("chunked answers are not expected here")
        return Answer(int(parts[1]), await self.reader.readexactly(length), closes)

    async def close(self) -> None:
        self.writer.close()
        # Reset by a server that is gone: closed all the same.
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


# What a connection to a server being killed or stopped can raise: nothing was answered.
UNANSWERED = (OSError, EOFError, ProtocolError, TimeoutError)


@dataclass
class Ledger:
    """What the sender knows: which deliveries are acknowledged, which still wait.

    A delivery is settled once it got a 200 (acknowledged) or a 4xx (refused: the
    receiver judged it, and a test fails on it). A connection error, a reset, a timeout
    or a 5xx leaves it unsettled: it goes to the back of the queue and is sent again.
    """

    requests: list[bytes]
    waiting: deque[int] = field(init=False)
    acknowledged: set[int] = field(default_factory=set)
    refused: list[tuple[int, int, bytes]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    unanswered: int = 0
    # While a test stops its server gracefully: the process, and when it was signalled.
    stopping: subprocess.Popen[bytes] | None = None
    signalled_at: float = math.inf
    answered_in_flight: int = 0
    answered_after_signal: int = 0
    refused_while_alive: int = 0

    def __post_init__(self) -> None:
        self.waiting = deque(range(len(self.requests)))

    @property
    def settled(self) -> int:
        return len(self.acknowledged) + len(self.refused)

    @property
    def done(self) -> bool:
        return self.settled == len(self.requests)

    def note_answer(self, index: int, answer: Answer, sent_at: float) -> None:
        self.statuses[answer.status] += 1
        if answer.status == 200:
            self.acknowledged.add(index)
            self.outcomes[_outcome(answer.body)] += 1
            if time.monotonic() > self.signalled_at:
                self.answered_after_signal += 1
                self.answered_in_flight += sent_at < self.signalled_at
        elif 400 <= answer.status < 500:
            self.refused.append((index, answer.status, answer.body[:300]))
        else:
            self.waiting.append(index)

    def note_unanswered(self, index: int) -> None:
        self.unanswered += 1
        self.waiting.append(index)

    def note_refused_connection(self) -> None:
        """A new connection was refused: while the stopping server still lives, that is
        it no longer accepting."""
        if self.stopping is not None and self.stopping.poll() is None:
            self.refused_while_alive += 1


def _outcome(body: bytes) -> str:
    try:
        document: Any = json.loads(body)
    except ValueError:
        return "unreadable"
    status = document.get("status") if isinstance(document, dict) else None
    return status if isinstance(status, str) else "unreadable"


async def send_until_acknowledged(
    ledger: Ledger, port: int, concurrency: int, deadline: float
) -> None:
    """`concurrency` workers send what waits until every delivery is settled; raises
    TimeoutError at `deadline` (a `time.monotonic()` value)."""

    async def worker() -> None:
        connection: Connection | None = None
        try:
            while not ledger.done:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{ledger.settled} of {len(ledger.requests)} settled")
                if not ledger.waiting:
                    await asyncio.sleep(0.01)  # the rest are in flight; some may come back
                    continue
                index = ledger.waiting.popleft()
                ledger.attempts += 1
                sent_at = time.monotonic()
                try:
                    async with asyncio.timeout(60):
                        if connection is None:
                            connection = await _connect(port, ledger)
                        answer = await connection.exchange(ledger.requests[index])
                except UNANSWERED:
                    ledger.note_unanswered(index)
                    if connection is not None:
                        await connection.close()
                        connection = None
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                ledger.note_answer(index, answer, sent_at)
                if answer.closes:
                    await connection.close()
                    connection = None
        finally:
            if connection is not None:
                await connection.close()

    async with asyncio.TaskGroup() as workers:
        for _ in range(concurrency):
            workers.create_task(worker())


async def _connect(port: int, ledger: Ledger) -> Connection:
    try:
        return await Connection.open(port)
    except ConnectionRefusedError:
        ledger.note_refused_connection()
        raise


async def wait_for_acknowledged(ledger: Ledger, count: int, deadline: float) -> None:
    while len(ledger.acknowledged) < count and not ledger.done:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(ledger.acknowledged)} of {count} acknowledged")
        await asyncio.sleep(0.005)


def journal_keys(engine: Engine) -> list[Key]:
    with engine.connect() as connection:
        rows = connection.execute(select(call_event.c.orgidentity, call_event.c.fingerprint))
        return [(row.orgidentity, row.fingerprint) for row in rows]


def missing_from_journal(engine: Engine, wanted: set[Key], spool: Path) -> set[Key]:
    """What of `wanted` is neither in the journal nor waiting in the spool."""
    return wanted - set(journal_keys(engine)) - spooled_keys(spool)


def spooled_keys(spool: Path) -> set[Key]:
    """The keys of the events waiting in a spool directory: JSON lines of `team` and
    `fields` (see `cdrlog.service.spool`); a torn last line was never acknowledged."""
    keys: set[Key] = set()
    for path in sorted(spool.glob("spool-*.jsonl")) if spool.is_dir() else []:
        for line in path.read_bytes().splitlines(keepends=True):
            if line.endswith(b"\n"):
                record = json.loads(line)
                keys.add((record["team"], fingerprint(record["team"], record["fields"])))
    return keys


def acknowledged_keys(traffic: Traffic, ledger: Ledger) -> set[Key]:
    sent = traffic.deliveries
    return {event_key(sent[index].team, sent[index].event) for index in ledger.acknowledged}


def distinct_events(calls: Sequence[GeneratedCall]) -> int:
    """How many events the calls hold, theirs and the agents' that ride with them."""
    return sum(len(call.events) + len(call.agent_events) for call in calls)


def wrong_agents(engine: Engine, calls: Sequence[GeneratedCall], now: datetime) -> list[str]:
    """Each way `GET /api/v1/agents`'s listing differs from the agents' expected states."""
    listed = {
        (a.team, a.agentno): (a.phone, a.agent_group, a.state, a.state_since)
        for a in agents.listing(engine, None, now, MAX_CALL_LENGTH)
    }
    expected = {
        (a.team, a.agentno): (a.phone, a.agent_group, a.state, a.state_since)
        for a in expected_agents(calls)
    }
    keys = sorted(listed.keys() | expected.keys())
    return [
        f"{key}: expected {expected.get(key)}, listed {listed.get(key)}"
        for key in keys
        if listed.get(key) != expected.get(key)
    ]


def stored_cdrs(engine: Engine) -> list[ExpectedCdr]:
    """Every CDR row, in the shape of `ExpectedCdr` (the bookkeeping columns left out)."""
    with engine.connect() as connection:
        rows = connection.execute(select(cdr)).all()
    return [stored_as_expected(row._mapping) for row in rows]


def wrong_cdrs(
    engine: Engine, calls: Sequence[GeneratedCall], *, others_allowed: bool = False
) -> list[str]:
    """Each way the stored CDRs differ from the calls' expected ones: missing, wrong,
    duplicated, or (unless `others_allowed`) of calls never sent; empty if none."""
    stored = stored_cdrs(engine)
    expected = {(c.expected.team, c.expected.diallogid): c.expected for c in calls}
    counts = Counter((row.team, row.diallogid) for row in stored)
    by_key = {(row.team, row.diallogid): row for row in stored}
    problems = [f"{key} stored {n} times" for key, n in counts.items() if n > 1]
    for key, want in expected.items():
        got = by_key.get(key)
        if got != want:
            problems.append(f"{key}: expected {want}, stored {got}")
    if not others_allowed:
        problems += [f"{key}: no such call was sent" for key in by_key.keys() - expected.keys()]
    return problems


def kill_points(rng: random.Random, total: int, kills: int) -> list[int]:
    """`kills` acknowledgement counts to kill at: one at random within each of `kills`
    equal slices of the middle 80% of the run, so every kill meets traffic."""
    low, span = total * 0.1, total * 0.8 / kills
    return [round(low + span * (n + rng.random())) for n in range(kills)]


def env_size(variable: str, default: int, minimum: int = 1) -> int:
    """A test size from the environment (for `make soak`), or the CI default."""
    text = os.environ.get(variable, "")
    value = int(text) if text.strip() else default
    if value < minimum:
        raise ValueError(f"{variable} must be at least {minimum}, not {value}")
    return value
