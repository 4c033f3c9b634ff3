"""Push benchmark: cdrlog's events/s on each backend, against the floor and the seed.

It measures the floor and the seed's approach in the same run, then `cdrlog replay`'s
rate. Everything is judged against issue 14's targets, each cell coloured, in one run:

* The floor is `scripts/floor_app.py` (a bare ASGI app that parses the form and answers
  200) under the same uvicorn settings: the most any Python receiver could do here.
* The seed is the seed's PHP script (`scripts/bench_seed/cdr.php`, served by nginx and
  php-fpm on MariaDB, see `seed_server.py`), sent the same traffic: its rate is what the
  x seed column divides by, and its rows are counted exact, duplicated, wrong or missing.
* For each backend the schema is reset and `cdrlog serve` runs as a subprocess (1
  worker, and 2 when `--workers` exists), getting: (1) as much as `--connections`
  keep-alive connections can send, for about `--seconds`; (2) 32 senders paced at half
  the rate measured in 1, for about half as long; (3) a lone event at a time: one sender
  sending the next request as soon as the answer came, for about `--lone-seconds`.
  Afterwards every CDR must equal the `ExpectedCdr` its call's script gives.
* `cdrlog replay` stores about `--replay-events` events into a fresh SQLite file
  (`bench_replay.py`, whose generated file is kept in the temp dir for the next run).

The traffic and the client are `push_client.py`'s: realistic calls in the manual's shape,
30% shuffled, 5% re-sent, form-encoded, from one asyncio process. Any POST left without
an answer is counted as failed and shown with its time and the server log's warnings.

    .venv/bin/python scripts/bench_push.py --seconds 30 --backends sqlite,mariadb,postgresql
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_replay
import httpx
import seed_server
from push_client import HOST, Load, Meter, Source, Traffic, build_traffic, load
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from cdrlog.sim.traffic import ExpectedCdr, stored_as_expected
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.tables import cdr, metadata

SCRIPTS = Path(__file__).resolve().parent
DEFAULT_URLS = {
    "sqlite": f"sqlite:///{Path(tempfile.gettempdir()) / 'cdrlog_perf' / 'cdrlog.db'}",
    "mariadb": "mysql+pymysql://root@127.0.0.1/cdrlog_perf",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1/cdrlog_perf",
}
# The database server's processes, whose CPU is shown beside the receiver's.
DATABASE_PROCESSES = {"mariadb": ("mariadbd", "mysqld"), "postgresql": ("postgres",)}
# Issue 14's targets. Each is judged only where the issue sets it.
FLOOR_TARGETS = {"sqlite": 0.5, "mariadb": 0.3, "postgresql": 0.3}  # x the floor, same workers
SEED_TARGETS = {"mariadb": 3.0}  # x the seed measured in the same run
CPU_TARGETS_US = {"sqlite": 100.0}  # server CPU per event, flat out
SCALING_BACKENDS = ("mariadb", "postgresql")  # 2 processes must store more than 1
PACED_P99_TARGET_MS = 10.0
LONE_P99_TARGET_MS = 2.0
PACED_SENDERS = 32
BASE_CALLS = 500
# The lone-event run's calls per repetition: a repetition lasts well under a second even
# at a few ms per answer, so the run ends close to --lone-seconds with every call whole.
LONE_CALLS = 40
SEED_RECEIVER = "seed (PHP, MariaDB)"
FLOOR_RECEIVER = "floor (bare ASGI)"
# All the load comes from one address: cdrlog's per-address limit must not be the bound.
UNLIMITED = {
    "CDRLOG_RATE_PER_SECOND": "1e9",
    "CDRLOG_RATE_BURST": "1e9",
    "CDRLOG_MAX_CONNECTIONS_PER_ADDRESS": "100000",
}
# Log lines worth showing when a request failed.
TROUBLE = re.compile(r"error|warn|critical|exception|traceback|killed|timeout", re.IGNORECASE)
SHOWN_LOG_LINES = 20


@dataclass(frozen=True, slots=True)
class Exactness:
    """How many calls' CDRs equal their expected CDR, of how many; rows nobody expected."""

    exact: int
    calls: int
    unexpected: int

    @property
    def ok(self) -> bool:
        return self.exact == self.calls and self.unexpected == 0

    def shown(self) -> str:
        return f"{self.exact:,}/{self.calls:,}" + (
            f" +{self.unexpected}" if self.unexpected else ""
        )


