"""report: cursors, number matches, local-time buckets across daylight saving."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrlog.core.hours import DAY_SECONDS
from cdrlog.core.report import (
    Cursor,
    GroupBy,
    NumberMatch,
    OffsetSpan,
    Sort,
    Totals,
    bucket_label,
    offset_spans,
    offset_spans_on,
    stats_row,
)

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2199, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=0, max_value=2**53),
    st.integers(min_value=0, max_value=2**53),
    st.integers(min_value=0, max_value=2**53),
    st.sampled_from(Sort),
)
def test_a_cursor_survives_its_round_trip(
    start: datetime, id_: int, ceiling: int, total: int, sort: Sort
) -> None:
    cursor = Cursor(start, id_, ceiling, total, sort)
    assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize(
    "token",
    ["", "x", "not-base64!", "WzFd", "eyJhIjoxfQ", "WyIyMDI2LTAxLTAxIiwxLDIsMywibmV3ZXN0Il0"],
)
def test_a_foreign_cursor_is_a_value_error(token: str) -> None:
    with pytest.raises(ValueError, match="cursor"):
        Cursor.decode(token)


@given(st.text(max_size=50))
def test_decoding_any_text_either_works_or_says_value_error(token: str) -> None:
    try:
        cursor = Cursor.decode(token)
    except ValueError:
        return
    assert Cursor.decode(cursor.encode()) == cursor


def test_numbers_are_exact_unless_they_end_in_a_star() -> None:
    assert NumberMatch.parse("13800138000") == NumberMatch("13800138000", prefix=False)
    assert NumberMatch.parse(" 138* ") == NumberMatch("138", prefix=True)


def test_a_zone_without_daylight_saving_has_one_span() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert offset_spans(SHANGHAI, start, start + timedelta(days=400)) == [
        OffsetSpan(None, 8 * 3600)
    ]


def test_daylight_saving_changes_split_the_spans_at_the_exact_second() -> None:
    spans = offset_spans(
        BERLIN, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    )
    spring = int(datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp())
    autumn = int(datetime(2026, 10, 25, 1, 0, tzinfo=UTC).timestamp())
    assert spans == [OffsetSpan(None, 3600), OffsetSpan(spring, 7200), OffsetSpan(autumn, 3600)]


def test_bucket_labels_are_local_days_and_hours() -> None:
    local_noon = int(datetime(2026, 7, 1, 12, 0).replace(tzinfo=UTC).timestamp())
    assert bucket_label(local_noon // 86400, GroupBy.DAY, BERLIN) == "2026-07-01"
    assert bucket_label(local_noon // 3600, GroupBy.HOUR, BERLIN) == "2026-07-01T12:00+02:00"
    assert bucket_label(local_noon // 3600, GroupBy.HOUR, SHANGHAI) == "2026-07-01T12:00+08:00"


def test_a_stats_row_derives_asr_and_rounds_means() -> None:
    totals = Totals(
        calls=8,
        answered=6,
        unanswered=1,
        busy=1,
        failed=0,
        talk_time=600,
        acd=100.0,
        avg_ring_time=7.123456,
    )
    row = stats_row("1001", "team1", totals)
    assert row.asr == 0.75
    assert row.avg_ring_time == 7.123
    assert (row.group, row.team, row.talk_time, row.acd) == ("1001", "team1", 600, 100.0)


def test_no_calls_is_an_asr_of_zero_not_an_error() -> None:
    row = stats_row("x", None, Totals(0, 0, 0, 0, 0, 0, None, None))
    assert row.asr == 0.0
    assert row.acd is None


ZONES = sorted(available_timezones())


def offset_within(spans: list[OffsetSpan], moment: datetime) -> int:
    """What the spans say the offset is at `moment`."""
    offset = spans[0].offset
    for span in spans[1:]:
        if span.since is not None and moment.timestamp() >= span.since:
            offset = span.offset
    return offset


@given(
    st.sampled_from(ZONES),
    st.datetimes(datetime(1950, 1, 1), datetime(2090, 1, 1)),
    st.lists(st.integers(0, 5 * 365 * 86400), min_size=1, max_size=20),
)
def test_spans_of_the_call_days_give_each_calls_offset(
    name: str, start: datetime, seconds: list[int]
) -> None:
    zone = ZoneInfo(name)
    moments = [start.replace(tzinfo=UTC) + timedelta(seconds=s) for s in seconds]
    spans = offset_spans_on(zone, (int(m.timestamp()) // DAY_SECONDS for m in moments))
    for moment in moments:
        expected = moment.astimezone(zone).utcoffset()
        assert expected is not None
        assert offset_within(spans, moment) == int(expected.total_seconds()), moment


def test_calls_centuries_apart_cost_two_days_of_spans() -> None:
    days = [1 // DAY_SECONDS, int(datetime(2199, 12, 31, tzinfo=UTC).timestamp()) // DAY_SECONDS]
    assert offset_spans_on(ZoneInfo("Europe/Berlin"), days) == [OffsetSpan(None, 3600)]
