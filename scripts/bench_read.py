"""Read benchmark: bulk-load N CDRs per backend, then time the read API on them.

For each backend: drop and re-create the schema, `cdrlog.sim.bulk.load` the CDRs (with
their journal), then measure through `cdrlog.store.reader.Reader` (in this process) and
through HTTP (the app in its own uvicorn process on loopback): the median of --runs
timed runs, after one untimed warm-up run, of a filtered first page, a deep page,
30-day statistics (with the call-center figures) by agent, hour, queue and hour of the
week (kept to business hours), and a 30-day CSV export. Prints one table;
--explain also prints the plan of every statement the measured reads run.

    .venv/bin/python scripts/bench_read.py --cdrs 1000000 --backends sqlite,mariadb,postgresql
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cdrlog.core.exports import csv_chunks
from cdrlog.core.hours import BusinessHours
from cdrlog.core.missed import MissedFilter
from cdrlog.core.report import CdrFilter, Cursor, GroupBy, Sort, StatsTerms
from cdrlog.sim.bulk import load
from cdrlog.store.agents import time_report
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.missed import missed_page
from cdrlog.store.reader import EXPORT_BATCH, Reader
from cdrlog.store.tables import call_event, cdr, metadata

DESCRIPTION = "Bulk-load N CDRs per backend, then time the read API on them."
UTC_ZONE = ZoneInfo("UTC")
DEFAULT_URLS = {
    "sqlite": f"sqlite:///{Path(tempfile.gettempdir()) / 'cdrlog_bench' / 'cdrlog.db'}",
    "mariadb": "mysql+pymysql://root@127.0.0.1/cdrlog_bench",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1/cdrlog_bench",
}
PAGE_SIZE = 50
DEEP_PAGES = 200
TEAM, AGENT = "team1", "1001"
MIB = 1024 * 1024
BUSINESS_HOURS, BUSINESS_DAYS = "08:00-20:00", "mon-fri"
WEEK_ZONE = "Europe/Berlin"


@dataclass(frozen=True, slots=True)
class StatsJob:
    """One measured statistics request, as the reader and as the API take it."""

    key: str
    group_by: GroupBy
    zone: str = "UTC"
    business: bool = False

    def terms(self) -> StatsTerms:
        hours = BusinessHours.parse(BUSINESS_HOURS, BUSINESS_DAYS) if self.business else None
        return StatsTerms(business=hours)

    def params(self) -> dict[str, str]:
        asked = {"group_by": self.group_by.value, "tz": self.zone}
        if self.business:
            asked |= {"business_hours": BUSINESS_HOURS, "business_days": BUSINESS_DAYS}
        return asked


STATS_JOBS = (
    StatsJob("stats_agent", GroupBy.AGENT),
    StatsJob("stats_hour", GroupBy.HOUR),
    StatsJob("stats_queue", GroupBy.QUEUE),
    StatsJob("stats_week", GroupBy.WEEKDAY_HOUR, WEEK_ZONE, business=True),
)


@dataclass(frozen=True, slots=True)
class Measure:
    key: str
    label: str
    target: str
    passes: Callable[[float], bool] | None


MEASURES = (
    Measure("page", "first page: 1 team, 1 agent, 30 days", "< 50 ms", lambda s: s < 0.05),
    Measure("page_all", "first page: no filter (dashboard)", "< 50 ms", lambda s: s < 0.05),
    Measure("deep", f"deep page: 1 team, {DEEP_PAGES} pages in", "< 50 ms", lambda s: s < 0.05),
    Measure("stats_agent", "stats: 30 days by agent", "< 1 s", lambda s: s < 1),
    Measure("stats_hour", "stats: 30 days by hour", "< 1 s", lambda s: s < 1),
    Measure("stats_queue", "stats: 30 days by queue", "< 1 s", lambda s: s < 1),
    Measure(
        "stats_week",
        f"stats: 30 days by weekday_hour, {BUSINESS_DAYS} {BUSINESS_HOURS}",
        "< 1 s",
        lambda s: s < 1,
    ),
    Measure("agents", "agent report: 30 days, every agent", "< 1 s", lambda s: s < 1),
    Measure("missed", "missed calls: 30 days, unresolved, first page", "< 1 s", lambda s: s < 1),
    Measure("now_team", "floor now (/now): 1 team", "< 50 ms", lambda s: s < 0.05),
    Measure("now_all", "floor now (/now): every team", "< 50 ms", lambda s: s < 0.05),
    Measure("export", "CSV export: 30 days", ">= 100,000 rows/s", lambda r: r >= 100_000),
    Measure("memory", "export memory: 30 days (7 days)", "flat", None),
)


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    ok: bool | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """What the measured requests ask for, relative to the newest loaded call."""

    month: CdrFilter
    week: CdrFilter
    first: CdrFilter
    deep: CdrFilter
    month_range: tuple[datetime, datetime]

    @classmethod
    def of(cls, engine: Engine) -> Window:
        with engine.connect() as connection:
            latest = connection.execute(select(func.max(cdr.c.starttime))).scalar_one()
        until = latest + timedelta(seconds=1)
        month, week = until - timedelta(days=30), until - timedelta(days=7)
        return cls(
            month=CdrFilter(start_from=month, start_to=until),
            week=CdrFilter(start_from=week, start_to=until),
            first=CdrFilter(start_from=month, teams=(TEAM,), agentno=AGENT),
            deep=CdrFilter(teams=(TEAM,)),
            month_range=(month, until),
        )


Results = dict[str, Cell]


def main() -> int:
    options = arguments()
    console = Console(width=max(Console().width, 200))
    columns: dict[str, Results] = {}
    for name, url in options.backends:
        reason = unreachable(url)
        if reason is not None:
            console.print(f"[yellow]{name}: skipped, {reason}")
            continue
        console.rule(f"{name}: {make_url(url).render_as_string()}")
        columns[name] = {"machine": Cell(f"{os.getloadavg()[0]:.1f}")}
        try:
            bench_backend(url, options, console, columns[name])
        except Exception:  # report it, keep what was measured, go on with the others
            console.print_exception()
            console.print(f"[red]{name}: failed, see above")
        load_after = os.getloadavg()[0]
        columns[name]["machine"] = Cell(f"{columns[name]['machine'].text} -> {load_after:.1f}")
        if name != options.backends[-1][0]:  # the figures so far, in case the run is cut short
            console.print(results_table(columns, options))
    if columns:
        console.print(results_table(columns, options))
    return 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument(
        "--backends",
        default="sqlite,mariadb,postgresql",
        help="comma list of NAME or NAME=URL; names: " + ", ".join(DEFAULT_URLS),
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measure")
    parser.add_argument("--export-runs", type=int, default=3, help="timed runs per export")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--agents", type=int, default=20, help="per team")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="keep data already loaded")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    options = parser.parse_args()
    # One end for every backend, so that each holds the same calls.
    options.end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    options.backends = [backend_url(item) for item in options.backends.split(",") if item]
    return options


def backend_url(item: str) -> tuple[str, str]:
    name, _, url = item.strip().partition("=")
    if not url and name not in DEFAULT_URLS:
        raise SystemExit(f"unknown backend {name!r}: give NAME=URL or one of {list(DEFAULT_URLS)}")
    return name, url or DEFAULT_URLS[name]


def unreachable(url: str) -> str | None:
    """Why the database cannot be used, or None when it answers."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as error:
        return f"unreachable: {str(error.orig).strip()}"
    finally:
        engine.dispose()
    return None


