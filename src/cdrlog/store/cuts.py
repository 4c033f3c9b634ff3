"""Reading what senders filled without reading it whole: the columns of the journal and
the dead letters cut in SQL to one character past what is shown (so a cut is seen),
and the keyset walk that fetches a long listing a batch at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    LargeBinary,
    Row,
    Select,
    Text,
    and_,
    func,
    literal,
    or_,
)

from cdrlog.core.excerpts import FIELDS_SHOWN, FIRST_BATCH, LAST_BATCH
from cdrlog.store.tables import call_event, dead_letter


def letters_where(
    query: Select[Any], teams: tuple[str, ...] | None, before: int | None, unresolved: bool
) -> Select[Any]:
    if teams is not None:
        query = query.where(dead_letter.c.orgidentity.in_(teams))
    if before is not None:
        query = query.where(dead_letter.c.id < before)
    if unresolved:
        query = query.where(dead_letter.c.resolved_at.is_(None))
    return query


def walk(
    connection: Connection,
    query: Select[Any],
    following: Callable[[Row[Any]], ColumnElement[bool]],
    most: int,
) -> Iterator[Row[Any]]:
    """Up to `most` rows of the ordered `query`, a batch at a time (a keyset walk:
    `following(row)` selects the rows after `row`), so a reader that stops early never
    had the rest sent. Drivers buffer a whole result, so one big query would."""
    after: ColumnElement[bool] | None = None
    batch = FIRST_BATCH
    while most > 0:
        take = min(most, batch)
        rest = query if after is None else query.where(after)
        rows = connection.execute(rest.limit(take)).all()
        yield from rows
        if len(rows) < take:
            return
        most -= take
        after = following(rows[-1])
        batch = min(2 * batch, LAST_BATCH)


def later_event(row: Row[Any]) -> ColumnElement[bool]:
    """The events after `row` in timeline order (event time, then id)."""
    time, id_ = call_event.c.event_time, call_event.c.id
    return or_(time > row.event_time, and_(time == row.event_time, id_ > row.id))


def event_columns() -> list[ColumnElement[Any]]:
    """The journal's columns for readers: `fields` read one character past what is shown
    (so a cut is seen), the fingerprint left out."""
    kept = [c for c in call_event.c if c.name not in ("fields", "fingerprint")]
    fields = func.substr(call_event.c.fields, 1, FIELDS_SHOWN + 1, type_=Text())
    return [*kept, fields.label("fields")]


def letter_columns(body: int, reason: int) -> list[ColumnElement[Any]]:
    left_out = ("body", "reason")
    kept = [c for c in dead_letter.c if c.name not in left_out]
    return [
        *kept,
        # SQLite's substr of an empty blob is NULL, not an empty blob.
        func.coalesce(
            func.substr(dead_letter.c.body, 1, body + 1, type_=LargeBinary()),
            literal(b"", LargeBinary()),
            type_=LargeBinary(),
        ).label("body"),
        func.substr(dead_letter.c.reason, 1, reason + 1, type_=Text()).label("reason"),
    ]
