"""The SQL behind every reader: CDR listings, counts and statistics, on any backend.

Statistics are aggregated by the database (GROUP BY), never by loading rows. Local days
and hours are computed from UTC epoch seconds plus the zone's offsets (see
`report.offset_spans`), because time zone support differs between the three databases.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Select,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from cdrlog.core.hours import DAY_SECONDS, EPOCH_WEEKDAY, BusinessHours
from cdrlog.core.report import (
    BUCKET_SECONDS,
    CdrFilter,
    Cursor,
    GroupBy,
    NumberMatch,
    OffsetSpan,
    Sort,
    StatsTerms,
    Totals,
)
from cdrlog.core.rules import Disposition, Status
from cdrlog.store.tables import UtcDateTime, cdr


class epoch_seconds(FunctionElement[int]):
    """Whole UTC epoch seconds of a naive-UTC datetime column."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    moment = compiler.process(element.clauses, **kw)
    if sqlite3.sqlite_version_info >= (3, 38):
        # The same whole seconds as strftime('%s'), at a third of its cost a row.
        return f"unixepoch({moment})"
    return f"CAST(strftime('%s', {moment}) AS INTEGER)"


@compiles(epoch_seconds, "mysql")
@compiles(epoch_seconds, "mariadb")
def _epoch_mysql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    # TIMESTAMPDIFF, unlike UNIX_TIMESTAMP, ignores the session's time zone.
    return (
        f"TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {compiler.process(element.clauses, **kw)})"
    )


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


class epoch_micros(FunctionElement[int]):
    """UTC epoch microseconds of a naive-UTC datetime column, exactly: sums of spans
    between stored times are then those Python's timedelta gives."""

    type = BigInteger()
    inherit_cache = True


