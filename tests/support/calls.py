"""Calls as Hypothesis draws them: realistic outbound and inbound calls with the CDR the
contract gives them, events that must change no CDR, and arbitrary events of one session.
Shared by the fold's properties (tests/core) and the ingestor's (tests/service).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from cdrlog.core.events import AGENT as AGENT_LEG
from cdrlog.core.events import CALLEE, CALLER, CONSULT, CONVERSATION, SOURCES, CallEvent
from cdrlog.core.record import Cdr
from cdrlog.core.rules import CDR_EVENTS, DIALIN, DIALOUT, Disposition, Status

TEAM = "acme"
SESSION = "1767574800.42"
BASE = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
CUSTOMER = "13800138000"
AGENT = "1001"
AGENT_EXTENSION = "8001"  # the number asterCC rings on the agent's own leg
CARRIED_PHONE = "8009"  # agentphone, when the events carry it
CAUSES = {
    None: None,
    "16": None,
    "19": None,
    "17": Disposition.BUSY,
    "busy": Disposition.BUSY,
    "BUSY": Disposition.BUSY,
    "34": Disposition.CONGESTION,
    "38": Disposition.CONGESTION,
    "congestion": Disposition.CONGESTION,
    "failed": Disposition.FAILED,
    "Failed": Disposition.FAILED,
}


def event(
    source: str,
    name: str,
    at: datetime | float,
    *,
    calltype: str = DIALOUT,
    activenum: str | None = None,
    agentno: str | None = None,
    agentphone: str | None = None,
    hangupcause: str | None = None,
    uniqueid: str | None = None,
    eventid: int | None = None,
    calleridnum: str | None = None,
    didnumber: str | None = None,
    agent_group: str | None = None,
) -> CallEvent:
    """One event of the call under test; `at` may be seconds after BASE."""
    moment = at if isinstance(at, datetime) else BASE + timedelta(seconds=at)
    return CallEvent(
        team=TEAM,
        sessionid=SESSION,
        calltype=calltype,
        source=source,
        event=name,
        event_time=moment,
        activenum=activenum,
        agentno=agentno,
        agentphone=agentphone,
        hangupcause=hangupcause,
        uniqueid=uniqueid,
        eventid=eventid,
        calleridnum=calleridnum,
        didnumber=didnumber,
        agent_group=agent_group,
    )


# --- A model of realistic calls --------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A realistic call's events, the registry at hand, and the CDR the contract gives."""

    events: list[CallEvent]
    registry: dict[str, str]
    expected: Cdr

    @property
    def calltype(self) -> str:
        return self.expected.calltype


seconds = st.integers(min_value=0, max_value=60)
talk = st.integers(min_value=0, max_value=7200)
registries = st.sampled_from([{}, {AGENT: "8005"}, {"1002": "8006"}])
CONSULTED = "8010"  # the number of the party the agent consults


@dataclass
class Talk:
    """What happened while the parties talked: a hold, a consult that may have joined.
    Times are those of the model; `None` when it did not happen."""

    events: list[CallEvent]
    hold: tuple[datetime, datetime | None] | None = None
    joined: datetime | None = None


@st.composite
def talk_between(
    draw: st.DrawFn, calltype: str, agent_source: str, answer: datetime, uniqueid: str | None
) -> Talk:
    """A hold on the agent's leg, resumed or left running; a consult of a third party
    who may join the conversation (a transfer)."""
    happened = Talk([])
    common: dict[str, Any] = {"calltype": calltype}
    if draw(st.booleans()):
        held = answer + timedelta(seconds=draw(st.integers(-2, 60)))
        resumed = (
            held + timedelta(seconds=draw(st.integers(0, 90))) if draw(st.booleans()) else None
        )
        happened.events.append(event(agent_source, "onhold", held, uniqueid=uniqueid, **common))
        if resumed is not None:
            happened.events.append(
                event(agent_source, "resume", resumed, uniqueid=uniqueid, **common)
            )
        happened.hold = (held, resumed)
    if draw(st.booleans()):
        rang = answer + timedelta(seconds=draw(seconds))
        consult: dict[str, Any] = {"uniqueid": "x1", **common}
        happened.events += [
            event(CONSULT, "ringing", rang, activenum=CONSULTED, **consult),
            event(CONSULT, "answer", rang + timedelta(seconds=3), **consult),
        ]
        if draw(st.booleans()):
            happened.joined = rang + timedelta(seconds=5 + draw(seconds))
            happened.events.append(event(CONSULT, "join", happened.joined, **consult))
        else:
            gone = rang + timedelta(seconds=4)
            happened.events.append(event(CONSULT, "hangup", gone, hangupcause="17", **consult))
    return happened


