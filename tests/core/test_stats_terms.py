"""What statistics are measured against: business hours and days, weeks of local hours,
and the call-center rates derived from a group's totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrlog.core.hours import DAY_SECONDS, EPOCH_WEEKDAY, WEEKDAYS, BusinessHours, cell_label
from cdrlog.core.report import Totals, stats_row


@given(st.integers(0, 200 * 365 * DAY_SECONDS))
def test_the_weekday_of_local_epoch_seconds_is_the_calendar_s(local: int) -> None:
    # The SQL's arithmetic: ((local seconds // 86400) + EPOCH_WEEKDAY) % 7, 0 = Monday.
    moment = datetime(1970, 1, 1) + timedelta(seconds=local)
    assert (local // DAY_SECONDS + EPOCH_WEEKDAY) % 7 == moment.weekday()


def test_the_epoch_began_on_a_thursday() -> None:
    assert (
        WEEKDAYS[EPOCH_WEEKDAY]
        == "thu"
        == datetime(1970, 1, 1, tzinfo=UTC).strftime("%a")[:3].lower()
    )


def test_week_cells_read_as_weekday_and_hour() -> None:
    assert [cell_label(c) for c in (0, 9, 24 + 13, 167)] == ["mon 00", "mon 09", "tue 13", "sun 23"]


@pytest.mark.parametrize(
    ("hours", "days", "expected"),
    [
        ("08:00-20:00", "mon-fri", BusinessHours(8 * 3600, 20 * 3600, frozenset(range(5)))),
        (" 9:30-17:45 ", None, BusinessHours(9 * 3600 + 1800, 17 * 3600 + 2700)),
        ("00:00-24:00", "MON,wed, fri", BusinessHours(days=frozenset({0, 2, 4}))),
        (None, "fri-mon", BusinessHours(days=frozenset({4, 5, 6, 0}))),
        (None, "sun", BusinessHours(days=frozenset({6}))),
        (None, None, None),
    ],
)
def test_business_hours_and_days_as_written(
    hours: str | None, days: str | None, expected: BusinessHours | None
) -> None:
    assert BusinessHours.parse(hours, days) == expected


@pytest.mark.parametrize(
    ("hours", "days"),
    [
        ("8-20", None),
        ("08:00", None),
        ("20:00-08:00", None),
        ("08:00-08:00", None),
        ("08:00-24:30", None),
        ("08:5-20:00", None),
        ("-1:00-20:00", None),
        (None, "mon-fry"),
        (None, "monday"),
        (None, ""),
        (None, "mon,,fri"),
    ],
)
def test_bad_business_hours_or_days_are_value_errors(hours: str | None, days: str | None) -> None:
    with pytest.raises(ValueError, match=r"HH:MM|start before|00:00-24:00|days among"):
        BusinessHours.parse(hours, days)


def test_rates_leave_short_abandons_out_and_are_none_without_calls() -> None:
    totals = Totals(
        calls=12,
        answered=6,
        unanswered=6,
        busy=0,
        failed=0,
        talk_time=600,
        acd=100.0,
        avg_ring_time=7.0,
        offered=10,
        short_abandoned=2,
        abandoned=2,
        answered_within=5,
        asa=7.0,
        max_wait=40,
        avg_abandon_wait=30.12345,
        hold_seconds=90,
        transfers=1,
    )
    row = stats_row("100", "acme", totals)
    assert (row.service_level, row.abandon_rate) == (5 / 8, 2 / 8)
    assert (row.asa, row.max_wait, row.avg_abandon_wait) == (7.0, 40, 30.123)
    only_short = Totals(3, 0, 3, 0, 0, 0, None, None, offered=3, short_abandoned=3)
    empty = stats_row("100", "acme", only_short)
    assert (empty.service_level, empty.abandon_rate, empty.asa, empty.max_wait) == (None,) * 4
