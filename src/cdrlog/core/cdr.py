"""The fold that builds a call's CDR (`cdrlog.core.record.Cdr`) from its events. Pure.

A CDR is a function of the *set* of its call's events: `fold_call` first puts the
events in one total order that depends only on their content, then reads the rules,
so arrival order and re-sends cannot change the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from cdrlog.core.events import CallEvent
from cdrlog.core.record import Cdr
from cdrlog.core.rules import (
    CALL_TYPES,
    CDR_EVENTS,
    DIALOUT,
    HOLDS,
    RESUMES,
    RULES,
    TARGET,
    Disposition,
    Ends,
    Role,
    Rule,
    Status,
    disposition_for_cause,
    role_of,
)


@dataclass(frozen=True, slots=True)
class _Leg:
    """An event with what it is to its call: its leg's role and its rule."""

    event: CallEvent
    role: Role
    rule: Rule


@dataclass(frozen=True, slots=True)
class _Agent:
    """Who handled the call, as far as its events tell (the registry not yet asked)."""

    agentno: str | None
    phone: str | None
    group: str | None


def event_order(event: CallEvent) -> tuple[Any, ...]:
    """A total order on event content: events equal under it are the same event. At one
    eventTime the lower `eventid` comes first (contract section 4, "Order")."""
    return (
        event.event_time,
        event.eventid is None,
        event.eventid or 0,
        event.source,
        event.event,
        event.calltype,
        event.activenum or "",
        event.agentno or "",
        event.agentphone or "",
        event.hangupcause or "",
        event.uniqueid or "",
        event.calleridnum or "",
        event.didnumber or "",
        event.agent_group or "",
    )


def affects_cdr(event: CallEvent) -> bool:
    """Whether an event can change its call's CDR; the fold ignores all others."""
    return event.calltype in CALL_TYPES and event.event in CDR_EVENTS


@dataclass(frozen=True, slots=True)
class CallReading:
    """A call's events read once, as the fold reads them: in event order with their
    roles and rules, the answer, and the handling agent as far as the events tell."""

    calltype: str
    legs: list[_Leg]
    answering: _Leg | None
    handler: _Agent

    @property
    def phone_wanted(self) -> str | None:
        """The agent whose registered phone the CDR needs: only one whose phone no
        event tells."""
        return self.handler.agentno if self.handler.phone is None else None


def read_call(events: Iterable[CallEvent]) -> CallReading:
    calltype, legs = _legs(events)
    answering = _answering(legs)
    return CallReading(calltype, legs, answering, _handler(calltype, legs, answering))


def fold_call(
    events: Iterable[CallEvent],
    agent_phones: Mapping[str, str],
    stale_before: datetime | None = None,
) -> Cdr | None:
    """The CDR of one call, or None while no event proves that the call exists.

    `agent_phones` is the team's agent registry (agent number -> phone): the last
    resort for the handling agent's phone. Where events disagree, the earliest one (by
    `event_order`) wins. A call that started before `stale_before` and has no hangup is
    closed as `timeout`, ending at its last event: its hangup was lost (a later one
    still closes it).
    """
    return cdr_of(read_call(events), agent_phones, stale_before)