def expected_hold(talked: Talk, answer: datetime | None, end: datetime | None) -> int | None:
    if end is None:
        return None
    if answer is None or talked.hold is None:
        return 0
    held, resumed = talked.hold
    low, high = max(held, answer), min(resumed or end, end)
    return max(0, int((high - low).total_seconds()))


@st.composite
def outbound_calls(draw: st.DrawFn) -> Call:
    """The manual's AGENT leg or the seed's CALLER as the agent's leg; the agent's ringing
    maybe lost (then the registry gives the phone); a hold, a consult, a transfer."""
    start = BASE + timedelta(seconds=draw(st.integers(0, 10 * 365 * 86_400)))
    phone = CARRIED_PHONE if draw(st.booleans()) else None
    registry = draw(registries)
    agent_source = draw(st.sampled_from([CALLER, AGENT_LEG]))
    group = draw(st.sampled_from([None, "100"]))
    did = draw(st.sampled_from([None, "8008008"]))

    def leg(source: str, name: str, at: datetime, **fields: Any) -> CallEvent:
        mine = source == agent_source
        return event(
            source,
            name,
            at,
            agentno=AGENT,
            agentphone=phone,
            didnumber=did,
            agent_group=group if mine else None,
            uniqueid="a1" if mine else "c1",
            **fields,
        )

    agent_answer = start - timedelta(seconds=draw(seconds))
    agent_rings = agent_answer - timedelta(seconds=draw(seconds))
    rang = draw(st.booleans())
    events = [leg(agent_source, "ringing", agent_rings, activenum=AGENT_EXTENSION)] if rang else []
    events += [
        leg(agent_source, "answer", agent_answer),
        leg(CALLEE, "ringing", start, activenum=CUSTOMER),
    ]
    answer = start + timedelta(seconds=draw(seconds)) if draw(st.booleans()) else None
    talked = Talk([])
    if answer is not None:
        events.append(leg(CALLEE, "answer", answer))
        talked = draw(talk_between(DIALOUT, agent_source, answer, "a1"))
        events += talked.events
    cleared = (answer or start) + timedelta(seconds=draw(talk) if answer else draw(seconds))
    if talked.joined is not None:
        # The agent leaves the customer with the consulted party: no end of the call.
        events.append(leg(agent_source, "hangup", talked.joined + timedelta(seconds=1)))
        cleared = max(cleared, talked.joined + timedelta(seconds=2))
    cause = draw(st.sampled_from(sorted(CAUSES, key=str)))
    hangups = draw(st.sets(st.sampled_from([CALLEE, agent_source, CONVERSATION])))
    ends = []
    for source in sorted(hangups):
        at = cleared + timedelta(seconds=draw(st.integers(0, 2)))
        own_cause = cause if source == CALLEE else draw(st.sampled_from([None, "16"]))
        events.append(leg(source, "hangup", at, hangupcause=own_cause))
        if source != agent_source or talked.joined is None:
            ends.append(at)  # the first agent's leg no longer ends a transferred call
    end = min(ends, default=None)
    expected = Cdr(
        team=TEAM,
        diallogid=SESSION,
        calltype=DIALOUT,
        target="DialOut",
        src=phone or (AGENT_EXTENSION if rang else registry.get(AGENT)),
        dst=CUSTOMER,
        agentno=AGENT,
        starttime=start,
        answertime=answer,
        endtime=end,
        duration=whole_seconds(start, end),
        billsec=billsec(answer, end),
        disposition=disposition(answer, cause if CALLEE in hangups else None),
        status=Status.CLOSED if end else Status.OPEN,
        did=did,
        agent_group=group,
        hold_seconds=expected_hold(talked, answer, end),
        transferred_to=CONSULTED if talked.joined else None,
    )
    return Call(events, registry, expected)


@dataclass(frozen=True)
class Queued:
    """An agent a queue may ring: number, phone, queue, leg id."""

    agentno: str
    phone: str
    group: str
    uniqueid: str


QUEUE = (
    Queued("1002", "8002", "q2", "u2"),
    Queued("1003", "8003", "q3", "u3"),
    Queued("1004", "8004", "q4", "u4"),
)


@dataclass(frozen=True)
class Hunt:
    """What a queue did: the agents' legs' events, whose phones rang (in order), who
    answered and when, whose phone still rings, and the time of its last event."""

    events: list[CallEvent]
    rang: tuple[Queued, ...]
    answered_by: Queued | None
    answer: datetime | None
    ringing: Queued | None
    last: datetime


