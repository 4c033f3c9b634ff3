"""Agents' time in states per hour (`agent_hour`) and their presence (`presence`), kept
current so that a report over a month reads a few rows per agent and hour instead of
folding every agent event of the month, and the floor one row per agent.

Ingest only marks (`agent_mark`, one row per agent per batch, in the batch's
transaction) which agents' state events arrived and between which times; `keep_up`
works the marks out, soon after in each serving process's background loop, and before
any read of these figures, so a reader never sees them behind the journal.

A row holds the microseconds an agent spent available, paused and in wrap-up within one
UTC hour, counting only intervals some later event of the agent has ended: the newest
interval is still open and the reader adds it up to its own end. So the rows are a
function of the set of the journal's agent events (`agenttime.closed_time_per_hour`),
and keeping them is recomputing them: an event, whenever it arrives, changes only the
hours from the agent's event before it to the agent's event after it, and `refresh`
rewrites those hours whole from the journal. Writers of one agent take its registry
row's lock first, so the second of two concurrent writers reads the first's events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, delete, func, insert, select

from cdrlog.core.agentstate import STATE_AFTER, AgentState, agent_order, fold_agent
from cdrlog.core.agenttime import (
    HourSpent,
    closed_time_per_hour,
    hour_of,
    hour_start,
)
from cdrlog.core.events import AgentEvent, Event
from cdrlog.store import presence
from cdrlog.store.database import in_transaction
from cdrlog.store.presence import edge, of_agent, state_event, state_events
from cdrlog.store.tables import agent, agent_hour, agent_mark, call_event, pairs_in

AgentKey = tuple[str, str]
# Rows per INSERT when rebuilding: bounded statements on every database.
_CHUNK = 2000
_COLUMN_OF = {
    AgentState.AVAILABLE: "available_us",
    AgentState.PAUSED: "paused_us",
    AgentState.AFTER_CALL_WORK: "after_call_work_us",
}
_STATE_OF = {column: state for state, column in _COLUMN_OF.items()}


def spans(events: Iterable[Event]) -> dict[AgentKey, tuple[datetime, datetime]]:
    """Per agent, the earliest and latest time of these state events: what `mark` takes."""
    found: dict[AgentKey, tuple[datetime, datetime]] = {}
    for event in events:
        if not isinstance(event, AgentEvent) or event.event not in STATE_AFTER:
            continue
        if event.agentno is None:  # an agent event naming no agent changes no one's time
            continue
        key = (event.team, event.agentno)
        held = found.get(key)
        moment = event.event_time
        found[key] = (
            (moment, moment) if held is None else (min(held[0], moment), max(held[1], moment))
        )
    return found


def mark(connection: Connection, changed: Mapping[AgentKey, tuple[datetime, datetime]]) -> None:
    """Note that these agents' state events between the two times given were journaled
    (in this transaction): one INSERT, whatever the number of agents."""
    if changed:
        rows = [
            {"orgidentity": team, "agentno": agentno, "first_time": first, "last_time": last}
            for (team, agentno), (first, last) in sorted(changed.items())
        ]
        connection.execute(insert(agent_mark), rows)


def keep_up(engine: Engine, teams: Sequence[str] | None = None) -> int:
    """Work out the marks left by ingest (of these teams; None: all): each marked
    agent's hours and presence, then its marks go, in one short transaction per agent,
    so that ingest, which takes an agent's registry row too, waits at most for one
    agent's. Safe beside other keepers: an agent's marks are taken with their rows
    locked, and a second keeper waits, then finds them gone. Returns how many marks
    it took."""
    query = select(agent_mark.c.orgidentity, agent_mark.c.agentno).distinct()
    if teams is not None:
        query = query.where(agent_mark.c.orgidentity.in_(sorted(set(teams))))
    with engine.connect() as connection:
        marked = sorted(connection.execute(query).all())
    return sum(in_transaction(engine, partial(_keep_up, key=key)) for key in marked)


def _keep_up(connection: Connection, *, key: AgentKey) -> int:
    team, agentno = key
    query = select(agent_mark).where(
        agent_mark.c.orgidentity == team, agent_mark.c.agentno == agentno
    )
    if connection.dialect.name != "sqlite":
        query = query.with_for_update()
    marks = connection.execute(query).all()
    if not marks:
        return 0
    first = min(row.first_time for row in marks)
    last = max(row.last_time for row in marks)
    refresh(connection, {(team, agentno): (first, last)})
    connection.execute(delete(agent_mark).where(agent_mark.c.id.in_([row.id for row in marks])))
    return len(marks)


def refresh(connection: Connection, changed: Mapping[AgentKey, tuple[datetime, datetime]]) -> None:
    """Rewrite the hours these agents' state events (each agent's between the two times
    given) changed, and their presence. The agents' registry rows must exist (the
    registry facts of the events' batch made them)."""
    if not changed:
        return
    keys = sorted(changed)
    if connection.dialect.name != "sqlite":
        # Key order, as the registry's own writes take these locks: no deadlock cycles.
        connection.execute(
            select(agent.c.agentno)
            .where(pairs_in(agent.c.orgidentity, agent.c.agentno, keys))
            .order_by(agent.c.orgidentity, agent.c.agentno)
            .with_for_update()
        ).all()
    for team, agentno in keys:
        first, last = changed[(team, agentno)]
        _refresh_agent(connection, team, agentno, first, last)
        presence.keep(connection, team, agentno, presence.presence_of(connection, team, agentno))


