"""Alert rules and their alerts: adding, listing and removing rules; measuring what they
watch; and the raise or clear of an alert, announced once however many evaluators run.

Every serving process evaluates every rule. An evaluator reads a rule's state with its
version, decides, and changes it with an UPDATE that requires the version it read: of
two evaluators that read the same state, the first to commit changes it and the other
finds no row (on MariaDB and PostgreSQL its UPDATE waits for the first's row lock, then
sees the new version; SQLite has one writer at a time). The row count therefore decides
who announces, and the announcement (an outbox row) is written in that same transaction:
each raise and each clear is announced exactly once, or not at all if it rolls back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, update

from cdrlog.core.alerts import (
    RULE_REMOVED,
    Alert,
    AlertState,
    Decision,
    Figures,
    Metric,
    NewRule,
    Rule,
    by_terms,
    kind_of,
    next_state,
    payload,
    subject_of,
)
from cdrlog.core.report import CdrFilter, GroupBy, StatsRow, StatsTerms, stats_row
from cdrlog.store import outbox, queries
from cdrlog.store.database import in_transaction, read_only
from cdrlog.store.tables import alert_rule, alert_state, call_event
from cdrlog.store.waiting import waiting

_NOW = frozenset({Metric.WAITING_ABOVE, Metric.WAIT_ABOVE})
_WATCHED = select(alert_rule, alert_state).join(
    alert_state, alert_state.c.rule_id == alert_rule.c.id
)


def _rule(row: Any) -> Rule:
    return Rule(
        id=row.id,
        team=row.orgidentity,
        queue=row.queue,
        metric=Metric(row.metric),
        threshold=float(row.threshold),
        window_minutes=row.window_minutes,
        service_level_seconds=row.service_level_seconds,
        short_abandon_seconds=row.short_abandon_seconds,
        note=row.note,
        created_at=row.created_at,
        removed_at=row.removed_at,
    )


def _state(row: Any) -> AlertState:
    return AlertState(
        raised=bool(row.raised),
        version=int(row.version),
        raised_at=row.raised_at,
        cleared_at=row.cleared_at,
        value=None if row.value is None else float(row.value),
        measured_at=row.measured_at,
    )


def add(engine: Engine, rule: NewRule, now: datetime) -> Rule:
    """Store a rule, its alert down (version 0)."""

    def work(connection: Connection) -> Rule:
        made = connection.execute(
            insert(alert_rule).values(
                orgidentity=rule.team,
                queue=rule.queue,
                metric=rule.metric.value,
                threshold=rule.threshold,
                window_minutes=rule.window_minutes,
                service_level_seconds=rule.service_level_seconds,
                short_abandon_seconds=rule.short_abandon_seconds,
                note=rule.note,
                created_at=now,
            )
        ).inserted_primary_key
        assert made is not None
        connection.execute(insert(alert_state).values(rule_id=made[0], raised=False, version=0))
        row = connection.execute(select(alert_rule).where(alert_rule.c.id == made[0])).one()
        return _rule(row)

    return in_transaction(engine, work)


def active_count(engine: Engine) -> int:
    query = select(func.count()).where(alert_rule.c.removed_at.is_(None))
    with engine.connect() as connection:
        return int(read_only(connection).execute(query).scalar_one())


def find(engine: Engine, rule_id: int) -> Rule | None:
    """A rule not removed."""
    query = select(alert_rule).where(alert_rule.c.id == rule_id, alert_rule.c.removed_at.is_(None))
    with engine.connect() as connection:
        row = read_only(connection).execute(query).first()
    return None if row is None else _rule(row)


def watched(engine: Engine, teams: Sequence[str] | None = None) -> list[Alert]:
    """Every rule not removed (of these teams), with its alert, in id order."""
    query = _WATCHED.where(alert_rule.c.removed_at.is_(None)).order_by(alert_rule.c.id)
    if teams is not None:
        query = query.where(alert_rule.c.orgidentity.in_(sorted(set(teams))))
    with engine.connect() as connection:
        rows = read_only(connection).execute(query).all()
    return [Alert(_rule(row), _state(row)) for row in rows]


def alerts(engine: Engine, teams: Sequence[str] | None, since: datetime) -> list[Alert]:
    """Alerts raised now, and those cleared at or after `since` (of removed rules too),
    the most recently raised first."""
    query = (
        _WATCHED.where(
            or_(alert_state.c.raised, alert_state.c.cleared_at >= since),
            alert_state.c.raised_at.is_not(None),
        )
        .order_by(alert_state.c.raised_at.desc(), alert_rule.c.id.desc())
        .limit(1000)
    )
    if teams is not None:
        query = query.where(alert_rule.c.orgidentity.in_(sorted(set(teams))))
    with engine.connect() as connection:
        rows = read_only(connection).execute(query).all()
    return [Alert(_rule(row), _state(row)) for row in rows]


def measure(
    engine: Engine, rules: Sequence[Rule], at: datetime, longest_call: timedelta
) -> Figures:
    """What `rules` watch, read at `at`: for rate rules, the window's stats by queue (one
    query per distinct window and terms, all teams at once); calls waiting (one query);
    and each silent-PBX rule's team's newest event (one index probe per team)."""
    windows: dict[tuple[int, int, int], list[StatsRow]] = {}
    newest: dict[str, datetime] = {}
    with engine.connect() as connection:
        reading = read_only(connection)
        for terms, teams in by_terms(rules).items():
            windows[terms] = _window(reading, terms, teams, at)
        silent = sorted({rule.team for rule in rules if rule.metric is Metric.SILENT_MINUTES})
        for team in silent:
            # MAX rather than ORDER BY ... LIMIT 1: MariaDB then reads the index's last
            # entry of the team and nothing else, whatever its statistics say.
            latest = reading.execute(
                select(func.max(call_event.c.received_at)).where(call_event.c.orgidentity == team)
            ).scalar()
            if latest is not None:
                newest[team] = latest
    queued = {rule.team for rule in rules if rule.metric in _NOW}
    waits = waiting(engine, sorted(queued), at - longest_call) if queued else []
    return Figures(at=at, windows=windows, waiting=waits, newest_event=newest)


def _window(
    connection: Connection, terms: tuple[int, int, int], teams: list[str], at: datetime
) -> list[StatsRow]:
    """The stats, by team and queue, of the calls that started in the window."""
    minutes, service_level, short_abandon = terms
    wanted = CdrFilter(start_from=at - timedelta(minutes=minutes), teams=tuple(teams))
    measured_by = StatsTerms(service_level, short_abandon)
    fenced = connection.dialect.name == "sqlite"
    query = queries.stats(wanted, GroupBy.QUEUE, [], measured_by, fenced)
    rows = connection.execute(query).all()
    return [stats_row(r[1] or "", r[0], queries.totals_of(r, 2)) for r in rows]


def change(
    engine: Engine,
    rule: Rule,
    seen: AlertState,
    decision: Decision,
    value: float | None,
    now: datetime,
    announce: bool,
) -> AlertState | None:
    """Raise or clear the rule's alert, if its state is still the version `seen`; the
    state it left, or None when another evaluator changed it first. With `announce`, the
    change goes to the outbox in the same transaction."""
    after = next_state(seen, decision, value, now)

    def work(connection: Connection) -> AlertState | None:
        changed = connection.execute(
            update(alert_state)
            .where(alert_state.c.rule_id == rule.id, alert_state.c.version == seen.version)
            .values(_values(after))
        ).rowcount
        if changed != 1:
            return None
        if announce:
            _announce(connection, rule, after, decision, now)
        return after

    return in_transaction(engine, work)


def _values(state: AlertState) -> dict[str, Any]:
    return {
        "raised": state.raised,
        "version": state.version,
        "raised_at": state.raised_at,
        "cleared_at": state.cleared_at,
        "value": state.value,
        "measured_at": state.measured_at,
    }


def _announce(
    connection: Connection,
    rule: Rule,
    state: AlertState,
    decision: Decision,
    now: datetime,
    reason: str | None = None,
) -> None:
    body = json.dumps(payload(rule, state, reason), separators=(",", ":"), ensure_ascii=False)
    subject = subject_of(rule.id)
    outbox.announce(connection, rule.team, subject, state.version, kind_of(decision), body, now)


def note_values(engine: Engine, values: Sequence[tuple[int, float | None]], at: datetime) -> None:
    """Keep each (rule id, value) as the rule's last measured, without changing its
    alert (a newer evaluator's value may be overwritten by an older one: it is shown,
    never decided on)."""
    if not values:
        return
    statement = (
        update(alert_state)
        .where(alert_state.c.rule_id == bindparam("rule"))
        .values(value=bindparam("measured"), measured_at=at)
    )
    rows = [{"rule": rule_id, "measured": value} for rule_id, value in values]
    in_transaction(engine, lambda connection: connection.execute(statement, rows))


def remove(engine: Engine, rule_id: int, now: datetime, announce: bool) -> bool:
    """Remove a rule; False if there was none. Its alert, if raised, is cleared (and,
    with `announce`, that announced): a receiver is never left with an alert that will
    not clear. The version goes up either way, so an evaluator that read the rule
    before cannot change its alert after."""

    def work(connection: Connection) -> bool:
        gone = connection.execute(
            update(alert_rule)
            .where(alert_rule.c.id == rule_id, alert_rule.c.removed_at.is_(None))
            .values(removed_at=now)
        ).rowcount
        if not gone:
            return False
        locked = _WATCHED.where(alert_rule.c.id == rule_id)
        if engine.dialect.name != "sqlite":
            locked = locked.with_for_update()
        row = connection.execute(locked).one()
        rule, seen = _rule(row), _state(row)
        if seen.raised:
            after = next_state(seen, Decision.CLEAR, seen.value, now)
            if announce:
                _announce(connection, rule, after, Decision.CLEAR, now, RULE_REMOVED)
        else:
            after = AlertState(**(_values(seen) | {"version": seen.version + 1}))
        connection.execute(
            update(alert_state).where(alert_state.c.rule_id == rule_id).values(_values(after))
        )
        return True

    return in_transaction(engine, work)
