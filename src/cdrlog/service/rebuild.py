"""Recomputing CDRs from the journal after a fix (the PBX time zone setting, a rule).

Each journaled event is parsed again from the fields it arrived with, under today's
settings, and every touched call's CDR is folded again. It runs in batches of calls,
each batch a transaction holding those calls' locks, so it is safe while the service
keeps receiving; a dry run does the same work and rolls it back.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Row, select, update

from cdrlog.core.cdr import Cdr
from cdrlog.core.events import AgentEvent, CallEvent, parse_event
from cdrlog.service.ingest import CallKey, Ingestor
from cdrlog.store.database import in_transaction, read_only
from cdrlog.store.tables import (
    AGENT_EVENT_PARSED,
    CALL_EVENT_PARSED,
    call_event,
    call_event_from_row,
    call_session,
    pairs_in,
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
class Scope:
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
    scope: Scope,
    *,
    dry_run: bool = False,
    batch: int = 500,
    progress: Callable[[int], None] | None = None,
) -> Rebuilt:
    """Rebuild every call in `scope` (its team; an event time in [since, until))."""
    summary = Rebuilt()
    after = 0
    while True:
        page = _calls_after(ingestor, scope.team, after, batch)
        if not page:
            break
        after = page[-1][0]
        work = partial(
            _rebuild_calls,
            ingestor=ingestor,
            zone=pbx_zone,
            scope=scope,
            calls=sorted({(team, session) for _, team, session in page}),
        )
        summary.add(in_transaction(ingestor.engine, work, commit=not dry_run))
        if progress is not None:
            progress(len(page))
    summary.add(_rebuild_agent_events(ingestor, pbx_zone, scope, dry_run=dry_run, batch=batch))
    return summary


def _rebuild_agent_events(
    ingestor: Ingestor, zone: ZoneInfo, scope: Scope, *, dry_run: bool, batch: int
) -> Rebuilt:
    """The events of no call (agents' logins, pauses, ...) parsed again, and what they
    say of agents learnt again; an agent's state is folded from them when read."""
    summary = Rebuilt()
    after = 0
    while True:
        query = select(call_event).where(call_event.c.sessionid.is_(None), call_event.c.id > after)
        if scope.team is not None:
            query = query.where(call_event.c.orgidentity == scope.team)
        with ingestor.engine.connect() as connection:
            rows = list(read_only(connection).execute(query.order_by(call_event.c.id).limit(batch)))
        if not rows:
            return summary
        after = rows[-1].id
        work = partial(_reparse_agent_rows, ingestor=ingestor, zone=zone, scope=scope, rows=rows)
        summary.add(in_transaction(ingestor.engine, work, commit=not dry_run))


def _reparse_agent_rows(
    connection: Connection, *, ingestor: Ingestor, zone: ZoneInfo, scope: Scope, rows: list[Any]
) -> Rebuilt:
    found = Rebuilt()
    fresh_events: list[AgentEvent] = []
    for row in rows:
        fresh = parse_event(json.loads(row.fields), url_team=row.orgidentity, pbx_timezone=zone)
        if not isinstance(fresh, AgentEvent):
            found.events_unparsable += 1
            continue
        if not scope.covers_time(fresh.event_time):
            continue
        fresh_events.append(fresh)
        values = {name: getattr(fresh, name) for name in AGENT_EVENT_PARSED}
        if any(getattr(row, name) != value for name, value in values.items()):
            found.events_reparsed += 1
            connection.execute(update(call_event).where(call_event.c.id == row.id).values(values))
    ingestor.learn_agents(connection, fresh_events, ingestor.clock())
    return found


def _calls_after(ingestor: Ingestor, team: str | None, after: int, size: int) -> list[Any]:
    query = select(call_session.c.id, call_session.c.orgidentity, call_session.c.sessionid)
    query = query.where(call_session.c.id > after).order_by(call_session.c.id).limit(size)
    if team is not None:
        query = query.where(call_session.c.orgidentity == team)
    with ingestor.engine.connect() as connection:
        return list(read_only(connection).execute(query))


def _rebuild_calls(
    connection: Connection,
    *,
    ingestor: Ingestor,
    zone: ZoneInfo,
    scope: Scope,
    calls: list[CallKey],
) -> Rebuilt:
    ingestor.lock(connection, calls)
    found = Rebuilt()
    events: dict[CallKey, list[CallEvent]] = defaultdict(list)
    rows = connection.execute(
        select(call_event).where(
            pairs_in(call_event.c.orgidentity, call_event.c.sessionid, calls),
            call_event.c.sessionid.is_not(None),
        )
    )
    for row in rows:
        events[(row.orgidentity, row.sessionid)].append(_reparsed(connection, row, zone, found))
    chosen = [key for key in calls if scope.covers(events.get(key, []))]
    now = ingestor.clock()
    ingestor.learn_agents(connection, [e for key in chosen for e in events.get(key, [])], now)
    changes = ingestor.refold(connection, chosen, now, events).changes
    found.calls = len(chosen)
    found.cdrs_created = sum(before is None for _, before, _ in changes)
    found.cdrs_changed = len(changes) - found.cdrs_created
    found.changes = changes[:EXAMPLES]
    return found


def _reparsed(connection: Connection, row: Row[Any], zone: ZoneInfo, summary: Rebuilt) -> CallEvent:
    """The row's event parsed again; its parsed columns rewritten when that differs."""
    stored = call_event_from_row(row)
    fresh = parse_event(json.loads(row.fields), url_team=row.orgidentity, pbx_timezone=zone)
    if not isinstance(fresh, CallEvent):
        summary.events_unparsable += 1
        return stored
    if fresh != stored:
        summary.events_reparsed += 1
        values = {name: getattr(fresh, name) for name in CALL_EVENT_PARSED}
        values = {name: None if value == "" else value for name, value in values.items()}
        connection.execute(update(call_event).where(call_event.c.id == row.id).values(values))
    return fresh