Ring = Callable[..., CallEvent]


@st.composite
def queue_hunts(draw: st.DrawFn, after: datetime, ring: Ring) -> Hunt:
    """A queue rings up to three agents, one after another (each phone stops before the
    next rings) or overlapping (the next rings while the others still ring, as a ring-all
    queue or a short ring timeout does); one of them answers, or none. A phone that rang
    without answering stops (its leg hangs up, cause 19) before the answer or just
    after it (the queue stops ringing the others); when nobody answered, the last one
    may still be ringing. `ring(agent, event, at, **fields)` builds an event of that
    agent's leg."""
    rang = QUEUE[: draw(st.integers(0, 3))]
    overlapping = draw(st.booleans())
    picks_up, still_rings = draw(st.booleans()), draw(st.booleans())
    answered_by: Queued | None = None
    if rang and picks_up:
        answered_by = draw(st.sampled_from(rang)) if overlapping else rang[-1]
    ringing = rang[-1] if rang and not picks_up and still_rings else None
    events: list[CallEvent] = []
    rings: dict[Queued, datetime] = {}
    last = after
    for agent in rang:
        last += timedelta(seconds=draw(st.integers(0, 5) if overlapping else seconds))
        rings[agent] = last
        events.append(ring(agent, "ringing", last, activenum=agent.phone))
        if not overlapping and agent not in (answered_by, ringing):
            # Nobody picked up: the phone stops, the queue rings the next agent.
            last += timedelta(seconds=draw(st.integers(1, 20)))
            events.append(ring(agent, "hangup", last, hangupcause="19"))
    answer = None
    if answered_by is not None:
        answer = last + timedelta(seconds=draw(seconds))
        events.append(ring(answered_by, "answer", answer))
    for agent in rang if overlapping else ():
        if agent in (answered_by, ringing):
            continue
        stops = rings[agent] + timedelta(seconds=draw(st.integers(1, 30)))
        if answer is not None and stops > answer:
            stops = answer + timedelta(seconds=draw(st.integers(0, 2)))
        events.append(ring(agent, "hangup", stops, hangupcause="19"))
        last = max(last, stops)
    return Hunt(events, rang, answered_by, answer, ringing, max(last, answer or last))


@st.composite
def inbound_calls(draw: st.DrawFn) -> Call:
    """The customer's `incoming` (or the seed's ringing), an IVR pickup, a queue hunting
    among up to three agents (`queue_hunts`); hangups of any of the customer, the
    answering agent and the conversation; a hold, a consult, a transfer. The agents'
    legs carry their agent number, their leg id, or both (the manual's push names no
    agent): the contract tells legs apart by `uniqueid`, else by `agentno`."""
    start = BASE + timedelta(seconds=draw(st.integers(0, 10 * 365 * 86_400)))
    registry = draw(registries)
    agent_source = draw(st.sampled_from([CALLEE, AGENT_LEG]))
    ids = draw(st.booleans())  # legs told apart by uniqueid, or only by agent number
    numbered = draw(st.booleans()) if ids else True
    did = draw(st.sampled_from([None, "4008008"]))
    first = draw(st.sampled_from(["incoming", "ringing"]))
    number = CUSTOMER if first == "ringing" or draw(st.booleans()) else None
    common: dict[str, Any] = {"calltype": DIALIN, "didnumber": did, "calleridnum": CUSTOMER}
    events = [event(CALLER, first, start, activenum=number, **common)]
    ivr = start
    if draw(st.booleans()):  # an IVR or queue picks up: not an answer by an agent
        ivr = start + timedelta(seconds=draw(seconds))
        events.append(event(CALLER, "answer", ivr, **common))

    def whose(agent: Queued) -> dict[str, Any]:
        return {
            "agentno": agent.agentno if numbered else None,
            "uniqueid": agent.uniqueid if ids else None,
        }

    def ring(agent: Queued, name: str, at: datetime, **fields: Any) -> CallEvent:
        return event(
            agent_source, name, at, agent_group=agent.group, **whose(agent), **fields, **common
        )

    hunt = draw(queue_hunts(ivr, ring))
    answered_by, answer = hunt.answered_by, hunt.answer
    events += hunt.events
    talked = Talk([])
    if answered_by is not None and answer is not None:
        talked = draw(talk_between(DIALIN, agent_source, answer, whose(answered_by)["uniqueid"]))
        events += talked.events
    cleared = (answer or hunt.last) + timedelta(seconds=draw(talk) if answer else draw(seconds) + 1)
    if talked.joined is not None and answered_by is not None:
        events.append(
            event(
                agent_source,
                "hangup",
                talked.joined + timedelta(seconds=1),
                **whose(answered_by),
                **common,
            )
        )
        cleared = max(cleared, talked.joined + timedelta(seconds=2))
    cause = draw(st.sampled_from(sorted(CAUSES, key=str)))
    choices = [CALLER, CONVERSATION] + ([agent_source] if answered_by else [])
    hangups = draw(st.sets(st.sampled_from(choices)))
    ends = []
    for source in sorted(hangups):
        at = cleared + timedelta(seconds=draw(st.integers(0, 2)))
        own_cause = cause if source == CALLER else draw(st.sampled_from([None, "16"]))
        leg: dict[str, Any] = {}
        if source == agent_source and answered_by is not None:
            leg = whose(answered_by)
        events.append(event(source, "hangup", at, hangupcause=own_cause, **leg, **common))
        if source != agent_source or talked.joined is None:
            ends.append(at)
    end = min(ends, default=None)
    if hunt.ringing is not None and end is not None:
        # The customer gave up while a phone rang: the queue stops it, or its agent picks
        # up a moment too late. An answer after the call ended answers nothing.
        stops = end + timedelta(seconds=draw(st.integers(1, 3)))
        if draw(st.booleans()):
            events.append(ring(hunt.ringing, "answer", stops))
            stops += timedelta(seconds=draw(st.integers(0, 2)))
        events.append(ring(hunt.ringing, "hangup", stops, hangupcause="16"))
    # The contract: the agent who answered, else the first whose phone rang.
    handler = answered_by or (hunt.rang[0] if hunt.rang else None)
    expected = Cdr(
        team=TEAM,
        diallogid=SESSION,
        calltype=DIALIN,
        target="DialIn",
        src=CUSTOMER,
        dst=handler.phone if handler else None,
        agentno=handler.agentno if handler and numbered else None,
        starttime=start,
        answertime=answer,
        endtime=end,
        duration=whole_seconds(start, end),
        billsec=billsec(answer, end),
        disposition=disposition(answer, cause if CALLER in hangups else None),
        status=Status.CLOSED if end else Status.OPEN,
        did=did,
        agent_group=handler.group if handler else None,
        hold_seconds=expected_hold(talked, answer, end),
        transferred_to=CONSULTED if talked.joined else None,
    )
    return Call(events, registry, expected)


