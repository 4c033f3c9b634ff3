"""Push benchmark: how many events/s `cdrlog serve` stores, against the floor, on each backend.

The floor is `scripts/floor_app.py` (a bare ASGI app that parses the form and answers
200) under the same uvicorn settings, driven by the same client in the same run: the
most any Python receiver could do on this machine. For each backend the schema is reset,
`cdrlog serve` runs as a subprocess (1 worker, and 2 when `--workers` exists) and gets:

1. as much as `--connections` keep-alive connections can send, for about `--seconds`;
2. 32 senders paced at half the rate measured in 1, for about half as long (p99 < 10 ms).

The traffic is realistic: calls from `cdrlog.sim.traffic.generate_calls`, interleaved, 30%
shuffled and 5% re-sent by `delivery_order`, form-encoded as asterCC sends them. The
base calls repeat with a fresh sessionid suffix per repetition, so that requests cost
the client a concatenation; a run stops at the end of a repetition, so every call sent
is sent whole. Afterwards every CDR must equal the `ExpectedCdr` its call's script gives.

The client is one asyncio process (uvloop) writing pre-encoded requests on raw
connections, one in flight each; its CPU use is reported, as is the servers' (the
process tree), the database server's and the machine's idle share.

    .venv/bin/python scripts/bench_push.py --seconds 30 --backends sqlite,mariadb,postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import uvloop
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from cdrlog.sim.traffic import (
    ExpectedCdr,
    Style,
    delivery_order,
    generate_calls,
    stored_as_expected,
)
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.tables import cdr, metadata

HOST = "127.0.0.1"
SCRIPTS = Path(__file__).resolve().parent
DEFAULT_URLS = {
    "sqlite": f"sqlite:///{Path(tempfile.gettempdir()) / 'cdrlog_perf' / 'cdrlog.db'}",
    "mariadb": "mysql+pymysql://root@127.0.0.1/cdrlog_perf",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1/cdrlog_perf",
}
# The database server's processes, whose CPU is shown beside the receiver's.
DATABASE_PROCESSES = {"mariadb": ("mariadbd", "mysqld"), "postgresql": ("postgres",)}
SEED_EVENTS_PER_SECOND = 3100  # the seed's PHP + php-fpm + MariaDB, at its best (issue 6)
FLOOR_TARGETS = {"sqlite": 0.5, "mariadb": 0.5, "postgresql": 0.35}
SEED_TARGET = 5.0
PACED_SENDERS = 32
PACED_P99_TARGET_MS = 10.0
BASE_CALLS = 500
# Stands for the repetition's suffix in the pre-encoded bodies; as wide as the suffix.
PLACEHOLDER = b"ZZZZZZZ"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
TICKS = os.sysconf("SC_CLK_TCK")
# All the load comes from one address: cdrlog's per-address limit must not be the bound.
UNLIMITED = {
    "CDRLOG_RATE_PER_SECOND": "1e9",
    "CDRLOG_RATE_BURST": "1e9",
    "CDRLOG_MAX_CONNECTIONS_PER_ADDRESS": "100000",
}


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
    server: int  # clock ticks of the server's process tree
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
    server_pid: int
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
        tree = descendants(processes, self.server_pid) | {self.server_pid}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy, total = machine_jiffies()
        return Sample(
            wall=time.perf_counter(),
            server=sum(processes[p][2] for p in tree if p in processes),
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
class Load:
    """What one run did: answers, failures (non-200 or lost), time, latencies, CPU."""

    answered: int
    failed: int
    seconds: float
    latencies: list[float]
    usage: Usage
    repetitions: range
    problems: tuple[str, ...]

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
        self.retired = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.began = time.perf_counter()
        self.transport.write(request)

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
        self.run.answered(self, status, time.perf_counter() - self.began)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.retired:
            self.run.lost(self, f"connection lost: {exc or 'closed by the server'}")


class Run:
    """Hands each sender its next request (paced when `interval` > 0) and tallies."""

    def __init__(self, source: Source, interval: float, senders: int) -> None:
        loop = asyncio.get_running_loop()
        self.source, self.interval, self.active = source, interval, senders
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.latencies: list[float] = []
        self.ok = 0
        self.failed = 0
        self.problems: list[str] = []
        self.slot = 0.0
        self.last = 0.0

    def dispatch(self, sender: Sender) -> None:
        request = self.source.next()
        if request is None:
            self.retire(sender)
            return
        if self.interval:
            # One schedule for all senders; a late sender does not make up for lost time.
            now = time.perf_counter()
            slot, self.slot = max(now, self.slot), max(now, self.slot) + self.interval
            if slot > now:
                self.loop.call_later(slot - now, sender.send, request)
                return
        sender.send(request)

    def answered(self, sender: Sender, status: bytes, seconds: float) -> None:
        self.latencies.append(seconds)
        self.last = time.perf_counter()
        if status[9:12] == b"200":
            self.ok += 1
        else:
            self.note(status.decode(errors="replace"))
        self.dispatch(sender)

    def lost(self, sender: Sender, problem: str) -> None:
        self.note(problem)
        self.retire(sender)

    def note(self, problem: str) -> None:
        self.failed += 1
        if len(self.problems) < 5:
            self.problems.append(problem)

    def retire(self, sender: Sender) -> None:
        sender.retired = True
        if sender.transport is not None:
            sender.transport.close()
        self.active -= 1
        if self.active == 0 and not self.done.done():
            self.done.set_result(None)


async def drive(port: int, source: Source, senders: int, rate: float, meter: Meter) -> Load:
    """Send from `senders` connections until `source` runs dry; `rate` 0 is flat out."""
    run = Run(source, 1 / rate if rate else 0.0, senders)
    loop = asyncio.get_running_loop()
    connections = [
        await loop.create_connection(lambda: Sender(run), HOST, port) for _ in range(senders)
    ]
    meter.start()
    began = time.perf_counter()
    source.start(began)
    for _, sender in connections:
        run.dispatch(sender)
    await asyncio.wait_for(run.done, timeout=source.seconds * 4 + 120)
    usage = meter.stop()
    return Load(
        answered=run.ok,
        failed=run.failed,
        seconds=(run.last or time.perf_counter()) - began,
        latencies=sorted(run.latencies),
        usage=usage,
        repetitions=source.repetitions,
        problems=tuple(run.problems),
    )


def load(port: int, source: Source, senders: int, rate: float, meter: Meter) -> Load:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(drive(port, source, senders, rate, meter))


@dataclass(frozen=True, slots=True)
class Exactness:
    """How many calls' CDRs equal their expected CDR, of how many; rows nobody expected."""

    exact: int
    calls: int
    unexpected: int

    @property
    def ok(self) -> bool:
        return self.exact == self.calls and self.unexpected == 0


