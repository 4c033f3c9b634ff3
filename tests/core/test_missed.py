"""Missed calls, matched by the pure core: each case a short table of the calls that
followed one abandoned call, and what the abandoned call is then said to be."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cdrlog.core.missed import (
    DEFAULT_SHORT_ABANDON,
    DEFAULT_WINDOW,
    Call,
    MissedCall,
    abandoned,
    follow_ups,
    kept,
    missed_csv,
)
from cdrlog.core.rules import Status

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CUSTOMER = "13800138000"


def call(
    id: int,
    calltype: str,
    *,
    at: float = 0,
    waited: float = 30,
    answered: bool = False,
    team: str = "team1",
    src: str | None = None,
    dst: str | None = None,
    agentno: str | None = None,
    status: Status = Status.CLOSED,
) -> Call:
    """A CDR `at` hours after T0; answered `waited` seconds in, else ended then."""
    start = T0 + timedelta(hours=at)
    settled = start + timedelta(seconds=waited)
    return Call(
        id=id,
        team=team,
        diallogid=f"s{id}",
        calltype=calltype,
        src=src,
        dst=dst,
        agentno=agentno,
        agent_group="100",
        did="8008008",
        starttime=start,
        answertime=settled if answered else None,
        endtime=None if status is Status.OPEN else settled + timedelta(seconds=60),
        status=status,
    )


MISSED = call(1, "dialin", src=CUSTOMER, waited=20)


def back(id: int, at: float, answered: bool = True, **kw: object) -> Call:
    fields: dict[str, object] = {"dst": CUSTOMER, "src": "8001", "agentno": "1001"} | kw
    return call(id, "dialout", at=at, answered=answered, **fields)  # type: ignore[arg-type]


def again(id: int, at: float, answered: bool = True, **kw: object) -> Call:
    fields: dict[str, object] = {"src": CUSTOMER, "dst": "8002", "agentno": "1002"} | kw
    return call(id, "dialin", at=at, answered=answered, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    name: str
    later: list[Call]
    callbacks: int
    called_back_at: float | None  # hours after T0
    callback_answered: bool
    callback_agent: str | None
    got_through_at: float | None
    resolved: bool


# Counted as if nothing had followed.
NOTHING = (0, None, False, None, None, False)

CASES = [
    Case("nothing followed", [], *NOTHING),
    Case("answered callback in the window", [back(2, 1)], 1, 1, True, "1001", None, True),
    Case("callback unanswered", [back(2, 1, answered=False)], 1, 1, False, "1001", None, False),
    Case("callback after the window", [back(2, 24.5)], *NOTHING),
    Case("callback at the window's end", [back(2, 24)], 1, 24, True, "1001", None, True),
    Case("callback before the missed call", [back(2, -1)], *NOTHING),
    Case("callback to another number", [back(2, 1, dst="13900000000")], *NOTHING),
    Case("callback of another team", [back(2, 1, team="team2")], *NOTHING),
    Case(
        "first callback unanswered, second answered",
        [back(3, 2, agentno="1003"), back(2, 1, answered=False)],
        2, 1, True, "1003", None, True,
    ),
    Case("got through later", [again(2, 3)], 0, None, False, None, 3, True),
    Case("called in again, unanswered", [again(2, 3, answered=False)], *NOTHING),
    Case("got through to another team", [again(2, 3, team="team2")], *NOTHING),
    Case("got through after the window", [again(2, 30)], *NOTHING),
    Case(
        "both: callback unanswered, then got through",
        [back(2, 1, answered=False), again(3, 2)],
        1, 1, False, "1001", 2, True,
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_follow_ups(case: Case) -> None:
    (found,) = follow_ups([MISSED], case.later, DEFAULT_WINDOW)
    hours = [
        None if moment is None else (moment - T0) / timedelta(hours=1)
        for moment in (found.called_back_at, found.got_through_at)
    ]
    assert (found.call, found.callbacks, found.callback_answered) == (
        MISSED,
        case.callbacks,
        case.callback_answered,
    )
    assert hours == [case.called_back_at, case.got_through_at]
    assert found.callback_agent == case.callback_agent
    assert found.resolved is case.resolved


@pytest.mark.parametrize(
    ("name", "candidate", "expected"),
    [
        ("waited 20 s, unanswered, closed", MISSED, True),
        ("waited exactly the limit", replace(MISSED, endtime=T0 + DEFAULT_SHORT_ABANDON), True),
        ("a misdial: 4.9 s", replace(MISSED, endtime=T0 + timedelta(seconds=4.9)), False),
        ("answered", again(1, 0), False),
        ("still open", call(1, "dialin", src=CUSTOMER, status=Status.OPEN), False),
        ("timed out unanswered", replace(MISSED, status=Status.TIMEOUT), True),
        ("outbound", back(1, 0, answered=False), False),
    ],
)
def test_abandoned(name: str, candidate: Call, expected: bool) -> None:
    assert abandoned(candidate, DEFAULT_SHORT_ABANDON) is expected


def test_a_withheld_number_matches_nothing() -> None:
    withheld = replace(MISSED, src=None)
    (found,) = follow_ups([withheld], [back(2, 1, dst=None), again(3, 1, src=None)], DEFAULT_WINDOW)
    assert (found.callbacks, found.got_through_at, found.resolved) == (0, None, False)


def test_each_missed_call_has_its_own_window() -> None:
    first = MISSED
    second = replace(MISSED, id=5, diallogid="s5", starttime=T0 + timedelta(hours=20))
    later = [back(2, 30)]  # 30 h after the first, 10 h after the second
    one, two = follow_ups([first, second], later, DEFAULT_WINDOW)
    assert (one.callbacks, two.callbacks) == (0, 1)


def test_unresolved_keeps_only_calls_not_reached() -> None:
    found = follow_ups([MISSED, replace(MISSED, id=9)], [back(2, 1)], DEFAULT_WINDOW)
    assert all(m.resolved for m in found)
    assert kept(found, unresolved=True) == []
    assert kept(found, unresolved=False) == found


def test_csv_shows_times_in_the_zone_and_neutralises_formulas() -> None:
    sneaky = replace(MISSED, src="=HYPERLINK(1)")
    missed = MissedCall(sneaky, 0, None, False, None, None)
    text = "".join(missed_csv([[missed]], ZoneInfo("Asia/Shanghai")))
    header, row, end = text.split("\r\n")
    assert header.startswith("id,orgidentity,diallogid,src,")
    assert "'=HYPERLINK(1)" in row
    assert "2026-11-26T17:00:00+08:00" in row
    assert row.endswith(",false")
    assert end == ""
