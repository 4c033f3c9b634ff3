"""fold_call: a call's CDR is a function of the set of its events.

Properties first (any order, any duplication, any split between senders, every prefix),
then a few examples that pin down choices the contract makes explicit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.core.cdr import fold_call
from cdrlog.core.events import CALLEE, CALLER, CallEvent
from cdrlog.core.record import Cdr
from cdrlog.core.rules import CALL_TYPES, DIALIN, Disposition, Status
from support.calls import (
    AGENT,
    BASE,
    CUSTOMER,
    Call,
    answered_in_time,
    answers,
    calls_with_junk,
    check_invariants,
    ends_surely,
    event,
    event_sets,
    proves_call,
    wild_events,
)

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


@settings(max_examples=200, deadline=None)
@given(call=calls_with_junk(), data=st.data())
def test_every_prefix_of_any_order(call: Call, data: st.DataObject) -> None:
    again = data.draw(st.lists(st.sampled_from(call.events), max_size=3))
    order = data.draw(st.permutations(call.events + again))
    # A consulted party joining later takes the end away from the first agent's hangup:
    # only then may more events reopen a call. An earlier hangup arriving late takes
    # away an answer that came after it: only then may a call stop being answered.
    transferred = any(e.event == "join" for e in call.events)
    end = call.expected.endtime
    too_late = end is not None and any(
        answers(e, call.calltype) and e.event_time > end for e in call.events
    )
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
        assert (cdr.disposition is Disposition.ANSWER) == answered_in_time(seen, call.calltype)
        if previous is not None and not transferred:
            # More events only ever move a call forward.
            if previous.status is Status.CLOSED:
                assert cdr.status is Status.CLOSED
                assert cdr.endtime is not None
                assert previous.endtime is not None
                assert cdr.endtime <= previous.endtime
            if previous.disposition is Disposition.ANSWER and not too_late:
                assert cdr.disposition is Disposition.ANSWER
        previous = cdr
    assert previous == call.expected


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
        # An answer answers the call unless the call had ended before it.
        answered = [e.event_time for e in mine if answers(e, cdr.calltype)]
        hangups = [e.event_time for e in mine if e.event == "hangup"]
        if cdr.disposition is Disposition.ANSWER:
            assert answered
        if answered and all(min(answered) < hangup for hangup in hangups):
            assert cdr.disposition is Disposition.ANSWER


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


# --- A queue hunting among agents ------------------------------------------------------------


def test_an_agent_who_picks_up_after_the_customer_gave_up_answers_nothing() -> None:
    # The queue rings 1002 (no answer), then 1003; the customer hangs up while 1003's
    # phone rings, and 1003 picks up a second later: the call ended unanswered, and the
    # CDR names the first agent whose phone rang.
    inbound: dict[str, Any] = {"calltype": DIALIN, "calleridnum": CUSTOMER}
    first: dict[str, Any] = {"agentno": "1002", "agent_group": "q2", **inbound}
    second: dict[str, Any] = {"agentno": "1003", "agent_group": "q3", **inbound}
    events = [
        event(CALLER, "incoming", 0, **inbound),
        event(CALLEE, "ringing", 0, activenum="8002", **first),
        event(CALLEE, "hangup", 1, hangupcause="19", **first),
        event(CALLEE, "ringing", 1, activenum="8003", **second),
        event(CALLER, "hangup", 2, hangupcause="16", **inbound),
        event(CALLEE, "answer", 3, **second),
        event(CALLEE, "hangup", 3, **second),
    ]
    cdr = fold(events)
    assert (cdr.disposition, cdr.answertime, cdr.endtime) == (
        Disposition.NOANSWER,
        None,
        BASE + timedelta(seconds=2),
    )
    assert (cdr.agentno, cdr.dst, cdr.agent_group) == ("1002", "8002", "q2")
    assert (cdr.duration, cdr.billsec, cdr.status) == (2, 0, Status.CLOSED)


def test_an_answer_at_the_same_time_as_the_end_counts_unless_its_eventid_is_later() -> None:
    inbound: dict[str, Any] = {"calltype": DIALIN, "agentno": "1002", "uniqueid": "u2"}
    ringing = event(CALLEE, "ringing", 0, activenum="8002", eventid=1, **inbound)
    answer = event(CALLEE, "answer", 5, eventid=3, **inbound)
    gave_up: dict[str, Any] = {"calltype": DIALIN, "hangupcause": "16"}
    earlier = event(CALLER, "hangup", 5, eventid=2, **gave_up)
    later = event(CALLER, "hangup", 5, eventid=4, **gave_up)
    assert fold([ringing, answer, later]).disposition is Disposition.ANSWER
    assert fold([ringing, answer, earlier]).disposition is Disposition.NOANSWER


def test_a_hangup_of_the_answering_leg_id_before_the_answer_does_not_end_the_call() -> None:
    # The queue rang agent 1002 twice on one leg id; the second time the agent answered.
    leg: dict[str, Any] = {"calltype": DIALIN, "agentno": "1002", "uniqueid": "u2"}
    events = [
        event(CALLEE, "ringing", 0, activenum="8002", **leg),
        event(CALLEE, "hangup", 15, hangupcause="19", **leg),
        event(CALLEE, "ringing", 40, activenum="8002", **leg),
        event(CALLEE, "answer", 45, **leg),
    ]
    cdr = fold(events)
    assert (cdr.status, cdr.answertime) == (Status.OPEN, BASE + timedelta(seconds=45))
    assert fold([*events, event(CALLEE, "hangup", 105, **leg)]).billsec == 60