def cdr_of(
    reading: CallReading, agent_phones: Mapping[str, str], stale_before: datetime | None = None
) -> Cdr | None:
    """`fold_call` of events already read (the registry asked for `phone_wanted`)."""
    calltype, legs, answering, handler = (
        reading.calltype,
        reading.legs,
        reading.answering,
        reading.handler,
    )
    proving = [leg.event for leg in legs if leg.rule.proves_call]
    if not proving:
        return None
    start = _first(leg.event.event_time for leg in legs if leg.rule.starts)
    start = start or proving[0].event_time
    answer = answering.event.event_time if answering else None
    joined = _first(leg.event.event_time for leg in legs if leg.rule.joins)
    hangups = [leg.event for leg in legs if _ends_call(leg, answering, joined)]
    end, status = _ending(legs, hangups, start, stale_before)
    phone = handler.phone or agent_phones.get(handler.agentno or "")
    customer = _number(legs, "dst" if calltype == DIALOUT else "src")
    if customer is None and calltype != DIALOUT:
        customer = _first(leg.event.calleridnum for leg in legs)
    duration = billsec = held = None
    if end is not None:
        duration = _seconds(start, end)
        billsec = min(duration, _seconds(answer, end)) if answer is not None else 0
        # Hold is part of the talk, even where two legs' clocks disagree.
        held = min(billsec, _hold_seconds(legs, answer, end))
    first = legs[0].event
    return Cdr(
        team=first.team,
        diallogid=first.sessionid,
        calltype=calltype,
        target=TARGET[calltype],
        src=phone if calltype == DIALOUT else customer,
        dst=customer if calltype == DIALOUT else phone,
        agentno=handler.agentno,
        starttime=start,
        answertime=answer,
        endtime=end,
        duration=duration,
        billsec=billsec,
        disposition=_disposition(answer is not None, hangups),
        status=status,
        did=_first(leg.event.didnumber for leg in legs),
        agent_group=handler.group or _first(leg.event.agent_group for leg in legs),
        hold_seconds=held,
        transferred_to=_transferred_to(legs),
    )


def _legs(events: Iterable[CallEvent]) -> tuple[str, list[_Leg]]:
    """The call's type (its first event's) and the events the fold reads as events of
    that type, in event order."""
    ordered = sorted((e for e in events if affects_cdr(e)), key=event_order)
    if not ordered:
        return "", []
    calltype = ordered[0].calltype
    legs = []
    for event in ordered:
        role = role_of(calltype, event.source)
        if role is not None:
            legs.append(_Leg(event, role, RULES[(calltype, role, event.event)]))
    return calltype, legs


def _first_leg(legs: list[_Leg], flag: str) -> _Leg | None:
    return next((leg for leg in legs if getattr(leg.rule, flag)), None)


def _answering(legs: list[_Leg]) -> _Leg | None:
    """The answer that answered the call: the first one that did not come after the
    call had ended. Whoever answered, the customer's hangup, the conversation's, or (on
    an outbound call) the agent's ends the call; an agent who picks up as the customer
    gives up answers nothing, and the CDR names the first agent whose phone rang."""
    joined = _first(leg.event.event_time for leg in legs if leg.rule.joins)
    ended = next((leg.event for leg in legs if _ends_call(leg, None, joined)), None)
    return next(
        (
            leg
            for leg in legs
            if leg.rule.answers and (ended is None or not _comes_after(leg.event, ended))
        ),
        None,
    )


def _comes_after(one: CallEvent, other: CallEvent) -> bool:
    """Whether `one` happened after `other`: later, or at the same time with a higher
    `eventid` (contract section 4, "Order")."""
    if one.event_time != other.event_time:
        return one.event_time > other.event_time
    return one.eventid is not None and other.eventid is not None and one.eventid > other.eventid


def _same_leg(one: CallEvent, other: CallEvent) -> bool:
    """Whether two agent-leg events are of one leg: by `uniqueid` where both have one,
    else by agent number."""
    if one.uniqueid is not None and other.uniqueid is not None:
        return one.uniqueid == other.uniqueid
    return one.agentno is not None and one.agentno == other.agentno


def _handler(calltype: str, legs: list[_Leg], answering: _Leg | None) -> _Agent:
    """Outbound, the agent whose leg dialled; inbound, the agent who answered, else the
    first whose phone rang (a queue rings agents one after another), else nobody."""
    agent_legs = [leg for leg in legs if leg.role is Role.AGENT]
    if calltype == DIALOUT:
        own = agent_legs
        others = [leg for leg in legs if leg.role is not Role.CONSULT]
    else:
        chosen = answering if answering is not None else _first_leg(agent_legs, "rings_agent")
        if chosen is None:
            return _Agent(None, None, None)
        own = [leg for leg in agent_legs if leg is chosen or _same_leg(leg.event, chosen.event)]
        others = own
    agentno = _first(leg.event.agentno for leg in own) or _first(
        leg.event.agentno for leg in others
    )
    phone = _first(leg.event.agentphone for leg in own) or _first(
        leg.event.agentphone for leg in others
    )
    if phone is None:
        phone = _first(leg.event.activenum for leg in own if leg.rule.rings_agent)
    if phone is None and calltype != DIALOUT and answering is not None:
        phone = answering.event.activenum
    return _Agent(agentno, phone, _first(leg.event.agent_group for leg in own))


