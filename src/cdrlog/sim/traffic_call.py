"""A call in the making, in the shape of asterCC's interface manual (contract section 6). Pure.

The agent's own phone is the `AGENT` leg whichever way the call goes; `CALLER` is the
customer calling in, `CALLEE` the customer called; `CONSULT` a third party the agent
consulted; `CONVERSATION` the call as a whole, whose `hangup` closes every call. Each leg
has its own `uniqueid` and `channel`; no event names the team (the per-team URL does).
The script keeps, as it goes, the facts the contract builds a CDR from (when the call
started, was answered, ended; the holds; who joined), so the expected CDR comes from
the script, never from reading the events back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cdrlog.sim.traffic_model import (
    PLAIN_CAUSES,
    Agent,
    ExpectedCdr,
    TimeFormat,
    customer_number,
    disposition_of,
    format_time,
)

Ledger = list[tuple[datetime, dict[str, str]]]
# Who a consulted party is: a supervisor's extension or a number outside.
SUPERVISORS = ("6001", "6002", "6003")
# userdata is the CRM's text, passed through verbatim: it may hold `&`, `=`, `+`, `%`.
_USERDATA = ("ticket=4711&lang=en", "vip+gold", "campaign 12, 50% off", "crm:8812")


@dataclass(slots=True)
class Leg:
    """One party's channel in the call."""

    source: str
    uniqueid: str
    number: str
    channel: str
    agent: Agent | None = None


