"""What a bounded listing shows: its budgets, and the pure code that measures and cuts.

A listing ends at about `PAGE_BYTES` of rows' JSON (`fit`, sized by `json_size`), and
shows only the start of a column a sender filled: an event's fields, a dead letter's
body and reason. The database cuts those columns one character past what is shown (see
`cdrlog.store.reader`), so a few huge rows never pass through the server whole; the excerpts
here turn such a cut value into what readers get, with a `*_truncated` flag. Nothing
here touches a table or a connection, so all of it is tested without a database.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Mapping
from typing import Any

# What one listing answers at most, about: the rows' JSON, not counting the envelope.
PAGE_BYTES = 4 * 1024 * 1024
# Stored text a listing shows of one event's fields (the intake admits 64 Ki characters
# of them; non-ASCII is stored escaped, so some events that came in whole show cut) ...
FIELDS_SHOWN = 64 * 1024
# ... of one dead letter's body and reason; its own endpoint shows more of each.
BODY_SHOWN = 16 * 1024
REASON_SHOWN = 64 * 1024
LETTER_SHOWN = 1024 * 1024
# What stands for a time when a row is sized: as long as any time readers get (with
# microseconds, and an offset with seconds), and never formatted.
LONGEST_TIME = "2024-03-05T09:00:05.123456+05:53:28"
# Events a CDR's timeline holds at most; the journal (`events`) pages through the rest.
TIMELINE_EVENTS = 1000
# Rows read per query when walking a listing. The first batch holds at most a page's
# worth of cut values, so huge rows cost one such read; while the rows fit, batches
# double up to four times that, so a page of small rows takes few trips (1,000: six).
FIRST_BATCH = PAGE_BYTES // FIELDS_SHOWN
LAST_BATCH = 4 * FIRST_BATCH


def fit(rows: Iterable[dict[str, Any]], budget: int) -> tuple[list[dict[str, Any]], bool]:
    """The leading `rows` whose JSON together stays within `budget` bytes (the first one
    always: with every big value cut it is far smaller), and whether any was left out."""
    kept: list[dict[str, Any]] = []
    used = 0
    for row in rows:
        used += json_size(row)
        if kept and used > budget:
            return kept, True
        kept.append(row)
    return kept, False


def json_size(values: dict[str, Any]) -> int:
    """At least the bytes of `values` as UTF-8 JSON, and close to them: escaped to
    ASCII, no character takes fewer characters than its UTF-8 bytes. Formatting every
    time would cost about as much as answering the page."""
    return len(_SIZING.encode(values))


def _longest_time(value: object) -> str:
    return LONGEST_TIME


_SIZING = json.JSONEncoder(separators=(",", ":"), default=_longest_time)


def event_excerpt(values: Mapping[Any, Any]) -> dict[str, Any]:
    """A journal row as readers see it, its `fields` read one character past
    `FIELDS_SHOWN` (so a cut is seen)."""
    shown = dict(values)
    text = shown["fields"]
    cut = len(text) > FIELDS_SHOWN
    shown["fields"] = leading_members(text[:FIELDS_SHOWN]) if cut else json.loads(text)
    shown["fields_truncated"] = cut
    return shown


def letter_excerpt(values: Mapping[Any, Any], body: int, reason: int) -> dict[str, Any]:
    """A dead letter as readers see it, its body and reason read one past `body` bytes
    and `reason` characters."""
    shown = dict(values)
    raw, why = bytes(shown["body"]), shown["reason"]
    shown["body_truncated"] = len(raw) > body
    shown["body"] = utf8_start(raw[:body]) if len(raw) > body else utf8(raw)
    shown["reason_truncated"] = len(why) > reason
    shown["reason"] = leading_members(why[:reason]) if len(why) > reason else json.loads(why)
    return shown


def utf8(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def utf8_start(raw: bytes) -> str:
    """Bytes cut anywhere as text, less a character the cut split (not a U+FFFD)."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(raw, final=False)


def leading_members(text: str) -> dict[str, Any]:
    """What the text of a JSON object cut short still holds: each member whole before
    the cut, and the start of a string value the cut fell in."""
    decoder = json.JSONDecoder()
    members: dict[str, Any] = {}
    at = text.find("{") + 1
    while True:
        try:
            key, at = decoder.raw_decode(text, _past_separators(text, at))
        except (ValueError, RecursionError):  # the cut, or the object's end
            return members
        at = _past_separators(text, at)
        if not isinstance(key, str):
            return members
        try:
            members[key], at = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            if text.startswith('"', at):
                members[key] = _string_start(text[at:])
            return members


def _past_separators(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n,:":
        at += 1
    return at


def _string_start(literal: str) -> str:
    """The text of a JSON string literal cut before its closing quote. An escape is
    at most six characters, so one of the last seven ends decodes; a pair of escapes
    split in the middle leaves half a character, dropped (UTF-8 cannot carry it)."""
    for end in range(len(literal), max(len(literal) - 7, 1), -1):
        try:
            start: str = json.loads(literal[:end] + '"')
        except ValueError:
            continue
        return start[:-1] if "\ud800" <= start[-1:] <= "\udbff" else start
    return ""