@dataclass(slots=True)
class Result:
    receiver: str
    workers: int
    flat: Load
    paced: Load | None = None
    exact: Exactness | None = None
    floor: float | None = None  # the floor's events/s with as many workers
    load_average: str = ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("CDRLOG_")}
    return kept | UNLIMITED


def cdrlog_command(url: str, port: int, workers: int, spool: Path) -> list[str]:
    command = [sys.executable, "-m", "cdrlog", "serve", "--db", url, "--host", HOST]
    command += ["--port", str(port), "--spool-dir", str(spool)]
    return command + (["--workers", str(workers)] if workers > 1 else [])


def floor_command(port: int, workers: int) -> list[str]:
    # As `cdrlog serve` runs uvicorn: httptools, uvloop, no access log.
    command = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(SCRIPTS)]
    command += ["--host", HOST, "--port", str(port), "--log-level", "info", "--no-access-log"]
    return [*command, "--workers", str(workers)]


def serve_has_workers() -> bool:
    help_text = subprocess.run(
        [sys.executable, "-m", "cdrlog", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return "--workers" in help_text


@contextlib.contextmanager
def serving(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The server `command` starts, once it answers /healthz; stopped afterwards."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment(),
            start_new_session=True,  # its own group: stray workers can be stopped with it
        )
    try:
        wait_until_healthy(port, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{tail(log)}")
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer /healthz within 60 s:\n{tail(log)}")


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def unreachable(url: str) -> str | None:
    """Why the database cannot be used, or None; creates a missing server database."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "cdrlog.db").parent.mkdir(parents=True, exist_ok=True)
        return None
    try:
        create_database(parsed)
    except DBAPIError as error:
        return f"unreachable: {str(error.orig).strip()}"
    return None


def create_database(url: URL) -> None:
    """Make `url`'s database if it is missing, so `make bench` runs on a fresh server."""
    name = url.database
    if url.get_backend_name() == "postgresql":
        engine = make_engine(url.set(database="postgres").render_as_string(hide_password=False))
        # CREATE DATABASE cannot run in a transaction: autocommit from the start.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if found is None:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    else:
        engine = make_engine(url.set(database="").render_as_string(hide_password=False))
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    engine.dispose()


def reset_schema(url: str) -> None:
    """Start from nothing, as a new install does."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        for leftover in Path(parsed.database).parent.glob(Path(parsed.database).name + "*"):
            leftover.unlink()
    engine = make_engine(url)
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)
    engine.dispose()


def as_expected(row: Any) -> ExpectedCdr:
    return stored_as_expected(row._mapping)


def check_cdrs(url: str, traffic: Traffic, sent: Sequence[range]) -> Exactness:
    """Every call sent must have exactly its expected CDR, and nothing else a row."""
    wanted: dict[tuple[str, str], ExpectedCdr] = {}
    for repetitions in sent:
        wanted |= traffic.expected_of(repetitions)
    engine: Engine = make_engine(url)
    with engine.connect() as connection:
        stored = {
            (r.orgidentity, r.diallogid): as_expected(r) for r in connection.execute(select(cdr))
        }
    engine.dispose()
    exact = sum(1 for key, one in wanted.items() if stored.get(key) == one)
    return Exactness(exact, len(wanted), len(stored.keys() - wanted.keys()))


@dataclass(frozen=True, slots=True)
class Plan:
    seconds: float
    connections: int
    traffic: Traffic
    logs: Path
    console: Console
    profiles: Path | None = None


def load_average() -> float:
    return os.getloadavg()[0]


def measure_floor(workers: int, plan: Plan) -> Result:
    began = load_average()
    port = free_port()
    with serving(floor_command(port, workers), port, plan.logs / f"floor-{workers}.log") as server:
        source = Source(plan.traffic, 0, plan.seconds)
        flat = load(port, source, plan.connections, 0, Meter(server.pid, ()))
    result = Result("floor (bare ASGI)", workers, flat, load_average=f"{began:.1f}")
    result.load_average += f" -> {load_average():.1f}"
    report(plan.console, result)
    return result


def measure_backend(name: str, url: str, workers: int, plan: Plan) -> Result:
    began = load_average()
    reset_schema(url)
    port = free_port()
    spool = plan.logs / f"spool-{name}-{workers}"
    log = plan.logs / f"{name}-{workers}.log"
    with serving(cdrlog_command(url, port, workers, spool), port, log) as server:
        profile = plan.profiles / f"{name}-{workers}.txt" if plan.profiles else None
        with profiling(server.pid, profile, plan.seconds):
            flat = load(
                port,
                Source(plan.traffic, 0, plan.seconds),
                plan.connections,
                0,
                meter(server.pid, name),
            )
        paced_source = Source(plan.traffic, flat.repetitions.stop, plan.seconds / 2)
        paced = load(
            port, paced_source, PACED_SENDERS, flat.per_second / 2, meter(server.pid, name)
        )
    exact = check_cdrs(url, plan.traffic, [flat.repetitions, paced.repetitions])
    result = Result(name, workers, flat, paced, exact, load_average=f"{began:.1f}")
    result.load_average += f" -> {load_average():.1f}"
    report(plan.console, result)
    return result


def meter(pid: int, backend: str) -> Meter:
    return Meter(pid, DATABASE_PROCESSES.get(backend, ()))


@contextlib.contextmanager
def profiling(pid: int, output: Path | None, seconds: float) -> Iterator[None]:
    """py-spy samples the server's process tree for `seconds` into `output` (raw), if given."""
    if output is None:
        yield
        return
    command = [
        py_spy() or "py-spy",
        "record",
        "-p",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--threads",
        "-f",
        "raw",
    ]
    command += ["-d", str(math.ceil(seconds)), "-o", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.wait(timeout=seconds + 60)


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


def report(console: Console, result: Result) -> None:
    """One line per measured server as soon as it is done, and what went wrong."""
    flat = result.flat
    line = (
        f"{result.receiver}, {result.workers} worker(s): {flat.per_second:,.0f} events/s, "
        f"p99 {flat.percentile_ms(0.99):.1f} ms, {flat.failed} failed"
    )
    if result.paced is not None:
        paced = result.paced
        line += f"; paced {paced.per_second:,.0f}/s p99 {paced.percentile_ms(0.99):.1f} ms"
    if result.exact is not None:
        line += f"; CDRs exact: {result.exact.exact:,}/{result.exact.calls:,}"
        if result.exact.unexpected:
            line += f" ({result.exact.unexpected:,} unexpected rows)"
    console.print(line)
    for problem in flat.problems + (result.paced.problems if result.paced else ()):
        console.print(f"  [red]! {problem}")


def judged(value: float, target: float, shown: str, higher: bool = True) -> str:
    ok = value >= target if higher else value < target
    return f"[{'green' if ok else 'red'}]{shown}[/]"


COLUMNS = (
    "receiver",
    "workers",
    "events/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "server CPU",
    "client CPU",
    "DB CPU",
    "idle",
    "x floor",
    "x seed",
    "paced events/s",
    "paced p99 ms",
    "CDRs exact",
    "load avg",
)


def row_of(result: Result) -> list[str]:
    flat, usage = result.flat, result.flat.usage
    cells = [result.receiver, str(result.workers), f"{flat.per_second:,.0f}"]
    cells += [f"{flat.percentile_ms(f):.1f}" for f in (0.5, 0.99, 1.0)]
    per_event = 10_000 / flat.per_second if flat.per_second else 0.0  # % of a core -> us/event
    cells += [
        f"{share:.0f}% ({share * per_event:.0f} us)" for share in (usage.server, usage.client)
    ]
    database = f"{usage.database:.0f}%" if result.receiver in DATABASE_PROCESSES else "-"
    cells += [database, f"{usage.idle:.0f}%"]
    cells += ratio_cells(result)
    paced = result.paced
    if paced is None:
        cells += ["", ""]
    else:
        p99 = paced.percentile_ms(0.99)
        shown = f"{p99:.1f} (< {PACED_P99_TARGET_MS:.0f})"
        cells += [f"{paced.per_second:,.0f}", judged(p99, PACED_P99_TARGET_MS, shown, False)]
    exact = result.exact
    if exact is None:
        cells.append("")
    else:
        text = f"{exact.exact:,}/{exact.calls:,}" + (
            f" +{exact.unexpected}" if exact.unexpected else ""
        )
        cells.append(f"[{'green' if exact.ok else 'red'}]{text}[/]")
    return [*cells, result.load_average]


def ratio_cells(result: Result) -> list[str]:
    rate = result.flat.per_second
    target = FLOOR_TARGETS.get(result.receiver)
    if result.floor is None or target is None:
        return ["1.00" if result.floor is None else "", ""]
    ratio, times_seed = rate / result.floor, rate / SEED_EVENTS_PER_SECOND
    return [
        judged(ratio, target, f"{ratio:.2f} (>= {target:.2f})"),
        judged(times_seed, SEED_TARGET, f"{times_seed:.1f} (>= {SEED_TARGET:.0f})"),
    ]


def results_table(results: Sequence[Result], plan: Plan) -> Table:
    table = Table(*COLUMNS, title="cdrlog push benchmark", caption_justify="left")
    for result in results:
        table.add_row(*row_of(result))
    table.caption = "\n".join(
        [
            f"{os.cpu_count()} cores; {len(plan.traffic.parts):,} requests per repetition of "
            f"{len(plan.traffic.expected):,} calls (30% shuffled, 5% re-sent); "
            f"{plan.connections} connections flat out for ~{plan.seconds:.0f} s, then "
            f"{PACED_SENDERS} senders paced at half that rate for ~{plan.seconds / 2:.0f} s.",
            "CPU in % of one core over the flat-out run (200% = both cores), and per event in "
            "CPU microseconds; idle = the machine's idle share meanwhile; DB CPU = the "
            "database server's processes.",
            f"x floor: events/s over the bare ASGI app's with as many workers (targets 0.5 "
            f"SQLite and MariaDB, 0.35 PostgreSQL); x seed: over {SEED_EVENTS_PER_SECOND:,} "
            "events/s, the seed's PHP approach at its best (target 5).",
            "Latencies per request, from its first byte written to its answer's last read.",
        ]
    )
    return table


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0, help="flat-out run per server")
    parser.add_argument("--connections", type=int, default=64, help="flat-out senders")
    parser.add_argument(
        "--backends",
        default="sqlite,mariadb,postgresql",
        help="comma list of NAME or NAME=URL; names: " + ", ".join(DEFAULT_URLS),
    )
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts")
    parser.add_argument("--calls", type=int, default=BASE_CALLS, help="calls per repetition")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--style",
        choices=["manual", "seed"],
        default="manual",
        help="traffic as asterCC's manual shows it, or the seed's CALLER/CALLEE only",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="directory for py-spy profiles (raw)"
    )
    options = parser.parse_args()
    options.backends = [backend_url(item) for item in options.backends.split(",") if item]
    options.workers = [int(n) for n in options.workers.split(",") if n]
    return options


def backend_url(item: str) -> tuple[str, str]:
    name, _, url = item.strip().partition("=")
    if not url and name not in DEFAULT_URLS:
        raise SystemExit(f"unknown backend {name!r}: give NAME=URL or one of {list(DEFAULT_URLS)}")
    return name, url or DEFAULT_URLS[name]


def usable_workers(wanted: Sequence[int], console: Console) -> list[int]:
    if any(n > 1 for n in wanted) and not serve_has_workers():
        console.print("[yellow]`cdrlog serve` has no --workers option yet: 1 worker only")
        return [n for n in wanted if n == 1] or [1]
    return list(wanted)


def main() -> int:
    options = arguments()
    console = Console(width=max(Console().width, 200))
    console.print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start")
    workers = usable_workers(options.workers, console)
    if options.profile is not None:
        if py_spy() is None:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        options.profile.mkdir(parents=True, exist_ok=True)
    traffic = build_traffic(options.calls, options.seed, options.style)
    with tempfile.TemporaryDirectory(prefix="cdrlog-bench-") as logs:
        plan = Plan(
            options.seconds, options.connections, traffic, Path(logs), console, options.profile
        )
        floors = {n: measure_floor(n, plan) for n in workers}
        results = list(floors.values())
        for name, url in options.backends:
            results += measure_each(name, url, workers, floors, plan)
    console.print(results_table(results, plan))
    console.print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at the end")
    failed = [r for r in results if r.flat.failed or (r.exact is not None and not r.exact.ok)]
    return 1 if failed else 0


def measure_each(
    name: str, url: str, workers: Sequence[int], floors: dict[int, Result], plan: Plan
) -> list[Result]:
    reason = unreachable(url)
    if reason is not None:
        plan.console.print(f"[yellow]{name}: skipped, {reason}")
        return []
    plan.console.rule(f"{name}: {make_url(url).render_as_string()}")
    results = []
    for n in workers:
        try:
            result = measure_backend(name, url, n, plan)
        except Exception:  # report it, keep what was measured, go on with the others
            plan.console.print_exception()
            continue
        result.floor = floors[n].flat.per_second
        results.append(result)
    return results


if __name__ == "__main__":
    sys.exit(main())
