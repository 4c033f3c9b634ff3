"""CDRs as readers get them: public field maps, CSV, JSON lines. Pure.

Times are shown in the reader's zone with their offset. CSV cells that a spreadsheet
would run as a formula (starting with = + - @, or a tab or carriage return) get a
leading apostrophe, so an exported phone number can never become an injected formula.

Exports take rows a batch at a time, as tuples in `CDR_COLUMNS` order with times as
naive UTC (a datetime, or its ISO text as SQLite and MySQL hand it over), and give one
chunk of text per batch: a million rows must not cost a million trips through the
server's stack, nor a Python call per cell that could be one per batch.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast
from zoneinfo import ZoneInfo

from cdrlog.core.record import RECORD_COLUMNS
from cdrlog.core.report import offset_spans

# A record's columns inside the table's own: its row id first, when it was written last.
CDR_COLUMNS = ("id", *RECORD_COLUMNS, "created_at", "updated_at", "version")
TIME_COLUMNS = frozenset({"starttime", "answertime", "endtime", "created_at", "updated_at"})
NUMBER_COLUMNS = frozenset({"id", "duration", "billsec", "hold_seconds", "version"})
# The rest is text from the sender (or from a rule table, which costs nothing to check):
# the only columns a formula could arrive in.
TEXT_COLUMNS = frozenset(CDR_COLUMNS) - TIME_COLUMNS - NUMBER_COLUMNS
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# How far beyond the times at hand the zone's offsets are looked up at once, and how
# far at most (the lookup probes every hour).
SPAN_REACH = timedelta(days=1)
LONGEST_LOOKUP = timedelta(days=62)

Batch = Sequence[Sequence[Any]]


def shown(values: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """A stored row's values for readers: aware datetimes become ISO-8601 in `zone`."""
    return {
        name: value.astimezone(zone).isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
    }


def safe_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class LocalTimes:
    """Naive UTC times as ISO-8601 in a zone, exactly as an aware datetime's
    `isoformat()` shows them, but with the zone's offset looked up once per stretch of
    time in which it does not change rather than once per value."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._start = self._end = datetime.min
        self._shift = timedelta(0)
        self._suffix = ""

    def __call__(self, utc: datetime | str | None) -> str | None:
        if utc is None:
            return None
        moment = datetime.fromisoformat(utc) if isinstance(utc, str) else utc
        if not self._start <= moment < self._end and not self._enter(moment):
            return moment.replace(tzinfo=UTC).astimezone(self.zone).isoformat()
        return (moment + self._shift).isoformat() + self._suffix

    def column(self, values: Sequence[datetime | str | None]) -> list[str | None]:
        """`self(value)` for each value; when all of them fall in one stretch (a batch of
        rows nearly always does), without a call per value."""
        present: list[Any] = [v for v in values if v is not None]
        if not present:
            return [None] * len(values)
        parse: Callable[[Any], datetime] = (
            datetime.fromisoformat if isinstance(present[0], str) else _itself
        )
        first, last = parse(min(present)), parse(max(present))
        if not (self._start <= first and last < self._end):
            self._enter(first, last)
        if not (self._start <= first and last < self._end):
            return [self(v) for v in values]
        shift, suffix = self._shift, self._suffix
        if not shift and parse is not _itself and set(map(len, present)) <= {19, 26}:
            # UTC text as the database keeps it ('YYYY-MM-DD HH:MM:SS[.ffffff]') is
            # already its isoformat() but for the separator and a zero fraction.
            texts = cast(Sequence[str | None], values)
            return [
                None
                if v is None
                else v[:10] + "T" + (v[11:19] if v[20:] == "000000" else v[11:]) + suffix
                for v in texts
            ]
        return [None if v is None else (parse(v) + shift).isoformat() + suffix for v in values]

    def _enter(self, utc: datetime, until: datetime | None = None) -> bool:
        """Make the stretch around `utc` in which the offset stays the same current
        (reaching to `until` if the offset does not change before); False at the ends
        of the calendar, where there is no stretch to reuse."""
        try:
            low = utc - SPAN_REACH
            high = min(max(utc, until or utc) + SPAN_REACH, utc + LONGEST_LOOKUP)
            spans = offset_spans(self.zone, low.replace(tzinfo=UTC), high.replace(tzinfo=UTC))
        except OverflowError:
            return False
        starts = [low] + [_naive(span.since) for span in spans[1:]]
        ends = [*starts[1:], high]
        at = max(i for i, start in enumerate(starts) if start <= utc)
        offset = timedelta(seconds=spans[at].offset)
        self._start, self._end, self._shift = starts[at], ends[at], offset
        self._suffix = datetime(2000, 1, 1, tzinfo=timezone(offset)).isoformat()[19:]
        return True


def _itself(moment: datetime) -> datetime:
    return moment


def _naive(epoch: int | None) -> datetime:
    assert epoch is not None
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


# What needs a look before a CSV line can be a plain join of its cells.
FORMULA_AFTER_NEWLINE = tuple("\n" + start for start in FORMULA_STARTS)


def _spreadsheet_safe(values: Sequence[str | None]) -> list[str]:
    """Text cells with None as empty and formulas neutralised; one scan of the whole
    column decides whether any value needs a look."""
    cells = [v or "" for v in values]
    scanned = "\n" + "\n".join(cells)
    if any(start in scanned for start in FORMULA_AFTER_NEWLINE):
        return [safe_cell(v) for v in cells]
    return cells


def csv_chunks(
    batches: Iterable[Batch], zone: ZoneInfo, columns: Sequence[str] = CDR_COLUMNS
) -> Iterator[str]:
    """The header, then one chunk of CSV lines per batch, each as `csv.writer` would
    write it (the header rides with the first chunk)."""
    local = LocalTimes(zone)
    width = len(columns)
    header = ",".join(columns) + "\r\n"
    for batch in batches:
        if not batch:
            continue
        cells: list[list[str]] = []
        for name, values in zip(columns, zip(*batch, strict=True), strict=True):
            if name in TIME_COLUMNS:
                cells.append([v or "" for v in local.column(values)])
            elif name in TEXT_COLUMNS:
                cells.append(_spreadsheet_safe(values))
            else:
                cells.append(["" if v is None else str(v) for v in values])
        rows = list(zip(*cells, strict=True))
        body = "\n".join(map(",".join, rows))
        plain = body.count(",") == (width - 1) * len(rows) and '"' not in body
        if plain and "\r" not in body and body.count("\n") == len(rows) - 1:
            chunk = body.replace("\n", "\r\n") + "\r\n"
        else:  # some cell needs quoting: leave that to the csv module
            chunk = _quoted(rows)
        yield header + chunk
        header = ""
    if header:
        yield header


def _quoted(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def jsonl_chunks(
    batches: Iterable[Batch], zone: ZoneInfo, columns: Sequence[str] = CDR_COLUMNS
) -> Iterator[str]:
    """One chunk of JSON lines (an object per row) per batch."""
    local = LocalTimes(zone)
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for batch in batches:
        if not batch:
            continue
        values = [
            local.column(column) if name in TIME_COLUMNS else column
            for name, column in zip(columns, zip(*batch, strict=True), strict=True)
        ]
        rows = zip(*values, strict=True)
        yield "".join(encode(dict(zip(columns, row, strict=True))) + "\n" for row in rows)


def capped(batches: Iterable[Batch], limit: int | None) -> Iterator[Batch]:
    """At most `limit` rows of `batches` (all of them for None)."""
    left = limit
    for batch in batches:
        if left is None:
            yield batch
            continue
        if left <= 0:
            return
        yield batch[:left]
        left -= len(batch)
