"""fold_agent: an agent's state is a function of the set of the agent's events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.core.agentstate import (
    NEVER_SEEN,
    STATE_AFTER,
    AgentState,
    Presence,
    agent_order,
    fold_agent,
    with_calls,
)
from cdrlog.core.events import AGENT_EVENTS, AgentEvent

BASE = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def agent_event(name: str, seconds: float, eventid: int | None = None) -> AgentEvent:
    return AgentEvent(
        team="acme",
        agentno="1001",
        event=name,
        event_time=BASE + timedelta(seconds=seconds),
        eventid=eventid,
    )


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


# Few distinct times and ids, so ties are common.
events = st.lists(
    st.builds(
        agent_event,
        st.sampled_from([*sorted(AGENT_EVENTS), "dtmf"]),
        st.sampled_from([0, 1, 1, 2, 60, 60.5]),
        st.sampled_from([None, 1, 2, 3]),
    ),
    max_size=14,
)


# --- The contract's table, as examples --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("login", AgentState.AVAILABLE),
        ("logoff", AgentState.LOGGED_OUT),
        ("logout", AgentState.LOGGED_OUT),
        ("paused", AgentState.PAUSED),
        ("nopaused", AgentState.AVAILABLE),
        ("hangupacw", AgentState.AFTER_CALL_WORK),
        ("acwstop", AgentState.AVAILABLE),
    ],
)
def test_each_state_event_leaves_its_state(name: str, state: AgentState) -> None:
    assert fold_agent([agent_event("login", 0), agent_event(name, 10)]).state is state


@pytest.mark.parametrize(
    "name", ["acwring", "acwanswer", "acwoff", "workwayall", "workwaydialin", "workwaydialout"]
)
def test_mode_settings_change_nothing(name: str) -> None:
    before = fold_agent([agent_event("login", 0), agent_event("paused", 10)])
    assert before == Presence(AgentState.PAUSED, at(10))
    after = fold_agent([agent_event("login", 0), agent_event("paused", 10), agent_event(name, 20)])
    assert after == before


def test_no_state_event_means_logged_out_since_never() -> None:
    assert fold_agent([]) == NEVER_SEEN == Presence(AgentState.LOGGED_OUT, None)
    assert fold_agent([agent_event("workwayall", 5)]) == NEVER_SEEN


def test_an_event_that_keeps_the_state_does_not_move_since() -> None:
    # login and nopaused both mean available: the agent has been available since login.
    events = [agent_event("login", 0), agent_event("nopaused", 30), agent_event("acwstop", 40)]
    assert fold_agent(events) == Presence(AgentState.AVAILABLE, at(0))


def test_since_is_when_the_agent_last_entered_the_state() -> None:
    events = [
        agent_event("login", 0),
        agent_event("paused", 30),
        agent_event("paused", 35),
        agent_event("nopaused", 50),
        agent_event("paused", 70),
    ]
    assert fold_agent(events) == Presence(AgentState.PAUSED, at(70))


def test_eventid_orders_events_of_one_second() -> None:
    paused, resumed = agent_event("paused", 10, eventid=8), agent_event("nopaused", 10, eventid=7)
    assert fold_agent([paused, resumed]).state is AgentState.PAUSED
    assert fold_agent([resumed, paused]).state is AgentState.PAUSED


def test_a_late_event_lands_where_its_time_puts_it() -> None:
    # The logoff arrives last but happened before the login of the next shift.
    events = [agent_event("login", 3600), agent_event("login", 0), agent_event("logoff", 1800)]
    assert fold_agent(events) == Presence(AgentState.AVAILABLE, at(3600))


def test_an_answered_open_call_puts_the_agent_on_call() -> None:
    paused = fold_agent([agent_event("paused", 0)])
    assert with_calls(paused, at(5)) == Presence(AgentState.ON_CALL, at(5))
    assert with_calls(paused, None) == paused


# --- A function of the set -----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(items=events, data=st.data())
def test_any_order_and_any_duplicates_give_the_same_state(
    items: list[AgentEvent], data: st.DataObject
) -> None:
    again = data.draw(st.lists(st.sampled_from(items), max_size=4)) if items else []
    delivered = data.draw(st.permutations(items + again))
    assert fold_agent(delivered) == fold_agent(items)


@settings(max_examples=300, deadline=None)
@given(items=events)
def test_the_state_is_that_of_the_latest_state_event(items: list[AgentEvent]) -> None:
    presence = fold_agent(items)
    changing = sorted((e for e in items if e.event in STATE_AFTER), key=agent_order)
    if not changing:
        assert presence == NEVER_SEEN
        return
    assert presence.state is STATE_AFTER[changing[-1].event]
    assert presence.since is not None
    assert presence.since <= changing[-1].event_time
    # Every state event from `since` on leaves the agent in that same state.
    assert all(
        STATE_AFTER[e.event] is presence.state for e in changing if e.event_time > presence.since
    )
