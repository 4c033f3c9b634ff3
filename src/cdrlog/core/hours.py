"""Local time on a business calendar: business hours and days, and the weekday-hour
cells of the week. Pure."""

from __future__ import annotations

from dataclasses import dataclass

DAY_SECONDS = 86_400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# 1970-01-01, local day 0, was a Thursday: weekday (0 = Monday) = (day + 3) % 7.
EPOCH_WEEKDAY = 3


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Local times calls must start in: on `days` (0 = Monday), from `start` to `end`
    (seconds after local midnight, `end` excluded)."""

    start: int = 0
    end: int = DAY_SECONDS
    days: frozenset[int] = frozenset(range(7))

    @classmethod
    def parse(cls, hours: str | None, days: str | None) -> BusinessHours | None:
        """From `08:00-20:00` and `mon-fri` or `mon,wed,fri` (either may be None);
        ValueError naming what is wrong. A span over midnight is refused: its calls
        would belong to two days."""
        if hours is None and days is None:
            return None
        start, end = _hours(hours) if hours is not None else (0, DAY_SECONDS)
        return cls(start, end, _days(days) if days is not None else frozenset(range(7)))


def cell_label(cell: int) -> str:
    """A week cell (local weekday * 24 + local hour, 0 = Monday 00:00) as `mon 09`."""
    return f"{WEEKDAYS[cell // 24]} {cell % 24:02d}"


def _hours(text: str) -> tuple[int, int]:
    start, dash, end = text.strip().partition("-")
    if not dash:
        raise ValueError("is not HH:MM-HH:MM, e.g. 08:00-20:00")
    first, last = _clock(start), _clock(end)
    if first >= last:
        raise ValueError("must start before it ends, within one day (00:00-24:00)")
    return first, last


def _clock(text: str) -> int:
    hour, colon, minute = text.strip().partition(":")
    if not (colon and hour.isdigit() and minute.isdigit() and len(minute) == 2):
        raise ValueError("is not HH:MM-HH:MM, e.g. 08:00-20:00")
    seconds = int(hour) * 3600 + int(minute) * 60
    if int(minute) > 59 or seconds > DAY_SECONDS:
        raise ValueError("holds a time outside 00:00-24:00")
    return seconds


def _days(text: str) -> frozenset[int]:
    """`mon-fri`, `mon,wed,fri` or both (`mon-wed,sat`); a range may wrap (`sat-mon`)."""
    days: set[int] = set()
    for part in text.lower().split(","):
        first, dash, last = part.strip().partition("-")
        if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
            raise ValueError(f"is not days among {', '.join(WEEKDAYS)}, e.g. mon-fri")
        low = WEEKDAYS.index(first)
        high = WEEKDAYS.index(last) if dash else low
        days.update((low + step) % 7 for step in range((high - low) % 7 + 1))
    return frozenset(days)
