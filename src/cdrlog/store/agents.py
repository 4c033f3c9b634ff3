"""The agents of a team and what each is doing now (contract section 5, section 6).

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

from sqlalchemy import Connection, Engine, func, select

from cdrlog.core.agentstate import (
    STATE_AFTER,
    Presence,
    agent_order,
    fold_agent,
    settled,
    with_calls,
)
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
    events = [
        AgentEvent(
            team=team,
            agentno=agentno,
            event=row.event,
            event_time=row.event_time,
            agentphone=row.agentphone,
            agent_group=row.agent_group,
            eventid=row.eventid,
        )
        for row in rows
    ]
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
