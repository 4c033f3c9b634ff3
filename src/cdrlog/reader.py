"""The read side: runs `cdrlog.queries` on an engine and hands back plain values."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select

from cdrlog import queries
from cdrlog.database import read_only
from cdrlog.exports import CDR_COLUMNS
from cdrlog.report import (
    CdrFilter,
    Cursor,
    GroupBy,
    Sort,
    StatsRow,
    bucket_label,
    offset_spans,
    stats_row,
)
from cdrlog.storage import call_event, cdr, dead_letter
from cdrlog.times import as_utc

EXPORT_BATCH = 5000


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    rows: list[dict[str, Any]]
    next_cursor: Cursor | None


@dataclass(frozen=True, slots=True)
class EventFilter:
    teams: tuple[str, ...] | None = None
    sessionid: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class Reader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def connect(self, snapshot: bool = False) -> Connection:
        """A reading connection; with `snapshot`, its statements all see the database
        as it was at the first (SQLite's transactions always do)."""
        connection = read_only(self.engine.connect())
        if snapshot and self.engine.dialect.name != "sqlite":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        return connection

    def page(self, wanted: CdrFilter, sort: Sort, after: Cursor | None, size: int) -> Page:
        """One page of CDRs; the first page fixes the snapshot the later ones walk."""
        with self.connect(snapshot=after is None) as connection:
            if after is None:
                ceiling = connection.execute(queries.highest_id()).scalar() or 0
                # One snapshot: every row it holds is at or under the ceiling, so the
                # count needs no `id <=` (which would keep it off the smallest index).
                total = connection.execute(queries.count(wanted)).scalar_one()
            else:
                ceiling, total, sort = after.ceiling, after.total, after.sort
            query = queries.page(wanted, sort, after, ceiling, size + 1)
            rows = [dict(row._mapping) for row in connection.execute(query)]
        following = None
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            following = Cursor(last["starttime"], last["id"], ceiling, total, sort)
        return Page(total=total, rows=rows, next_cursor=following)

    def count(self, wanted: CdrFilter) -> int:
        with self.connect() as connection:
            total: int = connection.execute(queries.count(wanted)).scalar_one()
        return total

    def batches(
        self, wanted: CdrFilter, sort: Sort, size: int = EXPORT_BATCH
    ) -> Iterator[Sequence[Sequence[Any]]]:
        """Every matching CDR that existed when the walk began, a batch of tuples in
        `CDR_COLUMNS` order at a time, times as naive UTC as the driver gives them (see
        `queries.driver_time`): memory stays flat for any count, and no transaction
        stays open while a slow client reads."""
        columns = queries.export_columns(CDR_COLUMNS)
        starttime, identity = CDR_COLUMNS.index("starttime"), CDR_COLUMNS.index("id")
        with self.connect() as connection:
            ceiling = connection.execute(queries.highest_id()).scalar() or 0
        after: Cursor | None = None
        while True:
            query = queries.page(wanted, sort, after, ceiling, size, columns)
            with self.connect() as connection:
                rows = connection.execute(query).all()
            if rows:
                yield rows
            if len(rows) < size:
                return
            last = rows[-1]
            after = Cursor(as_utc(last[starttime]), last[identity], ceiling, 0, sort)

    def cdr(self, cdr_id: int, teams: tuple[str, ...] | None) -> dict[str, Any] | None:
        """One CDR with its call's events (in event time order) under `events`."""
        query = select(cdr).where(cdr.c.id == cdr_id)
        if teams is not None:
            query = query.where(cdr.c.orgidentity.in_(teams))
        with self.connect() as connection:
            row = connection.execute(query).first()
            if row is None:
                return None
            events = connection.execute(
                select(call_event)
                .where(
                    call_event.c.orgidentity == row.orgidentity,
                    call_event.c.sessionid == row.diallogid,
                )
                .order_by(call_event.c.event_time, call_event.c.id)
            )
            timeline = [_event(e._mapping) for e in events]
        return dict(row._mapping) | {"events": timeline}

    def stats(self, wanted: CdrFilter, group_by: GroupBy, zone: ZoneInfo) -> list[StatsRow]:
        with self.connect() as connection:
            spans = []
            if group_by in (GroupBy.DAY, GroupBy.HOUR):
                first, last = connection.execute(queries.time_range(wanted)).one()
                if first is None:
                    return []
                spans = offset_spans(zone, first, last)
            rows = connection.execute(queries.stats(wanted, group_by, spans)).all()
        if group_by is GroupBy.AGENT:
            return [stats_row(r[1] or "", r[0], queries.totals_of(r, 2)) for r in rows]
        if group_by is GroupBy.TEAM:
            return [stats_row(r[0], r[0], queries.totals_of(r, 1)) for r in rows]
        return [
            stats_row(bucket_label(int(r[0]), group_by, zone), None, queries.totals_of(r, 1))
            for r in rows
        ]

    def events(self, wanted: EventFilter, before: int | None, size: int) -> list[dict[str, Any]]:
        """The journal, newest first; `before` is the id the previous page ended at."""
        query = select(call_event).order_by(call_event.c.id.desc()).limit(size)
        if wanted.teams is not None:
            query = query.where(call_event.c.orgidentity.in_(wanted.teams))
        if wanted.sessionid is not None:
            query = query.where(call_event.c.sessionid == wanted.sessionid)
        if wanted.since is not None:
            query = query.where(call_event.c.event_time >= wanted.since)
        if wanted.until is not None:
            query = query.where(call_event.c.event_time < wanted.until)
        if before is not None:
            query = query.where(call_event.c.id < before)
        with self.connect() as connection:
            return [_event(row._mapping) for row in connection.execute(query)]

    def dead_letters(
        self, teams: tuple[str, ...] | None, before: int | None, size: int, unresolved: bool
    ) -> list[dict[str, Any]]:
        query = select(dead_letter).order_by(dead_letter.c.id.desc()).limit(size)
        if teams is not None:
            query = query.where(dead_letter.c.orgidentity.in_(teams))
        if before is not None:
            query = query.where(dead_letter.c.id < before)
        if unresolved:
            query = query.where(dead_letter.c.resolved_at.is_(None))
        with self.connect() as connection:
            return [_letter(row._mapping) for row in connection.execute(query)]

    def unresolved_dead_letter_ids(self, teams: tuple[str, ...] | None) -> list[int]:
        """Ids of the dead letters still to be dealt with, oldest first: a retry after an
        upgrade stores events in the order they were refused."""
        query = select(dead_letter.c.id).where(dead_letter.c.resolved_at.is_(None))
        if teams is not None:
            query = query.where(dead_letter.c.orgidentity.in_(teams))
        with self.connect() as connection:
            return [row.id for row in connection.execute(query.order_by(dead_letter.c.id))]

    def dead_letter(self, letter_id: int) -> dict[str, Any] | None:
        with self.connect() as connection:
            row = connection.execute(
                select(dead_letter).where(dead_letter.c.id == letter_id)
            ).first()
        return None if row is None else _letter(row._mapping)


def _event(values: Any) -> dict[str, Any]:
    shown = dict(values)
    shown["fields"] = json.loads(shown["fields"])
    del shown["fingerprint"]
    return shown


def _letter(values: Any) -> dict[str, Any]:
    shown = dict(values)
    shown["reason"] = json.loads(shown["reason"])
    shown["raw_body"] = shown.pop("body")
    shown["body"] = shown["raw_body"].decode("utf-8", errors="replace")
    return shown
