"""What readers ask for, as plain values: CDR filters, keyset cursors, statistics. Pure.

The SQL that answers these lives in `cdrlog.store.queries`; this module only says what is
asked and how answers are labelled (time buckets in the reader's zone).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

from cdrlog.core.hours import DAY_SECONDS, BusinessHours
from cdrlog.core.rules import Disposition, Status


@dataclass(frozen=True, slots=True)
class NumberMatch:
    """A phone number, exact, or a prefix when written with a trailing `*` (`138*`)."""

    digits: str
    prefix: bool

    @classmethod
    def parse(cls, text: str) -> NumberMatch:
        stripped = text.strip()
        if stripped.endswith("*"):
            return cls(stripped.rstrip("*"), prefix=True)
        return cls(stripped, prefix=False)


@dataclass(frozen=True, slots=True)
class CdrFilter:
    """Which CDRs: every condition given must hold. Times are aware; `start_to` excluded.

    `teams` None means every team; an empty tuple means none (a reader allowed no team).
    """

    start_from: datetime | None = None
    start_to: datetime | None = None
    teams: tuple[str, ...] | None = None
    agentno: str | None = None
    number: NumberMatch | None = None
    src: NumberMatch | None = None
    dst: NumberMatch | None = None
    dispositions: tuple[Disposition, ...] = ()
    calltype: str | None = None
    status: Status | None = None
    min_billsec: int | None = None


class Sort(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"


# Ids and counts fit a signed 64-bit column: a larger number would overflow the driver.
MAX_ID = 2**63 - 1
# The times a reader may ask about (filters, cursors). Wider than any stored time (see
# `times.EARLIEST`), narrower than what MariaDB's DATETIME and PostgreSQL's timestamp
# both hold, and far enough from years 1 and 9999 that no zone's offset overflows.
EARLIEST_ASKED = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_ASKED = datetime(3000, 1, 1, tzinfo=UTC)
ASKED_YEARS = "the years 1900 to 2999"
# Cursors this service writes are about 100 characters. Longer tokens are refused before
# decoding, so no nesting, however deep, can exhaust the JSON parser's stack.
MAX_CURSOR = 512


def asked_time(moment: datetime, zone: tzinfo) -> datetime:
    """`moment` as aware UTC, read in `zone` if it has no offset; ValueError outside
    `EARLIEST_ASKED`..`LATEST_ASKED`."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    try:
        utc = aware.astimezone(UTC)
    except OverflowError as error:
        raise ValueError(f"is outside {ASKED_YEARS}") from error
    if not EARLIEST_ASKED <= utc < LATEST_ASKED:
        raise ValueError(f"is outside {ASKED_YEARS}")
    return utc


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts, and the snapshot the listing walks.

    `ceiling` is the highest CDR id when the first page was read: later pages skip
    CDRs created since, so rows never shift between pages while calls come in; `total`
    is that snapshot's count, carried along instead of counted again.
    """

    starttime: datetime
    id: int
    ceiling: int
    total: int
    sort: Sort

    def encode(self) -> str:
        document = [self.starttime.isoformat(), self.id, self.ceiling, self.total, self.sort]
        raw = json.dumps(document, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Raises ValueError for a token this service did not write, or one forged to
        hold values no query could take. The message never repeats the token."""
        if len(token) > MAX_CURSOR:
            raise ValueError(f"not a cursor of this service: longer than {MAX_CURSOR}")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return cls._of(json.loads(raw))
        except (ValueError, TypeError, binascii.Error, RecursionError) as error:
            # ValueError covers JSON, UnicodeDecodeError and too many digits in a number.
            raise ValueError("not a cursor of this service") from error

    @classmethod
    def _of(cls, document: object) -> Cursor:
        if not isinstance(document, list) or len(document) != 5:
            raise ValueError("not a list of five")
        start, id_, ceiling, total, sort = document
        if not isinstance(start, str) or not isinstance(sort, str):
            raise ValueError("the time and the sort are text")
        # `type` rather than isinstance: JSON's true and false are ints to Python.
        if not all(type(n) is int and 0 <= n <= MAX_ID for n in (id_, ceiling, total)):
            raise ValueError("ids and the count are 64-bit integers, not negative")
        moment = datetime.fromisoformat(start)
        if moment.tzinfo is None:
            raise ValueError("the time has no offset")
        return cls(asked_time(moment, UTC), id_, ceiling, total, Sort(sort))


class GroupBy(StrEnum):
    AGENT = "agent"
    TEAM = "team"
    QUEUE = "queue"
    DAY = "day"
    HOUR = "hour"
    WEEKDAY_HOUR = "weekday_hour"


BUCKET_SECONDS = {GroupBy.DAY: DAY_SECONDS, GroupBy.HOUR: 3600}
# Groupings by the reader's local time: they need the zone's offsets over the calls.
LOCAL_GROUPS = (GroupBy.DAY, GroupBy.HOUR, GroupBy.WEEKDAY_HOUR)


# Common defaults (80/20 is the classic target), not a standard: vendors differ.
SERVICE_LEVEL_SECONDS = 20
SHORT_ABANDON_SECONDS = 5


