"""The push benchmark's client: realistic asterCC traffic, sent from one asyncio process.

The traffic comes from `cdrlog.sim.traffic.generate_calls`: calls interleaved, 30%
shuffled and 5% re-sent by `delivery_order`, form-encoded as asterCC sends them. The
base calls repeat with a fresh sessionid suffix per repetition, so that requests cost
the client a concatenation; a run stops at the end of a repetition, so every call sent
is sent whole and its CDR can be checked.

The client (uvloop) writes pre-encoded requests on raw keep-alive connections, one in
flight each, flat out or paced. A connection lost with a request unanswered is a
failure, recorded with its time and what had arrived of the answer; the request is then
sent again on a new connection, as asterCC would retry, so the run and the CDR check go
on. The CPU of the client, the server's process trees and the database server is metered.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import resource
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast
from urllib.parse import urlencode

import uvloop

from cdrlog.sim.traffic import ExpectedCdr, Style, delivery_order, generate_calls

HOST = "127.0.0.1"
# Stands for the repetition's suffix in the pre-encoded bodies; as wide as the suffix.
PLACEHOLDER = b"ZZZZZZZ"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
TICKS = os.sysconf("SC_CLK_TCK")
# A server that drops every new connection must not keep a run going for ever.
MAX_RECONNECTS = 100
KEPT_PROBLEMS = 5


def suffix(repetition: int) -> bytes:
    return b"-%06d" % repetition


@dataclass(frozen=True, slots=True)
class Traffic:
    """Each delivery as the request bytes before and after its sessionid's suffix, and
    the calls' expected CDRs (diallogid without the suffix)."""

    parts: list[tuple[bytes, bytes]]
    expected: list[ExpectedCdr]

    def expected_of(self, repetitions: range) -> dict[tuple[str, str], ExpectedCdr]:
        wanted = {}
        for repetition in repetitions:
            tail = suffix(repetition).decode()
            for one in self.expected:
                diallogid = one.diallogid + tail
                wanted[(one.team, diallogid)] = replace(one, diallogid=diallogid)
        return wanted


def build_traffic(calls: int, seed: int, style: Style) -> Traffic:
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    generated = generate_calls(
        rng, start, calls=calls, teams=3, agents=20, time_format="mixed", style=style
    )
    deliveries = delivery_order(generated, rng, shuffle_ratio=0.3, duplicate_ratio=0.05)
    parts = [request_parts(delivery.team, delivery.event) for delivery in deliveries]
    return Traffic(parts, [call.expected for call in generated])


