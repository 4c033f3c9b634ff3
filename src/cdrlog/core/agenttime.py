"""How long each agent spent logged in, paused and in wrap-up over a time range, and the
figures built on it (occupancy, average handle time). Pure interval arithmetic.

The agent's events are put in `agentstate`'s total order, so the figures are a function
of the *set* of events, whatever order they arrived in and however often. Between two
state-changing events the agent is in the state the first one left; before the first
one it is logged out. Paused and wrap-up time count inside logged-in time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from cdrlog.core.agentstate import STATE_AFTER, AgentState, agent_order, changes_state
from cdrlog.core.events import AgentEvent

# The longest range a report covers: its reads grow with it.
LONGEST_RANGE = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class AgentTime:
    """Whole seconds (rounded half up) of a range spent in each state."""

    logged_in: int = 0
    paused: int = 0
    after_call_work: int = 0


@dataclass(frozen=True, slots=True)
class AgentFigures:
    """One agent's report: time in states, and the calls it handled that started in
    the range (`talk`: their billsec summed; `answered_calls`: those answered)."""

    time: AgentTime
    talk: int
    answered_calls: int

    @property
    def occupancy(self) -> float | None:
        """(talk + wrap-up) / (logged in - paused); None when the agent was never
        available. It may exceed 1: a call is counted whole in the range it started in."""
        available = self.time.logged_in - self.time.paused
        return None if available <= 0 else (self.talk + self.time.after_call_work) / available

    @property
    def aht(self) -> float | None:
        """Average handle time: (talk + wrap-up) / answered calls; None without any."""
        if self.answered_calls == 0:
            return None
        return (self.talk + self.time.after_call_work) / self.answered_calls


def time_in_states(events: Iterable[AgentEvent], start: datetime, until: datetime) -> AgentTime:
    """The agent's time in each state within [start, until), from its events: those
    before `start` decide the state at `start` (the newest suffice), later ones are
    ignored. Events that change no state (mode settings) change nothing."""
    if until <= start:
        return AgentTime()
    spent = dict.fromkeys(AgentState, timedelta())
    state = AgentState.LOGGED_OUT
    since = start
    for event in sorted((e for e in events if changes_state(e)), key=agent_order):
        if event.event_time >= until:
            break
        if event.event_time > since:
            spent[state] += event.event_time - since
            since = event.event_time
        state = STATE_AFTER[event.event]
    spent[state] += until - since
    return time_of(spent)


# --- Per hour: what `store.agenthours` keeps, so a report need not fold every event ---

HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The states an hour's row holds: logged-out time is what is left.
COUNTED = (AgentState.AVAILABLE, AgentState.PAUSED, AgentState.AFTER_CALL_WORK)
HourSpent = dict[AgentState, int]


def hour_of(moment: datetime) -> int:
    """Hours since the epoch, in UTC: an hour row's key, whatever the reader's zone."""
    return (moment - _EPOCH) // HOUR


def hour_start(hour: int) -> datetime:
    return _EPOCH + hour * HOUR


def micros(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


def closed_time_per_hour(
    carried: AgentState,
    events: Sequence[AgentEvent],
    start: datetime,
    end: datetime,
    closed: bool,
) -> dict[int, HourSpent]:
    """Microseconds per hour and counted state within [start, end) (whole hours) of the
    agent's intervals that some later event ends: from `start` in the `carried` state,
    through `events` (its state events in the window, any order), and on to `end` only
    when `closed` (an event at or after `end` ends the last interval). The agent's
    newest interval is still open, so it is left out: a reader adds it up to its own
    end. Hours with nothing counted are absent."""
    found: dict[int, HourSpent] = {}
    state, since = carried, start
    for event in sorted((e for e in events if changes_state(e)), key=agent_order):
        _add(found, state, since, event.event_time)
        state, since = STATE_AFTER[event.event], event.event_time
    if closed:
        _add(found, state, since, end)
    return found


def _add(found: dict[int, HourSpent], state: AgentState, since: datetime, until: datetime) -> None:
    if state not in COUNTED or until <= since:
        return
    hour = hour_of(since)
    while since < until:
        upto = min(until, hour_start(hour + 1))
        spent = found.setdefault(hour, {})
        spent[state] = spent.get(state, 0) + micros(upto - since)
        since, hour = upto, hour + 1


def time_of(spent: Mapping[AgentState, timedelta]) -> AgentTime:
    """The figures of exact time spent per state: logged-in time is every state's but
    logged-out's; each is rounded once, at the end."""
    logged_in = sum((t for s, t in spent.items() if s is not AgentState.LOGGED_OUT), timedelta())
    return AgentTime(
        logged_in=whole_seconds(logged_in),
        paused=whole_seconds(spent.get(AgentState.PAUSED, timedelta())),
        after_call_work=whole_seconds(spent.get(AgentState.AFTER_CALL_WORK, timedelta())),
    )


def whole_seconds(span: timedelta) -> int:
    """Rounded half up, as a CDR's durations are; monotonic, so a part never exceeds
    its whole once rounded."""
    return max(0, math.floor(span.total_seconds() + 0.5))


def report_range(
    start: datetime | None, end: datetime | None, now: datetime, zone: tzinfo
) -> tuple[datetime, datetime]:
    """The range a report covers: `start` defaults to the beginning of today in `zone`,
    `end` to the beginning of tomorrow there. ValueError naming the problem when the
    range is empty or longer than `LONGEST_RANGE`."""
    today = now.astimezone(zone).date()
    start = _midnight(today, zone) if start is None else start
    end = _midnight(today + timedelta(days=1), zone) if end is None else end
    if start >= end:
        raise ValueError("the range is empty: `from` must be before `to`")
    if end - start > LONGEST_RANGE:
        raise ValueError(f"the range is longer than {LONGEST_RANGE.days} days")
    return start, end


def _midnight(day: date, zone: tzinfo) -> datetime:
    # In UTC: where a zone's clocks skip midnight, the wall time that never happened
    # (read at the offset before the change) is the first instant the day has.
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
