"""The outbox: what a transaction changed, written in that transaction, and handed on
to each subscription's deliveries (`hook_delivery`) by the dispatcher.

Announcing reads the CDR's id and new version back from the row the same transaction
just wrote (one INSERT ... SELECT per change), so an announced version is always the
version of a committed row, and nothing is announced that was not committed.

Handing on takes the oldest outbox rows no other dispatcher holds (`FOR UPDATE SKIP
LOCKED` on the servers; SQLite has one writer at a time), raises each wanting
subscription's delivery row of that subject to the newest version announced, and
deletes the outbox rows, all in one transaction. Raising to the maximum makes the order
in which two dispatchers hand on versions of one CDR irrelevant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from cdrlog.core.hooks import Subscription
from cdrlog.store.database import in_transaction, insert_ignoring_duplicates
from cdrlog.store.tables import UtcDateTime, cdr, hook_delivery, outbox, pairs_in

# One statement for every change of a batch (`executemany`).
_ANNOUNCE_CDR = insert(outbox).from_select(
    ["orgidentity", "subject", "cdr_id", "version", "kind", "created_at"],
    select(
        cdr.c.orgidentity,
        cdr.c.diallogid,
        cdr.c.id,
        cdr.c.version,
        bindparam("kind", type_=String(32)),
        bindparam("now", type_=UtcDateTime()),
    ).where(cdr.c.orgidentity == bindparam("team"), cdr.c.diallogid == bindparam("subject")),
)


def announce_cdrs(
    connection: Connection, changes: Iterable[tuple[str, str, str]], now: datetime
) -> None:
    """Announce these (team, sessionid, kind) CDR changes, whose rows this transaction
    wrote."""
    rows = [{"team": t, "subject": s, "kind": k, "now": now} for t, s, k in changes]
    if rows:
        connection.execute(_ANNOUNCE_CDR, rows)


def announce(
    connection: Connection,
    team: str,
    subject: str,
    version: int,
    kind: str,
    payload: str,
    now: datetime,
) -> None:
    """Announce a change that has no row to be read from (an alert): its payload, which
    is what is sent. Written by the transaction that made the change."""
    connection.execute(
        insert(outbox).values(
            orgidentity=team,
            subject=subject,
            version=version,
            kind=kind,
            payload=payload,
            created_at=now,
        )
    )


@dataclass(frozen=True, slots=True)
class Announced:
    id: int
    team: str
    subject: str
    cdr_id: int | None
    version: int
    kind: str
    payload: str | None


def waiting(engine: Engine) -> int:
    """Outbox rows not yet handed on."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(outbox)).scalar_one())


def hand_on(
    engine: Engine, subscriptions: Sequence[Subscription], now: datetime, limit: int = 500
) -> int:
    """Hand the oldest `limit` announced changes to the subscriptions that want them;
    how many outbox rows were taken."""

    def work(connection: Connection) -> int:
        query = select(outbox).order_by(outbox.c.id).limit(limit)
        if engine.dialect.name != "sqlite":
            query = query.with_for_update(skip_locked=True)
        taken = [
            Announced(r.id, r.orgidentity, r.subject, r.cdr_id, r.version, r.kind, r.payload)
            for r in connection.execute(query)
        ]
        if not taken:
            return 0
        newest: dict[tuple[int, str, str], Announced] = {}
        for change in taken:
            for hook in subscriptions:
                key = (hook.id, change.team, change.subject)
                held = newest.get(key)
                if hook.wants(change.team, change.kind) and (
                    held is None or change.version > held.version
                ):
                    newest[key] = change
        _raise(connection, engine, newest, now)
        connection.execute(delete(outbox).where(outbox.c.id.in_([c.id for c in taken])))
        return len(taken)

    return in_transaction(engine, work)


def _raise(
    connection: Connection,
    engine: Engine,
    newest: dict[tuple[int, str, str], Announced],
    now: datetime,
) -> None:
    """Raise each (hook, team, subject) delivery to its newest announced version."""
    if not newest:
        return
    fresh = [
        {
            "hook_id": hook_id,
            "orgidentity": team,
            "subject": subject,
            "cdr_id": change.cdr_id,
            "version": 0,
            "kind": change.kind,
            "payload": None,
            "sent_version": 0,
            "state": "done",
            "attempts": 0,
            "next_at": now,
            "updated_at": now,
        }
        for (hook_id, team, subject), change in sorted(newest.items())
    ]
    if fresh:
        connection.execute(insert_ignoring_duplicates(engine, hook_delivery), fresh)
    held = _locked(connection, engine, newest)
    changes: list[dict[str, Any]] = []
    for key, change in newest.items():
        row = held.get(key)
        if row is None or change.version <= max(row.version, row.sent_version):
            continue
        values: dict[str, Any] = {
            "row_id": row.id,
            "version": change.version,
            "kind": change.kind,
            "cdr_id": change.cdr_id,
            "payload": change.payload,
            "state": "pending",
            "attempts": row.attempts if row.state == "pending" else 0,
            "next_at": row.next_at if row.state == "pending" else now,
            "pending_since": row.pending_since if row.state == "pending" else now,
            "updated_at": now,
        }
        changes.append(values)
    if changes:
        statement = (
            update(hook_delivery)
            .where(hook_delivery.c.id == bindparam("row_id"))
            .values({name: bindparam(name) for name in changes[0] if name != "row_id"})
        )
        connection.execute(statement, changes)


def _locked(
    connection: Connection, engine: Engine, keys: Iterable[tuple[int, str, str]]
) -> dict[tuple[int, str, str], Any]:
    """The delivery rows of these keys, locked, in key order (two dispatchers then
    cannot deadlock on them)."""
    by_hook: dict[int, list[tuple[str, str]]] = {}
    for hook_id, team, subject in sorted(set(keys)):
        by_hook.setdefault(hook_id, []).append((team, subject))
    found: dict[tuple[int, str, str], Any] = {}
    for hook_id, pairs in by_hook.items():
        query = (
            select(hook_delivery)
            .where(
                hook_delivery.c.hook_id == hook_id,
                pairs_in(hook_delivery.c.orgidentity, hook_delivery.c.subject, pairs),
            )
            .order_by(hook_delivery.c.orgidentity, hook_delivery.c.subject)
        )
        if engine.dialect.name != "sqlite":
            query = query.with_for_update()
        for row in connection.execute(query):
            found[(hook_id, row.orgidentity, row.subject)] = row
    return found
