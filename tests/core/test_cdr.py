"""fold_call: a call's CDR is a function of the set of its events.

Properties first (any order, any duplication, any split between senders, every prefix),
then a few examples that pin down choices the contract makes explicit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.core.cdr import fold_call
from cdrlog.core.events import AGENT as AGENT_LEG
from cdrlog.core.events import CALLEE, CALLER, CONSULT, CONVERSATION, SOURCES, CallEvent
from cdrlog.core.record import Cdr
from cdrlog.core.rules import CALL_TYPES, CDR_EVENTS, DIALIN, DIALOUT, Disposition, Status

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


# Agents a queue rings one after another: number, phone, queue, leg id.
QUEUE = (("1002", "8002", "q2", "u2"), ("1003", "8003", "q3", "u3"))


@st.composite
def inbound_calls(draw: st.DrawFn) -> Call:
    """The customer's `incoming` (or the seed's ringing), an IVR pickup, a queue ringing
    up to two agents one after another, the last maybe answering; hangups of any of the
    customer, the answering agent and the conversation; a hold, a consult, a transfer."""
    start = BASE + timedelta(seconds=draw(st.integers(0, 10 * 365 * 86_400)))
    registry = draw(registries)
    agent_source = draw(st.sampled_from([CALLEE, AGENT_LEG]))
    ids = draw(st.booleans())  # legs told apart by uniqueid, or only by agent number
    did = draw(st.sampled_from([None, "4008008"]))
    first = draw(st.sampled_from(["incoming", "ringing"]))
    number = CUSTOMER if first == "ringing" or draw(st.booleans()) else None
    common: dict[str, Any] = {"calltype": DIALIN, "didnumber": did, "calleridnum": CUSTOMER}
    events = [event(CALLER, first, start, activenum=number, **common)]
    last = start
    if draw(st.booleans()):  # an IVR or queue picks up: not an answer by an agent
        last = start + timedelta(seconds=draw(seconds))
        events.append(event(CALLER, "answer", last, **common))
    rang = QUEUE[: draw(st.integers(0, 2))]
    picks_up = draw(st.booleans())
    answered_by = rang[-1] if rang and picks_up else None
    answer = None
    for agentno, phone, group, uniqueid in rang:
        own: dict[str, Any] = {
            "agentno": agentno,
            "agent_group": group,
            "uniqueid": uniqueid if ids else None,
        }
        last += timedelta(seconds=draw(seconds))
        events.append(event(agent_source, "ringing", last, activenum=phone, **own, **common))
        if (agentno, phone, group, uniqueid) == answered_by:
            answer = last + timedelta(seconds=draw(seconds))
            events.append(event(agent_source, "answer", answer, **own, **common))
        else:
            # Nobody picked up: the queue rings the next agent.
            last += timedelta(seconds=draw(st.integers(1, 20)))
            events.append(event(agent_source, "hangup", last, hangupcause="19", **own, **common))
    talked = Talk([])
    if answered_by is not None and answer is not None:
        talked = draw(talk_between(DIALIN, agent_source, answer, answered_by[3] if ids else None))
        events += talked.events
    cleared = (answer or last) + timedelta(seconds=draw(talk) if answer else draw(seconds) + 1)
    if talked.joined is not None and answered_by is not None:
        leave: dict[str, Any] = {
            "agentno": answered_by[0],
            "uniqueid": answered_by[3] if ids else None,
        }
        events.append(
            event(agent_source, "hangup", talked.joined + timedelta(seconds=1), **leave, **common)
        )
        cleared = max(cleared, talked.joined + timedelta(seconds=2))
    cause = draw(st.sampled_from(sorted(CAUSES, key=str)))
    choices = [CALLER, CONVERSATION] + ([agent_source] if answered_by else [])
    hangups = draw(st.sets(st.sampled_from(choices)))
    ends = []
    for source in sorted(hangups):
        at = cleared + timedelta(seconds=draw(st.integers(0, 2)))
        own_cause = cause if source == CALLER else draw(st.sampled_from([None, "16"]))
        whose: dict[str, Any] = {}
        if source == agent_source and answered_by is not None:
            whose = {"agentno": answered_by[0], "uniqueid": answered_by[3] if ids else None}
        events.append(event(source, "hangup", at, hangupcause=own_cause, **whose, **common))
        if source != agent_source or talked.joined is None:
            ends.append(at)
    end = min(ends, default=None)
    handler = answered_by or (rang[0] if rang else None)
    expected = Cdr(
        team=TEAM,
        diallogid=SESSION,
        calltype=DIALIN,
        target="DialIn",
        src=CUSTOMER,
        dst=handler[1] if handler else None,
        agentno=handler[0] if handler else None,
        starttime=start,
        answertime=answer,
        endtime=end,
        duration=whole_seconds(start, end),
        billsec=billsec(answer, end),
        disposition=disposition(answer, cause if CALLER in hangups else None),
        status=Status.CLOSED if end else Status.OPEN,
        did=did,
        agent_group=handler[2] if handler else None,
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


FAST = settings(max_examples=150, deadline=None)


# --- The model ---------------------------------------------------------------------------


@FAST
@given(call=calls_with_junk())
def test_realistic_call_gives_the_contracts_cdr(call: Call) -> None:
    assert fold_call(call.events, call.registry) == call.expected


# --- A function of the set ---------------------------------------------------------------


@FAST
@given(events_registry=event_sets(), data=st.data())
def test_any_order_gives_the_same_cdr(
    events_registry: tuple[list[CallEvent], dict[str, str]], data: st.DataObject
) -> None:
    events, registry = events_registry
    shuffled = data.draw(st.permutations(events))
    assert fold_call(shuffled, registry) == fold_call(events, registry)


@FAST
@given(events_registry=event_sets(), data=st.data())
def test_duplicates_change_nothing(
    events_registry: tuple[list[CallEvent], dict[str, str]], data: st.DataObject
) -> None:
    events, registry = events_registry
    again = data.draw(st.lists(st.sampled_from(events), min_size=1)) if events else []
    resent = data.draw(st.permutations(events + again))
    assert fold_call(resent, registry) == fold_call(events, registry)


@FAST
@given(events_registry=event_sets(), senders=st.integers(1, 4), data=st.data())
def test_concurrent_senders_change_nothing(
    events_registry: tuple[list[CallEvent], dict[str, str]], senders: int, data: st.DataObject
) -> None:
    """Each event goes to one or more senders (at-least-once); each sender delivers its
    share in its own order; the deliveries interleave in any way."""
    events, registry = events_registry
    streams: list[list[CallEvent]] = [[] for _ in range(senders)]
    for item in events:
        for sender in data.draw(st.sets(st.integers(0, senders - 1), min_size=1)):
            streams[sender].append(item)
    streams = [data.draw(st.permutations(stream)) for stream in streams]
    turns = data.draw(st.permutations([i for i, stream in enumerate(streams) for _ in stream]))
    delivered = [streams[i].pop(0) for i in turns]
    assert set(delivered) == set(events)
    assert fold_call(delivered, registry) == fold_call(events, registry)


# --- Every prefix, in any order ------------------------------------------------------------


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


def check_invariants(cdr: Cdr) -> None:
    """What holds of any CDR the fold returns."""
    if cdr.status is Status.CLOSED:
        assert cdr.endtime is not None
        assert cdr.duration is not None
        assert cdr.billsec is not None
        assert cdr.hold_seconds is not None
        assert 0 <= cdr.billsec <= cdr.duration
        assert 0 <= cdr.hold_seconds <= cdr.billsec
    else:
        assert cdr.status is Status.OPEN
        assert (cdr.endtime, cdr.duration, cdr.billsec, cdr.hold_seconds) == (None,) * 4
    assert (cdr.disposition is Disposition.ANSWER) == (cdr.answertime is not None)
    assert cdr.target == {DIALOUT: "DialOut", DIALIN: "DialIn"}[cdr.calltype]


@settings(max_examples=200, deadline=None)
@given(call=calls_with_junk(), data=st.data())
def test_every_prefix_of_any_order(call: Call, data: st.DataObject) -> None:
    again = data.draw(st.lists(st.sampled_from(call.events), max_size=3))
    order = data.draw(st.permutations(call.events + again))
    # A consulted party joining later takes the end away from the first agent's hangup:
    # only then may more events reopen a call.
    transferred = any(e.event == "join" for e in call.events)
    previous: Cdr | None = None
    for size in range(len(order) + 1):
        seen = order[:size]
        cdr = fold_call(seen, call.registry)
        if not any(proves_call(e, call.calltype) for e in seen):
            assert cdr is None
            continue
        assert cdr is not None
        check_invariants(cdr)
        if any(ends_surely(e, call.calltype) for e in seen):
            assert cdr.status is Status.CLOSED
        if cdr.status is Status.CLOSED:
            assert any(e.event == "hangup" for e in seen)
        assert (cdr.disposition is Disposition.ANSWER) == any(
            answers(e, call.calltype) for e in seen
        )
        if previous is not None and not transferred:
            # More events only ever move a call forward.
            if previous.status is Status.CLOSED:
                assert cdr.status is Status.CLOSED
                assert cdr.endtime is not None
                assert previous.endtime is not None
                assert cdr.endtime <= previous.endtime
            if previous.disposition is Disposition.ANSWER:
                assert cdr.disposition is Disposition.ANSWER
        previous = cdr
    assert previous == call.expected
    if previous.endtime is not None and previous.answertime is not None:
        assert previous.answertime <= previous.endtime


@settings(max_examples=300, deadline=None)
@given(events=wild_events, data=st.data())
def test_arbitrary_events_never_break_the_fold(
    events: list[CallEvent], data: st.DataObject
) -> None:
    subset = data.draw(st.lists(st.sampled_from(events), unique=True)) if events else []
    smaller, larger = fold_call(subset, {}), fold_call(events, {"1001": "8005"})
    for cdr, seen in ((smaller, subset), (larger, events)):
        if cdr is None:
            continue
        check_invariants(cdr)
        # The call type of the first event stands for the call: the others are read as
        # events of that call.
        mine = [replace(e, calltype=cdr.calltype) for e in seen if e.calltype in CALL_TYPES]
        if any(ends_surely(e, cdr.calltype) for e in mine):
            assert cdr.status is Status.CLOSED
        if cdr.status is Status.CLOSED:
            assert any(e.event == "hangup" for e in mine)
        assert (cdr.disposition is Disposition.ANSWER) == any(
            answers(e, cdr.calltype) for e in mine
        )


# --- Examples ------------------------------------------------------------------------------


def answered_outbound(*extra: CallEvent) -> list[CallEvent]:
    return [
        event(CALLER, "ringing", 0, activenum="8001", agentno=AGENT),
        event(CALLEE, "ringing", 5, activenum=CUSTOMER, agentno=AGENT),
        event(CALLEE, "answer", 10, agentno=AGENT),
        *extra,
    ]


def fold(events: Sequence[CallEvent], registry: dict[str, str] | None = None) -> Cdr:
    cdr = fold_call(events, registry or {})
    assert cdr is not None
    return cdr


def test_no_events_no_cdr() -> None:
    assert fold_call([], {AGENT: "8001"}) is None


def test_fold_accepts_any_iterable() -> None:
    events = answered_outbound()
    assert fold_call(iter(events), {}) == fold(events)


def test_earliest_hangup_ends_the_call() -> None:
    late = event(CALLEE, "hangup", 70, hangupcause="16")
    early = event(CALLER, "hangup", 65, hangupcause="16")
    for events in (answered_outbound(late, early), answered_outbound(early, late)):
        cdr = fold(events)
        assert cdr.endtime == BASE + timedelta(seconds=65)
        assert (cdr.duration, cdr.billsec) == (60, 55)


def test_earliest_ringing_starts_the_call() -> None:
    # The customer's phone reported ringing twice (a re-INVITE): the first one counts.
    cdr = fold(answered_outbound(event(CALLEE, "ringing", 7, activenum=CUSTOMER)))
    assert cdr.starttime == BASE + timedelta(seconds=5)


def test_conflicting_activenums_resolved_by_earliest_event() -> None:
    first = event(CALLEE, "ringing", 5, activenum="13800138000")
    second = event(CALLEE, "ringing", 6, activenum="13900139000")
    assert fold([second, first]).dst == "13800138000"
    assert fold([first, second]).dst == "13800138000"


def test_conflicting_agentphones_resolved_by_earliest_event() -> None:
    events = [
        event(CALLEE, "ringing", 5, activenum=CUSTOMER, agentno=AGENT, agentphone="8002"),
        event(CALLER, "ringing", 0, activenum="8001", agentno=AGENT, agentphone="8001"),
    ]
    assert fold(events).src == "8001"


def test_fractional_seconds_round_half_up() -> None:
    cdr = fold(
        [
            event(CALLEE, "ringing", 0, activenum=CUSTOMER),
            event(CALLEE, "answer", 1.0),
            event(CALLEE, "hangup", 10.5),
        ]
    )
    assert (cdr.duration, cdr.billsec) == (11, 10)  # 10.5 -> 11, 9.5 -> 10


def test_just_under_a_half_rounds_down() -> None:
    cdr = fold(
        [
            event(CALLEE, "ringing", 0, activenum=CUSTOMER),
            event(CALLEE, "answer", 0.000001),
            event(CALLEE, "hangup", 10.499999),
        ]
    )
    assert (cdr.duration, cdr.billsec) == (10, 10)


def test_billsec_never_exceeds_duration() -> None:
    # The two legs' clocks disagree: the answer is stamped before the ringing.
    cdr = fold(
        [
            event(CALLEE, "ringing", 10, activenum=CUSTOMER),
            event(CALLEE, "answer", 9),
            event(CALLEE, "hangup", 20),
        ]
    )
    assert (cdr.duration, cdr.billsec) == (10, 10)


def test_hangup_stamped_before_the_start_gives_zero_not_negative() -> None:
    cdr = fold([event(CALLEE, "ringing", 10, activenum=CUSTOMER), event(CALLER, "hangup", 8)])
    assert cdr.status is Status.CLOSED
    assert (cdr.duration, cdr.billsec) == (0, 0)


def test_outbound_without_customer_leg_has_no_cdr() -> None:
    events = [
        event(CALLER, "ringing", 0, activenum="8001", agentno=AGENT),
        event(CALLER, "answer", 2, agentno=AGENT),
        event(CALLER, "hangup", 3, agentno=AGENT),
    ]
    assert fold_call(events, {AGENT: "8001"}) is None


def test_outbound_caller_answer_is_the_agent_not_the_customer() -> None:
    events = [
        event(CALLER, "answer", 2, agentno=AGENT),
        event(CALLEE, "ringing", 5, activenum=CUSTOMER, agentno=AGENT),
        event(CALLEE, "hangup", 25, hangupcause="19"),
    ]
    cdr = fold(events)
    assert (cdr.disposition, cdr.answertime, cdr.billsec) == (Disposition.NOANSWER, None, 0)


def test_lost_ringing_starts_the_call_at_its_first_customer_event() -> None:
    cdr = fold([event(CALLEE, "answer", 10), event(CALLEE, "hangup", 40)])
    assert cdr.starttime == BASE + timedelta(seconds=10)
    assert (cdr.dst, cdr.duration, cdr.billsec) == (None, 30, 30)


def test_inbound_ivr_answer_is_not_answered() -> None:
    events = [
        event(CALLER, "ringing", 0, calltype=DIALIN, activenum=CUSTOMER),
        event(CALLER, "answer", 1, calltype=DIALIN),
        event(CALLER, "hangup", 40, calltype=DIALIN, hangupcause="16"),
    ]
    cdr = fold(events)
    assert (cdr.disposition, cdr.answertime, cdr.billsec) == (Disposition.NOANSWER, None, 0)
    assert cdr.duration == 40


def test_registry_gives_the_outbound_src_only() -> None:
    outbound = [event(CALLEE, "ringing", 5, activenum=CUSTOMER, agentno=AGENT)]
    assert fold(outbound, {AGENT: "8005"}).src == "8005"
    assert fold(outbound, {"1002": "8005"}).src is None
    inbound = [
        event(CALLER, "ringing", 0, calltype=DIALIN, activenum=CUSTOMER),
        event(CALLEE, "ringing", 2, calltype=DIALIN, activenum="8003", agentno=AGENT),
    ]
    assert fold(inbound, {AGENT: "8005"}).src == CUSTOMER
    assert fold(inbound, {AGENT: "8005"}).dst == "8003"


def test_first_meaningful_cause_decides_an_unanswered_call() -> None:
    events = [
        event(CALLEE, "ringing", 0, activenum=CUSTOMER),
        event(CALLER, "hangup", 3, hangupcause="16"),
        event(CALLEE, "hangup", 4, hangupcause="34"),
        event(CALLEE, "hangup", 5, hangupcause="17"),
    ]
    cdr = fold(events)
    assert cdr.disposition is Disposition.CONGESTION
    assert cdr.endtime == BASE + timedelta(seconds=3)


def test_unknown_cause_leaves_noanswer() -> None:
    events = [
        event(CALLEE, "ringing", 0, activenum=CUSTOMER),
        event(CALLEE, "hangup", 4, hangupcause="99"),
    ]
    assert fold(events).disposition is Disposition.NOANSWER


# --- Lost hangups ----------------------------------------------------------------------------


def test_a_call_without_hangup_past_the_limit_is_a_timeout_ending_at_its_last_event() -> None:
    events = answered_outbound()
    cdr = fold_call(events, {}, stale_before=BASE + timedelta(hours=1))
    assert cdr is not None
    assert cdr.status is Status.TIMEOUT
    assert cdr.endtime == BASE + timedelta(seconds=10)
    assert (cdr.duration, cdr.billsec, cdr.disposition) == (5, 0, Disposition.ANSWER)


def test_a_call_within_the_limit_stays_open() -> None:
    cdr = fold(answered_outbound())
    assert fold_call(answered_outbound(), {}, stale_before=BASE) == cdr
    assert cdr.status is Status.OPEN


def test_a_late_hangup_closes_a_timed_out_call_properly() -> None:
    events = answered_outbound(event(CALLEE, "hangup", 70))
    cdr = fold_call(events, {}, stale_before=BASE + timedelta(hours=1))
    assert cdr == fold(events)
    assert cdr is not None
    assert (cdr.status, cdr.duration, cdr.billsec) == (Status.CLOSED, 65, 60)


@FAST
@given(call=calls_with_junk(), hours=st.integers(min_value=-2, max_value=2), data=st.data())
def test_timeouts_are_a_function_of_the_set_and_the_cutoff(
    call: Call, hours: int, data: st.DataObject
) -> None:
    cutoff = BASE + timedelta(hours=hours)
    shuffled = data.draw(st.permutations(call.events))
    cdr = fold_call(call.events, call.registry, stale_before=cutoff)
    assert fold_call(shuffled, call.registry, stale_before=cutoff) == cdr
    if cdr is None:
        return
    closed = fold_call(call.events, call.registry)
    assert closed is not None
    if closed.status is Status.CLOSED:
        assert cdr == closed
    elif cdr.starttime < cutoff:
        assert cdr.status is Status.TIMEOUT
        assert cdr.endtime is not None
        assert cdr.endtime >= cdr.starttime
        assert cdr.duration is not None
        assert cdr.billsec is not None
        assert 0 <= cdr.billsec <= cdr.duration
    else:
        assert cdr == closed
