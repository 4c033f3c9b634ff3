"""Alembic environment: runs on the connection `cdrlog.store.database.upgrade` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cdrlog.store.tables import metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run migrations through `cdrlog db upgrade`")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
