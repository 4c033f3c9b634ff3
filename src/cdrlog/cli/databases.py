"""Opening the database a command works on, or saying in a line why it cannot be: a
SQLite file or directory that is not there, a server that does not answer, a schema
behind. Reading commands open only a database that exists, and never migrate it: a
mistyped path must be an error, not a new empty database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cdrlog.cli.options import origin
from cdrlog.store.database import alembic_config, in_memory, make_engine, upgrade
from cdrlog.store.urls import shown


class DatabaseUnusable(click.ClickException):
    """The database cannot be opened as named: a mistake in a setting, so the status of a
    usage error (2), though the message is all there is to show."""

    exit_code = 2


def reading_engine(database_url: str) -> Engine:
    """An engine on an existing database whose schema is current; nothing is created
    or migrated."""
    _require_file(database_url)
    engine = make_engine(database_url)
    with _reaching(engine, database_url):
        require_current_schema(engine)
    return engine


def changing_engine(database_url: str) -> Engine:
    """An engine on an existing database (a rebuild or purge of a new one is a mistyped
    path); SQLite is migrated in place, a server's schema must be current."""
    _require_file(database_url)
    return creating_engine(database_url)


def creating_engine(database_url: str) -> Engine:
    """An engine on a current schema: SQLite is created or migrated in place (it is ours
    alone); a server database must have been upgraded with `cdrlog db upgrade`."""
    _require_directory(database_url)
    engine = make_engine(database_url)
    with _reaching(engine, database_url):
        if make_url(database_url).get_backend_name() == "sqlite":
            upgrade(engine)
        else:
            require_current_schema(engine)
    return engine


def upgraded_engine(database_url: str) -> Engine:
    """An engine on a database created or migrated to the newest schema, of any kind."""
    _require_directory(database_url)
    engine = make_engine(database_url)
    with _reaching(engine, database_url):
        upgrade(engine)
    return engine


def require_current_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        head = ScriptDirectory.from_config(alembic_config(connection)).get_current_head()
    if current != head:
        raise click.ClickException(
            f"the database schema is at {current or 'nothing'}, not {head}: "
            "run `cdrlog db upgrade --db URL` first"
        )


def _sqlite_file(database_url: str) -> Path | None:
    """The file a SQLite URL names; None for a server, memory or a `file:` URI."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or in_memory(database_url):
        return None
    if not url.database or url.database.startswith("file:"):
        return None
    return Path(url.database)


def _require_directory(database_url: str) -> None:
    path = _sqlite_file(database_url)
    if path is not None and not path.parent.is_dir():
        raise DatabaseUnusable(
            f"no directory {path.parent} for the database {path}: create it, or check "
            f"{origin('database_url')}"
        )


def _require_file(database_url: str) -> None:
    _require_directory(database_url)
    path = _sqlite_file(database_url)
    if path is not None and not path.is_file():
        raise DatabaseUnusable(
            f"no database at {path}: check {origin('database_url')}; `cdrlog serve` creates it"
        )


@contextmanager
def _reaching(engine: Engine, database_url: str) -> Iterator[None]:
    """The driver's refusal (no server, wrong password, no such database) as one line."""
    try:
        yield
    except DBAPIError as error:
        engine.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DatabaseUnusable(
            f"cannot open the database at {shown(database_url)}: {reason}; "
            f"check {origin('database_url')}"
        ) from error
    except click.ClickException:
        engine.dispose()
        raise