def bench_backend(
    url: str, options: argparse.Namespace, console: Console, results: Results
) -> None:
    """Load (or reuse) and measure one backend, adding each figure to `results` as soon
    as it is known."""
    engine = make_engine(url)
    try:
        results |= prepare(engine, options, console)
        window = Window.of(engine)
        console.print("measuring through the Reader")
        for key, cell in measure_reader(Reader(engine), window, options).items():
            results[f"{key}/reader"] = cell
        console.print("measuring through HTTP")
        for key, cell in measure_http(url, window, options).items():
            results[f"{key}/http"] = cell
        if options.explain:
            explain(engine, window, console)
    finally:
        engine.dispose()


def prepare(engine: Engine, options: argparse.Namespace, console: Console) -> Results:
    """Reset and load (or, with --reuse, keep what is there); the load's figures."""
    with engine.connect() as connection:
        present = 0
        if options.reuse and engine.dialect.has_table(connection, "cdr"):
            present = connection.execute(select(func.count()).select_from(cdr)).scalar_one()
    if present:
        upgrade(engine)  # the data stays; indexes follow the newest schema
        events = scalar(engine, select(func.count()).select_from(call_event))
        return {"data": Cell(f"{present:,} CDRs, {events:,} events"), "load": Cell("reused")}
    reset_schema(engine)
    console.print(f"loading {options.cdrs:,} CDRs")
    summary = load(
        engine,
        options.cdrs,
        seed=options.seed,
        days=options.days,
        teams=options.teams,
        agents=options.agents,
        progress=sys.stdout.isatty(),
        end=options.end,
    )
    speed = f"{summary.rows_per_second:,.0f} rows/s ({summary.cdrs_per_second:,.0f} CDRs/s)"
    return {
        "data": Cell(f"{summary.cdrs:,} CDRs, {summary.events:,} events"),
        "load": Cell(f"{summary.seconds:,.0f} s, {speed}"),
        "analyze": Cell(f"{summary.analyze_seconds:,.1f} s"),
    }