def _ends_call(leg: _Leg, answering: _Leg | None, joined: datetime | None) -> bool:
    """Whether this hangup can end the call (contract section 4, "When a call ends")."""
    ends = leg.rule.ends
    if ends is None:
        return False
    if ends is Ends.ALWAYS:
        return True
    # Once a consulted party joined, the call goes on without the first agent.
    if joined is not None and leg.event.event_time >= joined:
        return False
    if ends is Ends.AGENT_LEG:
        return True
    if answering is None:
        return False  # a phone that rang and stopped: the queue rings the next one
    answer = answering.event
    # A leg that hung up before the answer is not the one answering (a queue may ring
    # one agent twice, even on one leg id).
    if leg.event.event_time < answer.event_time:
        return False
    if leg.event.uniqueid is not None and answer.uniqueid is not None:
        return leg.event.uniqueid == answer.uniqueid
    return answer.agentno is None or leg.event.agentno in (None, answer.agentno)


def _ending(
    legs: list[_Leg],
    hangups: list[CallEvent],
    start: datetime,
    stale_before: datetime | None,
) -> tuple[datetime | None, Status]:
    if hangups:
        return hangups[0].event_time, Status.CLOSED
    if stale_before is not None and start < stale_before:
        return legs[-1].event.event_time, Status.TIMEOUT
    return None, Status.OPEN


T = TypeVar("T")


def _first(values: Iterable[T | None]) -> T | None:
    return next((value for value in values if value is not None), None)


def _number(legs: list[_Leg], column: str) -> str | None:
    return _first(leg.event.activenum for leg in legs if leg.rule.number == column)


def _hold_seconds(legs: list[_Leg], answer: datetime | None, end: datetime) -> int:
    """Time on hold between answer and end: each hold runs to the next resume after it,
    else to the end; overlapping holds count once."""
    if answer is None:
        return 0
    spans: list[tuple[datetime, datetime]] = []
    for index, leg in enumerate(legs):
        if leg.event.event in HOLDS:
            resumed = _first(
                later.event.event_time
                for later in legs[index + 1 :]
                if later.event.event in RESUMES
            )
            low, high = max(leg.event.event_time, answer), min(resumed or end, end)
            if low < high:
                spans.append((low, high))
    held = timedelta(0)
    reached = answer
    for low, high in sorted(spans):
        if high > reached:
            held += high - max(low, reached)
            reached = high
    return _seconds(answer, answer + held)


def _transferred_to(legs: list[_Leg]) -> str | None:
    """The number of the consulted party who joined first."""
    joined = _first_leg(legs, "joins")
    if joined is None:
        return None
    consulted = [leg.event for leg in legs if leg.role is Role.CONSULT]
    own = [e for e in consulted if joined.event.uniqueid and e.uniqueid == joined.event.uniqueid]
    return (
        joined.event.activenum
        or _first(e.activenum for e in own)
        or _first(e.activenum for e in consulted)
    )


def _disposition(answered: bool, hangups: list[CallEvent]) -> Disposition:
    """An answered call is ANSWER whatever the cause; else the first cause that says why."""
    if answered:
        return Disposition.ANSWER
    return _first(disposition_for_cause(e.hangupcause) for e in hangups) or Disposition.NOANSWER


def _seconds(since: datetime, until: datetime) -> int:
    """Whole seconds, rounded half up, never negative (PBX clocks of two legs can disagree)."""
    return max(0, math.floor((until - since).total_seconds() + 0.5))
