"""Subscriptions (`hook`) and their deliveries (`hook_delivery`): adding and removing
hooks, and the life of a delivery: claimed for a while (a lease, so that a dispatcher
that dies lets go of it), delivered, tried again later, or failed and kept until an
operator replays it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)

from cdrlog.core.hooks import Kind, Subscription
from cdrlog.store.database import in_transaction, read_only
from cdrlog.store.tables import UtcDateTime, hook, hook_delivery

PENDING = "pending"
DONE = "done"
FAILED = "failed"


def _subscription(row: Any) -> Subscription:
    kinds = tuple(Kind(name) for name in row.kinds.split(",") if name)
    return Subscription(row.id, row.orgidentity, row.target, kinds, row.created_at, row.note)


def add(
    engine: Engine,
    team: str | None,
    target: str,
    kinds: Sequence[Kind],
    secret: str,
    now: datetime,
    note: str | None = None,
) -> Subscription:
    values = {
        "orgidentity": team,
        "target": target,
        "kinds": ",".join(kinds),
        "secret": secret,
        "note": note,
        "created_at": now,
    }
    with engine.begin() as connection:
        made = connection.execute(insert(hook).values(values)).inserted_primary_key
        assert made is not None
        row = connection.execute(select(hook).where(hook.c.id == made[0])).one()
    return _subscription(row)


def active(engine: Engine, team: str | None = None) -> list[Subscription]:
    """Hooks not removed (of `team`, and those of every team, when it is given)."""
    query = select(hook).where(hook.c.removed_at.is_(None)).order_by(hook.c.id)
    if team is not None:
        query = query.where(or_(hook.c.orgidentity.is_(None), hook.c.orgidentity == team))
    with engine.connect() as connection:
        return [_subscription(row) for row in read_only(connection).execute(query)]


def find(engine: Engine, hook_id: int) -> Subscription | None:
    query = select(hook).where(hook.c.id == hook_id, hook.c.removed_at.is_(None))
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return None if row is None else _subscription(row)


def secret_of(engine: Engine, hook_id: int) -> str | None:
    with engine.connect() as connection:
        found = connection.execute(select(hook.c.secret).where(hook.c.id == hook_id)).first()
    return None if found is None else str(found[0])


def remove(engine: Engine, hook_id: int, now: datetime) -> bool:
    """Stop a hook; its waiting deliveries go with it. False if there was none."""
    with engine.begin() as connection:
        gone = connection.execute(
            update(hook)
            .where(hook.c.id == hook_id, hook.c.removed_at.is_(None))
            .values(removed_at=now)
        ).rowcount
        connection.execute(delete(hook_delivery).where(hook_delivery.c.hook_id == hook_id))
    return bool(gone)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A subject's delivery to one hook: the newest version announced (`version`) and
    the newest delivered (`sent_version`)."""

    id: int
    hook_id: int
    team: str
    subject: str
    cdr_id: int | None
    version: int
    kind: str
    payload: str | None
    sent_version: int
    state: str
    attempts: int
    next_at: datetime
    pending_since: datetime | None
    last_error: str | None


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.id,
        row.hook_id,
        row.orgidentity,
        row.subject,
        row.cdr_id,
        row.version,
        row.kind,
        row.payload,
        row.sent_version,
        row.state,
        row.attempts,
        row.next_at,
        row.pending_since,
        row.last_error,
    )


def claim(
    engine: Engine, hook_id: int, now: datetime, lease: timedelta, limit: int
) -> list[Delivery]:
    """Take up to `limit` of the hook's deliveries that are due and nobody holds, for
    `lease`: no other dispatcher sends them meanwhile."""

    def work(connection: Connection) -> list[Delivery]:
        query = (
            select(hook_delivery)
            .where(
                hook_delivery.c.hook_id == hook_id,
                hook_delivery.c.state == PENDING,
                hook_delivery.c.next_at <= now,
                or_(hook_delivery.c.lease_until.is_(None), hook_delivery.c.lease_until <= now),
            )
            .order_by(hook_delivery.c.next_at, hook_delivery.c.id)
            .limit(limit)
        )
        if engine.dialect.name != "sqlite":
            query = query.with_for_update(skip_locked=True)
        taken = [_delivery(row) for row in connection.execute(query)]
        if taken:
            connection.execute(
                update(hook_delivery)
                .where(hook_delivery.c.id.in_([d.id for d in taken]))
                .values(lease_until=now + lease)
            )
        return taken

    return in_transaction(engine, work)


def delivered(engine: Engine, delivery_id: int, version: int, now: datetime) -> None:
    """`version` reached the hook (or needs not reach it): done, unless a newer one has
    been announced since, which is then due at once."""
    delivered_many(engine, [(delivery_id, version)], now)


