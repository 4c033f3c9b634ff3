"""The CDR and the fold that builds it from its call's events. Pure.

A CDR is a function of the *set* of its call's events: `fold_call` first puts the
events in one total order that depends only on their content, then reads the rules,
so arrival order and re-sends cannot change the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cdrlog.events import CALLER, CallEvent
from cdrlog.rules import (
    CALL_TYPES,
    CDR_EVENTS,
    DIALOUT,
    TARGET,
    Disposition,
    Rule,
    Status,
    disposition_for_cause,
    rule_for,
)


@dataclass(frozen=True, slots=True)
class Cdr:
    """One call's record, as the contract's `cdr` table holds it (without storage ids).

    `duration` and `billsec` are None while the call is open: they are not known yet.
    """

    team: str
    diallogid: str
    calltype: str
    target: str
    src: str | None
    dst: str | None
    agentno: str | None
    starttime: datetime
    answertime: datetime | None
    endtime: datetime | None
    duration: int | None
    billsec: int | None
    disposition: Disposition
    status: Status


def event_order(event: CallEvent) -> tuple[datetime, str, str, str, str, str, str, str]:
    """A total order on event content: events equal under it are the same event."""
    return (
        event.event_time,
        event.source,
        event.event,
        event.calltype,
        event.activenum or "",
        event.agentno or "",
        event.agentphone or "",
        event.hangupcause or "",
    )


def affects_cdr(event: CallEvent) -> bool:
    """Whether an event can change its call's CDR; the fold ignores all others."""
    return event.calltype in CALL_TYPES and event.event in CDR_EVENTS


def registry_needed(events: Iterable[CallEvent]) -> set[str]:
    """Agent numbers whose registered phone `fold_call` may use: none when an event
    carries its own `agentphone`, which always comes first."""
    relevant = [e for e in events if affects_cdr(e)]
    if any(e.agentphone is not None for e in relevant):
        return set()
    return {e.agentno for e in relevant if e.agentno is not None}


def fold_call(
    events: Iterable[CallEvent],
    agent_phones: Mapping[str, str],
    stale_before: datetime | None = None,
) -> Cdr | None:
    """The CDR of one call, or None while no event proves that the call exists.

    `agent_phones` is the team's agent registry (agent number -> phone) for the agents
    the events name; it supplies an outbound call's `src` when no event carries
    `agentphone`. Where events disagree, the earliest one (by `event_order`) wins.
    A call that started before `stale_before` and has no hangup is closed as `timeout`,
    ending at its last event: its hangup was lost (a later one still closes it).
    """
    ordered = sorted((e for e in events if affects_cdr(e)), key=event_order)
    calltype = next((e.calltype for e in ordered), None)
    if calltype is None:
        return None
    ruled = [(e, r) for e in ordered if (r := rule_for(calltype, e.source, e.event)) is not None]
    proving = [e for e, rule in ruled if rule.proves_call]
    if not proving:
        return None
    start = _first(e.event_time for e, rule in ruled if rule.starts) or proving[0].event_time
    answer = _first(e.event_time for e, rule in ruled if rule.answers)
    hangups = [e for e, rule in ruled if rule.hangs_up]
    end, status = _ending(ordered, hangups, start, stale_before)
    agentno = _first(e.agentno for e in ordered)
    src = _number(ruled, "src")
    if calltype == DIALOUT:
        src = _agent_phone(ordered, ruled, agentno, agent_phones)
    duration = billsec = None
    if end is not None:
        duration = _seconds(start, end)
        billsec = min(duration, _seconds(answer, end)) if answer is not None else 0
    return Cdr(
        team=ordered[0].team,
        diallogid=ordered[0].sessionid,
        calltype=calltype,
        target=TARGET[calltype],
        src=src,
        dst=_number(ruled, "dst"),
        agentno=agentno,
        starttime=start,
        answertime=answer,
        endtime=end,
        duration=duration,
        billsec=billsec,
        disposition=_disposition(answer is not None, hangups),
        status=status,
    )


def _ending(
    ordered: list[CallEvent],
    hangups: list[CallEvent],
    start: datetime,
    stale_before: datetime | None,
) -> tuple[datetime | None, Status]:
    if hangups:
        return hangups[0].event_time, Status.CLOSED
    if stale_before is not None and start < stale_before:
        return ordered[-1].event_time, Status.TIMEOUT
    return None, Status.OPEN


T = TypeVar("T")


def _first(values: Iterable[T | None]) -> T | None:
    return next((value for value in values if value is not None), None)


def _number(ruled: list[tuple[CallEvent, Rule]], column: str) -> str | None:
    return _first(e.activenum for e, rule in ruled if rule.number == column)


def _agent_phone(
    ordered: list[CallEvent],
    ruled: list[tuple[CallEvent, Rule]],
    agentno: str | None,
    agent_phones: Mapping[str, str],
) -> str | None:
    """Events' own `agentphone`, else the registry, else the agent leg's `activenum`."""
    phone = _first(e.agentphone for e in ordered)
    if phone is None and agentno is not None:
        phone = agent_phones.get(agentno)
    if phone is None:
        phone = _first(e.activenum for e, rule in ruled if rule.agent_leg and e.source == CALLER)
    return phone


def _disposition(answered: bool, hangups: list[CallEvent]) -> Disposition:
    """An answered call is ANSWER whatever the cause; else the first cause that says why."""
    if answered:
        return Disposition.ANSWER
    return _first(disposition_for_cause(e.hangupcause) for e in hangups) or Disposition.NOANSWER


def _seconds(since: datetime, until: datetime) -> int:
    """Whole seconds, rounded half up, never negative (PBX clocks of two legs can disagree)."""
    return max(0, math.floor((until - since).total_seconds() + 0.5))
