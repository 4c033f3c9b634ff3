"""The agents of a team, what each is doing now (contract section 5, section 6), and
how long each spent in each state over a range (`agenttime`).

An agent's state is folded at read time from the journal (`agentstate.fold_agent`), so
it is a function of the set of events as stored, whatever order they came in. Only an
agent's newest state-changing events are read: enough of them to hold one of another
state than the newest, since nothing older can change the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, case, func, select

from cdrlog.core.agentstate import (
    STATE_AFTER,
    Presence,
    agent_order,
    fold_agent,
    settled,
    with_calls,
)
from cdrlog.core.agenttime import AgentFigures, time_in_states
from cdrlog.core.events import AgentEvent
from cdrlog.core.rules import Disposition
from cdrlog.store.database import read_only
from cdrlog.store.tables import agent, call_event, cdr

# Newest state events read per agent at first; doubled while they do not settle it.
FIRST_READ = 16


@dataclass(frozen=True, slots=True)
class AgentStatus:
    team: str
    agentno: str
    phone: str | None
    agent_group: str | None
    state: str
    state_since: datetime | None


def listing(
    engine: Engine, teams: Sequence[str] | None, now: datetime, max_call_length: timedelta
) -> list[AgentStatus]:
    """Every agent of these teams (None: all teams), by team and agent number."""
    query = select(agent.c.orgidentity, agent.c.agentno, agent.c.phone, agent.c.agent_group)
    if teams is not None:
        query = query.where(agent.c.orgidentity.in_(sorted(set(teams))))
    with engine.connect() as connection:
        reading = read_only(connection)
        rows = reading.execute(query.order_by(agent.c.orgidentity, agent.c.agentno)).all()
        calls = _answered_open_calls(reading, teams, now - max_call_length)
        statuses = []
        for row in rows:
            presence = with_calls(
                presence_of(reading, row.orgidentity, row.agentno),
                calls.get((row.orgidentity, row.agentno)),
            )
            statuses.append(
                AgentStatus(
                    team=row.orgidentity,
                    agentno=row.agentno,
                    phone=row.phone,
                    agent_group=row.agent_group,
                    state=presence.state.value,
                    state_since=presence.since,
                )
            )
    return statuses


def presence_of(connection: Connection, team: str, agentno: str) -> Presence:
    """The agent's state from its newest state-changing events."""
    wanted = FIRST_READ
    while True:
        events = _newest_state_events(connection, team, agentno, wanted)
        if len(events) < wanted:
            return fold_agent(events)
        # The oldest time read may have more events than were read: only newer ones
        # are known whole.
        oldest = events[-1].event_time
        whole = [e for e in events if e.event_time > oldest]
        if settled(whole):
            return fold_agent(whole)
        wanted *= 2


def _newest_state_events(
    connection: Connection, team: str, agentno: str, limit: int
) -> list[AgentEvent]:
    rows = connection.execute(
        select(
            call_event.c.event,
            call_event.c.event_time,
            call_event.c.eventid,
            call_event.c.agentphone,
            call_event.c.agent_group,
        )
        .where(
            call_event.c.orgidentity == team,
            call_event.c.sessionid.is_(None),
            call_event.c.agentno == agentno,
            call_event.c.event.in_(sorted(STATE_AFTER)),
        )
        .order_by(call_event.c.event_time.desc())
        .limit(limit)
    )
    events = [_state_event(team, agentno, row) for row in rows]
    return sorted(events, key=agent_order, reverse=True)


def _answered_open_calls(
    connection: Connection, teams: Sequence[str] | None, since: datetime
) -> dict[tuple[str, str], datetime]:
    """Per agent, the earliest answer of a call naming them that has not ended. Calls
    older than the maximum call length are left out: the sweep is closing them. An open
    call's billsec is NULL, so the covering time index answers this alone."""
    query = (
        select(cdr.c.orgidentity, cdr.c.agentno, func.min(cdr.c.answertime))
        .where(
            cdr.c.starttime >= since,
            cdr.c.disposition == Disposition.ANSWER.value,
            cdr.c.billsec.is_(None),
            cdr.c.agentno.is_not(None),
        )
        .group_by(cdr.c.orgidentity, cdr.c.agentno)
    )
    if teams is not None:
        query = query.where(cdr.c.orgidentity.in_(sorted(set(teams))))
    found: dict[tuple[str, str], Any] = {}
    for team, agentno, answered in connection.execute(query):
        found[(team, agentno)] = answered
    return found