def whole_seconds(since: datetime, until: datetime | None) -> int | None:
    return None if until is None else max(0, int((until - since).total_seconds()))


def billsec(answer: datetime | None, end: datetime | None) -> int | None:
    if end is None:
        return None
    return 0 if answer is None else max(0, int((end - answer).total_seconds()))


def disposition(answer: datetime | None, cause: str | None) -> Disposition:
    if answer is not None:
        return Disposition.ANSWER
    return CAUSES[cause] or Disposition.NOANSWER


calls = st.one_of(outbound_calls(), inbound_calls())


@st.composite
def junk(draw: st.DrawFn, calltype: str) -> CallEvent:
    """An event of the same call that must change no CDR: a name the contract does not
    define (link, transfer), a source it does not define, or another call type."""
    kind = draw(st.sampled_from(["name", "source", "calltype"]))
    names = ["link", "transfer", "dtmf"] if kind == "name" else ["ringing", "answer", "hangup"]
    return event(
        draw(
            st.sampled_from(["QUEUE", "IVR"] if kind == "source" else [CALLER, CALLEE, AGENT_LEG])
        ),
        draw(st.sampled_from(names + ["onhold", "join"] * (kind != "name"))),
        draw(st.integers(-60, 10 * 365 * 86_400)),
        calltype=draw(st.sampled_from(["dialtransfer", "queue"]))
        if kind == "calltype"
        else calltype,
        activenum=draw(st.sampled_from([None, "1", "13800000000"])),
        agentno=draw(st.sampled_from([None, "1", "1002"])),
        agentphone=draw(st.sampled_from([None, "7777"])),
        hangupcause=draw(st.sampled_from([None, "17", "failed"])),
        didnumber=draw(st.sampled_from([None, "999"])),
        agent_group=draw(st.sampled_from([None, "q9"])),
    )


@st.composite
def calls_with_junk(draw: st.DrawFn) -> Call:
    call = draw(calls)
    extra = draw(st.lists(junk(call.calltype), max_size=4))
    return replace(call, events=call.events + extra)