@dataclass(frozen=True, slots=True)
class StatsTerms:
    """What the call-center figures are measured against (see `StatsRow`)."""

    service_level_seconds: int = SERVICE_LEVEL_SECONDS
    short_abandon_seconds: int = SHORT_ABANDON_SECONDS
    business: BusinessHours | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    """Aggregates of one group as the database sums them."""

    calls: int
    answered: int
    unanswered: int
    busy: int
    failed: int
    talk_time: int
    acd: float | None
    avg_ring_time: float | None
    offered: int = 0
    short_abandoned: int = 0
    abandoned: int = 0
    answered_within: int = 0
    asa: float | None = None
    max_wait: int | None = None
    avg_abandon_wait: float | None = None
    hold_seconds: int = 0
    transfers: int = 0


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One group. `unanswered`, `busy` and `failed` (FAILED or CONGESTION) together with
    `answered` make up `calls`; `asr` = answered / calls; `acd` and `avg_ring_time` are
    means over answered calls, in seconds; `talk_time` is the sum of `billsec`.

    Call-center figures count inbound calls (`dialin`) only, less those still open and
    unanswered (waiting, not yet offered). A call is answered when it has an answertime
    (an IVR's answer gives none); its wait is answertime - starttime, or endtime -
    starttime unanswered. `offered` = short_abandoned + abandoned + answered inbound;
    a short abandon is unanswered with a wait under `short_abandon_seconds`;
    `answered_within` waited at most `service_level_seconds`. `service_level` and
    `abandon_rate` are answered_within and abandoned over offered - short_abandoned (None
    when that is 0). `asa`: mean wait answered; `max_wait`: longest wait offered;
    `avg_abandon_wait`: mean wait abandoned (not short). `hold_seconds` and `transfers`
    (calls with `transferred_to`) count calls of both directions: agents hold and
    transfer calls they made as well as calls they took."""

    group: str
    team: str | None
    calls: int
    answered: int
    unanswered: int
    busy: int
    failed: int
    asr: float
    acd: float | None
    talk_time: int
    avg_ring_time: float | None
    offered: int = 0
    short_abandoned: int = 0
    abandoned: int = 0
    answered_within: int = 0
    service_level: float | None = None
    abandon_rate: float | None = None
    asa: float | None = None
    max_wait: int | None = None
    avg_abandon_wait: float | None = None
    hold_seconds: int = 0
    transfers: int = 0


def stats_row(group: str, team: str | None, totals: Totals) -> StatsRow:
    measured = totals.offered - totals.short_abandoned
    return StatsRow(
        group=group,
        team=team,
        calls=totals.calls,
        answered=totals.answered,
        unanswered=totals.unanswered,
        busy=totals.busy,
        failed=totals.failed,
        asr=totals.answered / totals.calls if totals.calls else 0.0,
        acd=_rounded(totals.acd),
        talk_time=totals.talk_time,
        avg_ring_time=_rounded(totals.avg_ring_time),
        offered=totals.offered,
        short_abandoned=totals.short_abandoned,
        abandoned=totals.abandoned,
        answered_within=totals.answered_within,
        service_level=totals.answered_within / measured if measured else None,
        abandon_rate=totals.abandoned / measured if measured else None,
        asa=_rounded(totals.asa),
        max_wait=totals.max_wait,
        avg_abandon_wait=_rounded(totals.avg_abandon_wait),
        hold_seconds=totals.hold_seconds,
        transfers=totals.transfers,
    )


def _rounded(mean: float | None) -> float | None:
    return None if mean is None else round(mean, 3)


@dataclass(frozen=True, slots=True)
class OffsetSpan:
    """From `since` (UTC epoch seconds; None = the beginning) on, the zone is `offset`
    seconds ahead of UTC."""

    since: int | None
    offset: int


# Probing the offset once a day finds every change: in tzdata from 1900 to 2100 no zone
# changes its offset twice within four days (checked for every zone at 6-hour steps).
OFFSET_PROBE = timedelta(days=1)


def offset_spans(zone: ZoneInfo, start: datetime, end: datetime) -> list[OffsetSpan]:
    """The zone's UTC offsets over [start, end], split where daylight saving changes it.

    Databases differ in time zone support (MariaDB's zone tables are often empty, SQLite
    has none), so local days and hours are computed as UTC epoch plus these offsets.
    """
    step = OFFSET_PROBE
    spans = [OffsetSpan(None, _offset(zone, start))]
    probe = start
    while probe < end:
        following = min(probe + step, end)
        if _offset(zone, following) != spans[-1].offset:
            change = _first_change(zone, probe, following)
            spans.append(OffsetSpan(int(change.timestamp()), _offset(zone, change)))
        probe = following
    return spans


def offset_spans_on(zone: ZoneInfo, days: Iterable[int]) -> list[OffsetSpan]:
    """Spans right for every moment within the given UTC days (epoch day numbers); what
    they say between those days is of no use. Its cost follows the days that hold
    calls, not the time between the first call and the last."""
    spans: list[OffsetSpan] = []
    for day in sorted(set(days)):
        low = datetime.fromtimestamp(day * DAY_SECONDS, UTC)
        for span in offset_spans(zone, low, low + timedelta(seconds=DAY_SECONDS)):
            if not spans:
                spans.append(OffsetSpan(None, span.offset))
            elif span.offset != spans[-1].offset:
                since = span.since if span.since is not None else day * DAY_SECONDS
                spans.append(OffsetSpan(since, span.offset))
    return spans


def bucket_label(bucket: int, group_by: GroupBy, zone: ZoneInfo) -> str:
    """A local-time bucket number (local epoch seconds // bucket size) as ISO-8601."""
    local = datetime(1970, 1, 1) + timedelta(seconds=bucket * BUCKET_SECONDS[group_by])
    if group_by is GroupBy.DAY:
        return local.date().isoformat()
    return local.replace(tzinfo=zone).isoformat(timespec="minutes")


def _offset(zone: ZoneInfo, moment: datetime) -> int:
    delta = moment.astimezone(zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _first_change(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first second in (before, after] with the offset `after` has; bisection."""
    low, high = int(before.timestamp()), int(after.timestamp())
    target = _offset(zone, after)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(zone, datetime.fromtimestamp(middle, UTC)) == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
