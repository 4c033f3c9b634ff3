"""Bulk loading: many realistic calls, with their journal, straight into a migrated database.

For benchmarks and demos. The calls come from `traffic.generate_calls`, spread over the
last `days` days as `bulk_plan` shares them out. Each event is parsed and journaled as
the receiver would journal it; each CDR is the call's `ExpectedCdr` (which equals the
fold of its events, see tests/sim/test_bulk.py). Rows go in as multi-row INSERTs, one
transaction per batch of calls, and the calls are generated a slot at a time, so memory
stays flat for any count.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import Connection, Engine

from cdrlog.core.accepted import Accepted
from cdrlog.core.events import AgentEvent, CallEvent, Event, fingerprint, parse_event
from cdrlog.core.record import Cdr
from cdrlog.core.rules import Disposition, Status
from cdrlog.sim.bulk_plan import Batch, plan
from cdrlog.sim.traffic import GeneratedCall, generate_calls, roster
from cdrlog.store import agenthours, database
from cdrlog.store.database import in_transaction, insert_ignoring_duplicates
from cdrlog.store.hotpath import READ_BACK
from cdrlog.store.journal import journal_row, load_rows
from cdrlog.store.tables import agent, cdr_values

BATCH_CALLS = 1000
_UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Rows:
    """One batch's rows, as `connection.execute(table.insert(), rows)` takes them."""

    events: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    records: list[dict[str, Any]]

    def insert(self, connection: Connection) -> None:
        load_rows(connection, self.events, self.sessions, self.records)


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What `load` wrote, and how long it took (`seconds` excludes `analyze_seconds`)."""

    cdrs: int
    events: int
    sessions: int
    agents: int
    start: datetime
    end: datetime
    seconds: float
    analyze_seconds: float

    @property
    def rows(self) -> int:
        return self.cdrs + self.events + self.sessions + self.agents

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def cdrs_per_second(self) -> float:
        return self.cdrs / self.seconds if self.seconds else 0.0


def load(
    engine: Engine,
    cdrs: int,
    *,
    seed: int,
    days: int,
    teams: int,
    agents: int,
    progress: bool,
    end: datetime | None = None,
    batch: int = BATCH_CALLS,
    workers: int | None = None,
) -> LoadSummary:
    """Write `cdrs` closed calls (CDR, journal, call_session) over the `days` days before
    `end` (default: the start of this hour), the teams' agents and their hours in
    states (`agenthours`), then refresh the
    planner's statistics. `workers` processes (default: one per spare core) generate
    the rows while this one inserts them.

    Equal arguments (with an explicit `end`) give equal rows. The database must hold no
    calls of this seed already: the unique keys would refuse them.
    """
    if cdrs < 0 or days < 1 or teams < 1 or agents < 1 or batch < 1:
        raise ValueError("cdrs must be at least 0; days, teams, agents and batch at least 1")
    last = (end or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first = last - timedelta(days=days)
    work = plan(cdrs, seed=seed, start=first, days=days, teams=teams, agents=agents, size=batch)
    began = time.perf_counter()
    registered = _write_agents(engine, teams, agents, last)
    calls = events = 0
    with _progress_bar(progress, cdrs) as advance:
        for rows in _produced(work, _worker_count(workers, len(work))):
            in_transaction(engine, rows.insert)
            calls, events = calls + len(rows.records), events + len(rows.events)
            advance(len(rows.records))
    # The agents' hours, from the agent events just journaled, as ingest would keep them.
    in_transaction(engine, agenthours.rebuild_all)
    loaded = time.perf_counter() - began
    analyze(engine)
    return LoadSummary(
        cdrs=calls,
        events=events,
        sessions=calls,
        agents=registered,
        start=first,
        end=last,
        seconds=loaded,
        analyze_seconds=time.perf_counter() - began - loaded,
    )


def calls_of(work: Batch) -> list[GeneratedCall]:
    """The batch's calls; each slot has its own generator, seeded by `seed` and position."""
    calls: list[GeneratedCall] = []
    for number, slot in work.slots:
        calls += generate_calls(
            random.Random(f"cdrlog-bulk:{work.seed}:{number}"),
            slot.start,
            calls=slot.calls,
            teams=work.teams,
            agents=work.agents,
            mean_gap_seconds=slot.gap,
        )
    return calls


