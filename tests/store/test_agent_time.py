"""Agent time summed by each database (`store.agents.time_report`) equals the pure
definition (`core.agenttime.time_in_states`) for any set of agent events: ties at one
time with and without `eventid`, fractions of seconds, events before, at and after the
range's bounds and the hours' bounds (whole hours come from `agent_hour`, the rest from
the events), mode settings that change nothing, agents with no event at all."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete

from cdrlog.core.accepted import Accepted
from cdrlog.core.agentstate import STATE_AFTER
from cdrlog.core.agenttime import AgentTime, time_in_states
from cdrlog.core.events import AgentEvent
from cdrlog.store.agenthours import rebuild_all
from cdrlog.store.agents import time_report
from cdrlog.store.database import in_transaction
from cdrlog.store.journal import journal_row
from cdrlog.store.tables import agent, call_event

BASE = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
SPAN = 3 * 3600
AGENTS = ("1001", "1002", "1003")
EVENTS = (*sorted(STATE_AFTER), "acwring")


@st.composite
def agent_events(draw: st.DrawFn) -> AgentEvent:
    # Few distinct times, so that one agent's events often tie; now and then a fraction.
    second = draw(st.integers(0, SPAN // 900)) * 900 + draw(st.sampled_from([0, 0, 0, 1, 299]))
    fraction = draw(st.sampled_from([0, 0, 0, 0, 1, 499_999, 500_000]))
    return AgentEvent(
        team="acme",
        agentno=draw(st.sampled_from(AGENTS[:2])),
        event=draw(st.sampled_from(EVENTS)),
        event_time=BASE + timedelta(seconds=second, microseconds=fraction),
        agentphone=None,
        agent_group=None,
        eventid=draw(st.one_of(st.none(), st.integers(1, 3))),
    )


def bound(offset: int) -> datetime:
    return BASE + timedelta(seconds=offset)


def stored(engine: Engine, events: list[AgentEvent]) -> None:
    """The agents registered (one without events) and their events journaled."""
    rows = []
    for n, event in enumerate(events):
        fields = {"event": event.event, "n": str(n)}
        key = f"{n:040d}"
        rows.append(journal_row(Accepted(event, fields, key), event.event_time))
        rows[-1]["fields"] = json.dumps(fields)
    agents = [
        {
            "orgidentity": "acme",
            "agentno": no,
            "logged_in": False,
            "event_time": BASE,
            "updated_at": BASE,
        }
        for no in AGENTS
    ]

    def write(connection: Connection) -> None:
        for table in (call_event, agent):
            connection.execute(delete(table))
        connection.execute(agent.insert(), agents)
        if rows:
            connection.execute(call_event.insert(), rows)
        rebuild_all(connection)

    in_transaction(engine, write)


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(agent_events(), max_size=40, unique_by=lambda e: e),
    # Bounds on, between and around the events' times; most ranges hold most events.
    start=st.sampled_from([-7200, -600, 0, 0, 1, 900, 2700, 3600]),
    length=st.sampled_from([0, 1, 1800, 3600, 7199, SPAN, SPAN + 1200, SPAN + 9000]),
    now_offset=st.sampled_from([None, 900]),
)
def test_the_database_sums_what_the_definition_gives(
    engine: Engine,
    events: list[AgentEvent],
    start: int,
    length: int,
    now_offset: int | None,
) -> None:
    stored(engine, events)
    since, end = bound(start), bound(start + length)
    now = end + timedelta(days=1) if now_offset is None else bound(start + now_offset)
    by_agent: defaultdict[str, list[AgentEvent]] = defaultdict(list)
    for event in events:
        by_agent[event.agentno or ""].append(event)
    report = {r.agentno: r.figures.time for r in time_report(engine, None, None, since, end, now)}
    assert set(report) == set(AGENTS)
    until = min(end, now)
    for agentno in AGENTS:
        assert report[agentno] == time_in_states(by_agent[agentno], since, until), agentno


def test_of_two_events_at_one_time_the_higher_eventid_holds(engine: Engine) -> None:
    def at_base(event: str, eventid: int | None) -> AgentEvent:
        return AgentEvent("acme", "1001", event, BASE, None, None, eventid)

    stored(engine, [at_base("paused", 2), at_base("login", 1), at_base("nopaused", None)])
    since, end = BASE - timedelta(seconds=60), BASE + timedelta(seconds=600)
    report = {r.agentno: r.figures.time for r in time_report(engine, None, None, since, end, end)}
    # login (1), then paused (2), then the event without an eventid: available.
    assert report["1001"] == AgentTime(logged_in=600, paused=0, after_call_work=0)
    stored(engine, [at_base("paused", 2), at_base("login", 1)])
    report = {r.agentno: r.figures.time for r in time_report(engine, None, None, since, end, end)}
    assert report["1001"] == AgentTime(logged_in=600, paused=600, after_call_work=0)