@dataclass(slots=True)
class Result:
    """One server measured: its runs, its CDR check, the figures it is compared with
    (filled in once all are measured) and the logs to read when something failed."""

    receiver: str
    workers: int
    flat: Load
    paced: Load | None = None
    lone: Load | None = None
    exact: Exactness | seed_server.SeedCdrs | None = None
    logs: tuple[Path, ...] = ()
    floor: float | None = None  # the floor's events/s with as many workers
    single: float | None = None  # this receiver's events/s with 1 worker
    seed: float | None = None  # the seed's events/s
    load_average: str = ""
    kind: str = "cdrlog"  # or "floor", "seed": which targets apply

    @property
    def runs(self) -> list[Load]:
        return [run for run in (self.flat, self.paced, self.lone) if run is not None]

    @property
    def failed(self) -> int:
        return sum(run.failed for run in self.runs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def environment() -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("CDRLOG_")}
    return kept | UNLIMITED


def cdrlog_command(url: str, port: int, workers: int, spool: Path) -> list[str]:
    # JSON log lines carry their time, to set beside a lost connection's.
    command = [sys.executable, "-m", "cdrlog", "serve", "--db", url, "--host", HOST]
    command += ["--port", str(port), "--spool-dir", str(spool), "--log-format", "json"]
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


def expected_of(sent: Sequence[tuple[Traffic, range]]) -> dict[tuple[str, str], ExpectedCdr]:
    """The expected CDR of every call sent, keyed by (team, diallogid)."""
    wanted: dict[tuple[str, str], ExpectedCdr] = {}
    for traffic, repetitions in sent:
        wanted |= traffic.expected_of(repetitions)
    return wanted


def check_cdrs(url: str, sent: Sequence[tuple[Traffic, range]]) -> Exactness:
    """Every call sent must have exactly its expected CDR, and nothing else a row."""
    wanted = expected_of(sent)
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
    lone_traffic: Traffic
    lone_seconds: float
    logs: Path
    console: Console
    profiles: Path | None = None
    # Phases that could not be measured (the server would not start, ...): a failed run.
    broken: list[str] = field(default_factory=list)

    def could_not(self, what: str) -> None:
        """Show why `what` could not be measured, and remember it."""
        self.console.print_exception()
        self.broken.append(what)


def load_average() -> float:
    return os.getloadavg()[0]


def lone(port: int, plan: Plan, meter: Meter) -> Load:
    """One call at a time: a single sender, the next request as soon as the answer came."""
    return load(port, Source(plan.lone_traffic, 0, plan.lone_seconds), 1, 0, meter)


def measure_floor(workers: int, plan: Plan) -> Result:
    began = load_average()
    port = free_port()
    log = plan.logs / f"floor-{workers}.log"
    with serving(floor_command(port, workers), port, log) as server:
        source = Source(plan.traffic, 0, plan.seconds)
        flat = load(port, source, plan.connections, 0, Meter((server.pid,), ()))
        alone = lone(port, plan, Meter((server.pid,), ()))
    result = Result(FLOOR_RECEIVER, workers, flat, lone=alone, logs=(log,), kind="floor")
    result.load_average = f"{began:.1f} -> {load_average():.1f}"
    report(plan.console, result)
    return result


def measure_seed(plan: Plan) -> Result | None:
    """The seed's PHP script under the same client (flat out, then lone), or None when
    it cannot be served here (said why)."""
    tools = seed_server.find_tools()
    reason = tools if isinstance(tools, str) else unreachable(seed_server.URL)
    if isinstance(tools, str) or reason is not None:
        plan.console.print(f"[yellow]the seed: skipped, {reason}")
        return None
    plan.console.rule(f"the seed: PHP behind nginx and php-fpm, {seed_server.URL}")
    began = load_average()
    try:
        result = seed_runs(tools, plan)
    except Exception:  # report it and go on: cdrlog is still measured
        plan.could_not("the seed")
        return None
    result.load_average = f"{began:.1f} -> {load_average():.1f}"
    report(plan.console, result)
    return result


