"""What generated traffic is made of: agents, calls, and what the receiver must make of
them (expected CDRs and agent states). Pure (stdlib only); see `cdrlog.sim.traffic`."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

TimeFormat = Literal["text", "epoch", "mixed"]
# `manual`: asterCC's interface manual (AGENT legs, CONVERSATION, queues, holds,
# consults, agent events, no orgidentity). `seed`: the seed example's CALLER/CALLEE only.
Style = Literal["manual", "seed"]

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

# Causes that say why an unanswered call ended, per outcome, in Q.850 codes and words.
TELLING_CAUSES: Mapping[str, Sequence[str]] = {
    "busy": ("17", "busy"),
    "congestion": ("34", "38", "congestion"),
    "failed": ("failed",),
}
# Causes that tell nothing (normal clearing, no user responding); None sends no field.
PLAIN_CAUSES: Sequence[str | None] = ("16", "16", "19", None)


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent of a team, the phone (extension) bound to them at login, and the agent
    group (queue, `AgentGroupId`) whose inbound calls ring them."""

    team: str
    agentno: str
    phone: str
    group: str = ""


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
    did: str | None = None
    agent_group: str | None = None
    hold_seconds: int = 0
    transferred_to: str | None = None


@dataclass(frozen=True, slots=True)
class ExpectedAgent:
    """An agent as `GET /api/v1/agents` must list it once all the traffic is in."""

    team: str
    agentno: str
    phone: str | None
    agent_group: str | None
    state: str
    state_since: datetime | None


@dataclass(frozen=True, slots=True)
class GeneratedCall:
    """One call: its push events in time order, when each happened, and its CDR.

    `agent` is the agent who handled the call (on an inbound call nobody answered: the
    first whose phone rang). `agent_events` are the agent events (login, wrap-up,
    pauses, ...; no sessionid) of the call's team that the call occasioned, with their
    times: they are not the call's own events, but travel with it to the receiver.
    """

    scenario: str
    agent: Agent
    events: list[dict[str, str]]
    event_times: list[datetime]
    expected: ExpectedCdr
    agent_events: list[dict[str, str]] = field(default_factory=list)
    agent_event_times: list[datetime] = field(default_factory=list)

    @property
    def team(self) -> str:
        return self.agent.team

    @property
    def last_moment(self) -> datetime:
        """When the last of the call's events, its agent events included, happens."""
        return max([*self.event_times, *self.agent_event_times])


def roster(teams: int, agents: int) -> list[Agent]:
    """Teams `team1`..`teamN`, each with agents `1001`.. on phones `8001`..; agents take
    turns between the team's two agent groups `N01` and `N02`, so that each queue rings
    about half of the team."""
    return [
        Agent(
            team=f"team{t}",
            agentno=str(1000 + a),
            phone=f"8{a:03d}",
            group=f"{t}{1 + (a - 1) % 2:02d}",
        )
        for t in range(1, teams + 1)
        for a in range(1, agents + 1)
    ]


def new_sessionid(rng: random.Random, used: set[str]) -> str:
    sessionid = f"{rng.getrandbits(64):016x}"
    while sessionid in used:
        sessionid = f"{rng.getrandbits(64):016x}"
    used.add(sessionid)
    return sessionid


def customer_number(rng: random.Random) -> str:
    """A mobile (1 + 10 digits) or a landline with its trunk prefix and area code."""
    if rng.random() < 0.6:
        return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
    area = rng.choice(("10", "20", "21", "571", "755", "871"))
    digits = 10 - len(area)
    return f"0{area}{rng.randrange(2 * 10 ** (digits - 1), 10**digits)}"


def format_time(rng: random.Random, style: TimeFormat, at: datetime) -> str:
    """eventTime as asterCC writes it: UTC `YYYY-MM-DD HH:MM:SS` or epoch seconds."""
    if style == "mixed":
        style = rng.choice(("text", "epoch"))
    return str(int(at.timestamp())) if style == "epoch" else at.strftime("%Y-%m-%d %H:%M:%S")


def disposition_of(outcome: str) -> str:
    if outcome == "answered":
        return "ANSWER"
    return outcome.upper() if outcome in TELLING_CAUSES else "NOANSWER"