# --- Time in states over a range (`agenttime`) ------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentReport:
    team: str
    agentno: str
    agent_group: str | None
    figures: AgentFigures


def time_report(
    engine: Engine,
    teams: Sequence[str] | None,
    queue: str | None,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[AgentReport]:
    """Each agent of these teams (None: all teams), or only those whose queue is
    `queue`, with its figures over [start, end): time in states up to `end` or `now`,
    whichever is earlier, and the calls it handled that started in the range. Sorted by
    team and agent number."""
    until = min(end, now)
    with engine.connect() as connection:
        reading = read_only(connection)
        calls = _handled_calls(reading, teams, start, end)
        registered = _registered(reading, teams, queue)
        if queue is None:
            # An agent named by a CDR but never registered still handled those calls.
            for key in calls.keys() - registered.keys():
                registered[key] = None
        found = []
        for (team, agentno), agent_group in sorted(registered.items()):
            events = _state_events_for_range(reading, team, agentno, start, until)
            talk, answered = calls.get((team, agentno), (0, 0))
            figures = AgentFigures(time_in_states(events, start, until), talk, answered)
            found.append(AgentReport(team, agentno, agent_group, figures))
    return found


def _registered(
    connection: Connection, teams: Sequence[str] | None, queue: str | None
) -> dict[tuple[str, str], str | None]:
    query = select(agent.c.orgidentity, agent.c.agentno, agent.c.agent_group)
    if teams is not None:
        query = query.where(agent.c.orgidentity.in_(sorted(set(teams))))
    if queue is not None:
        query = query.where(agent.c.agent_group == queue)
    return {(row.orgidentity, row.agentno): row.agent_group for row in connection.execute(query)}


def _state_events_for_range(
    connection: Connection, team: str, agentno: str, start: datetime, until: datetime
) -> list[AgentEvent]:
    """The agent's state events in [start, until), and those at the newest time before
    `start` (all of them: at one time the order, not the reading, decides). Each read is
    a seek on `ix_call_event_session`."""
    if until <= start:
        return []
    of_agent = (
        call_event.c.orgidentity == team,
        call_event.c.sessionid.is_(None),
        call_event.c.agentno == agentno,
        call_event.c.event.in_(sorted(STATE_AFTER)),
    )
    before = connection.execute(
        select(func.max(call_event.c.event_time)).where(*of_agent, call_event.c.event_time < start)
    ).scalar_one_or_none()
    rows = connection.execute(
        select(
            call_event.c.event,
            call_event.c.event_time,
            call_event.c.eventid,
            call_event.c.agentphone,
            call_event.c.agent_group,
        ).where(
            *of_agent,
            call_event.c.event_time >= (start if before is None else before),
            call_event.c.event_time < until,
        )
    )
    return [_state_event(team, agentno, row) for row in rows]


def _handled_calls(
    connection: Connection, teams: Sequence[str] | None, start: datetime, end: datetime
) -> dict[tuple[str, str], tuple[int, int]]:
    """Per agent, the billsec summed and the number answered of the calls naming it
    that started in [start, end): one GROUP BY over the covering starttime index."""
    answered = case((cdr.c.disposition == Disposition.ANSWER.value, 1), else_=0)
    query = (
        select(
            cdr.c.orgidentity,
            cdr.c.agentno,
            func.sum(cdr.c.billsec),
            func.sum(answered),
        )
        .where(cdr.c.starttime >= start, cdr.c.starttime < end, cdr.c.agentno.is_not(None))
        .group_by(cdr.c.orgidentity, cdr.c.agentno)
    )
    if teams is not None:
        query = query.where(cdr.c.orgidentity.in_(sorted(set(teams))))
    return {
        (team, agentno): (int(talk or 0), int(count or 0))
        for team, agentno, talk, count in connection.execute(query)
    }


def _state_event(team: str, agentno: str, row: Row[Any, Any, Any, Any, Any]) -> AgentEvent:
    """An agent's state event as its journal row holds it."""
    return AgentEvent(
        team=team,
        agentno=agentno,
        event=row.event,
        event_time=row.event_time,
        agentphone=row.agentphone,
        agent_group=row.agent_group,
        eventid=row.eventid,
    )
