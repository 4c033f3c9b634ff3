"""CDRs as readers get them: public field maps, CSV lines, JSON lines. Pure.

Times are shown in the reader's zone with their offset. CSV cells that a spreadsheet
would run as a formula (starting with = + - @, or a tab or carriage return) get a
leading apostrophe, so an exported phone number can never become an injected formula.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

CDR_COLUMNS = (
    "id",
    "orgidentity",
    "diallogid",
    "calltype",
    "target",
    "src",
    "dst",
    "agentno",
    "starttime",
    "answertime",
    "endtime",
    "duration",
    "billsec",
    "disposition",
    "status",
    "created_at",
    "updated_at",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def csv_lines(rows: Iterable[Mapping[str, Any]], columns: tuple[str, ...]) -> Iterator[str]:
    """A header, then one CSV line per row, each yielded as soon as it is written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(row.get(name)) for name in columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def jsonl_lines(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
