"""Calls in the seed example's shape: two legs, CALLER and CALLEE, each event naming its
team (`orgidentity`); no agent events. Pure. Kept exactly as the first version of the
generator played them, so that a seed gives the traffic it always gave."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cdrlog.sim.traffic_model import (
    PLAIN_CAUSES,
    TELLING_CAUSES,
    Agent,
    ExpectedCdr,
    GeneratedCall,
    TimeFormat,
    customer_number,
    disposition_of,
    format_time,
    new_sessionid,
    roster,
)

_LEGS = ("CALLER", "CALLEE")


def seed_calls(
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
    free_at = dict.fromkeys(staff, arrival)
    used: set[str] = set()
    generated: list[GeneratedCall] = []
    for _ in range(calls):
        arrival += timedelta(seconds=round(rng.expovariate(1 / mean_gap_seconds)))
        team = rng.randrange(teams)
        agent = _pick_agent(rng, staff[team * agents : (team + 1) * agents], free_at, arrival)
        scenario = rng.choices(list(scenarios), weights=list(scenarios.values()))[0]
        at = max(arrival, free_at[agent])
        call = _play(_Script(rng, agent, new_sessionid(rng, used), scenario, time_format, at))
        free_at[agent] = call.event_times[-1] + timedelta(seconds=rng.randint(2, 20))
        generated.append(call)
    return generated


def _pick_agent(
    rng: random.Random, team: Sequence[Agent], free_at: Mapping[Agent, datetime], at: datetime
) -> Agent:
    idle = [agent for agent in team if free_at[agent] <= at]
    return rng.choice(idle) if idle else min(team, key=lambda agent: free_at[agent])


@dataclass(slots=True)
class _Script:
    """A call being played out, event by event, on a clock that only moves forward.

    `scenario` is `calltype-outcome`. On an outbound call the agent's phone is the
    CALLER leg and the customer the CALLEE; an inbound call is the other way round.
    """

    rng: random.Random
    agent: Agent
    sessionid: str
    scenario: str
    time_format: TimeFormat
    now: datetime
    calltype: str = field(init=False)
    outcome: str = field(init=False)
    customer: str = field(init=False)
    reached_agent: bool = False
    events: list[dict[str, str]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.calltype, self.outcome = self.scenario.split("-", 1)
        self.customer = customer_number(self.rng)

    def number(self, source: str) -> str:
        agent_leg = "CALLER" if self.calltype == "dialout" else "CALLEE"
        return self.agent.phone if source == agent_leg else self.customer

    def wait(self, low: int, high: int) -> None:
        self.now += timedelta(seconds=self.rng.randint(low, high))

    def talk(self) -> None:
        """A conversation: minutes long, with a long tail, capped at half an hour."""
        self.now += timedelta(seconds=max(3, min(1800, round(self.rng.expovariate(1 / 90)))))

    def emit(
        self, source: str, event: str, *, after: tuple[int, int] = (0, 0), cause: str | None = None
    ) -> datetime:
        """Send `event` on leg `source` `after` (low, high) seconds from the last one."""
        self.wait(*after)
        # An inbound call names its agent only once it reaches the agent's phone (CALLEE).
        self.reached_agent |= self.calltype == "dialout" or source == "CALLEE"
        fields = {
            "sessionid": self.sessionid,
            "calltype": self.calltype,
            "source": source,
            "event": event,
            "eventTime": format_time(self.rng, self.time_format, self.now),
            "activenum": self.number(source),
            "agentno": self.agent.agentno if self.reached_agent else "",
            "orgidentity": self.agent.team,
        }
        if fields["agentno"] and self.rng.random() < 0.7:
            fields["agentphone"] = self.agent.phone
        if event == "hangup" and cause is not None:
            fields["hangupcause"] = cause
        self.events.append(fields)
        self.times.append(self.now)
        return self.now

    def hang_up(self, first: str, after: tuple[int, int], cause: str | None = None) -> datetime:
        """Both legs hang up: `first` `after` seconds (with `cause`, else a plain one), the
        other up to a second later with a plain cause. Returns the call's end."""
        cause = cause or self.rng.choice(PLAIN_CAUSES)
        end = self.emit(first, "hangup", after=after, cause=cause)
        other = "CALLEE" if first == "CALLER" else "CALLER"
        self.emit(other, "hangup", after=(0, 1), cause=self.rng.choice(PLAIN_CAUSES))
        return end

    def expected(self, start: datetime, answer: datetime | None, end: datetime) -> ExpectedCdr:
        # Both ways round, src is the CALLER leg's number and dst the CALLEE's.
        return ExpectedCdr(
            team=self.agent.team,
            diallogid=self.sessionid,
            calltype=self.calltype,
            target={"dialout": "DialOut", "dialin": "DialIn"}[self.calltype],
            src=self.number("CALLER"),
            dst=self.number("CALLEE"),
            agentno=self.agent.agentno,
            starttime=start,
            answertime=answer,
            endtime=end,
            duration=int((end - start).total_seconds()),
            billsec=int((end - answer).total_seconds()) if answer is not None else 0,
            disposition=disposition_of(self.outcome),
            status="closed",
        )


def _play(script: _Script) -> GeneratedCall:
    expected = _dialout(script) if script.calltype == "dialout" else _dialin(script)
    return GeneratedCall(script.scenario, script.agent, script.events, script.times, expected)


def _dialout(script: _Script) -> ExpectedCdr:
    """asterCC rings the agent (CALLER), then dials the customer (CALLEE)."""
    script.emit("CALLER", "ringing")
    script.emit("CALLER", "answer", after=(1, 4))
    ringing = script.emit("CALLEE", "ringing", after=(1, 2))
    answer: datetime | None = None
    if script.outcome == "answered":
        answer = script.emit("CALLEE", "answer", after=(3, 25))
        script.emit("CALLEE", "link")
        script.talk()
        end = script.hang_up(script.rng.choice(_LEGS), after=(0, 0))
    elif script.outcome == "noanswer":
        # Either the customer's phone gives up ringing or the agent stops waiting.
        end = script.hang_up(script.rng.choice(_LEGS), after=(15, 45))
    else:
        cause = script.rng.choice(TELLING_CAUSES[script.outcome])
        end = script.hang_up("CALLEE", after=(0, 6), cause=cause)
    return script.expected(ringing, answer, end)


def _dialin(script: _Script) -> ExpectedCdr:
    """The customer (CALLER) calls in; an IVR picks up, then an agent's phone (CALLEE) rings."""
    start = script.emit("CALLER", "ringing")
    # The IVR's pickup is the platform answering, not an agent: the call stays unanswered.
    script.emit("CALLER", "answer", after=(0, 2))
    script.emit("CALLEE", "ringing", after=(5, 40))
    answer: datetime | None = None
    if script.outcome == "answered":
        answer = script.emit("CALLEE", "answer", after=(2, 15))
        script.talk()
        end = script.hang_up(script.rng.choice(_LEGS), after=(0, 0))
    else:
        end = script.hang_up("CALLER", after=(10, 40))
    return script.expected(start, answer, end)