def _refresh_agent(
    connection: Connection, team: str, agentno: str, first: datetime, last: datetime
) -> None:
    mine = of_agent(team, agentno)
    at = call_event.c.event_time
    before = connection.execute(edge([*mine, at < first], newest=True)).scalar()
    after = connection.execute(edge([*mine, at > last], newest=False)).scalar()
    low = hour_of(first if before is None else before)
    high = hour_of(last if after is None else after)
    start, end = hour_start(low), hour_start(high + 1)
    # The events of the hours, with those at the newest time before them (the state
    # the first hour starts in), in one read.
    carried_from = edge([*mine, at < start], newest=True).scalar_subquery()
    rows = connection.execute(
        select(
            call_event.c.event,
            at,
            call_event.c.eventid,
            call_event.c.agentphone,
            call_event.c.agent_group,
        ).where(*mine, at >= func.coalesce(carried_from, start), at < end)
    )
    read = [state_event(team, agentno, row) for row in rows]
    earlier = [e for e in read if e.event_time < start]
    carried = STATE_AFTER[max(earlier, key=agent_order).event] if earlier else AgentState.LOGGED_OUT
    closed = (
        after is not None
        and connection.execute(edge([*mine, at >= end], newest=False)).scalar() is not None
    )
    hours = closed_time_per_hour(
        carried, [e for e in read if e.event_time >= start], start, end, closed
    )
    connection.execute(
        delete(agent_hour).where(
            agent_hour.c.orgidentity == team,
            agent_hour.c.agentno == agentno,
            agent_hour.c.hour.between(low, high),
        )
    )
    if hours:
        connection.execute(insert(agent_hour), list(_rows(team, agentno, hours)))


def rebuild_all(connection: Connection) -> int:
    """Recompute every row from the journal, and each agent's presence (`presence`), for
    a migration, a bulk load or a rebuild; returns how many hour rows were written. One
    read per agent (a range of the session index): memory holds one agent's events."""
    connection.execute(delete(agent_hour))
    connection.execute(delete(agent_mark))
    # The registry names every agent an event has named (ingest and bulk loads both
    # write it): a DISTINCT over the journal would read all of it.
    agents = connection.execute(select(agent.c.orgidentity, agent.c.agentno)).all()
    written = 0
    pending: list[dict[str, Any]] = []
    for team, agentno in sorted(agents):
        rows = connection.execute(
            select(
                call_event.c.event,
                call_event.c.event_time,
                call_event.c.eventid,
                call_event.c.agentphone,
                call_event.c.agent_group,
            ).where(
                call_event.c.orgidentity == team,
                call_event.c.agentno == agentno,
                *state_events(call_event),
            )
        )
        events = [state_event(team, agentno, row) for row in rows]
        presence.keep(connection, team, agentno, fold_agent(events))
        if not events:
            continue
        low = hour_of(min(e.event_time for e in events))
        high = hour_of(max(e.event_time for e in events))
        hours = closed_time_per_hour(
            AgentState.LOGGED_OUT, events, hour_start(low), hour_start(high + 1), closed=False
        )
        pending.extend(_rows(team, agentno, hours))
        if len(pending) >= _CHUNK:
            written += _flush(connection, pending)
    return written + _flush(connection, pending)


def _flush(connection: Connection, pending: list[dict[str, Any]]) -> int:
    count = len(pending)
    for offset in range(0, count, _CHUNK):
        connection.execute(insert(agent_hour), pending[offset : offset + _CHUNK])
    pending.clear()
    return count


def _rows(team: str, agentno: str, hours: Mapping[int, HourSpent]) -> Iterable[dict[str, Any]]:
    for hour, spent in sorted(hours.items()):
        yield {
            "orgidentity": team,
            "agentno": agentno,
            "hour": hour,
            **{column: spent.get(state, 0) for state, column in _COLUMN_OF.items()},
        }


def summed(
    connection: Connection, wanted: Sequence[ColumnElement[bool]], low: int, high: int
) -> dict[AgentKey, dict[AgentState, int]]:
    """Per agent of the `agent` rows `wanted` picks, the microseconds in each counted
    state over the hours [low, high)."""
    query = (
        select(
            agent_hour.c.orgidentity,
            agent_hour.c.agentno,
            *(func.sum(agent_hour.c[column]).label(column) for column in _STATE_OF),
        )
        .select_from(
            agent.join(
                agent_hour,
                and_(
                    agent_hour.c.orgidentity == agent.c.orgidentity,
                    agent_hour.c.agentno == agent.c.agentno,
                ),
            )
        )
        .where(*wanted, agent_hour.c.hour >= low, agent_hour.c.hour < high)
        .group_by(agent_hour.c.orgidentity, agent_hour.c.agentno)
    )
    found: dict[AgentKey, dict[AgentState, int]] = {}
    for row in connection.execute(query):
        found[(row.orgidentity, row.agentno)] = {
            state: int(getattr(row, column) or 0) for column, state in _STATE_OF.items()
        }
    return found
