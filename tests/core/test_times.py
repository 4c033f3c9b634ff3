"""parse_event_time: the three forms of asterCC's `eventTime`, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrlog.core.times import (
    EARLIEST,
    LATEST,
    EventTimeError,
    from_utc_naive,
    parse_event_time,
    to_utc_naive,
)

UTC_ZONE = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- 'YYYY-MM-DD HH:MM:SS' in the PBX's own zone -------------------------------------


def test_local_time_is_read_in_the_pbx_zone() -> None:
    # Shanghai is UTC+8 all year: 09:00 there is 01:00 UTC.
    assert parse_event_time("2026-01-05 09:00:05", SHANGHAI) == at(2026, 1, 5, 1, 0, 5)


def test_local_time_crosses_midnight_backwards_into_utc() -> None:
    assert parse_event_time("2026-01-05 07:59:59", SHANGHAI) == at(2026, 1, 4, 23, 59, 59)


def test_local_time_in_utc_zone_is_taken_as_is() -> None:
    assert parse_event_time("2026-01-05 09:00:05", UTC_ZONE) == at(2026, 1, 5, 9, 0, 5)


def test_result_is_aware_and_in_utc() -> None:
    moment = parse_event_time("2026-07-01 12:00:00", BERLIN)
    assert moment.tzinfo is UTC
    assert moment == at(2026, 7, 1, 10, 0, 0)  # summer time: UTC+2


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_event_time("  2026-01-05 09:00:05\n", SHANGHAI) == at(2026, 1, 5, 1, 0, 5)


def test_local_time_with_t_separator_and_fraction_is_accepted() -> None:
    assert parse_event_time("2026-01-05T09:00:05.250", SHANGHAI) == datetime(
        2026, 1, 5, 1, 0, 5, 250_000, tzinfo=UTC
    )


def test_local_time_without_seconds_is_accepted() -> None:
    assert parse_event_time("2026-01-05 09:00", SHANGHAI) == at(2026, 1, 5, 1, 0, 0)


# --- ISO-8601 with an offset: the offset wins over the PBX zone ------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-05T01:00:05Z",
        "2026-01-05T01:00:05+00:00",
        "2026-01-05T09:00:05+08:00",
        "2026-01-04T20:00:05-05:00",
        "2026-01-05 06:30:05+05:30",
        "20260105T010005Z",
    ],
)
def test_iso_with_offset_ignores_the_pbx_zone(text: str) -> None:
    assert parse_event_time(text, BERLIN) == at(2026, 1, 5, 1, 0, 5)


# --- Unix epoch seconds ----------------------------------------------------------------


def test_epoch_integer() -> None:
    assert parse_event_time("1767574805", SHANGHAI) == at(2026, 1, 5, 1, 0, 5)


def test_epoch_zero_is_the_earliest_accepted_instant() -> None:
    assert parse_event_time("0", UTC_ZONE) == EARLIEST


def test_epoch_decimal_keeps_microseconds() -> None:
    assert parse_event_time("1767574805.123456", SHANGHAI) == datetime(
        2026, 1, 5, 1, 0, 5, 123_456, tzinfo=UTC
    )


def test_epoch_decimal_short_fraction() -> None:
    assert parse_event_time("1767574805.5", UTC_ZONE) == datetime(
        2026, 1, 5, 1, 0, 5, 500_000, tzinfo=UTC
    )


def test_epoch_nanoseconds_are_truncated_to_microseconds() -> None:
    # Datetimes hold microseconds; the digits beyond are dropped, never rounded up.
    assert parse_event_time("1767574805.123456999", UTC_ZONE) == datetime(
        2026, 1, 5, 1, 0, 5, 123_456, tzinfo=UTC
    )


def test_epoch_is_not_shifted_by_the_pbx_zone() -> None:
    assert parse_event_time("1767574805", SHANGHAI) == parse_event_time("1767574805", BERLIN)


def test_last_second_before_2200_is_accepted() -> None:
    assert parse_event_time("7258118399", UTC_ZONE) == at(2199, 12, 31, 23, 59, 59)


# --- Daylight saving time in the PBX zone ----------------------------------------------


def test_ambiguous_local_time_takes_its_first_occurrence() -> None:
    # Berlin, 2026-10-25: clocks go back 03:00 CEST -> 02:00 CET, so 02:30 happens twice.
    # The first occurrence (CEST, UTC+2, fold=0) is taken: 00:30 UTC, not 01:30 UTC.
    assert parse_event_time("2026-10-25 02:30:00", BERLIN) == at(2026, 10, 25, 0, 30)


def test_nonexistent_local_time_is_read_with_the_offset_before_the_change() -> None:
    # Berlin, 2026-03-29: clocks jump 02:00 CET -> 03:00 CEST, so 02:30 never happens.
    # It is accepted (not refused) and read with the offset in force before the jump
    # (CET, UTC+1): 01:30 UTC, the same instant as 03:30 CEST.
    moment = parse_event_time("2026-03-29 02:30:00", BERLIN)
    assert moment == at(2026, 3, 29, 1, 30)
    assert moment == parse_event_time("2026-03-29 03:30:00", BERLIN)


def test_local_times_on_either_side_of_the_spring_gap_are_one_second_apart() -> None:
    before = parse_event_time("2026-03-29 01:59:59", BERLIN)
    after = parse_event_time("2026-03-29 03:00:00", BERLIN)
    assert after - before == timedelta(seconds=1)


# --- Refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\t\n",
        "yesterday",
        "now",
        "2026-13-01 00:00:00",
        "2026-02-30 00:00:00",
        "2026-01-05 24:00:00",
        "2026-01-05 09:60:00",
        "2026-01-05",
        "09:00:05",
        "05/01/2026 09:00:05",
        "2026-01-05 09:00:05 CST",
        "2026-01-05T09:00:05+25:00",
        "20260105T090005",
        "1969-12-31 23:59:59",
        "0001-01-01 00:00:00",
        "2200-01-01 08:00:00",
        "9999-12-31 23:59:59",
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+01:00",
        "1969-12-31T23:59:59Z",
        "7258118400",
        "99999999999",
        "999999999999",
        "9999999999999",
        "-1",
        "-1767574805",
        "+1767574805",
        "1767574805.",
        ".5",
        "1767574805.1234567891",
        "1e9",
        "0x10",
        "1,5",
        "NaN",
        "inf",
        "1767574805 1767574805",
        "2026-01-05 09:00:05\x00",
        "2026-01-05 09:00:05\ud800",
    ],
)
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(EventTimeError):
        parse_event_time(text, SHANGHAI)


def test_local_time_is_checked_against_the_range_after_conversion() -> None:
    # 1970-01-01 07:00 in Shanghai is 23:00 UTC the day before: before the epoch.
    with pytest.raises(EventTimeError, match="outside the years 1970 to 2199"):
        parse_event_time("1970-01-01 07:00:00", SHANGHAI)
    assert parse_event_time("1970-01-01 08:00:00", SHANGHAI) == EARLIEST


def test_last_local_second_before_2200_utc_is_accepted() -> None:
    assert parse_event_time("2200-01-01 07:59:59", SHANGHAI) == at(2199, 12, 31, 23, 59, 59)


def test_digits_only_are_epoch_seconds_even_when_they_look_like_a_date() -> None:
    assert parse_event_time("20260105", SHANGHAI) == EARLIEST + timedelta(seconds=20260105)


def test_refusal_is_a_value_error_naming_the_text() -> None:
    with pytest.raises(ValueError, match="yesterday"):
        parse_event_time("yesterday", UTC_ZONE)


@pytest.mark.parametrize(
    "text",
    [
        "\u0661\u0667\u0666\u0667\u0665\u0667\u0664\u0668\u0660\u0665",
        "\uff11\uff17\uff16\uff17\uff15\uff17\uff14\uff18\uff10\uff15",
    ],
)
def test_non_ascii_digits_are_not_epoch_seconds(text: str) -> None:
    # Arabic-Indic and full-width spellings of 1767574805.
    with pytest.raises(EventTimeError):
        parse_event_time(text, UTC_ZONE)


# --- Storage helpers -------------------------------------------------------------------


def test_utc_naive_round_trip() -> None:
    moment = datetime(2026, 1, 5, 9, 0, 5, 7, tzinfo=timezone(timedelta(hours=8)))
    stored = to_utc_naive(moment)
    assert stored == datetime(2026, 1, 5, 1, 0, 5, 7)
    assert stored.tzinfo is None
    assert from_utc_naive(stored) == moment


# --- Property: the three forms agree -------------------------------------------------

instants = st.datetimes(
    min_value=to_utc_naive(EARLIEST), max_value=to_utc_naive(LATEST) - timedelta(microseconds=1)
).map(from_utc_naive)
zones = st.timezones()


def as_epoch(moment: datetime) -> str:
    since = moment - EARLIEST
    return f"{since.days * 86_400 + since.seconds}.{since.microseconds:06d}"


def as_local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S.%f")


def is_ambiguous(wall: datetime) -> bool:
    return wall.replace(fold=0).utcoffset() != wall.replace(fold=1).utcoffset()


@settings(max_examples=300, deadline=None)
@given(moment=instants, zone=zones, pbx=zones)
def test_every_form_of_an_instant_reads_back_as_that_instant(
    moment: datetime, zone: ZoneInfo, pbx: ZoneInfo
) -> None:
    assert parse_event_time(as_epoch(moment), pbx) == moment
    assert parse_event_time(moment.isoformat(), pbx) == moment
    assert parse_event_time(moment.astimezone(zone).isoformat(), pbx) == moment
    wall = moment.astimezone(zone)
    local = parse_event_time(as_local(moment, zone), zone)
    if is_ambiguous(wall):
        # The wall clock shows this time twice; the reading is its first occurrence.
        assert local == wall.replace(fold=0).astimezone(UTC)
        assert local <= moment
    else:
        assert local == moment


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40), pbx=zones)
def test_any_text_is_an_instant_in_range_or_an_event_time_error(text: str, pbx: ZoneInfo) -> None:
    try:
        moment = parse_event_time(text, pbx)
    except EventTimeError:
        return
    assert moment.tzinfo is UTC
    assert EARLIEST <= moment < LATEST
