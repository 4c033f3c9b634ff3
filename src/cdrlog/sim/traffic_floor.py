"""A call center's floor in asterCC's manual shape: agents log in, take calls from their
queue or a campaign, wrap up, pause, and some log off at the end. Pure.

Each agent handles one call at a time and is rung only while free; the agent events
(no sessionid) ride with the call that occasioned them (`GeneratedCall.agent_events`).
Once every event is played, all of them get asterCC's `eventid`: one counter for the
whole platform, increasing with event time (events of one second in the order played).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cdrlog.sim.traffic_call import Call, Ledger
from cdrlog.sim.traffic_manual import play_dialin, play_dialout
from cdrlog.sim.traffic_model import (
    Agent,
    GeneratedCall,
    TimeFormat,
    format_time,
    new_sessionid,
    roster,
)

# Agent events that only set the agent's working mode; they change no state.
_MODE_EVENTS = ("acwring", "acwanswer", "acwoff", "workwayall", "workwaydialin", "workwaydialout")


@dataclass(slots=True)
class _Riders:
    """The agent events that ride with one call (see `GeneratedCall.agent_events`)."""

    events: list[dict[str, str]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)


@dataclass(slots=True)
class _Desk:
    """Where an agent stands: free from when, logged in or not, and the call their
    latest agent event rode with (an event at closing time rides with it too)."""

    free_at: datetime
    logged_in: bool = False
    riders: _Riders | None = None


@dataclass(slots=True)
class _Floor:
    rng: random.Random
    time_format: TimeFormat
    opening: datetime
    desks: dict[Agent, _Desk]
    ledger: Ledger = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    # Per team, the numbers of callers nobody answered, not yet called back or back.
    unanswered: dict[str, list[str]] = field(default_factory=dict)

    def returning(self, team: str) -> str | None:
        """Now and then an unanswered caller comes back: the team calls the number
        back, or the caller tries again (the missed-calls report follows both)."""
        waiting = self.unanswered.get(team)
        if waiting and self.rng.random() < 0.5:
            return waiting.pop(0)
        return None

    def agent_event(
        self, riders: _Riders, agent: Agent, event: str, at: datetime, *, phone: bool = False
    ) -> datetime:
        """Send agent event `event` at `at`, riding with `riders`; returns `at`."""
        fields = {
            "agentno": agent.agentno,
            "event": event,
            "eventTime": format_time(self.rng, self.time_format, at),
            "AgentTeamId": agent.team.removeprefix("team"),
        }
        # The manual: agent events "usually" carry AgentGroupId.
        if self.rng.random() < 0.9:
            fields["AgentGroupId"] = agent.group
        if phone:
            fields["agentphone"] = agent.phone
        riders.events.append(fields)
        riders.times.append(at)
        self.ledger.append((at, fields))
        self.desks[agent].riders = riders
        return at

    def later(self, at: datetime, low: int, high: int) -> datetime:
        return at + timedelta(seconds=self.rng.randint(low, high))


def manual_calls(
    rng: random.Random,
    arrival: datetime,
    *,
    calls: int,
    teams: int,
    agents: int,
    scenarios: Mapping[str, float],
    mean_gap_seconds: float,
    time_format: TimeFormat,
) -> list[GeneratedCall]:
    """See `cdrlog.sim.traffic.generate_calls`; `arrival` is already whole UTC seconds."""
    staff = roster(teams, agents)
    floor = _Floor(rng, time_format, arrival, {a: _Desk(arrival) for a in staff})
    generated: list[GeneratedCall] = []
    for _ in range(calls):
        arrival += timedelta(seconds=round(rng.expovariate(1 / mean_gap_seconds)))
        team = rng.randrange(teams)
        members = staff[team * agents : (team + 1) * agents]
        scenario = rng.choices(list(scenarios), weights=list(scenarios.values()))[0]
        generated.append(_one_call(floor, members, scenario, arrival))
    _closing_time(floor)
    _number_events(rng, floor.ledger)
    return generated


def _one_call(floor: _Floor, team: list[Agent], scenario: str, arrival: datetime) -> GeneratedCall:
    """Plays one call of `team` that arrives at `arrival` (or when an agent is free)."""
    rng, dialout = floor.rng, scenario.startswith("dialout")
    queue = [_campaign_agent(floor, team, arrival)] if dialout else _queue(floor, team, arrival)
    at = max(arrival, min(floor.desks[agent].free_at for agent in queue))
    riders = _Riders()
    for agent in queue:
        if not floor.desks[agent].logged_in:
            floor.desks[agent].logged_in = True
            login = max(floor.opening, floor.later(at, -120, -5))
            floor.agent_event(riders, agent, "login", login, phone=True)
    first = queue[0]
    call = Call(
        rng=rng,
        time_format=floor.time_format,
        ledger=floor.ledger,
        sessionid=new_sessionid(rng, floor.used),
        scenario=scenario,
        team_id=first.team.removeprefix("team"),
        group=first.group,
        now=at,
        returning=floor.returning(first.team),
    )
    if dialout:
        play_dialout(call, first)
    else:
        play_dialin(call, queue)
        if call.answer is None:
            floor.unanswered.setdefault(first.team, []).append(call.customer)
    handler = call.answering.agent if call.answering and call.answering.agent else first
    expected = call.expected(handler.team, handler)
    played = GeneratedCall(
        scenario, handler, call.events, call.times, expected, riders.events, riders.times
    )
    for agent in queue:
        handled = dialout or (agent is handler and call.answer is not None)
        _afterwards(floor, riders, agent, call.released[agent], handled)
    return played


def _campaign_agent(floor: _Floor, team: list[Agent], arrival: datetime) -> Agent:
    """The agent a campaign dials out for: any free one, else the first to be free."""
    idle = [agent for agent in team if floor.desks[agent].free_at <= arrival]
    return floor.rng.choice(idle) if idle else min(team, key=lambda a: floor.desks[a].free_at)


def _queue(floor: _Floor, team: list[Agent], arrival: datetime) -> list[Agent]:
    """The agents an inbound call rings one after another: one to three of the free
    agents of one of the team's groups (when none is free, the first to be)."""
    group = floor.rng.choice(sorted({agent.group for agent in team}))
    members = [agent for agent in team if agent.group == group]
    at = max(arrival, min(floor.desks[agent].free_at for agent in members))
    idle = [agent for agent in members if floor.desks[agent].free_at <= at]
    floor.rng.shuffle(idle)
    return idle[: floor.rng.randint(1, min(3, len(idle)))]


