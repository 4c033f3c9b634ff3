"""Parsing of asterCC's `eventTime` into an aware UTC datetime. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

# Events outside this window come from a PBX whose clock is wrong or from garbage;
# rejecting them keeps every stored time inside what all three databases can hold.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH = re.compile(r"\d{1,12}(\.\d{1,9})?", re.ASCII)
_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?", re.ASCII)


class EventTimeError(ValueError):
    """The text is not an eventTime in any of the accepted forms."""


def parse_event_time(text: str, pbx_timezone: ZoneInfo) -> datetime:
    """Read `YYYY-MM-DD HH:MM:SS` (PBX local time), ISO-8601 with offset, or epoch seconds.

    Naive local times are placed in `pbx_timezone`. A local time that occurs twice when
    clocks go back is taken as its first occurrence (`fold=0`), as the PBX most likely
    wrote it before the change.
    """
    value = text.strip()
    is_epoch = _EPOCH.fullmatch(value) is not None
    moment = _from_epoch(value) if is_epoch else _from_calendar(value, pbx_timezone)
    if not EARLIEST <= moment < LATEST:
        raise EventTimeError(f"{value!r} is outside the years 1970 to 2199")
    return moment


def _from_epoch(value: str) -> datetime:
    try:
        seconds = Decimal(value)
    except InvalidOperation as error:  # pragma: no cover - the regex admits only digits
        raise EventTimeError(f"{value!r} is not a number of seconds") from error
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    if whole >= int(LATEST.timestamp()):
        raise EventTimeError(f"{value!r} is outside the years 1970 to 2199")
    return EARLIEST + timedelta(seconds=whole, microseconds=micros)


def _from_calendar(value: str, pbx_timezone: ZoneInfo) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise EventTimeError(
            f"{value!r} is not 'YYYY-MM-DD HH:MM:SS', ISO-8601 or epoch seconds"
        ) from error
    if parsed.tzinfo is None:
        if not _LOCAL.fullmatch(value):
            raise EventTimeError(f"{value!r} is not 'YYYY-MM-DD HH:MM:SS'")
        parsed = parsed.replace(tzinfo=pbx_timezone)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as error:
        raise EventTimeError(f"{value!r} is outside the years 1970 to 2199") from error


def to_utc_naive(moment: datetime) -> datetime:
    """The UTC wall time without tzinfo: how every database column stores it."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def from_utc_naive(stored: datetime) -> datetime:
    """Inverse of `to_utc_naive`."""
    return stored.replace(tzinfo=UTC)


def as_utc(stored: datetime | str) -> datetime:
    """An aware UTC datetime from a stored naive-UTC value, or its ISO text as some
    drivers hand it over."""
    return from_utc_naive(datetime.fromisoformat(stored) if isinstance(stored, str) else stored)
