"""The agents of a team, what each is doing now (contract section 5, section 6), and
how long each spent in each state over a range (`agenttime`).

An agent's state, `agentstate.fold_agent` of its events, and its time per hour are kept
from the journal (`presence`, `agenthours`), so they are functions of the set of events
as stored, whatever order they came in; readers first work out what ingest marked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, case, func, or_, select

from cdrlog.core.agentstate import (
    STATE_AFTER,
    AgentState,
    agent_order,
    fold_agent,
    with_calls,
)
from cdrlog.core.agenttime import AgentFigures, AgentTime, hour_of, hour_start, time_of
from cdrlog.core.events import AgentEvent
from cdrlog.core.rules import Disposition
from cdrlog.store import agenthours, presence
from cdrlog.store.agenthours import AgentKey
from cdrlog.store.database import read_only
from cdrlog.store.presence import edge, of_agent, state_event, state_events
from cdrlog.store.queries import epoch_micros
from cdrlog.store.tables import agent, call_event, cdr, pairs_in

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Agents whose events one statement reads: bounded statements on every database.
_AGENTS_PER_READ = 400
# Later than any event: "newest before" it is the newest of all.
_FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)


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
    """Every agent of these teams (None: all teams), by team and agent number: the
    presence ingest keeps on each registry row (`presence`), on a call while one it
    answered is open. Two queries, whatever the number of agents."""
    agenthours.keep_up(engine, teams)
    query = select(
        agent.c.orgidentity,
        agent.c.agentno,
        agent.c.phone,
        agent.c.agent_group,
        agent.c.state,
        agent.c.state_since,
    )
    if teams is not None:
        query = query.where(agent.c.orgidentity.in_(sorted(set(teams))))
    with engine.connect() as connection:
        reading = read_only(connection)
        rows = reading.execute(query.order_by(agent.c.orgidentity, agent.c.agentno)).all()
        calls = _answered_open_calls(reading, teams, now - max_call_length)
    statuses = []
    for row in rows:
        now_in = with_calls(
            presence.stored(row.state, row.state_since),
            calls.get((row.orgidentity, row.agentno)),
        )
        statuses.append(
            AgentStatus(
                team=row.orgidentity,
                agentno=row.agentno,
                phone=row.phone,
                agent_group=row.agent_group,
                state=now_in.state.value,
                state_since=now_in.since,
            )
        )
    return statuses


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
    agenthours.keep_up(engine, teams)
    with engine.connect() as connection:
        reading = read_only(connection)
        calls = _handled_calls(reading, teams, start, end)
        registered = _registered(reading, teams, queue)
        if queue is None:
            # An agent named by a CDR but never registered still handled those calls.
            for key in calls.keys() - registered.keys():
                registered[key] = None
        spent = _time_in_states(reading, teams, queue, start, until) if until > start else {}
    found = []
    for (team, agentno), agent_group in sorted(registered.items()):
        talk, answered = calls.get((team, agentno), (0, 0))
        figures = AgentFigures(spent.get((team, agentno), AgentTime()), talk, answered)
        found.append(AgentReport(team, agentno, agent_group, figures))
    return found


def _time_in_states(
    connection: Connection,
    teams: Sequence[str] | None,
    queue: str | None,
    start: datetime,
    until: datetime,
) -> dict[tuple[str, str], AgentTime]:
    """`agenttime.time_in_states` of every registered agent over [start, until): the
    whole hours inside from `agent_hour` (each agent's still open newest interval
    added), the parts of an hour at either end from the journal's events. Equal to
    folding every event of the range, since the rows are exact microseconds."""
    keys = _agent_keys(connection, teams, queue)
    low = hour_of(start) if hour_start(hour_of(start)) == start else hour_of(start) + 1
    high = hour_of(until)
    if high <= low:
        return _rounded(_exact(connection, keys, start, until))
    spent = _exact(connection, keys, start, hour_start(low))
    whole = agenthours.summed(connection, _agents_wanted(teams, queue), low, high)
    for key, counted in whole.items():
        for state, spent_us in counted.items():
            _spend(spent, key, state, timedelta(microseconds=spent_us))
    hours_from, hours_to = hour_start(low), hour_start(high)
    for key, events in _newest_before(connection, keys, _FAR_FUTURE).items():
        newest = max(events, key=agent_order)
        since = max(newest.event_time, hours_from)
        if since < hours_to:
            _spend(spent, key, STATE_AFTER[newest.event], hours_to - since)
    for key, states in _exact(connection, keys, hours_to, until).items():
        for state, span in states.items():
            _spend(spent, key, state, span)
    return _rounded(spent)


def _spend(
    spent: dict[tuple[str, str], dict[AgentState, timedelta]],
    key: tuple[str, str],
    state: AgentState,
    span: timedelta,
) -> None:
    states = spent.setdefault(key, {})
    states[state] = states.get(state, timedelta()) + span


def _rounded(
    spent: dict[tuple[str, str], dict[AgentState, timedelta]],
) -> dict[tuple[str, str], AgentTime]:
    return {key: time_of(states) for key, states in spent.items()}


def _exact(
    connection: Connection, keys: Sequence[AgentKey], start: datetime, until: datetime
) -> dict[AgentKey, dict[AgentState, timedelta]]:
    """Time in each state over [start, until), folded by the database from the events:
    each state event in the range holds until the agent's next one (`LEAD` in the
    order of `agentstate.agent_order`; events of one time follow each other in no
    time, so only which comes last matters, and that is decided by time, eventid and
    event name, as in Python), the last one until `until`. Before the first, the agent
    is in the state its newest events before `start` left it in. Two queries, whatever
    the number of agents: no event row leaves the database. Meant for under an hour:
    longer spans read `agent_hour`."""
    if until <= start or not keys:
        return {}
    carried = {
        key: fold_agent(events).state
        for key, events in _newest_before(connection, keys, start).items()
    }
    start_us, until_us = _micros(start), _micros(until)
    at = epoch_micros(call_event.c.event_time)
    following = func.lead(at).over(
        partition_by=(call_event.c.orgidentity, call_event.c.agentno),
        order_by=(
            call_event.c.event_time,
            call_event.c.eventid.is_(None),
            call_event.c.eventid,
            call_event.c.event,
        ),
    )
    rows: list[Any] = []
    for chunk in _chunks(keys):
        # The agents' keys written in, so that each database reads one range of the
        # session index per agent, from `start` to `until` (joined to the agent rows,
        # MariaDB reads each agent's events from its first).
        held = (
            select(
                call_event.c.orgidentity.label("team"),
                call_event.c.agentno.label("agentno"),
                call_event.c.event.label("event"),
                at.label("at"),
                following.label("next"),
            )
            .where(
                pairs_in(call_event.c.orgidentity, call_event.c.agentno, chunk),
                *state_events(call_event),
                call_event.c.event_time >= start,
                call_event.c.event_time < until,
            )
            .subquery()
        )
        rows += connection.execute(
            select(
                held.c.team,
                held.c.agentno,
                held.c.event,
                func.sum(func.coalesce(held.c.next, until_us) - held.c.at),
                func.min(held.c.at),
            ).group_by(held.c.team, held.c.agentno, held.c.event)
        ).all()
    spent: dict[tuple[str, str], dict[AgentState, timedelta]] = {}
    first: dict[tuple[str, str], int] = {}
    for team, agentno, event, micros, earliest in rows:
        states = spent.setdefault((team, agentno), {})
        state = STATE_AFTER[event]
        states[state] = states.get(state, timedelta()) + timedelta(microseconds=int(micros))
        first[(team, agentno)] = min(first.get((team, agentno), until_us), int(earliest))
    for key in spent.keys() | carried.keys():
        states = spent.setdefault(key, {})
        before = carried.get(key, AgentState.LOGGED_OUT)
        lead_in = timedelta(microseconds=first.get(key, until_us) - start_us)
        states[before] = states.get(before, timedelta()) + lead_in
    return spent


def _newest_before(
    connection: Connection, keys: Sequence[AgentKey], start: datetime
) -> dict[AgentKey, list[AgentEvent]]:
    """Per agent, its state events at the newest time before `start` (all of them: at
    one time the order, not the reading, decides). Each agent's newest time is its own
    subquery with the agent's key written in (one walk of the session index that starts
    at `start` and stops at the first state event: correlated to the agent row instead,
    MariaDB walks down from the agent's newest event, reading every row on the way),
    all in one statement; then the events at those times."""
    at = call_event.c.event_time
    times: list[tuple[str, str, datetime | None]] = []
    for part in _chunks(keys):
        newest = [
            edge([*of_agent(team, agentno), at < start], newest=True)
            .scalar_subquery()
            .label(f"newest{n}")
            for n, (team, agentno) in enumerate(part)
        ]
        found_times = connection.execute(select(*newest)).one()
        times += [
            (team, agentno, moment)
            for (team, agentno), moment in zip(part, found_times, strict=True)
        ]
    found: dict[tuple[str, str], list[AgentEvent]] = {}
    wanted = [(team, agentno, moment) for team, agentno, moment in times if moment is not None]
    for chunk in range(0, len(wanted), _AGENTS_PER_READ):
        picks = [
            and_(
                call_event.c.orgidentity == team,
                call_event.c.agentno == agentno,
                call_event.c.event_time == moment,
            )
            for team, agentno, moment in wanted[chunk : chunk + _AGENTS_PER_READ]
        ]
        rows = connection.execute(
            select(
                call_event.c.orgidentity,
                call_event.c.agentno,
                call_event.c.event,
                call_event.c.event_time,
                call_event.c.eventid,
                call_event.c.agentphone,
                call_event.c.agent_group,
            ).where(*state_events(call_event), or_(*picks))
        )
        for row in rows:
            team, agentno = row.orgidentity, row.agentno
            found.setdefault((team, agentno), []).append(state_event(team, agentno, row))
    return found


def _agent_keys(
    connection: Connection, teams: Sequence[str] | None, queue: str | None
) -> list[AgentKey]:
    query = select(agent.c.orgidentity, agent.c.agentno).where(*_agents_wanted(teams, queue))
    rows = connection.execute(query.order_by(agent.c.orgidentity, agent.c.agentno))
    return [(team, agentno) for team, agentno in rows]


def _chunks(keys: Sequence[AgentKey]) -> Iterator[Sequence[AgentKey]]:
    for at in range(0, len(keys), _AGENTS_PER_READ):
        yield keys[at : at + _AGENTS_PER_READ]


def _agents_wanted(teams: Sequence[str] | None, queue: str | None) -> list[ColumnElement[bool]]:
    wanted: list[ColumnElement[bool]] = []
    if teams is not None:
        wanted.append(agent.c.orgidentity.in_(sorted(set(teams))))
    if queue is not None:
        wanted.append(agent.c.agent_group == queue)
    return wanted


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _registered(
    connection: Connection, teams: Sequence[str] | None, queue: str | None
) -> dict[tuple[str, str], str | None]:
    query = select(agent.c.orgidentity, agent.c.agentno, agent.c.agent_group)
    if teams is not None:
        query = query.where(agent.c.orgidentity.in_(sorted(set(teams))))
    if queue is not None:
        query = query.where(agent.c.agent_group == queue)
    return {(row.orgidentity, row.agentno): row.agent_group for row in connection.execute(query)}


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