@dataclass(slots=True)
class Call:
    """A call being played out on a clock that only moves forward. Every event also
    goes to `ledger`, in the order played, which numbers them (`eventid`) later."""

    rng: random.Random
    time_format: TimeFormat
    ledger: Ledger
    sessionid: str
    scenario: str
    team_id: str
    group: str
    now: datetime
    calltype: str = field(init=False)
    outcome: str = field(init=False)
    customer: str = field(init=False)
    common: dict[str, str] = field(init=False)
    leg_base: int = field(init=False)
    events: list[dict[str, str]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    legs: int = 0
    start: datetime | None = None
    answer: datetime | None = None
    end: datetime | None = None
    answering: Leg | None = None
    joined: str | None = None
    holds: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    released: dict[Agent, datetime] = field(default_factory=dict)
    # A customer whose earlier call went unanswered: called back, or calling again.
    returning: str | None = None

    def __post_init__(self) -> None:
        self.calltype, self.outcome = self.scenario.split("-", 1)
        drawn = customer_number(self.rng)
        self.customer = self.returning or drawn
        self.common = self._common_fields()
        self.leg_base = 10 * self.rng.randrange(10_000)

    def _common_fields(self) -> dict[str, str]:
        """What every event of the call carries besides its leg's own fields."""
        rng, dialin = self.rng, self.calltype == "dialin"
        common = {"calleridnum": self.customer}
        # Inbound, the DID dialled; outbound, sometimes the DID shown as caller id.
        if dialin or rng.random() < 0.3:
            common["didnumber"] = f"80080{self.group}{rng.randrange(2)}"
        if rng.random() < 0.4:
            common |= {"modeltype": "Queue" if dialin else "Campaign"}
            common |= {"model_id": str(rng.randint(1, 20))}
        if rng.random() < 0.2:
            common["userdata"] = rng.choice(_USERDATA)
        # `from` stands in for `calltype` on some pushes (contract section 1).
        common["calltype" if rng.random() < 0.9 else "from"] = self.calltype
        return common

    def leg(self, source: str, number: str, agent: Agent | None = None) -> Leg:
        self.legs += 1
        # Asterisk's form: the channel's creation second, a dot, a running number.
        uniqueid = f"{int(self.now.timestamp())}.{self.leg_base + self.legs}"
        tag = f"{self.rng.getrandbits(32):08x}"
        if source == "AGENT" or number in SUPERVISORS:
            channel = f"SIP/{number}-{tag}"
        else:
            channel = f"Local/{number}@hosted-{self.calltype}-{tag[:4]};1"
        return Leg(source, uniqueid, number, channel, agent)

    def wait(self, low: int, high: int) -> None:
        self.now += timedelta(seconds=self.rng.randint(low, high))

    def talk(self, mean: float = 90) -> None:
        """A conversation: minutes long, with a long tail, capped at half an hour."""
        self.now += timedelta(seconds=max(3, min(1800, round(self.rng.expovariate(1 / mean)))))

    def emit(
        self,
        leg: Leg | None,
        event: str,
        *,
        after: tuple[int, int] = (0, 0),
        cause: str | None = None,
        without: str | None = None,
    ) -> datetime:
        """Send `event` on `leg` (None: the CONVERSATION) `after` (low, high) seconds
        from the last event, leaving out the field `without`."""
        self.wait(*after)
        sent = self._fields(leg, event)
        sent.pop(without or "", None)
        if cause is not None:
            sent["hangupcause"] = cause
        self.events.append(sent)
        self.times.append(self.now)
        self.ledger.append((self.now, sent))
        if event == "hangup":
            self._hung_up(leg)
        return self.now

    def _fields(self, leg: Leg | None, event: str) -> dict[str, str]:
        sent = {"source": leg.source if leg else "CONVERSATION", "event": event}
        if leg is not None:
            sent |= {"activenum": leg.number, "uniqueid": leg.uniqueid, "channel": leg.channel}
        sent |= {
            "sessionid": self.sessionid,
            "eventTime": format_time(self.rng, self.time_format, self.now),
            "AgentTeamId": self.team_id,
            "AgentGroupId": self.group,
            **self.common,
        }
        if leg is not None and leg.agent is not None:
            sent["agentno"] = leg.agent.agentno
            if self.rng.random() < 0.5:
                sent["agentphone"] = leg.agent.phone
        return sent

    def _hung_up(self, leg: Leg | None) -> None:
        if leg is not None and leg.agent is not None:
            self.released[leg.agent] = self.now
        if self._ends_call(leg) and self.end is None:
            self.end = self.now

    def _ends_call(self, leg: Leg | None) -> bool:
        """Whether this hangup ends the call for the customer: the customer's own leg,
        the platform's CONVERSATION, or the agent who had the customer on the line
        (outbound: the only agent; inbound: the one who answered) until a consulted
        party took over. Never a consulted party, nor a phone that only rang."""
        if leg is None or leg.source in ("CALLER", "CALLEE"):
            return True
        if leg.source != "AGENT" or self.joined is not None:
            return False
        return self.calltype == "dialout" or leg is self.answering

    def plain_cause(self) -> str | None:
        return self.rng.choice(PLAIN_CAUSES)

    def expected(self, team: str, agent: Agent) -> ExpectedCdr:
        """The CDR of the call as played, named after `agent` (who answered, or for an
        inbound call nobody answered, the first whose phone rang)."""
        if self.start is None or self.end is None:
            raise RuntimeError("the call was not played to its end")
        start, answer, end = self.start, self.answer, self.end
        dialout = self.calltype == "dialout"
        return ExpectedCdr(
            team=team,
            diallogid=self.sessionid,
            calltype=self.calltype,
            target="DialOut" if dialout else "DialIn",
            src=agent.phone if dialout else self.customer,
            dst=self.customer if dialout else agent.phone,
            agentno=agent.agentno,
            starttime=start,
            answertime=answer,
            endtime=end,
            duration=_seconds(start, end),
            billsec=_seconds(answer, end) if answer is not None else 0,
            disposition=disposition_of(self.outcome),
            status="closed",
            did=self.common.get("didnumber"),
            agent_group=self.group,
            hold_seconds=self._held(answer, end) if answer is not None else 0,
            transferred_to=self.joined,
        )

    def _held(self, answer: datetime, end: datetime) -> int:
        """A hold the call ended in runs to the end; the script never overlaps two."""
        spans = [(max(on, answer), min(off or end, end)) for on, off in self.holds]
        return sum(_seconds(on, off) for on, off in spans if off > on)


def _seconds(since: datetime, until: datetime) -> int:
    return int((until - since).total_seconds())