def seed_runs(tools: seed_server.Tools, plan: Plan) -> Result:
    seed_server.reset_schema(seed_server.URL)
    port, folder = free_port(), plan.logs / "seed"
    with seed_server.serving(tools, seed_server.URL, folder, HOST, port) as server:
        usage = Meter(server.pids, DATABASE_PROCESSES["mariadb"])
        flat = load(port, Source(plan.traffic, 0, plan.seconds), plan.connections, 0, usage)
        alone = lone(port, plan, Meter(server.pids, ()))
    sent = [(plan.traffic, flat.repetitions), (plan.lone_traffic, alone.repetitions)]
    rows = seed_server.check(seed_server.URL, expected_of(sent))
    result = Result(SEED_RECEIVER, seed_server.CHILDREN, flat, None, alone, rows, server.logs)
    result.kind = "seed"
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
        alone = lone(port, plan, meter(server.pid, name))
    sent = [
        (plan.traffic, flat.repetitions),
        (plan.traffic, paced.repetitions),
        (plan.lone_traffic, alone.repetitions),
    ]
    result = Result(name, workers, flat, paced, alone, check_cdrs(url, sent), (log,))
    result.load_average = f"{began:.1f} -> {load_average():.1f}"
    report(plan.console, result)
    return result


def meter(pid: int, backend: str) -> Meter:
    return Meter((pid,), DATABASE_PROCESSES.get(backend, ()))


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
        f"{result.receiver}, {result.workers} process(es): {flat.per_second:,.0f} events/s, "
        f"p99 {flat.percentile_ms(0.99):.1f} ms, {result.failed} failed"
    )
    if result.paced is not None:
        paced = result.paced
        line += f"; paced {paced.per_second:,.0f}/s p99 {paced.percentile_ms(0.99):.1f} ms"
    if result.lone is not None:
        alone = result.lone
        line += (
            f"; lone p50 {alone.percentile_ms(0.5):.2f} ms p99 {alone.percentile_ms(0.99):.2f} ms"
        )
    if result.exact is not None:
        line += f"; CDRs exact: {result.exact.shown()}"
    console.print(line)
    for run in result.runs:
        for problem in run.problems:
            console.print(f"  [red]! {problem}")
        for loss in run.losses:
            if not loss.unanswered:
                console.print(f"  [yellow]! {loss.shown()}")


def report_failures(console: Console, results: Sequence[Result]) -> None:
    """For each server where a request failed: every lost connection, with its time, and
    the warnings and errors of the server's log, to match the two up."""
    for result in results:
        if not result.failed:
            continue
        console.rule(f"[red]{result.receiver}, {result.workers} process(es): failed requests")
        for run in result.runs:
            for loss in run.losses:
                console.print(f"  {loss.shown()}")
        for log in result.logs:
            lines = trouble(log)
            console.print(f"  {log.name}: {len(lines)} warning or error line(s)", highlight=False)
            for line in lines[-SHOWN_LOG_LINES:]:
                console.print(f"    {line}", markup=False, highlight=False)


def trouble(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text(errors="replace").splitlines() if TROUBLE.search(line)]


def judged(value: float, target: float, shown: str, higher: bool = True) -> str:
    ok = value >= target if higher else value < target
    return f"[{'green' if ok else 'red'}]{shown}[/]"


COLUMNS = (
    "receiver",
    "processes",
    "events/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "server CPU",
    "client CPU",
    "DB CPU",
    "idle",
    "x floor",
    "x 1 process",
    "x seed",
    "paced events/s",
    "paced p99 ms",
    "lone p50 ms",
    "lone p99 ms",
    "failed",
    "CDRs exact",
    "load avg",
)


def row_of(result: Result) -> list[str]:
    flat, usage = result.flat, result.flat.usage
    cells = [result.receiver, str(result.workers), f"{flat.per_second:,.0f}"]
    cells += [f"{flat.percentile_ms(f):.1f}" for f in (0.5, 0.99, 1.0)]
    cells += [server_cpu_cell(result), f"{usage.client:.0f}%"]
    database = f"{usage.database:.0f}%" if result.receiver in DATABASE_PROCESSES else "-"
    if result.kind == "seed":
        database = f"{usage.database:.0f}%"
    cells += [database, f"{usage.idle:.0f}%"]
    cells += ratio_cells(result)
    cells += paced_cells(result.paced) + lone_cells(result)
    cells.append(judged(result.failed, 1, f"{result.failed:,}", higher=False))
    cells.append(exact_cell(result))
    return [*cells, result.load_average]


def server_cpu_cell(result: Result) -> str:
    """% of one core over the flat-out run, and CPU microseconds per event."""
    share = result.flat.usage.server
    rate = result.flat.per_second
    per_event = share * 10_000 / rate if rate else 0.0  # % of a core -> us/event
    shown = f"{share:.0f}% ({per_event:.0f} us)"
    target = CPU_TARGETS_US.get(result.receiver) if result.kind == "cdrlog" else None
    if target is None:
        return shown
    return judged(per_event, target, f"{shown[:-1]} < {target:.0f})", higher=False)


