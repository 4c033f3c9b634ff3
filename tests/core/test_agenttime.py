"""time_in_states: an agent's time in each state over a range, from the set of its events;
and the figures on it (occupancy, average handle time) and the report's default range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrlog.core.agenttime import (
    LONGEST_RANGE,
    AgentFigures,
    AgentTime,
    report_range,
    time_in_states,
)
from cdrlog.core.events import AGENT_EVENTS, AgentEvent

BASE = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def at(minute: float) -> datetime:
    return BASE + timedelta(minutes=minute)


def agent_event(name: str, minute: float, eventid: int | None = None) -> AgentEvent:
    return AgentEvent(
        team="acme", agentno="1001", event=name, event_time=at(minute), eventid=eventid
    )


# A shift, as the wire has it: minute after 09:00, event.
SHIFT = [
    agent_event("login", 0),
    agent_event("paused", 10),
    agent_event("acwring", 15),  # a mode setting: changes no state
    agent_event("nopaused", 20),
    agent_event("hangupacw", 30),
    agent_event("acwstop", 35),
    agent_event("logoff", 50),
]


@pytest.mark.parametrize(
    ("start", "until", "logged_in", "paused", "after_call_work"),
    [
        # the whole shift, and beyond it on both sides
        (-10, 70, 50, 10, 5),
        (0, 50, 50, 10, 5),
        # cutting through a pause: the state at the start comes from the login before it
        (15, 70, 35, 5, 5),
        # cutting through wrap-up at the end: it counts up to the end
        (25, 32, 7, 0, 2),
        # inside one pause
        (12, 18, 6, 6, 0),
        # after the logoff, and before the login: logged out
        (55, 70, 0, 0, 0),
        (-30, -5, 0, 0, 0),
        # a range starting exactly at an event
        (10, 20, 10, 10, 0),
        # an empty range
        (20, 20, 0, 0, 0),
        (30, 20, 0, 0, 0),
    ],
)
def test_time_in_each_state_within_the_range(
    start: float, until: float, logged_in: int, paused: int, after_call_work: int
) -> None:
    spent = time_in_states(SHIFT, at(start), at(until))

    assert spent == AgentTime(logged_in * 60, paused * 60, after_call_work * 60)


def test_no_events_is_logged_out_throughout() -> None:
    assert time_in_states([], at(0), at(60)) == AgentTime(0, 0, 0)


def test_a_state_never_left_counts_up_to_the_end() -> None:
    assert time_in_states([agent_event("paused", 0)], at(30), at(40)) == AgentTime(600, 600, 0)


def test_events_at_the_end_or_later_change_nothing() -> None:
    events = [*SHIFT[:2], agent_event("logoff", 12), agent_event("login", 40)]

    assert time_in_states(events, at(0), at(12)) == AgentTime(720, 120, 0)


def test_at_one_time_the_lower_eventid_comes_first() -> None:
    # Paused then unpaused in the same second: the eventids say which came last.
    events = [
        agent_event("login", 0),
        agent_event("nopaused", 10, eventid=8),
        agent_event("paused", 10, eventid=7),
    ]

    assert time_in_states(events, at(0), at(20)).paused == 0
    swapped = [events[0], agent_event("nopaused", 10, 7), agent_event("paused", 10, 8)]
    assert time_in_states(swapped, at(0), at(20)).paused == 600


def test_seconds_are_rounded_half_up() -> None:
    events = [
        AgentEvent(team="acme", agentno="1", event="login", event_time=BASE),
        AgentEvent(
            team="acme",
            agentno="1",
            event="paused",
            event_time=BASE + timedelta(seconds=1.5),
        ),
    ]

    spent = time_in_states(events, BASE, BASE + timedelta(seconds=3.2))
    assert spent == AgentTime(logged_in=3, paused=2, after_call_work=0)


# --- Any order, any duplication: the same figures -----------------------------------------

# Few distinct times and ids, so ties are common; names include a mode setting and one
# this version does not know.
events = st.lists(
    st.builds(
        agent_event,
        st.sampled_from([*sorted(AGENT_EVENTS), "dtmf"]),
        st.sampled_from([0, 1, 1, 2, 30, 30.5, 60]),
        st.sampled_from([None, 1, 2, 3]),
    ),
    max_size=14,
)
bounds = st.sampled_from([-5, 0, 1, 1.5, 30, 45, 60, 90])


@given(events, bounds, bounds, st.data())
def test_any_order_and_duplication_gives_the_same_figures(
    stream: list[AgentEvent], start: float, until: float, data: st.DataObject
) -> None:
    expected = time_in_states(stream, at(start), at(until))
    shuffled = data.draw(st.permutations(stream))
    repeated = data.draw(st.lists(st.sampled_from(stream), max_size=6)) if stream else []

    assert time_in_states([*shuffled, *repeated], at(start), at(until)) == expected


@given(events, bounds, bounds)
def test_parts_fit_inside_the_whole(stream: list[AgentEvent], start: float, until: float) -> None:
    spent = time_in_states(stream, at(start), at(until))
    length = max(0.0, (until - start) * 60)

    assert 0 <= spent.paused + spent.after_call_work <= spent.logged_in <= length + 0.5


@given(events, st.sampled_from([0, 1, 30, 45]), st.sampled_from([1, 15, 30]))
def test_a_range_cut_in_two_adds_up(stream: list[AgentEvent], start: float, step: float) -> None:
    # Whole minutes here, so rounding cannot make the halves disagree with the whole.
    whole = time_in_states(stream, at(start), at(start + 2 * step))
    first = time_in_states(stream, at(start), at(start + step))
    second = time_in_states(stream, at(start + step), at(start + 2 * step))

    assert first.logged_in + second.logged_in == whole.logged_in
    assert first.paused + second.paused == whole.paused
    assert first.after_call_work + second.after_call_work == whole.after_call_work


# --- Occupancy and average handle time -----------------------------------------------------


def test_occupancy_and_aht() -> None:
    figures = AgentFigures(AgentTime(3600, 600, 300), talk=1500, answered_calls=6)

    assert figures.occupancy == pytest.approx(1800 / 3000)
    assert figures.aht == pytest.approx(300)


def test_occupancy_and_aht_are_none_without_a_denominator() -> None:
    never_available = AgentFigures(AgentTime(600, 600, 0), talk=100, answered_calls=0)
    assert never_available.occupancy is None
    assert never_available.aht is None
    assert AgentFigures(AgentTime(), 0, 0).occupancy is None


# --- The range a report covers ---------------------------------------------------------


SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_default_range_is_today_in_the_zone() -> None:
    # 20:00 UTC is already the next day in Shanghai.
    now = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)

    assert report_range(None, None, now, SHANGHAI) == (
        datetime(2026, 3, 1, 16, 0, tzinfo=UTC),
        datetime(2026, 3, 2, 16, 0, tzinfo=UTC),
    )
    assert report_range(None, None, now, UTC) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
    )


def test_a_day_when_clocks_change_is_a_day_of_the_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    start, end = report_range(None, None, datetime(2026, 3, 29, 12, 0, tzinfo=UTC), paris)

    assert end - start == timedelta(hours=23)


def test_each_bound_defaults_alone() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    earlier = datetime(2026, 2, 1, tzinfo=UTC)

    assert report_range(earlier, None, now, UTC) == (earlier, datetime(2026, 3, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [
        (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), "empty"),
        (datetime(2026, 3, 3, tzinfo=UTC), None, "empty"),
        (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC), "longer"),
    ],
)
def test_an_empty_or_too_long_range_is_refused(
    start: datetime, end: datetime | None, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        report_range(start, end, datetime(2026, 3, 1, 12, 0, tzinfo=UTC), UTC)


def test_the_longest_range_is_allowed() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    assert report_range(start, start + LONGEST_RANGE, now, UTC) == (start, start + LONGEST_RANGE)
