"""Each team's push-auth mode, and its pushes without a token, in the database."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, Update, case, or_, select, update
from sqlalchemy.exc import IntegrityError

from cdrlog.core.pushauth import PushMode
from cdrlog.store.database import in_transaction, read_only
from cdrlog.store.tables import push_auth


def modes(engine: Engine) -> dict[str, PushMode]:
    """The modes the operator set, by team ("*": every other team)."""
    query = select(push_auth.c.team, push_auth.c.mode).where(push_auth.c.mode.is_not(None))
    with engine.connect() as connection:
        found = read_only(connection).execute(query)
        return {row.team: PushMode(row.mode) for row in found}


def set_mode(engine: Engine, team: str, mode: PushMode | None, now: datetime) -> None:
    """Set (or, with None, clear) `team`'s mode."""
    values = {"mode": mode.value if mode else None, "changed_at": now}
    _upsert(engine, team, partial(_changed, _row(team).values(values)), values)


def add_tokenless(engine: Engine, tallies: Mapping[str, tuple[int, datetime]]) -> None:
    """Add pushes without a token, by team: how many since the last call, and the last."""
    for team, (count, last) in sorted(tallies.items()):
        latest = push_auth.c.last_tokenless_at
        change = _row(team).values(
            tokenless_pushes=push_auth.c.tokenless_pushes + count,
            # Several processes flush: the row keeps the latest of their times.
            last_tokenless_at=case((or_(latest.is_(None), latest < last), last), else_=latest),
        )
        values = {"tokenless_pushes": count, "last_tokenless_at": last}
        _upsert(engine, team, partial(_changed, change), values)


def rows(engine: Engine) -> list[dict[str, Any]]:
    """Every team the table knows, by name."""
    query = select(push_auth).order_by(push_auth.c.team)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in read_only(connection).execute(query)]


def _row(team: str) -> Update:
    return update(push_auth).where(push_auth.c.team == team)


def _changed(statement: Update, connection: Connection) -> int:
    return connection.execute(statement).rowcount


def _upsert(
    engine: Engine, team: str, change: Callable[[Connection], int], values: Mapping[str, Any]
) -> None:
    """Change the team's row, or insert it: portable, and safe against another process
    inserting the same team meanwhile (its insert wins, this one changes it)."""

    def write(connection: Connection) -> None:
        if change(connection):
            return
        row = {"team": team, "tokenless_pushes": 0, **values}
        try:
            with connection.begin_nested():
                connection.execute(push_auth.insert(), row)
        except IntegrityError:
            change(connection)

    in_transaction(engine, write)