def rows_of(work: Batch) -> Rows:
    """The batch's rows for every table but `agent` (runs in a worker process)."""
    rows = Rows([], [], [])
    for call in calls_of(work):
        journal = journal_rows(call)
        created = min(row["received_at"] for row in journal)
        updated = max(row["received_at"] for row in journal)
        rows.events.extend(journal)
        rows.events.extend(agent_journal_rows(call))
        key = {"orgidentity": call.expected.team, "sessionid": call.expected.diallogid}
        rows.sessions.append(key | {"created_at": created, "version": READ_BACK})
        rows.records.append(cdr_row(call, created, updated))
    return rows


def analyze(engine: Engine) -> None:
    """Bring the query planner's statistics up to date after a bulk load."""
    database.analyze(engine, ("cdr", "call_event", "call_session", "agent", "agent_hour"))


def journal_rows(call: GeneratedCall) -> list[dict[str, Any]]:
    """The call's events as the receiver journals them, each received a moment (under
    two seconds, fixed by its fingerprint) after it happened."""
    return [_journaled(fields, call.team, CallEvent) for fields in call.events]


def agent_journal_rows(call: GeneratedCall) -> list[dict[str, Any]]:
    """The agent events (logins, pauses, wrap-up) riding with the call, journaled the
    same way: they give the agent report and the floor their agents' states."""
    return [_journaled(fields, call.team, AgentEvent) for fields in call.agent_events]


def _journaled(fields: dict[str, str], team: str, kind: type[Event]) -> dict[str, Any]:
    event = parse_event(fields, url_team=team, pbx_timezone=_UTC_ZONE)
    if not isinstance(event, kind):
        raise ValueError(f"the generator made an event the receiver refuses: {fields}")
    key = fingerprint(event.team, fields)
    received = event.event_time + timedelta(milliseconds=int(key[:4], 16) % 2000)
    return journal_row(Accepted(event, fields, key), received)


def cdr_row(call: GeneratedCall, created: datetime, updated: datetime) -> dict[str, Any]:
    """The call's expected CDR as a `cdr` row (`ExpectedCdr` has `Cdr`'s fields)."""
    values = {f.name: getattr(call.expected, f.name) for f in dataclasses.fields(call.expected)}
    values["disposition"] = Disposition(values["disposition"])
    values["status"] = Status(values["status"])
    return cdr_values(Cdr(**values)) | {"created_at": created, "updated_at": updated}


def _produced(work: list[Batch], workers: int) -> Iterator[Rows]:
    """`rows_of` each batch, in order; with workers, a few batches ahead of the consumer
    (never more, so memory stays flat while the database is the slower side)."""
    if workers == 0:
        yield from map(rows_of, work)
        return
    # spawn, not fork: the parent holds database connections and may run threads.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: deque[Future[Rows]] = deque()
        for item in work:
            pending.append(pool.submit(rows_of, item))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


def _worker_count(asked: int | None, batches: int) -> int:
    if asked is not None:
        return asked
    if batches < 4:
        return 0  # starting a process costs more than it would save
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def _write_agents(engine: Engine, teams: int, agents: int, at: datetime) -> int:
    """Register every agent of the roster on its phone (an existing entry is kept)."""
    rows = [
        {
            "orgidentity": member.team,
            "agentno": member.agentno,
            "phone": member.phone,
            "logged_in": True,
            "event_time": at,
            "updated_at": at,
        }
        for member in roster(teams, agents)
    ]
    statement = insert_ignoring_duplicates(engine, agent)
    in_transaction(engine, lambda c: c.execute(statement, rows))
    return len(rows)


@contextmanager
def _progress_bar(shown: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar of CDRs written, with their rate, when `shown`."""
    if not shown:
        yield lambda _done: None
        return
    columns = (
        TextColumn("[bold]bulk load"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("CDRs  {task.fields[rate]:>8,.0f}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    began = time.perf_counter()
    with Progress(*columns) as bar:
        task = bar.add_task("load", total=total, rate=0.0)

        def advance(done: int) -> None:
            bar.advance(task, done)
            elapsed = time.perf_counter() - began
            bar.update(task, rate=bar.tasks[0].completed / elapsed if elapsed else 0.0)

        yield advance
