"""Missed calls: abandoned inbound calls, and whether anyone dealt with them. Pure.

The words, as the API and `cdrlog missed` use them:

* an *inbound call* is a CDR of calltype `dialin`; the caller's number is its `src`;
* its *wait* is `answertime - starttime` when answered, else `endtime - starttime`;
* it is *abandoned* when closed (any status but open), never answered, and its wait is
  at least `short_abandon` (a shorter one is a misdial, left out);
* it was *called back* by a `dialout` CDR of the same team to that number (`dst` equal
  to its `src`) whose starttime is after the abandoned call's starttime and at most
  `window` after it;
* the caller *got through* by a later answered inbound call from that number, in the
  same team and the same window;
* it is *resolved* once the customer was reached: a callback in the window was
  answered, or the caller got through.

The store finds abandoned calls and their candidate follow-ups with SQL; which
follow-up belongs to which abandoned call is decided here (`follow_ups`).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cdrlog.core.exports import safe_cell
from cdrlog.core.rules import DIALIN, DIALOUT, Status

INBOUND = DIALIN
OUTBOUND = DIALOUT
DEFAULT_SHORT_ABANDON = timedelta(seconds=5)
DEFAULT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Call:
    """What matching needs of one CDR."""

    id: int
    team: str
    diallogid: str
    calltype: str
    src: str | None
    dst: str | None
    agentno: str | None
    agent_group: str | None
    did: str | None
    starttime: datetime
    answertime: datetime | None
    endtime: datetime | None
    status: Status

    @property
    def wait(self) -> timedelta | None:
        """How long the caller waited: to the answer, else to the end (None while open)."""
        settled = self.answertime or self.endtime
        return None if settled is None else settled - self.starttime


@dataclass(frozen=True, slots=True)
class MissedFilter:
    """Which abandoned calls: every condition given must hold. Times are aware, on the
    abandoned call's starttime, `start_to` excluded; `teams` as in `CdrFilter`."""

    start_from: datetime | None = None
    start_to: datetime | None = None
    teams: tuple[str, ...] | None = None
    agent_group: str | None = None
    short_abandon: timedelta = DEFAULT_SHORT_ABANDON
    window: timedelta = DEFAULT_WINDOW
    unresolved: bool = False


@dataclass(frozen=True, slots=True)
class MissedCall:
    """An abandoned call and what followed it."""

    call: Call
    callbacks: int
    called_back_at: datetime | None
    callback_answered: bool
    callback_agent: str | None
    got_through_at: datetime | None

    @property
    def resolved(self) -> bool:
        return self.callback_answered or self.got_through_at is not None

    @property
    def wait_seconds(self) -> int:
        wait = self.call.wait
        return 0 if wait is None else round(wait.total_seconds())


def abandoned(call: Call, short_abandon: timedelta) -> bool:
    wait = call.wait
    return (
        call.calltype == INBOUND
        and call.status is not Status.OPEN
        and call.answertime is None
        and wait is not None
        and wait >= short_abandon
    )


def follow_ups(
    missed: Iterable[Call], later: Iterable[Call], window: timedelta
) -> list[MissedCall]:
    """Each abandoned call of `missed` (in its order) with the callbacks and answered
    inbound calls among `later` that belong to it. `later` may hold anything: only calls
    of the same team and number, after the abandoned one and in its window, count."""
    by_number: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for call in sorted(later, key=lambda c: (c.starttime, c.id)):
        number = call.dst if call.calltype == OUTBOUND else call.src
        if number is not None:
            by_number[(call.team, number)].append(call)
    return [_followed(call, by_number, window) for call in missed]


def _followed(
    call: Call, by_number: dict[tuple[str, str], list[Call]], window: timedelta
) -> MissedCall:
    # A caller who withheld the number cannot be called back, nor recognised later.
    nearby = by_number.get((call.team, call.src), []) if call.src else []
    within = [c for c in nearby if call.starttime < c.starttime <= call.starttime + window]
    callbacks = [c for c in within if c.calltype == OUTBOUND]
    answered = [c for c in callbacks if c.answertime is not None]
    returns = [c for c in within if c.calltype == INBOUND and c.answertime is not None]
    # The agent who reached the customer says more than one who tried first.
    agent_call = answered[0] if answered else callbacks[0] if callbacks else None
    return MissedCall(
        call=call,
        callbacks=len(callbacks),
        called_back_at=callbacks[0].starttime if callbacks else None,
        callback_answered=bool(answered),
        callback_agent=agent_call.agentno if agent_call else None,
        got_through_at=returns[0].starttime if returns else None,
    )


def kept(found: Iterable[MissedCall], unresolved: bool) -> list[MissedCall]:
    return [m for m in found if not (unresolved and m.resolved)]


MISSED_COLUMNS = (
    "id",
    "orgidentity",
    "diallogid",
    "src",
    "did",
    "agent_group",
    "agentno",
    "starttime",
    "endtime",
    "wait_seconds",
    "callbacks",
    "called_back_at",
    "callback_answered",
    "callback_agent",
    "got_through_at",
    "resolved",
)


def missed_fields(missed: MissedCall, zone: ZoneInfo) -> dict[str, Any]:
    """A missed call for readers, in `MISSED_COLUMNS` order, times ISO-8601 in `zone`."""
    call = missed.call
    return {
        "id": call.id,
        "orgidentity": call.team,
        "diallogid": call.diallogid,
        "src": call.src,
        "did": call.did,
        "agent_group": call.agent_group,
        "agentno": call.agentno,
        "starttime": _local(call.starttime, zone),
        "endtime": _local(call.endtime, zone),
        "wait_seconds": missed.wait_seconds,
        "callbacks": missed.callbacks,
        "called_back_at": _local(missed.called_back_at, zone),
        "callback_answered": missed.callback_answered,
        "callback_agent": missed.callback_agent,
        "got_through_at": _local(missed.got_through_at, zone),
        "resolved": missed.resolved,
    }


def missed_csv(batches: Iterable[Sequence[MissedCall]], zone: ZoneInfo) -> Iterator[str]:
    """The header, then one chunk of CSV lines per batch; text cells that a spreadsheet
    would run as a formula are neutralised, as in the CDR exports."""
    yield _csv_lines([MISSED_COLUMNS])
    for batch in batches:
        rows = [[_cell(v) for v in missed_fields(m, zone).values()] for m in batch]
        if rows:
            yield _csv_lines(rows)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return safe_cell(value)


def _csv_lines(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def _local(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()