def ratio_cells(result: Result) -> list[str]:
    """x floor, x 1 process and x seed, each judged where the issue sets a target."""
    rate, cdrlog = result.flat.per_second, result.kind == "cdrlog"
    floor = "1.00" if result.kind == "floor" else ""
    if cdrlog and result.floor:
        floor = ratio_cell(rate / result.floor, FLOOR_TARGETS.get(result.receiver), 2)
    scaling = ""
    if result.workers > 1 and result.single:
        ratio = rate / result.single
        scaling = f"{ratio:.2f}"
        if cdrlog and result.receiver in SCALING_BACKENDS:
            scaling = f"[{'green' if ratio > 1 else 'red'}]{ratio:.2f} (> 1)[/]"
    seed = "1.00" if result.kind == "seed" else ""
    if cdrlog and result.seed:
        seed = ratio_cell(rate / result.seed, SEED_TARGETS.get(result.receiver), 1)
    return [floor, scaling, seed]


def ratio_cell(ratio: float, target: float | None, digits: int) -> str:
    shown = f"{ratio:.{digits}f}"
    return shown if target is None else judged(ratio, target, f"{shown} (>= {target:g})")


def paced_cells(paced: Load | None) -> list[str]:
    if paced is None:
        return ["", ""]
    p99 = paced.percentile_ms(0.99)
    shown = f"{p99:.1f} (< {PACED_P99_TARGET_MS:.0f})"
    return [f"{paced.per_second:,.0f}", judged(p99, PACED_P99_TARGET_MS, shown, False)]


def lone_cells(result: Result) -> list[str]:
    alone = result.lone
    if alone is None:
        return ["", ""]
    p50, p99 = alone.percentile_ms(0.5), alone.percentile_ms(0.99)
    if result.kind != "cdrlog":
        return [f"{p50:.2f}", f"{p99:.2f}"]
    shown = f"{p99:.2f} (< {LONE_P99_TARGET_MS:.0f})"
    return [f"{p50:.2f}", judged(p99, LONE_P99_TARGET_MS, shown, False)]


def exact_cell(result: Result) -> str:
    exact = result.exact
    if exact is None:
        return ""
    return f"[{'green' if exact.ok else 'red'}]{exact.shown()}[/]"


def caption(plan: Plan, seed: Result | None) -> list[str]:
    seed_text = (
        f"the seed's {seed.flat.per_second:,.0f} events/s measured above"
        if seed is not None
        else "the seed, not measured in this run"
    )
    return [
        f"{os.cpu_count()} cores; {len(plan.traffic.parts):,} requests per repetition of "
        f"{len(plan.traffic.expected):,} calls (manual's shape, 30% shuffled, 5% re-sent); "
        f"{plan.connections} connections flat out for ~{plan.seconds:.0f} s, then "
        f"{PACED_SENDERS} senders paced at half that rate for ~{plan.seconds / 2:.0f} s, then "
        f"one lone sender for ~{plan.lone_seconds:.0f} s ({len(plan.lone_traffic.expected)} "
        "calls a repetition).",
        "CPU in % of one core over the flat-out run (200% = both cores), and per event in "
        "CPU microseconds (target < 100 on SQLite); idle = the machine's idle share "
        "meanwhile; DB CPU = the database server's processes.",
        "x floor: events/s over the bare ASGI app's with as many processes (targets 0.5 "
        "SQLite, 0.3 MariaDB and PostgreSQL); x 1 process: over the same receiver's with one "
        f"(MariaDB and PostgreSQL must gain); x seed: over {seed_text} (target 3 on MariaDB).",
        "Latencies per request, from its first byte written to its answer's last read; lone: "
        "one request at a time (target p99 < 2 ms); failed: non-200 answers and requests "
        "whose connection was lost (target 0).",
        "The seed's CDRs: calls with exactly their CDR / calls sent; dup. = two rows or "
        "more, wrong = one row that differs, none = no row (only the columns it sets).",
    ]


def results_table(rows: Sequence[list[str]], lines: Sequence[str]) -> Table:
    table = Table(*COLUMNS, title="cdrlog push benchmark", caption_justify="left")
    for row in rows:
        table.add_row(*row)
    table.caption = "\n".join(lines)
    return table


def markdown(rows: Sequence[list[str]], lines: Sequence[str], extra: Sequence[str]) -> str:
    """The table for the README, its caption and `extra` lines below."""
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return "\n".join([*out, "", *lines, *extra])


