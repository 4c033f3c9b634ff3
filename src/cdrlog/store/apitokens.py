"""API tokens in the database: only their hashes, with what each may do."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from cdrlog.core.tokens import Grant, TokenScope
from cdrlog.store.database import in_transaction, read_only
from cdrlog.store.tables import api_token


def insert(engine: Engine, values: Mapping[str, Any]) -> int:
    """Store a new token's row; returns its id."""
    key = in_transaction(
        engine, lambda c: c.execute(api_token.insert(), dict(values)).inserted_primary_key
    )
    return int(key[0]) if key else 0


def revoke(engine: Engine, token_id: int, now: datetime) -> bool:
    """Revoke an active token; whether there was one of that id."""
    statement = (
        update(api_token)
        .where(api_token.c.id == token_id, api_token.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(in_transaction(engine, lambda c: c.execute(statement).rowcount))


def rows(engine: Engine) -> list[dict[str, Any]]:
    """Every token's row (hashes, never tokens), oldest first."""
    query = select(api_token).order_by(api_token.c.id)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in read_only(connection).execute(query)]


def active_grants(engine: Engine) -> dict[str, Grant]:
    """What each active token allows, by its hash."""
    columns = api_token.c
    query = select(columns.id, columns.token_hash, columns.scope, columns.orgidentity)
    with engine.connect() as connection:
        found = read_only(connection).execute(query.where(columns.revoked_at.is_(None)))
        return {
            row.token_hash: Grant(row.id, TokenScope(row.scope), row.orgidentity) for row in found
        }


def is_active(engine: Engine, token_hash: str) -> bool:
    query = select(api_token.c.id).where(
        api_token.c.token_hash == token_hash, api_token.c.revoked_at.is_(None)
    )
    with engine.connect() as connection:
        return read_only(connection).execute(query).first() is not None
