"""Recomputing CDRs from the journal after a fix (the PBX time zone setting, a rule).

Each journaled event is parsed again from the fields it arrived with, under today's
settings, and every touched call's CDR is folded again. It runs in batches of calls,
each batch a transaction holding those calls' locks, so it is safe while the service
keeps receiving; a dry run does the same work and rolls it back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from cdrlog.core.events import AgentEvent, CallEvent, parse_event
from cdrlog.core.record import Cdr
from cdrlog.service.ingest import Ingestor
from cdrlog.store.database import in_transaction
from cdrlog.store.journal import CallKey, Journaled
from cdrlog.store.tables import (
    AGENT_EVENT_PARSED,
    CALL_EVENT_PARSED,
)

EXAMPLES = 5


@dataclass(slots=True)
class Rebuilt:
    """What a rebuild changed (or, dry, would change); `changes` holds a few examples."""

    calls: int = 0
    events_reparsed: int = 0
    events_unparsable: int = 0
    cdrs_created: int = 0
    cdrs_changed: int = 0
    changes: list[tuple[CallKey, Cdr | None, Cdr]] = field(default_factory=list)

    def add(self, other: Rebuilt) -> None:
        self.calls += other.calls
        self.events_reparsed += other.events_reparsed
        self.events_unparsable += other.events_unparsable
        self.cdrs_created += other.cdrs_created
        self.cdrs_changed += other.cdrs_changed
        self.changes.extend(other.changes[: EXAMPLES - len(self.changes)])


@dataclass(frozen=True, slots=True)
class Selection:
    team: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def covers(self, events: list[CallEvent]) -> bool:
        return any(self.covers_time(e.event_time) for e in events)

    def covers_time(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )


def rebuild(
    ingestor: Ingestor,
    pbx_zone: ZoneInfo,
    selection: Selection,
    *,
    dry_run: bool = False,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> Rebuilt:
    """Rebuild every call in `selection` (its team; an event time in [since, until))."""
    summary = Rebuilt()
    after = 0
    while True:
        page = ingestor.journal.calls_after(selection.team, after, batch)
        if not page:
            break
        after = page[-1][0]
        ingestor.look_for_hooks()
        work = partial(
            _rebuild_calls,
            ingestor=ingestor,
            zone=pbx_zone,
            selection=selection,
            calls=sorted({(team, session) for _, team, session in page}),
        )
        summary.add(in_transaction(ingestor.engine, work, commit=not dry_run))
        if progress is not None:
            progress(len(page))
    summary.add(_rebuild_agent_events(ingestor, pbx_zone, selection, dry_run=dry_run, batch=batch))
    return summary


def _rebuild_agent_events(
    ingestor: Ingestor, zone: ZoneInfo, selection: Selection, *, dry_run: bool, batch: int
) -> Rebuilt:
    """The events of no call (agents' logins, pauses, ...) parsed again, and what they
    say of agents learnt again; an agent's state is folded from them when read."""
    summary = Rebuilt()
    after = 0
    while True:
        rows = ingestor.journal.agent_rows_after(selection.team, after, batch)
        if not rows:
            return summary
        after = rows[-1].id
        work = partial(
            _reparse_agent_rows, ingestor=ingestor, zone=zone, selection=selection, rows=rows
        )
        summary.add(in_transaction(ingestor.engine, work, commit=not dry_run))


def _reparse_agent_rows(
    connection: Connection,
    *,
    ingestor: Ingestor,
    zone: ZoneInfo,
    selection: Selection,
    rows: list[Journaled],
) -> Rebuilt:
    found = Rebuilt()
    fresh_events: list[AgentEvent] = []
    for row in rows:
        fresh = parse_event(row.fields, url_team=row.team, pbx_timezone=zone)
        if not isinstance(fresh, AgentEvent):
            found.events_unparsable += 1
            continue
        if not selection.covers_time(fresh.event_time):
            continue
        fresh_events.append(fresh)
        values = {name: getattr(fresh, name) for name in AGENT_EVENT_PARSED}
        if any(row.parsed[name] != value for name, value in values.items()):
            found.events_reparsed += 1
            ingestor.journal.rewrite_parsed(connection, row.id, values)
    ingestor.learn_agents(connection, fresh_events, ingestor.clock())
    return found


def _rebuild_calls(
    connection: Connection,
    *,
    ingestor: Ingestor,
    zone: ZoneInfo,
    selection: Selection,
    calls: list[CallKey],
) -> Rebuilt:
    ingestor.journal.lock(connection, calls)
    # Their events may be parsed anew below: no writer may fold onto what it held.
    ingestor.stamp(connection, calls)
    found = Rebuilt()
    events: dict[CallKey, list[CallEvent]] = defaultdict(list)
    for row in ingestor.journal.call_rows(connection, calls):
        fresh = _reparsed(connection, ingestor, row, zone, found)
        events[(row.team, row.sessionid or "")].append(fresh)
    chosen = [key for key in calls if selection.covers(events.get(key, []))]
    now = ingestor.clock()
    ingestor.learn_agents(connection, [e for key in chosen for e in events.get(key, [])], now)
    changes = ingestor.refold(connection, chosen, now, events).changes
    found.calls = len(chosen)
    found.cdrs_created = sum(before is None for _, before, _ in changes)
    found.cdrs_changed = len(changes) - found.cdrs_created
    found.changes = changes[:EXAMPLES]
    return found


def _reparsed(
    connection: Connection, ingestor: Ingestor, row: Journaled, zone: ZoneInfo, summary: Rebuilt
) -> CallEvent:
    """The row's event parsed again; its parsed columns rewritten when that differs."""
    stored = row.stored
    if stored is None:  # pragma: no cover - `call_rows` reads the rows of calls only
        raise ValueError(f"journal row {row.id} is not a call's")
    fresh = parse_event(row.fields, url_team=row.team, pbx_timezone=zone)
    if not isinstance(fresh, CallEvent):
        summary.events_unparsable += 1
        return stored
    if fresh != stored:
        summary.events_reparsed += 1
        values = {name: getattr(fresh, name) for name in CALL_EVENT_PARSED}
        values = {name: None if value == "" else value for name, value in values.items()}
        ingestor.journal.rewrite_parsed(connection, row.id, values)
    return fresh