def markdown_cell(shown: str) -> str:
    """Plain text, a missed target in bold (as the README marks misses)."""
    plain = Text.from_markup(shown).plain.replace("|", "\\|")
    return f"**{plain}**" if "[red]" in shown and plain else plain


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
        "--lone-seconds", type=float, default=5.0, help="one request at a time, per server"
    )
    parser.add_argument("--no-seed", action="store_true", help="do not measure the seed's PHP")
    parser.add_argument(
        "--replay-events",
        type=int,
        default=1_000_000,
        help="about this many events for `cdrlog replay` (0 skips it)",
    )
    parser.add_argument("--no-replay", action="store_true", help="do not measure the replay")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
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


@dataclass(slots=True)
class Outcome:
    """Everything one `make bench` measured."""

    results: list[Result] = field(default_factory=list)
    seed: Result | None = None
    replay: bench_replay.ReplayResult | None = None


def measure_all(options: argparse.Namespace, plan: Plan, workers: Sequence[int]) -> Outcome:
    outcome = Outcome()
    floors = {n: measure_floor(n, plan) for n in workers}
    outcome.results += list(floors.values())
    if not options.no_seed:
        outcome.seed = measure_seed(plan)
        outcome.results += [outcome.seed] if outcome.seed else []
    for name, url in options.backends:
        outcome.results += measure_each(name, url, workers, floors, plan)
    if not options.no_replay and options.replay_events > 0:
        plan.console.rule(f"cdrlog replay: ~{options.replay_events:,} events into SQLite")
        outcome.replay = measure_replay(options.replay_events, options.seed, plan)
    compare(outcome)
    return outcome


def measure_replay(events: int, seed: int, plan: Plan) -> bench_replay.ReplayResult | None:
    try:
        replay = bench_replay.measure(events, seed, plan.logs / "replay.db")
    except Exception:  # report it: the push figures above still stand
        plan.could_not("cdrlog replay")
        return None
    plan.console.print(replay.summary, markup=False, highlight=False)
    return replay


def compare(outcome: Outcome) -> None:
    """Each result gets the figures it is judged against: the seed's, its own 1-process."""
    singles = {(r.receiver, r.kind): r.flat.per_second for r in outcome.results if r.workers == 1}
    for result in outcome.results:
        result.seed = outcome.seed.flat.per_second if outcome.seed else None
        result.single = singles.get((result.receiver, result.kind))


def replay_line(replay: bench_replay.ReplayResult | None) -> str:
    if replay is None:
        return ""
    ok = replay.per_second >= bench_replay.TARGET
    return f"[{'green' if ok and replay.ok else 'red'}]{replay.shown()}[/]"


def main() -> int:
    options = arguments()
    console = Console(width=max(Console().width, 270))
    console.print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start")
    workers = usable_workers(options.workers, console)
    if options.profile is not None:
        if py_spy() is None:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        options.profile.mkdir(parents=True, exist_ok=True)
    traffic = build_traffic(options.calls, options.seed, options.style)
    lone_traffic = build_traffic(LONE_CALLS, options.seed + 1, options.style)
    with tempfile.TemporaryDirectory(prefix="cdrlog-bench-") as logs:
        plan = Plan(
            options.seconds,
            options.connections,
            traffic,
            lone_traffic,
            options.lone_seconds,
            Path(logs),
            console,
            options.profile,
        )
        outcome = measure_all(options, plan, workers)
        report_failures(console, outcome.results)
    rows = [row_of(result) for result in outcome.results]
    lines = caption(plan, outcome.seed)
    console.print(results_table(rows, lines))
    replay = replay_line(outcome.replay)
    if replay:
        console.print(replay)
    if options.markdown:
        extra = ["", f"* {markdown_cell(replay)}"] if replay else []
        console.print(markdown(rows, lines, extra), markup=False, highlight=False, soft_wrap=True)
    if plan.broken:
        console.print(f"[red]not measured (see above): {', '.join(plan.broken)}")
    console.print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at the end")
    return 1 if plan.broken or failed(outcome) else 0


def failed(outcome: Outcome) -> bool:
    """A failed request, a cdrlog CDR not exact, or a replay that did not store it all."""
    for result in outcome.results:
        if result.failed or (result.kind == "cdrlog" and result.exact and not result.exact.ok):
            return True
    return outcome.replay is not None and not outcome.replay.ok


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
            plan.could_not(f"{name} with {n} process(es)")
            continue
        result.floor = floors[n].flat.per_second
        results.append(result)
    return results


if __name__ == "__main__":
    sys.exit(main())