def _afterwards(
    floor: _Floor, riders: _Riders, agent: Agent, released: datetime, handled: bool
) -> None:
    """What an agent does once their phone hung up, and when they are free again."""
    rng, at = floor.rng, released
    if not handled:
        # asterCC can pause an agent who let a queue call ring out.
        if rng.random() < 0.25:
            at = floor.agent_event(riders, agent, "paused", at)
            at = floor.agent_event(riders, agent, "nopaused", floor.later(at, 20, 120))
        floor.desks[agent].free_at = floor.later(at, 1, 5)
        return
    if rng.random() < 0.75:
        at = floor.agent_event(riders, agent, "hangupacw", floor.later(at, 0, 2))
        at = floor.agent_event(riders, agent, "acwstop", floor.later(at, 5, 40))
    if rng.random() < 0.06:
        at = floor.agent_event(riders, agent, rng.choice(_MODE_EVENTS), floor.later(at, 0, 3))
    chance = rng.random()
    if chance < 0.1:
        at = floor.agent_event(riders, agent, "paused", floor.later(at, 0, 10))
        at = floor.agent_event(riders, agent, "nopaused", floor.later(at, 30, 300))
    elif chance < 0.14:
        # Already available: a `nopaused` that changes nothing, not even state_since.
        at = floor.agent_event(riders, agent, "nopaused", floor.later(at, 0, 5))
    floor.desks[agent].free_at = floor.later(at, 2, 20)


def _closing_time(floor: _Floor) -> None:
    """At the end some agents log off and some go on a break they are still on."""
    for agent, desk in floor.desks.items():
        if desk.riders is None:
            continue
        chance = floor.rng.random()
        at = floor.later(desk.free_at, 0, 60)
        if chance < 0.25:
            event = "logoff" if floor.rng.random() < 0.8 else "logout"
            floor.agent_event(desk.riders, agent, event, at)
        elif chance < 0.35:
            floor.agent_event(desk.riders, agent, "paused", at)


def _number_events(rng: random.Random, ledger: Ledger) -> None:
    """asterCC's `eventid`: one counter for the platform, in event time order."""
    first = rng.randrange(10**5, 10**7)
    order = sorted(range(len(ledger)), key=lambda index: (ledger[index][0], index))
    for rank, index in enumerate(order):
        ledger[index][1]["eventid"] = str(first + rank)