def delivered_many(engine: Engine, acks: Sequence[tuple[int, int]], now: datetime) -> None:
    """`delivered` for each (delivery id, version), in one transaction."""
    if not acks:
        return
    version = bindparam("acked", type_=BigInteger())
    sent = case(
        (hook_delivery.c.sent_version < version, version), else_=hook_delivery.c.sent_version
    )
    newer = hook_delivery.c.version > version
    statement = (
        update(hook_delivery)
        .where(hook_delivery.c.id == bindparam("row_id"))
        .values(
            sent_version=sent,
            state=case((newer, PENDING), else_=DONE),
            pending_since=case((newer, now), else_=None),
            attempts=0,
            next_at=now,
            lease_until=None,
            last_error=None,
            updated_at=now,
        )
    )
    rows = [{"row_id": delivery_id, "acked": acked} for delivery_id, acked in acks]
    in_transaction(engine, lambda connection: connection.execute(statement, rows))


def let_go(engine: Engine, delivery_ids: Sequence[int], held_until: datetime) -> None:
    """End the leases of these deliveries, taken until `held_until`, before their time:
    due again at once. A lease taken since by another dispatcher ends later and stays."""
    if not delivery_ids:
        return
    statement = (
        update(hook_delivery)
        .where(
            hook_delivery.c.id.in_(list(delivery_ids)),
            hook_delivery.c.lease_until <= held_until,
        )
        .values(lease_until=None)
    )
    in_transaction(engine, lambda connection: connection.execute(statement))


def retry_later(
    engine: Engine, delivery_id: int, error: str, now: datetime, next_at: datetime | None
) -> None:
    """A try failed: due again at `next_at`, or (None) failed for good, kept."""
    values: dict[str, Any] = {
        "attempts": hook_delivery.c.attempts + 1,
        "lease_until": None,
        "last_error": error[:500],
        "updated_at": now,
    }
    if next_at is None:
        values |= {"state": FAILED}
    else:
        values |= {"next_at": next_at}
    statement = update(hook_delivery).where(hook_delivery.c.id == delivery_id).values(values)
    in_transaction(engine, lambda connection: connection.execute(statement))


def failed(engine: Engine, hook_id: int | None = None, limit: int = 100) -> list[Delivery]:
    """Deliveries given up on, newest first."""
    query = (
        select(hook_delivery)
        .where(hook_delivery.c.state == FAILED)
        .order_by(hook_delivery.c.updated_at.desc(), hook_delivery.c.id.desc())
        .limit(limit)
    )
    if hook_id is not None:
        query = query.where(hook_delivery.c.hook_id == hook_id)
    with engine.connect() as connection:
        return [_delivery(row) for row in read_only(connection).execute(query)]


def replay(
    engine: Engine, now: datetime, hook_id: int | None = None, ids: Sequence[int] = ()
) -> int:
    """Make failed deliveries due again (all, a hook's, or these); how many."""
    where = [hook_delivery.c.state == FAILED]
    if hook_id is not None:
        where.append(hook_delivery.c.hook_id == hook_id)
    if ids:
        where.append(hook_delivery.c.id.in_(list(ids)))
    statement = (
        update(hook_delivery)
        .where(and_(*where))
        .values(state=PENDING, attempts=0, next_at=now, pending_since=now, lease_until=None)
    )
    return int(in_transaction(engine, lambda c: c.execute(statement).rowcount))


@dataclass(frozen=True, slots=True)
class Backlog:
    hook_id: int
    pending: int
    failed: int
    oldest_pending: datetime | None


def backlog(engine: Engine) -> list[Backlog]:
    """Per hook: deliveries waiting, failed, and since when the oldest has waited."""
    pending = hook_delivery.c.state == PENDING
    query = (
        select(
            hook_delivery.c.hook_id,
            func.sum(case((pending, 1), else_=0)),
            func.sum(case((hook_delivery.c.state == FAILED, 1), else_=0)),
            # MIN over a CASE loses the column's type: given back, so times read as times.
            type_coerce(
                func.min(case((pending, hook_delivery.c.pending_since), else_=None)),
                UtcDateTime(),
            ),
        )
        .where(hook_delivery.c.state != DONE)
        .group_by(hook_delivery.c.hook_id)
    )
    with engine.connect() as connection:
        rows = read_only(connection).execute(query).all()
    return [Backlog(int(r[0]), int(r[1] or 0), int(r[2] or 0), r[3]) for r in rows]


def prune(engine: Engine, before: datetime) -> int:
    """Forget deliveries done before `before` (a later change starts a new row)."""
    statement = delete(hook_delivery).where(
        hook_delivery.c.state == DONE, hook_delivery.c.updated_at < before
    )
    return int(in_transaction(engine, lambda c: c.execute(statement).rowcount))
