"""What each agent is doing now (contract section 6), kept on its registry row.

`agentstate.fold_agent` of all an agent's events, found with a few index seeks instead
of reading them all: the newest events give the state; the newest event of any other
state bounds the run the agent is in; the run's first event is since when. Ingest keeps
the result on the `agent` row (`state`, `state_since`) under the row's lock, so it is a
function of the set of events as stored, and the floor's view reads one row per agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, Select, select, update

from cdrlog.core.agentstate import (
    NEVER_SEEN,
    STATE_AFTER,
    AgentState,
    Presence,
    agent_order,
)
from cdrlog.core.events import AgentEvent
from cdrlog.store.tables import agent, call_event

_STATE_EVENTS = sorted(STATE_AFTER)
_EVENTS_OF: dict[AgentState, list[str]] = {
    state: sorted(e for e, s in STATE_AFTER.items() if s is state) for state in AgentState
}


def presence_of(connection: Connection, team: str, agentno: str) -> Presence:
    """The agent's state and since when, from its state events in the journal."""
    mine = of_agent(team, agentno)
    at = call_event.c.event_time
    newest = connection.execute(edge(mine, newest=True)).scalar()
    if newest is None:
        return NEVER_SEEN
    state = STATE_AFTER[_last_at(connection, team, agentno, newest).event]
    others = sorted(set(STATE_AFTER) - set(_EVENTS_OF[state]))
    bound = connection.execute(edge([*mine, call_event.c.event.in_(others)], newest=True)).scalar()
    if bound is None:
        since = connection.execute(edge(mine, newest=False)).scalar()
    elif STATE_AFTER[_last_at(connection, team, agentno, bound).event] is state:
        since = bound  # the run began at that time, after the other state's event
    else:
        since = connection.execute(edge([*mine, at > bound], newest=False)).scalar()
    return Presence(state, since)


def edge(conditions: Sequence[ColumnElement[bool]], newest: bool) -> Select[datetime]:
    """The newest (or oldest) event time of the journal rows `conditions` pick, as one
    walk of the session index that stops at the first row that passes: MAX() and MIN()
    read every row of the agent where a condition (the event name) is not in the index."""
    at = call_event.c.event_time
    return select(at).where(*conditions).order_by(at.desc() if newest else at).limit(1)


def keep(connection: Connection, team: str, agentno: str, presence: Presence) -> None:
    """Write the agent's presence on its registry row (the caller holds its lock)."""
    connection.execute(
        update(agent)
        .where(agent.c.orgidentity == team, agent.c.agentno == agentno)
        .values(
            state=None if presence.since is None else presence.state.value,
            state_since=presence.since,
        )
    )


def stored(state: str | None, since: datetime | None) -> Presence:
    """The presence a registry row holds (no state: never seen in any)."""
    if state is None:
        return NEVER_SEEN
    return Presence(AgentState(state), since)


def of_agent(team: str, agentno: str) -> list[ColumnElement[bool]]:
    """The agent's state events: a range of the session index."""
    return [
        call_event.c.orgidentity == team,
        call_event.c.agentno == agentno,
        *state_events(call_event),
    ]


def _last_at(connection: Connection, team: str, agentno: str, moment: datetime) -> AgentEvent:
    """The last, in `agent_order`, of the agent's state events at this time."""
    rows = connection.execute(
        select(
            call_event.c.event,
            call_event.c.event_time,
            call_event.c.eventid,
            call_event.c.agentphone,
            call_event.c.agent_group,
        ).where(*of_agent(team, agentno), call_event.c.event_time == moment)
    )
    return max((state_event(team, agentno, row) for row in rows), key=agent_order)


def state_events(events: Any) -> list[ColumnElement[bool]]:
    """Agent state events (no call), of any agent: a range of the session index per agent."""
    return [events.c.sessionid.is_(None), events.c.event.in_(_STATE_EVENTS)]


def state_event(team: str, agentno: str, row: Row[*tuple[Any, ...]]) -> AgentEvent:
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