# Arbitrary events of one session: mixed and unknown call types, any leg, any event, few
# distinct times so that ties are common. Nothing realistic is promised about them; the
# fold must still be a function of their set.
wild_events = st.lists(
    st.builds(
        event,
        st.sampled_from([CALLER, CALLEE, AGENT_LEG, CONSULT, CONVERSATION, "QUEUE"]),
        st.sampled_from(
            ["ringing", "answer", "hangup", "incoming", "join", "onhold", "resume", "link"]
        ),
        st.sampled_from([0, 1, 2, 30, 30.5, 61.25]),
        calltype=st.sampled_from([DIALOUT, DIALIN, "queue"]),
        activenum=st.sampled_from([None, "1", "2"]),
        agentno=st.sampled_from([None, "1001", "1002"]),
        agentphone=st.sampled_from([None, "8001", "8002"]),
        hangupcause=st.sampled_from([None, "16", "17", "34", "failed"]),
        uniqueid=st.sampled_from([None, "u1", "u2"]),
        eventid=st.sampled_from([None, 1, 2, 3]),
        calleridnum=st.sampled_from([None, "139"]),
        didnumber=st.sampled_from([None, "400", "800"]),
        agent_group=st.sampled_from([None, "q1", "q2"]),
    ),
    max_size=12,
)


@st.composite
def event_sets(draw: st.DrawFn) -> tuple[list[CallEvent], dict[str, str]]:
    if draw(st.booleans()):
        call = draw(calls_with_junk())
        return call.events, call.registry
    return draw(wild_events), draw(st.sampled_from([{}, {"1001": "8005"}]))


# --- What every CDR and every prefix of a call show ------------------------------------


AGENT_LEGS = {DIALOUT: {CALLER, AGENT_LEG}, DIALIN: {CALLEE, AGENT_LEG}}
CUSTOMER_LEG = {DIALOUT: CALLEE, DIALIN: CALLER}


def proves_call(item: CallEvent, calltype: str) -> bool:
    """Outbound, the customer's leg was dialled; inbound, any leg event of the call."""
    if item.calltype != calltype or item.source not in SOURCES:
        return False
    if calltype == DIALIN:
        return item.event in CDR_EVENTS
    return item.source == CALLEE and item.event in {"ringing", "answer", "hangup"}


def answers(item: CallEvent, calltype: str) -> bool:
    """Only the customer answering an outbound call, or an agent an inbound one: on an
    inbound call a CALLER answer is the IVR; on an outbound call the agent's leg
    answering is the agent picking up."""
    if item.event != "answer" or item.calltype != calltype:
        return False
    return item.source == CALLEE if calltype == DIALOUT else item.source in AGENT_LEGS[DIALIN]


def ends_surely(item: CallEvent, calltype: str) -> bool:
    """A hangup that ends the call whatever else happened: the customer's or the whole
    conversation's."""
    return (
        item.event == "hangup"
        and item.calltype == calltype
        and item.source in {CUSTOMER_LEG[calltype], CONVERSATION}
    )


def answered_in_time(events: Iterable[CallEvent], calltype: str) -> bool:
    """Whether an event answered the call before a hangup that surely ends it: an agent
    who picks up as the customer gives up answers nothing."""
    seen = list(events)
    ended = min((e.event_time for e in seen if ends_surely(e, calltype)), default=None)
    return any(answers(e, calltype) and (ended is None or e.event_time <= ended) for e in seen)


def check_invariants(cdr: Cdr) -> None:
    """What holds of any CDR the fold returns: an ended call (closed, or timed out) has
    its end, its lengths in whole seconds rounded half up from its times, and was not
    answered after it ended; an open one has none of them."""
    if cdr.status is Status.OPEN:
        assert (cdr.endtime, cdr.duration, cdr.billsec, cdr.hold_seconds) == (None,) * 4
    else:
        assert cdr.endtime is not None
        assert cdr.duration is not None
        assert cdr.billsec is not None
        assert cdr.hold_seconds is not None
        assert cdr.duration == rounded_seconds(cdr.starttime, cdr.endtime)
        if cdr.answertime is None:
            assert cdr.billsec == 0
        else:
            assert cdr.answertime <= cdr.endtime
            assert cdr.billsec == min(cdr.duration, rounded_seconds(cdr.answertime, cdr.endtime))
        assert 0 <= cdr.billsec <= cdr.duration
        assert 0 <= cdr.hold_seconds <= cdr.billsec
    assert (cdr.disposition is Disposition.ANSWER) == (cdr.answertime is not None)
    assert cdr.target == {DIALOUT: "DialOut", DIALIN: "DialIn"}[cdr.calltype]


def rounded_seconds(since: datetime, until: datetime) -> int:
    """Whole seconds from one time to another, rounded half up, never negative."""
    return max(0, math.floor((until - since).total_seconds() + 0.5))
