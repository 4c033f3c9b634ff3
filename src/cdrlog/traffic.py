"""Realistic asterCC call traffic, and the CDR each call must produce. Pure (stdlib only).

`generate_calls` plays out calls between a team's agents and customers and returns, per
call, the push events asterCC would send (form fields, all strings) together with an
`ExpectedCdr` worked out from the call's own script, never from cdrlog's fold: the two
are independent, so comparing them tests the receiver. `delivery_order` then turns the
calls into what a receiver really sees: calls interleaved, some events re-sent, some late.
Randomness and time come in as arguments; equal arguments give equal traffic.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

TimeFormat = Literal["text", "epoch", "mixed"]

# Relative frequencies of call flows; outbound campaigns dominate a call center's day.
SCENARIOS: Mapping[str, float] = {
    "dialout-answered": 35,
    "dialout-noanswer": 15,
    "dialout-busy": 7,
    "dialout-congestion": 3,
    "dialout-failed": 2,
    "dialin-answered": 28,
    "dialin-unanswered": 10,
}

_LEGS = ("CALLER", "CALLEE")
# Causes that say why an unanswered call ended, per outcome, in Q.850 codes and words.
_TELLING_CAUSES: Mapping[str, Sequence[str]] = {
    "busy": ("17", "busy"),
    "congestion": ("34", "38", "congestion"),
    "failed": ("failed",),
}
# Causes that tell nothing (normal clearing, no user responding); None sends no field.
_PLAIN_CAUSES: Sequence[str | None] = ("16", "16", "19", None)


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent of a team and the phone (extension) bound to them at login."""

    team: str
    agentno: str
    phone: str


@dataclass(frozen=True, slots=True)
class ExpectedCdr:
    """The CDR the contract demands for one call; times are aware UTC, whole seconds."""

    team: str
    diallogid: str
    calltype: str
    target: str
    src: str
    dst: str
    agentno: str
    starttime: datetime
    answertime: datetime | None
    endtime: datetime
    duration: int
    billsec: int
    disposition: str
    status: str


def stored_as_expected(values: Mapping[Any, Any]) -> ExpectedCdr:
    """A stored `cdr` row's columns in the shape of `ExpectedCdr`, to compare the two."""
    return ExpectedCdr(
        team=values["orgidentity"],
        **{name: values[name] for name in ExpectedCdr.__dataclass_fields__ if name != "team"},
    )


@dataclass(frozen=True, slots=True)
class GeneratedCall:
    """One call: its push events in time order, when each happened, and its CDR."""

    scenario: str
    agent: Agent
    events: list[dict[str, str]]
    event_times: list[datetime]
    expected: ExpectedCdr


class Delivery(NamedTuple):
    """One POST a receiver gets: an event (a fresh dict) and the call it belongs to."""

    call: GeneratedCall
    event: dict[str, str]


def roster(teams: int, agents: int) -> list[Agent]:
    """Teams `team1`..`teamN`, each with agents `1001`.. on phones `8001`.."""
    return [
        Agent(team=f"team{t}", agentno=str(1000 + a), phone=f"8{a:03d}")
        for t in range(1, teams + 1)
        for a in range(1, agents + 1)
    ]


def generate_calls(
    rng: random.Random,
    start: datetime,
    *,
    calls: int = 100,
    teams: int = 1,
    agents: int = 5,
    scenarios: Mapping[str, float] = SCENARIOS,
    mean_gap_seconds: float = 4.0,
    time_format: TimeFormat = "text",
) -> list[GeneratedCall]:
    """`calls` calls arriving from `start` (aware; cut to whole seconds) about
    `mean_gap_seconds` apart, spread over the teams. An agent takes one call at a time,
    so a call for a team whose agents are all busy waits for the first one free.
    `time_format` writes eventTime as UTC `YYYY-MM-DD HH:MM:SS`, epoch seconds, or
    either at random per event.
    """
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if teams < 1 or agents < 1 or calls < 0:
        raise ValueError("teams and agents must be at least 1, calls at least 0")
    if unknown := sorted(set(scenarios) - set(SCENARIOS)):
        raise ValueError(f"unknown scenarios {unknown}; known: {sorted(SCENARIOS)}")
    arrival = start.astimezone(UTC).replace(microsecond=0)
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
        call = _play(_Script(rng, agent, _new_sessionid(rng, used), scenario, time_format, at))
        free_at[agent] = call.event_times[-1] + timedelta(seconds=rng.randint(2, 20))
        generated.append(call)
    return generated


