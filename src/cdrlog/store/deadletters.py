"""Keeping refused bodies for an operator, and marking them resolved after a retry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, update

from cdrlog.store.database import in_transaction
from cdrlog.store.tables import dead_letter


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A body, or one item of a batch, that was refused, and why."""

    path: str
    team: str | None
    content_type: str | None
    remote_addr: str | None
    body: bytes
    truncated: bool
    reason: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class KeptLetter:
    """A dead letter as stored: what was refused, when and why, and what became of it."""

    id: int
    received_at: datetime
    team: str | None
    path: str
    content_type: str | None
    remote_addr: str | None
    body: bytes
    truncated: bool
    reason: Mapping[str, Any]
    resolved_at: datetime | None
    resolution: str | None


def letter_from_row(row: RowMapping) -> KeptLetter:
    return KeptLetter(
        id=row["id"],
        received_at=row["received_at"],
        team=row["orgidentity"],
        path=row["path"],
        content_type=row["content_type"],
        remote_addr=row["remote_addr"],
        body=bytes(row["body"]),
        truncated=bool(row["truncated"]),
        reason=json.loads(row["reason"]),
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
    )


def keep(engine: Engine, letter: DeadLetter, now: datetime) -> int:
    """Store a refused body; returns its id."""
    values = {
        "received_at": now,
        "orgidentity": _storable(letter.team, 64),
        "path": _storable(letter.path, 255) or "",
        "content_type": _storable(letter.content_type, 255),
        "remote_addr": _storable(letter.remote_addr, 64),
        "body": letter.body,
        "truncated": letter.truncated,
        "reason": json.dumps(letter.reason, ensure_ascii=True),
    }

    def insert(connection: Connection) -> int:
        key = connection.execute(dead_letter.insert(), values).inserted_primary_key
        if key is None:  # pragma: no cover - every supported driver reports it
            raise RuntimeError("the database did not report the dead letter's id")
        return int(key[0])

    return in_transaction(engine, insert)


def resolve(engine: Engine, letter_id: int, resolution: str, now: datetime) -> None:
    values = {"resolved_at": now, "resolution": resolution[:255]}
    statement = update(dead_letter).where(dead_letter.c.id == letter_id).values(**values)
    in_transaction(engine, lambda c: c.execute(statement))


def _storable(text: str | None, width: int) -> str | None:
    """A refused request's own words, cut to the column and without NUL (which
    PostgreSQL cannot store), so keeping the dead letter never fails."""
    if not text:
        return None
    return text.replace("\x00", "\ufffd")[:width]
