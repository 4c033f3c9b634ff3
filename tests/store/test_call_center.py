"""Call-center statistics on each database: every figure of every grouping is the
recount in Python of the CDRs stored (`support.callcenter`), whatever the rows, the
thresholds, the business hours and the reader's zone (daylight saving included)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from cdrlog.core.hours import BusinessHours
from cdrlog.core.report import CdrFilter, GroupBy, StatsTerms
from cdrlog.store.reader import Reader
from support.callcenter import (
    SERVICE_LEVELS,
    SHORT_ABANDONS,
    ZONES,
    business_hours,
    cdr_rows,
    recount,
    same_figures,
    store,
)


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(cdr_rows(), max_size=30),
    group_by=st.sampled_from(list(GroupBy)),
    zone=st.sampled_from(ZONES),
    service_level=SERVICE_LEVELS,
    short_abandon=SHORT_ABANDONS,
    business=business_hours(),
)
def test_every_figure_is_a_recount_of_the_cdrs(
    engine: Engine,
    rows: list[dict[str, object]],
    group_by: GroupBy,
    zone: str,
    service_level: int,
    short_abandon: int,
    business: tuple[str | None, str | None],
) -> None:
    store(engine, rows)
    terms = StatsTerms(service_level, short_abandon, BusinessHours.parse(*business))
    got = Reader(engine).stats(CdrFilter(), group_by, ZoneInfo(zone), terms)
    expected = recount(rows, group_by, ZoneInfo(zone), terms)
    by_key = {(row.team, row.group): asdict(row) for row in got}
    assert set(by_key) == set(expected)
    for key, figures in expected.items():
        assert same_figures(by_key[key], figures), (key, by_key[key], figures)


def _dialin(start: datetime, wait: int = 3) -> dict[str, object]:
    return {
        "orgidentity": "acme",
        "calltype": "dialin",
        "target": "x",
        "agentno": "1001",
        "starttime": start,
        "answertime": None,
        "endtime": start.replace(second=wait),
        "billsec": 0,
        "disposition": "NOANSWER",
        "status": "closed",
        "agent_group": "100",
        "hold_seconds": None,
        "transferred_to": None,
    }


def test_weekday_hours_are_local_across_daylight_saving(engine: Engine) -> None:
    # Berlin, 2026-03-29: 01:59 UTC is 03:59 summer time, 00:30 UTC 01:30 winter time;
    # 2026-10-25 00:30 UTC is 02:30 summer time and 01:30 UTC 02:30 again, winter time.
    starts = [
        datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 59, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),
    ]
    store(engine, [_dialin(start) for start in starts])
    rows = Reader(engine).stats(CdrFilter(), GroupBy.WEEKDAY_HOUR, ZoneInfo("Europe/Berlin"))
    assert [(row.group, row.calls) for row in rows] == [
        ("mon 09", 1),
        ("sun 01", 1),
        ("sun 02", 2),
        ("sun 03", 1),
    ]


def test_business_hours_keep_calls_that_started_inside_them(engine: Engine) -> None:
    # Friday 2026-11-20 and Saturday 21, in Shanghai (UTC+8): 07:59, 08:00, 19:59, 20:00.
    starts = [
        datetime(2026, 11, 19, 23, 59, tzinfo=UTC),
        datetime(2026, 11, 20, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 11, 59, tzinfo=UTC),
        datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
    ]
    store(engine, [_dialin(start) for start in starts])
    terms = StatsTerms(business=BusinessHours.parse("08:00-20:00", "mon-fri"))
    [row] = Reader(engine).stats(CdrFilter(), GroupBy.TEAM, ZoneInfo("Asia/Shanghai"), terms)
    assert (row.calls, row.offered) == (2, 2)
    weekend = StatsTerms(business=BusinessHours.parse(None, "sat,sun"))
    [row] = Reader(engine).stats(CdrFilter(), GroupBy.TEAM, ZoneInfo("Asia/Shanghai"), weekend)
    assert row.calls == 1