@compiles(epoch_micros, "sqlite")
def _micros_sqlite(element: epoch_micros, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'; a value without its fraction casts '' to 0.
    column = compiler.process(element.clauses, **kw)
    return (
        f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000000"
        f" + CAST(substr({column}, 21, 6) AS INTEGER))"
    )


@compiles(epoch_micros, "mysql")
@compiles(epoch_micros, "mariadb")
def _micros_mysql(element: epoch_micros, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {column})"


@compiles(epoch_micros, "postgresql")
def _micros_postgresql(element: epoch_micros, compiler: SQLCompiler, **kw: Any) -> str:
    # EXTRACT gives an exact numeric (PostgreSQL 14 on), so no float rounds it.
    column = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"


class int_div(FunctionElement[int]):
    """Integer division of two non-negative integers."""

    type = BigInteger()
    inherit_cache = True


@compiles(int_div)
def _int_div(element: int_div, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = (compiler.process(c, **kw) for c in element.clauses)
    return f"(({left}) / ({right}))"


@compiles(int_div, "mysql")
@compiles(int_div, "mariadb")
def _int_div_mysql(element: int_div, compiler: SQLCompiler, **kw: Any) -> str:
    left, right = (compiler.process(c, **kw) for c in element.clauses)
    return f"(({left}) DIV ({right}))"


class driver_time(FunctionElement[Any]):
    """A naive-UTC datetime column as its driver hands it over fastest, for exports:
    SQLAlchemy's per-value conversion is skipped, and on MySQL the server sends text
    (PyMySQL parses datetimes in Python, several times slower than
    `datetime.fromisoformat`). Text on SQLite and MySQL, a naive datetime on PostgreSQL.
    """

    type = String()
    inherit_cache = True


@compiles(driver_time)
def _driver_time(element: driver_time, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(driver_time, "mysql")
@compiles(driver_time, "mariadb")
def _driver_time_mysql(element: driver_time, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS CHAR)"


def export_columns(names: tuple[str, ...]) -> list[ColumnElement[Any]]:
    """`names` of the cdr table, times as `driver_time`, in order."""
    return [
        driver_time(cdr.c[name]).label(name)
        if isinstance(cdr.c[name].type, UtcDateTime)
        else cdr.c[name]
        for name in names
    ]


def conditions(wanted: CdrFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if wanted.teams is not None:
        where.append(cdr.c.orgidentity.in_(wanted.teams) if wanted.teams else false())
    if wanted.start_from is not None:
        where.append(cdr.c.starttime >= wanted.start_from)
    if wanted.start_to is not None:
        where.append(cdr.c.starttime < wanted.start_to)
    for column, value in (
        (cdr.c.agentno, wanted.agentno),
        (cdr.c.calltype, wanted.calltype),
        (cdr.c.status, wanted.status),
    ):
        if value is not None:
            where.append(column == value)
    if wanted.number is not None:
        where.append(or_(_matches(cdr.c.src, wanted.number), _matches(cdr.c.dst, wanted.number)))
    if wanted.src is not None:
        where.append(_matches(cdr.c.src, wanted.src))
    if wanted.dst is not None:
        where.append(_matches(cdr.c.dst, wanted.dst))
    if wanted.dispositions:
        where.append(cdr.c.disposition.in_([d.value for d in wanted.dispositions]))
    if wanted.min_billsec is not None:
        where.append(cdr.c.billsec >= wanted.min_billsec)
    return where


def _matches(column: ColumnElement[Any], number: NumberMatch) -> ColumnElement[bool]:
    if not number.prefix:
        return column == number.digits
    return column.startswith(number.digits, autoescape=True)


def page(
    wanted: CdrFilter,
    sort: Sort,
    after: Cursor | None,
    ceiling: int,
    size: int,
    columns: list[ColumnElement[Any]] | None = None,
) -> Select[Any]:
    """One page in (starttime, id) order: a keyset walk, as fast deep as on page one.
    Every column of the cdr table unless `columns` says which.

    Past the first page, the cursor's time replaces the filter's bound on the side the
    walk comes from (every row of the pages before was inside it): with a single bound
    there, the index range starts at the cursor. Given both as parameters, SQLite ranges
    from the filter's bound and steps over every row of the pages before, again per page.
    """
    newest = sort is Sort.NEWEST
    order = (cdr.c.starttime.desc(), cdr.c.id.desc()) if newest else (cdr.c.starttime, cdr.c.id)
    where = [cdr.c.id <= ceiling]
    if after is None:
        where += conditions(wanted)
    elif newest:
        where += conditions(replace(wanted, start_to=None))
        where += [
            cdr.c.starttime <= after.starttime,
            or_(cdr.c.starttime < after.starttime, cdr.c.id < after.id),
        ]
    else:
        where += conditions(replace(wanted, start_from=None))
        where += [
            cdr.c.starttime >= after.starttime,
            or_(cdr.c.starttime > after.starttime, cdr.c.id > after.id),
        ]
    query = select(*columns) if columns else select(cdr)
    return query.where(*where).order_by(*order).limit(size)


def count(wanted: CdrFilter) -> Select[Any]:
    return select(func.count()).select_from(cdr).where(*conditions(wanted))


def highest_id() -> Select[Any]:
    return select(func.max(cdr.c.id))


def time_range(wanted: CdrFilter) -> Select[Any]:
    return select(func.min(cdr.c.starttime), func.max(cdr.c.starttime)).where(*conditions(wanted))


def call_days(wanted: CdrFilter) -> Select[Any]:
    """The UTC days (epoch day numbers) that hold a matching call's start."""
    day = int_div(epoch_seconds(cdr.c.starttime), literal(DAY_SECONDS)).label("day")
    return select(day).where(*conditions(wanted)).group_by(day)


def stats(
    wanted: CdrFilter,
    group_by: GroupBy,
    spans: list[OffsetSpan],
    terms: StatsTerms,
    fenced: bool = False,
) -> Select[Any]:
    """One row per group: the group key(s), then the `Totals` columns in order. `spans`
    cover the calls when grouping by local time or keeping to business hours.

    Each CDR's wait and ring time are worked out once, in a subquery, and the figures
    summed over it. `fenced` (for SQLite) keeps the subquery from being merged into the
    sums (`OFFSET 0`): SQLite would then parse the times again for every figure that
    reads them, a dozen times a row, most of a month's statistics' time."""
    local = epoch_seconds(cdr.c.starttime) + _offset(spans) if spans else None
    keys: list[ColumnElement[Any]]
    if group_by is GroupBy.AGENT:
        keys = [cdr.c.orgidentity, cdr.c.agentno]
    elif group_by is GroupBy.TEAM:
        keys = [cdr.c.orgidentity]
    elif group_by is GroupBy.QUEUE:
        # No queue and an empty one are one group, "", as agents are.
        keys = [cdr.c.orgidentity, func.coalesce(cdr.c.agent_group, "")]
    elif local is None:
        raise ValueError(f"grouping by {group_by} needs the zone's offsets")
    elif group_by is GroupBy.WEEKDAY_HOUR:
        hour = int_div(local, literal(3600)) % 24
        keys = [_weekday(local) * 24 + hour]
    else:
        keys = [int_div(local, literal(BUCKET_SECONDS[group_by]))]
    where = conditions(wanted)
    if terms.business is not None:
        if local is None:
            raise ValueError("business hours need the zone's offsets")
        where += _within(terms.business, local)
    started = epoch_seconds(cdr.c.starttime)
    each = select(
        *(key.label(f"key{n}") for n, key in enumerate(keys)),
        cdr.c.disposition,
        cdr.c.billsec,
        cdr.c.calltype,
        cdr.c.status,
        cdr.c.hold_seconds,
        cdr.c.transferred_to,
        cdr.c.answertime.is_not(None).label("answered"),
        (epoch_seconds(cdr.c.answertime) - started).label("ring"),
        (epoch_seconds(func.coalesce(cdr.c.answertime, cdr.c.endtime)) - started).label("wait"),
    ).where(*where)
    row = (each.offset(0) if fenced else each).subquery("each_cdr")
    grouped = [row.c[f"key{n}"] for n in range(len(keys))]
    columns = (*grouped, *_totals(row), *_call_center(row, terms))
    return select(*columns).group_by(*grouped).order_by(*grouped)


def totals_of(row: Any, keys: int) -> Totals:
    (
        calls,
        answered,
        unanswered,
        busy,
        failed,
        talk,
        acd,
        ring,
        offered,
        short,
        abandoned,
        within,
        asa,
        max_wait,
        abandon_wait,
        hold,
        transfers,
    ) = row[keys:]
    return Totals(
        calls=int(calls),
        answered=int(answered or 0),
        unanswered=int(unanswered or 0),
        busy=int(busy or 0),
        failed=int(failed or 0),
        talk_time=int(talk or 0),
        acd=_mean(acd),
        avg_ring_time=_mean(ring),
        offered=int(offered or 0),
        short_abandoned=int(short or 0),
        abandoned=int(abandoned or 0),
        answered_within=int(within or 0),
        asa=_mean(asa),
        max_wait=None if max_wait is None else int(max_wait),
        avg_abandon_wait=_mean(abandon_wait),
        hold_seconds=int(hold or 0),
        transfers=int(transfers or 0),
    )


def _mean(value: Any) -> float | None:
    return None if value is None else float(value)


def _weekday(local: ColumnElement[int]) -> ColumnElement[int]:
    """0 = Monday, of local epoch seconds (never negative: no call starts before 1970)."""
    return (int_div(local, literal(DAY_SECONDS)) + EPOCH_WEEKDAY) % 7


def _within(hours: BusinessHours, local: ColumnElement[int]) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if hours.days != frozenset(range(7)):
        where.append(_weekday(local).in_(sorted(hours.days)))
    if (hours.start, hours.end) != (0, DAY_SECONDS):
        of_day = local % DAY_SECONDS
        where += [of_day >= hours.start, of_day < hours.end]
    return where


def _offset(spans: list[OffsetSpan]) -> ColumnElement[int]:
    if len(spans) == 1:
        return literal(spans[0].offset)
    start = epoch_seconds(cdr.c.starttime)
    whens = [(start < later.since, earlier.offset) for earlier, later in pairwise(spans)]
    return case(*whens, else_=spans[-1].offset)


def _count_of(row: Any, *dispositions: Disposition) -> ColumnElement[int]:
    return _count_where(row.c.disposition.in_([d.value for d in dispositions]))


def _totals(row: Any) -> list[ColumnElement[Any]]:
    """The `Totals` columns up to `offered`, over `stats`' subquery of each CDR."""
    answered = row.c.disposition == Disposition.ANSWER.value
    return [
        func.count().label("calls"),
        _count_of(row, Disposition.ANSWER).label("answered"),
        _count_of(row, Disposition.NOANSWER).label("unanswered"),
        _count_of(row, Disposition.BUSY).label("busy"),
        _count_of(row, Disposition.FAILED, Disposition.CONGESTION).label("failed"),
        func.sum(row.c.billsec).label("talk_time"),
        func.avg(cast(case((answered, row.c.billsec)), Float)).label("acd"),
        func.avg(cast(case((answered, row.c.ring)), Float)).label("avg_ring_time"),
    ]


def _call_center(row: Any, terms: StatsTerms) -> list[ColumnElement[Any]]:
    """The `Totals` columns from `offered` on; see `report.StatsRow` for their meaning."""
    answered = row.c.answered
    unanswered = not_(row.c.answered)
    # Still open and unanswered, an inbound call is waiting: it has no wait yet.
    offered = and_(row.c.calltype == "dialin", or_(answered, row.c.status != Status.OPEN.value))
    wait = row.c.wait
    short = and_(offered, unanswered, wait < terms.short_abandon_seconds)
    abandoned = and_(offered, unanswered, wait >= terms.short_abandon_seconds)
    within = and_(offered, answered, wait <= terms.service_level_seconds)
    return [
        _count_where(offered).label("offered"),
        _count_where(short).label("short_abandoned"),
        _count_where(abandoned).label("abandoned"),
        _count_where(within).label("answered_within"),
        func.avg(cast(case((and_(offered, answered), wait)), Float)).label("asa"),
        func.max(case((offered, wait))).label("max_wait"),
        func.avg(cast(case((abandoned, wait)), Float)).label("avg_abandon_wait"),
        func.sum(row.c.hold_seconds).label("hold_seconds"),
        _count_where(row.c.transferred_to.is_not(None)).label("transfers"),
    ]


def _count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))