def request_parts(team: str, event: dict[str, str]) -> tuple[bytes, bytes]:
    """The POST asterCC would send, split where the repetition's suffix goes: in a
    call's sessionid (a new call), or in an agent's event's `userdata` (a new event)."""
    mark = "sessionid" if "sessionid" in event else "userdata"
    marked = dict(event, **{mark: event.get(mark, "") + PLACEHOLDER.decode()})
    body = urlencode(marked).encode()
    head = (
        f"POST /astercc/{team}/events HTTP/1.1\r\nHost: {HOST}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    before, after = (head + body).split(PLACEHOLDER)
    return before, after


class Source:
    """Requests in delivery order, repetition after repetition. Once `deadline` has
    passed it finishes the repetition under way and then hands out nothing."""

    def __init__(self, traffic: Traffic, first: int, seconds: float) -> None:
        self.parts = traffic.parts
        self.first = self.current = first
        self.seconds = seconds
        self.deadline = math.inf
        self.index = 0
        self.suffix = suffix(first)

    def start(self, now: float) -> None:
        self.deadline = now + self.seconds

    def next(self) -> bytes | None:
        if self.index == len(self.parts):
            if time.perf_counter() >= self.deadline:
                return None
            self.current += 1
            self.suffix = suffix(self.current)
            self.index = 0
        before, after = self.parts[self.index]
        self.index += 1
        return before + self.suffix + after

    @property
    def repetitions(self) -> range:
        return range(self.first, self.current + 1)


@dataclass(frozen=True, slots=True)
class Sample:
    wall: float
    server: int  # clock ticks of the server's process trees
    database: int  # clock ticks of the database server's processes
    client: float  # CPU seconds of this process
    busy: int  # machine-wide jiffies (all cores) not idle
    total: int


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU use over a run, in % of one core (200% = both cores), and the machine's idle %."""

    server: float
    database: float
    client: float
    idle: float


@dataclass(slots=True)
class Meter:
    """CPU of the server's process trees (each pid and its descendants), of processes
    named as the database server's, of this client, and the machine's idle share."""

    server_pids: tuple[int, ...]
    database_names: tuple[str, ...]
    before: Sample | None = None

    def start(self) -> None:
        self.before = self.sample()

    def stop(self) -> Usage:
        after, before = self.sample(), self.before
        assert before is not None, "start() first"
        wall = after.wall - before.wall

        def share(ticks: int) -> float:
            return 100 * ticks / TICKS / wall

        return Usage(
            server=share(after.server - before.server),
            database=share(after.database - before.database),
            client=100 * (after.client - before.client) / wall,
            idle=100 - 100 * (after.busy - before.busy) / max(1, after.total - before.total),
        )

    def sample(self) -> Sample:
        processes = read_processes()
        trees: set[int] = set()
        for pid in self.server_pids:
            trees |= descendants(processes, pid) | {pid}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy, total = machine_jiffies()
        return Sample(
            wall=time.perf_counter(),
            server=sum(processes[p][2] for p in trees if p in processes),
            database=sum(t for _, name, t in processes.values() if name in self.database_names),
            client=usage.ru_utime + usage.ru_stime,
            busy=busy,
            total=total,
        )


def read_processes() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, command name, user + system clock ticks), from /proc."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # ended while we looked
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        fields = rest.split()
        found[int(entry.name)] = (int(fields[1]), name, int(fields[11]) + int(fields[12]))
    return found