def delivery_order(
    calls: Sequence[GeneratedCall],
    rng: random.Random,
    *,
    duplicate_ratio: float = 0.0,
    shuffle_ratio: float = 0.0,
) -> list[Delivery]:
    """Every event of every call, interleaved by event time, as a receiver gets them.

    `round(duplicate_ratio * events)` distinct events are sent twice, the copy right
    after the original (a re-send after a lost answer). Then `round(shuffle_ratio *
    deliveries)` positions trade places at random: 0 keeps each call's events in time
    order, 1 shuffles everything. Both ratios must lie in [0, 1].
    """
    for name, ratio in (("duplicate_ratio", duplicate_ratio), ("shuffle_ratio", shuffle_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {ratio}")
    timed = sorted(
        (moment, c, e) for c, call in enumerate(calls) for e, moment in enumerate(call.event_times)
    )
    resent = set(rng.sample(range(len(timed)), round(duplicate_ratio * len(timed))))
    ordered: list[Delivery] = []
    for position, (_, c, e) in enumerate(timed):
        for _copy in range(2 if position in resent else 1):
            ordered.append(Delivery(calls[c], dict(calls[c].events[e])))
    moved = rng.sample(range(len(ordered)), round(shuffle_ratio * len(ordered)))
    places = rng.sample(moved, len(moved))
    shuffled = list(ordered)
    for source, target in zip(moved, places, strict=True):
        shuffled[target] = ordered[source]
    return shuffled


def traffic_span(calls: Sequence[GeneratedCall], start: datetime) -> timedelta:
    """How long after `start` the last event of `calls` happens (zero for no calls)."""
    last = max((call.event_times[-1] for call in calls), default=start)
    return max(timedelta(0), last - start)


def _pick_agent(
    rng: random.Random, team: Sequence[Agent], free_at: Mapping[Agent, datetime], at: datetime
) -> Agent:
    idle = [agent for agent in team if free_at[agent] <= at]
    return rng.choice(idle) if idle else min(team, key=lambda agent: free_at[agent])


def _new_sessionid(rng: random.Random, used: set[str]) -> str:
    sessionid = f"{rng.getrandbits(64):016x}"
    while sessionid in used:
        sessionid = f"{rng.getrandbits(64):016x}"
    used.add(sessionid)
    return sessionid


def _customer_number(rng: random.Random) -> str:
    """A mobile (1 + 10 digits) or a landline with its trunk prefix and area code."""
    if rng.random() < 0.6:
        return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
    area = rng.choice(("10", "20", "21", "571", "755", "871"))
    digits = 10 - len(area)
    return f"0{area}{rng.randrange(2 * 10 ** (digits - 1), 10**digits)}"


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
        self.customer = _customer_number(self.rng)

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
            "eventTime": self.format_time(self.now),
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

    def format_time(self, at: datetime) -> str:
        style = self.time_format
        if style == "mixed":
            style = self.rng.choice(("text", "epoch"))
        return str(int(at.timestamp())) if style == "epoch" else at.strftime("%Y-%m-%d %H:%M:%S")

    def hang_up(self, first: str, after: tuple[int, int], cause: str | None = None) -> datetime:
        """Both legs hang up: `first` `after` seconds (with `cause`, else a plain one), the
        other up to a second later with a plain cause. Returns the call's end."""
        cause = cause or self.rng.choice(_PLAIN_CAUSES)
        end = self.emit(first, "hangup", after=after, cause=cause)
        other = "CALLEE" if first == "CALLER" else "CALLER"
        self.emit(other, "hangup", after=(0, 1), cause=self.rng.choice(_PLAIN_CAUSES))
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
            disposition=_disposition(self.outcome),
            status="closed",
        )


def _play(script: _Script) -> GeneratedCall:
    expected = _dialout(script) if script.calltype == "dialout" else _dialin(script)
    return GeneratedCall(script.scenario, script.agent, script.events, script.times, expected)


def _disposition(outcome: str) -> str:
    if outcome == "answered":
        return "ANSWER"
    return outcome.upper() if outcome in _TELLING_CAUSES else "NOANSWER"


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
        cause = script.rng.choice(_TELLING_CAUSES[script.outcome])
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
