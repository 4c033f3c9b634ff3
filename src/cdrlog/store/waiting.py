"""Calls waiting now: inbound, still open and not answered, per team and queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, func, select

from cdrlog.core.floor import Waiting
from cdrlog.core.rules import DIALIN, Status
from cdrlog.store.database import read_only
from cdrlog.store.tables import cdr


def waiting(engine: Engine, teams: Sequence[str] | None, since: datetime) -> list[Waiting]:
    """Inbound calls started at or after `since` (older ones are past the longest a call
    can last: the sweep closes them) that are open and unanswered, by team and queue."""
    query = (
        select(cdr.c.orgidentity, cdr.c.agent_group, func.count(), func.min(cdr.c.starttime))
        .where(
            # The time range first: the start-time index bounds the rows read to the
            # last few hours', whatever the table's size.
            cdr.c.starttime >= since,
            cdr.c.calltype == DIALIN,
            cdr.c.status == Status.OPEN.value,
            cdr.c.answertime.is_(None),
        )
        .group_by(cdr.c.orgidentity, cdr.c.agent_group)
        .order_by(cdr.c.orgidentity, cdr.c.agent_group)
    )
    if teams is not None:
        query = query.where(cdr.c.orgidentity.in_(sorted(set(teams))))
    with engine.connect() as connection:
        rows = read_only(connection).execute(query).all()
    return [Waiting(row[0], row[1], int(row[2]), row[3]) for row in rows]
