"""The SQL of missed calls (`cdrlog.core.missed` says what they are): abandoned calls a
batch at a time, newest first, then one query for the follow-ups of a batch.

Both queries range over `starttime` within the asked teams, so they walk the
(orgidentity, starttime) or (starttime, ...) index: a batch's follow-ups cost the
calls of its teams between its oldest call and its newest plus the window, never a
scan of the table. Which follow-up belongs to which call is left to the core.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, and_, false, literal, or_, select

from cdrlog.core.missed import (
    INBOUND,
    OUTBOUND,
    Call,
    MissedCall,
    MissedFilter,
    abandoned,
    follow_ups,
    kept,
)
from cdrlog.core.report import Cursor, Sort
from cdrlog.core.rules import Status
from cdrlog.store.queries import epoch_seconds, highest_id
from cdrlog.store.reader import Reader
from cdrlog.store.tables import cdr

CALL_COLUMNS = (
    cdr.c.id,
    cdr.c.orgidentity,
    cdr.c.diallogid,
    cdr.c.calltype,
    cdr.c.src,
    cdr.c.dst,
    cdr.c.agentno,
    cdr.c.agent_group,
    cdr.c.did,
    cdr.c.starttime,
    cdr.c.answertime,
    cdr.c.endtime,
    cdr.c.status,
)
BATCH = 500


@dataclass(frozen=True, slots=True)
class MissedPage:
    rows: list[MissedCall]
    next_cursor: Cursor | None


def missed_page(
    reader: Reader, wanted: MissedFilter, after: Cursor | None, size: int
) -> MissedPage:
    """At most `size` missed calls, newest first, after the cursor of the page before;
    the first page fixes the highest CDR id the later ones look at, so calls that come
    in meanwhile do not shift rows between pages."""
    if after is None:
        with reader.connect() as connection:
            ceiling = connection.execute(highest_id()).scalar() or 0
    else:
        ceiling = after.ceiling
    found: list[MissedCall] = []
    for batch, _ in _batches(reader, wanted, ceiling, after, size + 1):
        found += batch
        if len(found) > size:
            break
    rows = found[:size]
    following = None
    if len(found) > size:
        last = rows[-1].call
        following = Cursor(last.starttime, last.id, ceiling, 0, Sort.NEWEST)
    return MissedPage(rows, following)


def every_missed(reader: Reader, wanted: MissedFilter) -> Iterator[list[MissedCall]]:
    """Every missed call, newest first, a batch at a time (for exports): no transaction
    stays open while a slow client reads."""
    with reader.connect() as connection:
        ceiling = connection.execute(highest_id()).scalar() or 0
    for batch, _ in _batches(reader, wanted, ceiling, None, BATCH):
        if batch:
            yield batch


def _batches(
    reader: Reader, wanted: MissedFilter, ceiling: int, after: Cursor | None, size: int
) -> Iterator[tuple[list[MissedCall], Cursor | None]]:
    """Each batch of up to `size` abandoned calls with their follow-ups (those kept by
    `unresolved`), and where the walk stands after it (None at the end)."""
    while True:
        with reader.connect() as connection:
            rows = connection.execute(_abandoned(wanted, ceiling, after, size)).all()
            calls = [_call(row) for row in rows]
            missed = [c for c in calls if abandoned(c, wanted.short_abandon)]
            later = _later(connection, missed, wanted) if missed else []
        if len(rows) < size:
            yield kept(follow_ups(missed, later, wanted.window), wanted.unresolved), None
            return
        last = calls[-1]
        after = Cursor(last.starttime, last.id, ceiling, 0, Sort.NEWEST)
        yield kept(follow_ups(missed, later, wanted.window), wanted.unresolved), after


def _abandoned(wanted: MissedFilter, ceiling: int, after: Cursor | None, size: int) -> Select[Any]:
    where: list[ColumnElement[bool]] = [
        cdr.c.id <= ceiling,
        cdr.c.calltype == INBOUND,
        cdr.c.status != Status.OPEN.value,
        cdr.c.answertime.is_(None),
    ]
    if wanted.teams is not None:
        where.append(cdr.c.orgidentity.in_(wanted.teams) if wanted.teams else false())
    if wanted.start_from is not None:
        where.append(cdr.c.starttime >= wanted.start_from)
    if after is not None:
        where += [
            cdr.c.starttime <= after.starttime,
            or_(cdr.c.starttime < after.starttime, cdr.c.id < after.id),
        ]
    elif wanted.start_to is not None:
        where.append(cdr.c.starttime < wanted.start_to)
    if wanted.agent_group is not None:
        where.append(cdr.c.agent_group == wanted.agent_group)
    shortest = int(wanted.short_abandon.total_seconds())
    if shortest > 1:
        # Whole seconds of each end: a second short of the limit may still reach it,
        # which the core decides exactly. This only spares fetching clear misdials.
        waited = epoch_seconds(cdr.c.endtime) - epoch_seconds(cdr.c.starttime)
        where.append(waited >= literal(shortest - 1))
    order = (cdr.c.starttime.desc(), cdr.c.id.desc())
    return select(*CALL_COLUMNS).where(*where).order_by(*order).limit(size)


def _later(connection: Connection, missed: Sequence[Call], wanted: MissedFilter) -> list[Call]:
    """The callbacks to, and answered inbound calls from, the numbers of `missed`, in
    their teams, starting between the first of them and the last plus the window."""
    numbers = sorted({c.src for c in missed if c.src})
    if not numbers:
        return []
    teams = sorted({c.team for c in missed})
    first = min(c.starttime for c in missed)
    last = max(c.starttime for c in missed) + wanted.window
    query: Select[Any] = select(*CALL_COLUMNS).where(
        cdr.c.orgidentity.in_(teams),
        cdr.c.starttime > first,
        cdr.c.starttime <= last,
        or_(
            and_(cdr.c.calltype == OUTBOUND, cdr.c.dst.in_(numbers)),
            and_(cdr.c.calltype == INBOUND, cdr.c.src.in_(numbers), cdr.c.answertime.is_not(None)),
        ),
    )
    return [_call(row) for row in connection.execute(query)]


def _call(row: Row[Any]) -> Call:
    return Call(
        id=row.id,
        team=row.orgidentity,
        diallogid=row.diallogid,
        calltype=row.calltype,
        src=row.src,
        dst=row.dst,
        agentno=row.agentno,
        agent_group=row.agent_group,
        did=row.did,
        starttime=row.starttime,
        answertime=row.answertime,
        endtime=row.endtime,
        status=Status(row.status),
    )