def descendants(processes: dict[int, tuple[int, str, int]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, pending = set(), [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def machine_jiffies() -> tuple[int, int]:
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first[:8]]  # user nice system idle iowait irq softirq steal
    return sum(values) - values[3] - values[4], sum(values)


@dataclass(frozen=True, slots=True)
class Loss:
    """A connection that ended while the client still used it: when (local time, and
    seconds into the run), whether a request was unanswered, what of its answer had
    come, and why, so that it can be matched with the server's log."""

    at: datetime
    after: float
    unanswered: bool
    received: bytes
    reason: str

    def shown(self) -> str:
        what = "a request unanswered" if self.unanswered else "no request in flight"
        got = f", {len(self.received)} bytes of answer: {self.received[:120]!r}"
        return (
            f"{self.at:%H:%M:%S.%f %Z}, {self.after:.3f} s into the run: connection lost "
            f"with {what}{got if self.received else ', nothing of an answer'} ({self.reason})"
        )


@dataclass(frozen=True, slots=True)
class Load:
    """What one run did: answers, failures (non-200 or unanswered), time, latencies, CPU,
    and each connection lost."""

    answered: int
    failed: int
    seconds: float
    latencies: list[float]
    usage: Usage
    repetitions: range
    problems: tuple[str, ...]
    losses: tuple[Loss, ...] = ()

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        """Nearest rank, over sorted latencies."""
        if not self.latencies:
            return 0.0
        return 1000 * self.latencies[max(0, math.ceil(fraction * len(self.latencies)) - 1)]


class Sender(asyncio.Protocol):
    """One keep-alive connection with one request in flight; answers go to its Run."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.buffer = bytearray()
        self.began = 0.0
        self.request: bytes | None = None  # handed out, until answered
        self.written = False
        self.retired = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self) -> None:
        """Write the request handed out (later, when paced: unless lost meanwhile)."""
        if self.request is None or self.transport is None or self.transport.is_closing():
            return
        self.began = time.perf_counter()
        self.written = True
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = CONTENT_LENGTH.search(self.buffer, 0, end + 2)
        whole = end + 4 + (int(length[1]) if length else 0)
        if len(self.buffer) < whole:
            return
        status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
        del self.buffer[:whole]
        self.request, self.written = None, False
        self.run.answered(self, status, time.perf_counter() - self.began)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.retired:
            self.retired = True
            self.run.lost(self, str(exc or "closed by the server"))


class Run:
    """Hands each sender its next request (paced when `interval` > 0) and tallies."""

    def __init__(self, source: Source, interval: float, senders: int, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.source, self.interval, self.active, self.port = source, interval, senders, port
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.latencies: list[float] = []
        self.ok = 0
        self.failed = 0
        self.problems: list[str] = []
        self.losses: list[Loss] = []
        self.reconnects = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.slot = 0.0
        self.last = 0.0
        self.began = 0.0

    def dispatch(self, sender: Sender) -> None:
        request = self.source.next()
        if request is None:
            self.retire(sender)
            return
        sender.request = request
        if self.interval:
            # One schedule for all senders; a late sender does not make up for lost time.
            now = time.perf_counter()
            slot, self.slot = max(now, self.slot), max(now, self.slot) + self.interval
            if slot > now:
                self.loop.call_later(slot - now, sender.send)
                return
        sender.send()

    def answered(self, sender: Sender, status: bytes, seconds: float) -> None:
        self.latencies.append(seconds)
        self.last = time.perf_counter()
        if status[9:12] == b"200":
            self.ok += 1
        else:
            self.note(status.decode(errors="replace"))
        self.dispatch(sender)

    def lost(self, sender: Sender, reason: str) -> None:
        """Record the loss (a failure if a request went unanswered) and carry on with a
        new connection, the unanswered request first."""
        loss = Loss(
            at=datetime.now().astimezone(),  # local time, as the servers' logs write it
            after=time.perf_counter() - self.began,
            unanswered=sender.written,
            received=bytes(sender.buffer),
            reason=reason,
        )
        self.losses.append(loss)
        if loss.unanswered:
            self.note(loss.shown())
        self.reconnects += 1
        if self.reconnects > MAX_RECONNECTS:
            self.note(f"more than {MAX_RECONNECTS} connections lost: this run stops")
            self.active -= 1
            self.finish_if_idle()
            return
        task = self.loop.create_task(self.reconnect(sender.request))
        self.tasks.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(self.tasks.discard)

    async def reconnect(self, request: bytes | None) -> None:
        try:
            _, sender = await self.loop.create_connection(lambda: Sender(self), HOST, self.port)
        except OSError as error:
            self.note(f"could not connect again: {error}")
            self.active -= 1
            self.finish_if_idle()
            return
        if request is None:
            self.dispatch(sender)
        else:
            sender.request = request
            sender.send()

    def note(self, problem: str) -> None:
        self.failed += 1
        if len(self.problems) < KEPT_PROBLEMS:
            self.problems.append(problem)

    def retire(self, sender: Sender) -> None:
        sender.retired = True
        if sender.transport is not None:
            sender.transport.close()
        self.active -= 1
        self.finish_if_idle()

    def finish_if_idle(self) -> None:
        if self.active == 0 and not self.done.done():
            self.done.set_result(None)


async def drive(port: int, source: Source, senders: int, rate: float, meter: Meter) -> Load:
    """Send from `senders` connections until `source` runs dry; `rate` 0 is flat out."""
    run = Run(source, 1 / rate if rate else 0.0, senders, port)
    loop = asyncio.get_running_loop()
    connections = [
        await loop.create_connection(lambda: Sender(run), HOST, port) for _ in range(senders)
    ]
    meter.start()
    run.began = time.perf_counter()
    source.start(run.began)
    for _, sender in connections:
        run.dispatch(sender)
    await asyncio.wait_for(run.done, timeout=source.seconds * 4 + 120)
    usage = meter.stop()
    return Load(
        answered=run.ok,
        failed=run.failed,
        seconds=(run.last or time.perf_counter()) - run.began,
        latencies=sorted(run.latencies),
        usage=usage,
        repetitions=source.repetitions,
        problems=tuple(run.problems),
        losses=tuple(run.losses),
    )


def load(port: int, source: Source, senders: int, rate: float, meter: Meter) -> Load:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(drive(port, source, senders, rate, meter))
