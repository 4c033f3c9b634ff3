"""CDR rows drawn for the statistics' properties, and the straightforward recount of
every figure `GET /api/v1/stats` gives, in Python, from the rows themselves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from cdrlog.core.hours import WEEKDAYS
from cdrlog.core.report import GroupBy, StatsTerms
from cdrlog.store.tables import cdr

# Two days each side of Europe/Berlin's and America/New_York's change to summer time
# (2026-03-29 01:00 UTC; New York changed on 2026-03-08, so also a day across a week).
BASE = datetime(2026, 3, 27, 0, 0, tzinfo=UTC)
SPAN_SECONDS = 4 * 86_400
ZONES = ("UTC", "Europe/Berlin", "Asia/Shanghai", "America/New_York", "Asia/Kolkata")
CdrRow = dict[str, Any]
# Thresholds as readers set them, and waits on, just under and just over each.
SHORT_ABANDONS = st.sampled_from([0, 5, 6, 20])
SERVICE_LEVELS = st.sampled_from([0, 5, 20, 21])
WAITS = st.one_of(st.sampled_from([0, 4, 5, 6, 19, 20, 21]), st.integers(0, 40))


@st.composite
def cdr_rows(draw: st.DrawFn) -> CdrRow:
    """One CDR as stored: answered or not, open or closed, waits near the thresholds."""
    start = BASE + timedelta(seconds=draw(st.integers(0, SPAN_SECONDS)))
    answered = draw(st.booleans())
    status = draw(st.sampled_from(["open", "closed", "closed", "timeout"]))
    wait = timedelta(seconds=draw(WAITS))
    talk = timedelta(seconds=draw(st.integers(0, 90)))
    ended = status != "open"
    if answered:
        disposition = "ANSWER"
        answertime: datetime | None = start + wait
        endtime = start + wait + talk if ended else None
    else:
        disposition = draw(st.sampled_from(["NOANSWER", "NOANSWER", "BUSY", "FAILED"]))
        answertime = None
        endtime = start + wait if ended else None
    return {
        "orgidentity": draw(st.sampled_from(["acme", "zenith"])),
        "calltype": draw(st.sampled_from(["dialin", "dialin", "dialout"])),
        "target": "x",
        "agentno": draw(st.sampled_from([None, "1001", "1002"])),
        "starttime": start,
        "answertime": answertime,
        "endtime": endtime,
        "billsec": int(talk.total_seconds()) if answered and ended else 0,
        "disposition": disposition,
        "status": status,
        "agent_group": draw(st.sampled_from([None, "", "100", "200"])),
        "hold_seconds": draw(st.sampled_from([None, 0, 7, 45])),
        "transferred_to": draw(st.sampled_from([None, None, "8002"])),
    }


def business_hours() -> st.SearchStrategy[tuple[str | None, str | None]]:
    hours = st.sampled_from([None, "08:00-20:00", "00:00-24:00", "23:30-24:00", "02:00-03:00"])
    days = st.sampled_from([None, "mon-fri", "sat,sun", "fri-mon", "sun"])
    return st.tuples(hours, days)


def store(engine: Engine, rows: Sequence[CdrRow]) -> None:
    """`rows` and nothing else in the cdr table."""
    moment = BASE
    with engine.begin() as connection:
        connection.execute(delete(cdr))
        if rows:
            stored = [
                row | {"diallogid": f"call-{n}", "created_at": moment, "updated_at": moment}
                for n, row in enumerate(rows)
            ]
            connection.execute(cdr.insert(), stored)


def recount(
    rows: Sequence[CdrRow], group_by: GroupBy, zone: ZoneInfo, terms: StatsTerms
) -> dict[tuple[str | None, str], dict[str, Any]]:
    """Every figure of every group, by (team, group), as `StatsRow` fields."""
    groups: defaultdict[tuple[str | None, str], list[CdrRow]] = defaultdict(list)
    for row in rows:
        local = row["starttime"].astimezone(zone)
        if not _in_business(local, terms):
            continue
        groups[_key(row, local, group_by)].append(row)
    return {key: _figures(members, terms) for key, members in groups.items()}


def _in_business(local: datetime, terms: StatsTerms) -> bool:
    hours = terms.business
    if hours is None:
        return True
    of_day = local.hour * 3600 + local.minute * 60 + local.second
    return local.weekday() in hours.days and hours.start <= of_day < hours.end


def _key(row: CdrRow, local: datetime, group_by: GroupBy) -> tuple[str | None, str]:
    team = row["orgidentity"]
    if group_by is GroupBy.AGENT:
        return team, row["agentno"] or ""
    if group_by is GroupBy.TEAM:
        return team, team
    if group_by is GroupBy.QUEUE:
        return team, row["agent_group"] or ""
    if group_by is GroupBy.DAY:
        return None, local.date().isoformat()
    if group_by is GroupBy.HOUR:
        return None, local.replace(minute=0, second=0).isoformat(timespec="minutes")
    return None, f"{WEEKDAYS[local.weekday()]} {local.hour:02d}"


def _wait(row: CdrRow) -> int:
    until = row["answertime"] or row["endtime"]
    return int((until - row["starttime"]).total_seconds())


def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def _figures(members: list[CdrRow], terms: StatsTerms) -> dict[str, Any]:
    answered = [m for m in members if m["disposition"] == "ANSWER"]
    offered = [
        m
        for m in members
        if m["calltype"] == "dialin" and (m["answertime"] is not None or m["status"] != "open")
    ]
    taken = [m for m in offered if m["answertime"] is not None]
    missed = [m for m in offered if m["answertime"] is None]
    short = [m for m in missed if _wait(m) < terms.short_abandon_seconds]
    abandoned = [m for m in missed if _wait(m) >= terms.short_abandon_seconds]
    within = [m for m in taken if _wait(m) <= terms.service_level_seconds]
    measured = len(offered) - len(short)
    return {
        "calls": len(members),
        "answered": len(answered),
        "unanswered": sum(m["disposition"] == "NOANSWER" for m in members),
        "busy": sum(m["disposition"] == "BUSY" for m in members),
        "failed": sum(m["disposition"] in ("FAILED", "CONGESTION") for m in members),
        "asr": len(answered) / len(members),
        "acd": _mean([m["billsec"] for m in answered]),
        "talk_time": sum(m["billsec"] for m in members),
        "avg_ring_time": _mean([_wait(m) for m in answered]),
        "offered": len(offered),
        "short_abandoned": len(short),
        "abandoned": len(abandoned),
        "answered_within": len(within),
        "service_level": len(within) / measured if measured else None,
        "abandon_rate": len(abandoned) / measured if measured else None,
        "asa": _mean([_wait(m) for m in taken]),
        "max_wait": max((_wait(m) for m in offered), default=None),
        "avg_abandon_wait": _mean([_wait(m) for m in abandoned]),
        "hold_seconds": sum(m["hold_seconds"] or 0 for m in members),
        "transfers": sum(m["transferred_to"] is not None for m in members),
    }


def same_figures(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equal, means to the 3 decimals the API rounds them to."""
    for name, value in expected.items():
        if value is None or got[name] is None:
            if got[name] is not value:
                return False
        elif abs(got[name] - value) > 0.001:
            return False
    return True
