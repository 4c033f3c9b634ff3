"""What an agent is doing, from the agent's events (contract section 6). Pure.

Like a CDR, an agent's state is a function of the *set* of the agent's events: they
are put in one total order that depends only on their content, and the state is what
the latest state-changing event leaves. `on_call` comes from the calls, not from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cdrlog.core.events import AgentEvent


class AgentState(StrEnum):
    AVAILABLE = "available"
    ON_CALL = "on_call"
    PAUSED = "paused"
    AFTER_CALL_WORK = "after_call_work"
    LOGGED_OUT = "logged_out"


# The state each event leaves the agent in; events not listed (mode settings such as
# `acwring` or `workwayall`, and names this version does not know) leave it as it was.
STATE_AFTER: Mapping[str, AgentState] = {
    "login": AgentState.AVAILABLE,
    "logoff": AgentState.LOGGED_OUT,
    "logout": AgentState.LOGGED_OUT,
    "paused": AgentState.PAUSED,
    "nopaused": AgentState.AVAILABLE,
    "hangupacw": AgentState.AFTER_CALL_WORK,
    "acwstop": AgentState.AVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Presence:
    """An agent's state and since when (None: never seen in any state)."""

    state: AgentState
    since: datetime | None


NEVER_SEEN = Presence(AgentState.LOGGED_OUT, None)


def changes_state(event: AgentEvent) -> bool:
    return event.event in STATE_AFTER


def agent_order(event: AgentEvent) -> tuple[Any, ...]:
    """A total order on event content; at one eventTime the lower `eventid` first."""
    return (
        event.event_time,
        event.eventid is None,
        event.eventid or 0,
        event.event,
        event.agentphone or "",
        event.agent_group or "",
    )


def fold_agent(events: Iterable[AgentEvent]) -> Presence:
    """The state after the agent's latest state-changing event, since the first event of
    the run that left the agent in it (an event that changes nothing moves nothing)."""
    ordered = sorted((e for e in events if changes_state(e)), key=agent_order)
    if not ordered:
        return NEVER_SEEN
    state = STATE_AFTER[ordered[-1].event]
    since = ordered[-1].event_time
    for event in reversed(ordered):
        if STATE_AFTER[event.event] is not state:
            break
        since = event.event_time
    return Presence(state, since)


def with_calls(presence: Presence, answered_open_call: datetime | None) -> Presence:
    """An agent is `on_call` while a call naming them is answered and not ended, since
    the earliest such answer."""
    if answered_open_call is None:
        return presence
    return Presence(AgentState.ON_CALL, answered_open_call)