def reset_schema(engine: Engine) -> None:
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)


def scalar(engine: Engine, query: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def median_seconds(work: Callable[[], object], runs: int, warm_up: bool = True) -> float:
    """The median wall time of `runs` runs of `work`, after one untimed warm-up run."""
    if warm_up:
        work()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def timed(measure: str, work: Callable[[], object], runs: int) -> Cell:
    seconds = median_seconds(work, runs)
    shown_as = f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"
    return Cell(shown_as, passes(measure, seconds))


def passes(key: str, value: float) -> bool | None:
    check = next(m.passes for m in MEASURES if m.key == key)
    return None if check is None else check(value)


def measure_reader(reader: Reader, window: Window, options: argparse.Namespace) -> Results:
    runs = options.runs
    after = deep_cursor(lambda c: reader.page(window.deep, Sort.NEWEST, c, PAGE_SIZE).next_cursor)
    results = {
        "page": timed("page", lambda: reader.page(window.first, Sort.NEWEST, None, 50), runs),
        "page_all": timed(
            "page_all", lambda: reader.page(CdrFilter(), Sort.NEWEST, None, 50), runs
        ),
        "deep": timed("deep", lambda: reader.page(window.deep, Sort.NEWEST, after, 50), runs),
    }
    for job in STATS_JOBS:
        asked = partial(reader.stats, window.month, job.group_by, ZoneInfo(job.zone), job.terms())
        results[job.key] = timed(job.key, asked, runs)

    since, until = window.month_range
    report = partial(time_report, reader.engine, None, None, since, until, datetime.now(UTC))
    results["agents"] = timed("agents", report, runs)
    unresolved = MissedFilter(start_from=since, start_to=until, unresolved=True)
    missed = partial(missed_page, reader, unresolved, None, PAGE_SIZE)
    results["missed"] = timed("missed", missed, runs)

    def export(wanted: CdrFilter) -> int:
        chunks = csv_chunks(reader.batches(wanted, Sort.NEWEST), UTC_ZONE)
        return sum(chunk.count("\n") for chunk in chunks) - 1

    month_export = partial(export, window.month)
    results["export"] = export_speed(month_export, options.export_runs, time.process_time)
    month, week = (traced_peak(partial(export, w)) for w in (window.month, window.week))
    results["memory"] = memory_cell(month, week)
    return results


def deep_cursor(following: Callable[[Cursor | None], Cursor | None]) -> Cursor:
    """The cursor `DEEP_PAGES` pages in, walking page after page from the first."""
    cursor = following(None)
    for _ in range(DEEP_PAGES - 1):
        if cursor is None:
            break
        cursor = following(cursor)
    if cursor is None:
        raise SystemExit(f"fewer than {DEEP_PAGES} pages for the deep page: load more CDRs")
    return cursor


def export_speed(export: Callable[[], int], runs: int, cpu: Callable[[], float]) -> Cell:
    """Rows per second of wall time (median run), and per second of CPU time of the
    process that formats the rows (`cpu`: its CPU seconds so far), which shows what the
    code would do on an idle core."""
    rows = export()  # also the warm-up
    used = cpu()
    seconds = median_seconds(export, runs, warm_up=False)
    per_cpu = rows * runs / (cpu() - used)
    text = f"{rows / seconds:,.0f} rows/s, {per_cpu:,.0f}/CPU s ({rows:,} rows)"
    return Cell(text, passes("export", rows / seconds))


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Usage:
    """An export's rows and the memory it took."""

    rows: int
    bytes: int


def traced_peak(export: Callable[[], int]) -> Usage:
    """Peak bytes Python allocated during the export (tracemalloc; C buffers not seen)."""
    tracemalloc.start()
    try:
        rows = export()
        return Usage(rows, tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def memory_cell(month: Usage, week: Usage) -> Cell:
    """Flat: four times the rows take at most 1.5 times (+ 4 MiB) the memory. Not judged
    while the smaller export is under two of the reader's batches."""
    flat = None
    if week.rows >= 2 * EXPORT_BATCH:
        flat = month.bytes <= 1.5 * week.bytes + 4 * MIB
    return Cell(f"{month.bytes / MIB:,.1f} MiB ({week.bytes / MIB:,.1f} MiB)", flat)


@dataclass(frozen=True, slots=True)
class Server:
    client: httpx.Client
    pid: int


# The app as `cdrlog serve` runs it, on a socket it binds itself: no other process can
# take the port between choosing it and listening on it.
SERVER = """
import socket, sys, uvicorn
from cdrlog.web.app import create_app
from cdrlog.service.settings import Settings
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
config = uvicorn.Config(create_app(Settings(database_url=sys.argv[1])), log_level="warning")
uvicorn.Server(config).run(sockets=[listener])
"""


@contextmanager
def served(url: str) -> Iterator[Server]:
    """The API in its own uvicorn process on loopback, until the block ends; if the block
    fails, what the server wrote to stderr is shown."""
    with tempfile.TemporaryFile() as log:
        command = [sys.executable, "-c", SERVER, url]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
        try:
            port = int((process.stdout.readline() if process.stdout else b"") or 0)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=900) as client:
                wait_until_ready(client, process)
                yield Server(client, process.pid)
        except Exception:
            log.seek(0)
            print(f"server log:\n{log.read().decode(errors='replace')[-4000:]}", file=sys.stderr)
            raise
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_until_ready(client: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped with status {process.returncode}")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready within 60 s")


def params_of(wanted: CdrFilter) -> dict[str, str]:
    """The query string asking the API for `wanted` (the fields the benchmark uses)."""
    params = {}
    if wanted.start_from is not None:
        params["from"] = wanted.start_from.isoformat()
    if wanted.start_to is not None:
        params["to"] = wanted.start_to.isoformat()
    if wanted.teams:
        params["team"] = wanted.teams[0]
    if wanted.agentno is not None:
        params["agent"] = wanted.agentno
    return params


def get(server: Server, path: str, params: dict[str, str]) -> Any:
    response = server.client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def measure_http(url: str, window: Window, options: argparse.Namespace) -> Results:
    with served(url) as server:
        results = time_http(server, window, options)
    (month, month_peak), (week, week_peak) = (
        server_peak(url, w) for w in (window.month, window.week)
    )
    results["memory"] = memory_cell(month, week)
    results["rss"] = Cell(f"{month_peak / MIB:,.0f} MiB ({week_peak / MIB:,.0f} MiB)")
    return results


def time_http(server: Server, window: Window, options: argparse.Namespace) -> Results:
    runs, page = options.runs, {"limit": str(PAGE_SIZE)}
    deep = params_of(window.deep) | page

    def following(cursor: Cursor | None) -> Cursor | None:
        token = get(server, "/api/v1/cdrs", deep | ({"cursor": cursor.encode()} if cursor else {}))
        return Cursor.decode(token["next_cursor"]) if token["next_cursor"] else None

    after = {"cursor": deep_cursor(following).encode()}
    first = params_of(window.first) | page
    results = {
        "page": timed("page", lambda: get(server, "/api/v1/cdrs", first), runs),
        "page_all": timed("page_all", lambda: get(server, "/api/v1/cdrs", page), runs),
        "deep": timed("deep", lambda: get(server, "/api/v1/cdrs", deep | after), runs),
    }
    for job in STATS_JOBS:
        asked = params_of(window.month) | job.params()
        results[job.key] = timed(job.key, partial(get, server, "/api/v1/stats", asked), runs)
    month = params_of(window.month)
    results["agents"] = timed("agents", partial(get, server, "/api/v1/agents/report", month), runs)
    missed = month | {"unresolved": "true", "limit": str(PAGE_SIZE)}
    results["missed"] = timed("missed", partial(get, server, "/api/v1/missed", missed), runs)
    team = {"team": TEAM}
    results["now_team"] = timed("now_team", partial(get, server, "/api/v1/now", team), runs)
    results["now_all"] = timed("now_all", partial(get, server, "/api/v1/now", {}), runs)
    month_export = partial(http_export, server, window.month)
    results["export"] = export_speed(month_export, options.export_runs, partial(cpu_of, server.pid))
    return results


def http_export(server: Server, wanted: CdrFilter) -> int:
    params = params_of(wanted) | {"format": "csv"}
    with server.client.stream("GET", "/api/v1/cdrs", params=params) as response:
        response.raise_for_status()
        return sum(chunk.count(b"\n") for chunk in response.iter_bytes()) - 1


def server_peak(url: str, wanted: CdrFilter) -> tuple[Usage, int]:
    """How far a fresh server's resident memory rises during one export, and its peak
    (Linux VmRSS before, VmHWM after; the high-water mark is reset in between)."""
    with served(url) as server:
        get(server, "/api/v1/cdrs", {"limit": "1"})  # imports, connections, caches
        status = Path(f"/proc/{server.pid}/status")
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        before = proc_kib(status, "VmRSS")
        rows = http_export(server, wanted)
        peak = proc_kib(status, "VmHWM")
    return Usage(rows, (peak - before) * 1024), peak * 1024


def proc_kib(status: Path, field: str) -> int:
    line = next(x for x in status.read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def explain(engine: Engine, window: Window, console: Console) -> None:
    """The plan of every statement the measured reads run (PostgreSQL and MariaDB
    execute them: EXPLAIN ANALYZE / ANALYZE)."""
    reader = Reader(engine)
    after = deep_cursor(lambda c: reader.page(window.deep, Sort.NEWEST, c, PAGE_SIZE).next_cursor)
    jobs: dict[str, Callable[[], object]] = {
        "first page": lambda: reader.page(window.first, Sort.NEWEST, None, PAGE_SIZE),
        "first page, no filter": lambda: reader.page(CdrFilter(), Sort.NEWEST, None, PAGE_SIZE),
        "deep page": lambda: reader.page(window.deep, Sort.NEWEST, after, PAGE_SIZE),
        **{
            f"stats by {job.group_by}": partial(
                reader.stats, window.month, job.group_by, ZoneInfo(job.zone), job.terms()
            )
            for job in STATS_JOBS
        },
        "export batch": lambda: reader.page(window.month, Sort.NEWEST, None, 5000),
    }
    for title, job in jobs.items():
        for statement, parameters in captured(engine, job):
            console.print(f"[bold]{title}[/bold]: {' '.join(statement.split())}", markup=True)
            for line in plan_lines(engine, statement, parameters):
                console.print("    " + line, markup=False, highlight=False)


def captured(engine: Engine, job: Callable[[], object]) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def keep(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        job()
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return statements


def plan_lines(engine: Engine, statement: str, parameters: Any) -> list[str]:
    prefix = {
        "sqlite": "EXPLAIN QUERY PLAN ",
        "postgresql": "EXPLAIN (ANALYZE, BUFFERS) ",
    }.get(engine.dialect.name, "ANALYZE ")
    with engine.connect() as connection:
        result = connection.exec_driver_sql(prefix + statement, parameters)
        names = list(result.keys())
        rows = result.all()
    if engine.dialect.name == "postgresql":
        return [row[0] for row in rows]
    if engine.dialect.name == "sqlite":
        return [row[-1] for row in rows]
    return [" | ".join(f"{n}={v}" for n, v in zip(names, row, strict=True)) for row in rows]


def results_table(columns: dict[str, Results], options: argparse.Namespace) -> Table:
    cores = os.cpu_count()
    table = Table(
        title=f"cdrlog read benchmark: {options.cdrs:,} CDRs over {options.days} days, "
        f"{options.teams} teams x {options.agents} agents; median of {options.runs} runs "
        f"({options.export_runs} for exports) after a warm-up; {cores} cores",
        caption="reader: cdrlog.store.reader.Reader in the benchmark's process; export memory "
        "is the tracemalloc peak of Python allocations. HTTP: the app in a uvicorn process on "
        "loopback; export memory is how far a fresh server's RSS rises during one export "
        "(VmHWM after minus VmRSS before). Export '/CPU s': rows per CPU second of the "
        "process that formats them (for SQLite that includes the database). Flat: 4x the "
        "rows in at most 1.5x (+4 MiB) the memory. Machine load: 1-minute load average "
        "before -> after the backend's run (other work shares the cores).",
    )
    table.add_column("measure")
    table.add_column("target")
    for name in columns:
        table.add_column(name)
    for key, label in (("data", "data"), ("load", "bulk load"), ("analyze", "ANALYZE")):
        table.add_row(label, "", *(c.get(key, Cell("")).text for c in columns.values()))
    table.add_row("machine load (1 min)", "", *(c["machine"].text for c in columns.values()))
    for measure in MEASURES:
        for path in ("reader", "http"):
            cells = [c.get(f"{measure.key}/{path}", Cell("-")) for c in columns.values()]
            label = f"{measure.label} [{'HTTP' if path == 'http' else 'reader'}]"
            table.add_row(label, measure.target, *(styled(cell) for cell in cells))
    rss = [c.get("rss/http", Cell("-")).text for c in columns.values()]
    table.add_row("server peak RSS: 30 days (7 days) [HTTP]", "", *rss)
    return table


def styled(cell: Cell) -> str:
    if cell.ok is None:
        return cell.text
    return f"[green]{cell.text} ok[/green]" if cell.ok else f"[red]{cell.text} MISS[/red]"


if __name__ == "__main__":
    sys.exit(main())
