"""The read side: runs `cdrlog.store.queries` on an engine and hands back plain values.

Listings are bounded in bytes as well as rows: a page ends early once its rows' JSON
reaches `PAGE_BYTES`, and says where to go on. Columns a sender filled (an event's
fields, a dead letter's body and reason) are cut in SQL, so a few huge rows never pass
through the server whole; a row shows what was cut with a `*_truncated` flag. The
budgets, and the pure code that sizes rows and shapes the cut values, are in
`cdrlog.core.excerpts`; the SQL that cuts, and the keyset walk, in `cuts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    select,
)

from cdrlog.core.excerpts import (
    BODY_SHOWN,
    LETTER_SHOWN,
    PAGE_BYTES,
    REASON_SHOWN,
    TIMELINE_EVENTS,
    event_excerpt,
    fit,
    json_size,
    letter_excerpt,
)
from cdrlog.core.exports import CDR_COLUMNS
from cdrlog.core.hours import cell_label
from cdrlog.core.report import (
    LOCAL_GROUPS,
    CdrFilter,
    Cursor,
    GroupBy,
    Sort,
    StatsRow,
    StatsTerms,
    bucket_label,
    offset_spans,
    offset_spans_on,
    stats_row,
)
from cdrlog.core.times import as_utc
from cdrlog.store import queries
from cdrlog.store.cuts import event_columns, later_event, letter_columns, letters_where, walk
from cdrlog.store.database import read_only
from cdrlog.store.deadletters import KeptLetter, letter_from_row
from cdrlog.store.tables import call_event, cdr, dead_letter

EXPORT_BATCH = 5000
# Statistics over a longer stretch look only at the days that hold calls.
WALKED_SPAN = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class Page:
    total: int
    rows: list[dict[str, Any]]
    next_cursor: Cursor | None


@dataclass(frozen=True, slots=True)
class Listing:
    """Rows newest first; `next_before` (the last row's id) when there may be more."""

    rows: list[dict[str, Any]]
    next_before: int | None


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

    def page(
        self,
        wanted: CdrFilter,
        sort: Sort,
        after: Cursor | None,
        size: int,
        budget: int = PAGE_BYTES,
    ) -> Page:
        """One page of CDRs, at most `size` of them and about `budget` bytes; the first
        page fixes the snapshot the later ones walk."""
        with self.connect(snapshot=after is None) as connection:
            if after is None:
                ceiling = connection.execute(queries.highest_id()).scalar() or 0
                # One snapshot: every row it holds is at or under the ceiling, so the
                # count needs no `id <=` (which would keep it off the smallest index).
                total = connection.execute(queries.count(wanted)).scalar_one()
            else:
                ceiling, total, sort = after.ceiling, after.total, after.sort
            query = queries.page(wanted, sort, after, ceiling, size + 1)
            found = [dict(row._mapping) for row in connection.execute(query)]
        # Every column of a CDR is narrow, so the page is read whole and then fitted.
        rows, cut = fit(found[:size], budget)
        following = None
        if rows and (cut or len(found) > size):
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

    def cdr(
        self, cdr_id: int, teams: tuple[str, ...] | None, budget: int = PAGE_BYTES
    ) -> dict[str, Any] | None:
        """One CDR with its call's events (in event time order) under `events`: at most
        `TIMELINE_EVENTS` of them and about `budget` bytes, `events_truncated` if more."""
        query = select(cdr).where(cdr.c.id == cdr_id)
        if teams is not None:
            query = query.where(cdr.c.orgidentity.in_(teams))
        timeline = select(*event_columns()).order_by(call_event.c.event_time, call_event.c.id)
        with self.connect() as connection:
            row = connection.execute(query).first()
            if row is None:
                return None
            found = dict(row._mapping)
            timeline = timeline.where(
                call_event.c.orgidentity == row.orgidentity,
                call_event.c.sessionid == row.diallogid,
            )
            rows = walk(connection, timeline, later_event, TIMELINE_EVENTS + 1)
            events, cut = fit(_events(rows), budget - json_size(found))
        if len(events) > TIMELINE_EVENTS:
            events, cut = events[:TIMELINE_EVENTS], True
        return found | {"events": events, "events_truncated": cut}

    def stats(
        self,
        wanted: CdrFilter,
        group_by: GroupBy,
        zone: ZoneInfo,
        terms: StatsTerms | None = None,
    ) -> list[StatsRow]:
        terms = terms or StatsTerms()
        with self.connect() as connection:
            spans = []
            if group_by in LOCAL_GROUPS or terms.business is not None:
                first, last = connection.execute(queries.time_range(wanted)).one()
                if first is None:
                    return []
                if last - first <= WALKED_SPAN:
                    spans = offset_spans(zone, first, last)
                else:
                    # Calls far apart: only the days that hold calls are looked at.
                    days = connection.execute(queries.call_days(wanted)).scalars()
                    spans = offset_spans_on(zone, (int(day) for day in days))
            fenced = connection.dialect.name == "sqlite"
            query = queries.stats(wanted, group_by, spans, terms, fenced)
            rows = connection.execute(query).all()
        if group_by in (GroupBy.AGENT, GroupBy.QUEUE):
            return [stats_row(r[1] or "", r[0], queries.totals_of(r, 2)) for r in rows]
        if group_by is GroupBy.TEAM:
            return [stats_row(r[0], r[0], queries.totals_of(r, 1)) for r in rows]
        if group_by is GroupBy.WEEKDAY_HOUR:
            return [stats_row(cell_label(int(r[0])), None, queries.totals_of(r, 1)) for r in rows]
        return [
            stats_row(bucket_label(int(r[0]), group_by, zone), None, queries.totals_of(r, 1))
            for r in rows
        ]

    def events(
        self, wanted: EventFilter, before: int | None, size: int, budget: int = PAGE_BYTES
    ) -> Listing:
        """The journal, newest first; `before` is the id the previous page ended at."""
        query = select(*event_columns()).order_by(call_event.c.id.desc())
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
            rows = walk(connection, query, lambda row: call_event.c.id < row.id, size)
            return _listing(_events(rows), size, budget)

    def dead_letters(
        self, teams: tuple[str, ...] | None, before: int | None, size: int, unresolved: bool
    ) -> list[KeptLetter]:
        """Whole dead letters, bodies and all, newest first (for exports)."""
        query = select(dead_letter).order_by(dead_letter.c.id.desc()).limit(size)
        query = letters_where(query, teams, before, unresolved)
        with self.connect() as connection:
            return [letter_from_row(row._mapping) for row in connection.execute(query)]

    def dead_letter_listing(
        self,
        teams: tuple[str, ...] | None,
        before: int | None,
        size: int,
        unresolved: bool,
        budget: int = PAGE_BYTES,
    ) -> Listing:
        """Dead letters newest first, bodies and reasons cut (`body_truncated`,
        `reason_truncated`)."""
        query = select(*letter_columns(BODY_SHOWN, REASON_SHOWN))
        query = letters_where(query.order_by(dead_letter.c.id.desc()), teams, before, unresolved)
        with self.connect() as connection:
            rows = walk(connection, query, lambda row: dead_letter.c.id < row.id, size)
            return _listing(
                (letter_excerpt(row._mapping, BODY_SHOWN, REASON_SHOWN) for row in rows),
                size,
                budget,
            )

    def shown_dead_letter(
        self, letter_id: int, teams: tuple[str, ...] | None
    ) -> dict[str, Any] | None:
        """One dead letter as a reader sees it: `LETTER_SHOWN` of its body and reason."""
        query = select(*letter_columns(LETTER_SHOWN, LETTER_SHOWN))
        query = letters_where(query.where(dead_letter.c.id == letter_id), teams, None, False)
        with self.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else letter_excerpt(row._mapping, LETTER_SHOWN, LETTER_SHOWN)

    def unresolved_dead_letter_ids(self, teams: tuple[str, ...] | None) -> list[int]:
        """Ids of the dead letters still to be dealt with, oldest first: a retry after an
        upgrade stores events in the order they were refused."""
        query = select(dead_letter.c.id).where(dead_letter.c.resolved_at.is_(None))
        if teams is not None:
            query = query.where(dead_letter.c.orgidentity.in_(teams))
        with self.connect() as connection:
            return [row.id for row in connection.execute(query.order_by(dead_letter.c.id))]

    def dead_letter(self, letter_id: int) -> KeptLetter | None:
        with self.connect() as connection:
            row = connection.execute(
                select(dead_letter).where(dead_letter.c.id == letter_id)
            ).first()
        return None if row is None else letter_from_row(row._mapping)


def _listing(rows: Iterable[dict[str, Any]], size: int, budget: int) -> Listing:
    kept, cut = fit(rows, budget)
    more = kept and (cut or len(kept) == size)
    return Listing(kept, kept[-1]["id"] if more else None)


def _events(rows: Iterable[Row[Any]]) -> Iterator[dict[str, Any]]:
    return (event_excerpt(row._mapping) for row in rows)
