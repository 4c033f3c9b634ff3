"""The state each agent must be listed in once a whole traffic is in. Pure.

Read from the agent events the generator sent, with the contract's table (section 6):
written apart from cdrlog's own agent fold, so that the two check each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cdrlog.sim.traffic_model import ExpectedAgent, GeneratedCall

# Contract section 6: the state an agent event leaves the agent in; others change none.
_STATE_AFTER: Mapping[str, str] = {
    "login": "available",
    "logoff": "logged_out",
    "logout": "logged_out",
    "paused": "paused",
    "nopaused": "available",
    "hangupacw": "after_call_work",
    "acwstop": "available",
}


@dataclass(slots=True)
class _Seen:
    phone: str | None = None
    group: str | None = None
    state: str = "logged_out"
    since: datetime | None = None


def expected_agents(calls: Sequence[GeneratedCall]) -> list[ExpectedAgent]:
    """Every agent the calls' events name, per team, in the state its latest
    state-changing agent event left it in since the first event of that run of events
    (an event that keeps the state moves nothing); `logged_out` since None when it sent
    none. No call of a finished traffic is still answered and on, so nobody is
    `on_call`. The phone is the one the agent logged in with or its events carry; the
    group, the `AgentGroupId` of its agent events or its own leg. Sorted by team, then
    agent number."""
    agents: dict[tuple[str, str], _Seen] = {}
    for team, event, moment in _in_event_order(calls):
        agentno = event.get("agentno", "")
        if not agentno or event.get("source") == "CONSULT":
            continue
        seen = agents.setdefault((team, agentno), _Seen())
        seen.phone = seen.phone or event.get("agentphone") or _own_phone(event)
        if "sessionid" not in event or event.get("source") == "AGENT":
            seen.group = seen.group or event.get("AgentGroupId")
        state = _STATE_AFTER.get(event.get("event", "")) if "sessionid" not in event else None
        if state is not None and (state != seen.state or seen.since is None):
            seen.state, seen.since = state, moment
    return [
        ExpectedAgent(team, agentno, seen.phone, seen.group, seen.state, seen.since)
        for (team, agentno), seen in sorted(agents.items())
    ]


def _own_phone(event: Mapping[str, str]) -> str | None:
    """The agent's own leg rings their phone: its activenum is the agent's phone."""
    return event.get("activenum") if event.get("source") == "AGENT" else None


def _in_event_order(
    calls: Iterable[GeneratedCall],
) -> list[tuple[str, dict[str, str], datetime]]:
    """Every event, agent events included, by event time and then `eventid`."""
    timed = [
        (moment, int(event.get("eventid", "0") or "0"), n, call.team, event)
        for call in calls
        for n, (event, moment) in enumerate(
            [
                *zip(call.events, call.event_times, strict=True),
                *zip(call.agent_events, call.agent_event_times, strict=True),
            ]
        )
    ]
    timed.sort(key=lambda item: item[:3])
    return [(team, event, moment.astimezone(UTC)) for moment, _, _, team, event in timed]
