"""Backups: a SQLite database copied while it serves, and how server databases are dumped.

A SQLite database in WAL mode is more than its file: the newest commits live in the
`-wal` file until a checkpoint moves them into the database file, and a checkpoint may
run while `cp` reads. A copy made with `cp` can therefore lack acknowledged events, or
mix pages of two moments into a file that does not open. SQLite's online backup API
instead copies every page of one read transaction: one committed state, the writers of
the serving process going on meanwhile (in WAL mode a reader never blocks a writer).

MariaDB/MySQL and PostgreSQL have their own tools for this, which take one consistent
snapshot without stopping writers: `DUMPS` holds the commands, which the operations
guide shows verbatim and the tests run.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sqlalchemy.engine import make_url

from cdrlog.store.database import in_memory

# The page budget per step, when none is given: everything in one step. A backup taken in
# steps starts again whenever another connection writes between two steps, which under
# a steady stream of pushes it may never finish; one step holds one read transaction
# for its whole length instead, which in WAL mode costs writers nothing.
ALL_PAGES = -1


class Dump(NamedTuple):
    """How to dump a server database and restore the dump into a new, empty database.
    Both read the database's coordinates from DB_HOST, DB_PORT, DB_USER, DB_NAME (and
    NEW_DB for the restore); the password comes from the tool's own file or variable
    (`passwords`), never from a command line, where other users could read it."""

    database: str
    tool: str
    dump: str
    restore: str
    passwords: str


# --single-transaction: one consistent InnoDB snapshot, no table locks, writers go on.
# --hex-blob: dead letters' bodies are bytes, kept exact whatever the client's charset.
# pg_dump -Fc: one compressed archive, itself a single snapshot; --no-owner lets
# another role own the restored tables; --exit-on-error stops at the first error.
DUMPS: dict[str, Dump] = {
    "mysql": Dump(
        "MariaDB/MySQL",
        "mysqldump",
        'mysqldump --single-transaction --quick --hex-blob --default-character-set=utf8mb4 -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" "$DB_NAME" > cdrlog.sql',  # noqa: E501
        'mysql --default-character-set=utf8mb4 -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" "$NEW_DB" < cdrlog.sql',  # noqa: E501
        "~/.my.cnf or MYSQL_PWD",
    ),
    "postgresql": Dump(
        "PostgreSQL",
        "pg_dump",
        'pg_dump -Fc -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -f cdrlog.dump "$DB_NAME"',
        'pg_restore --no-owner --exit-on-error -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d "$NEW_DB" cdrlog.dump',  # noqa: E501
        "~/.pgpass or PGPASSWORD",
    ),
}
DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


class NotSqlite(ValueError):
    """The URL names a server database, which its own dump tool backs up: `dump`."""

    def __init__(self, backend: str, dump: Dump | None, coordinates: dict[str, str]) -> None:
        super().__init__(f"a {backend} database is backed up with its own tools, not copied")
        self.backend = backend
        self.dump = dump
        self.coordinates = coordinates


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """What a backup file holds, read from the file itself once it is complete."""

    path: Path
    size: int
    cdrs: int
    events: int
    dead_letters: int
    revision: str | None
    seconds: float


def backup_sqlite(
    database_url: str, target: Path, *, force: bool = False, pages: int = ALL_PAGES
) -> BackupSummary:
    """Copy the SQLite database of `database_url` into `target`, consistently, while it
    may be serving. `target` appears whole or not at all (a temporary file beside it is
    renamed), as one self-contained file (no `-wal`), readable by its owner only.

    NotSqlite for a server database's URL; FileExistsError when `target` exists and
    `force` is not given; FileNotFoundError when the database file does not exist."""
    source = _sqlite_file(database_url)
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists (overwrite it with --force)")
    if not source.is_file():
        # sqlite3.connect would create an empty database and back that up.
        raise FileNotFoundError(f"no SQLite database at {source}")
    began = time.perf_counter()
    # mkstemp makes the file 0600: the copy holds token hashes, as the database does.
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    partial = Path(name)
    try:
        _copy(source, partial, pages)
        os.replace(partial, target)
    finally:
        with suppress(FileNotFoundError):
            partial.unlink()
    _sync_directory(target.parent)
    seconds = time.perf_counter() - began
    return _summary(target, seconds)


def server_dump(database_url: str) -> NotSqlite:
    """What to say for a server database's URL: its dump commands and the values of
    their variables (the password is never among them)."""
    url = make_url(database_url)
    backend = "mysql" if url.get_backend_name() in ("mysql", "mariadb") else url.get_backend_name()
    coordinates = {
        "DB_HOST": url.host or "localhost",
        "DB_PORT": str(url.port or DEFAULT_PORTS.get(backend) or ""),
        "DB_USER": url.username or "",
        "DB_NAME": url.database or "",
    }
    return NotSqlite(backend, DUMPS.get(backend), coordinates)


def _sqlite_file(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise server_dump(database_url)
    if in_memory(database_url) or not url.database or url.database.startswith("file:"):
        raise ValueError(f"{database_url} names no database file to back up")
    return Path(url.database)


def _copy(source: Path, partial: Path, pages: int) -> None:
    # Autocommit (isolation_level None): the backup's read transaction is its own, and
    # the copy's journal mode can be changed after it.
    with (
        closing(sqlite3.connect(source, timeout=60, isolation_level=None)) as reading,
        closing(sqlite3.connect(partial, isolation_level=None)) as writing,
    ):
        reading.execute("PRAGMA busy_timeout=60000")
        reading.backup(writing, pages=pages)
        # The copy carries the source's WAL mode in its header; a rollback journal
        # makes it one file, whole once closed, to be kept or moved anywhere.
        writing.execute("PRAGMA journal_mode=DELETE")
    # On disk before it is renamed into place, whatever SQLite's own syncing did.
    with partial.open("rb") as copied:
        os.fsync(copied.fileno())


def _sync_directory(directory: Path) -> None:
    """Make the rename durable: it lives in the directory's entry."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _summary(target: Path, seconds: float) -> BackupSummary:
    uri = f"{target.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as backup:
        tables = {row[0] for row in backup.execute("SELECT name FROM sqlite_master")}

        def count(table: str) -> int:
            if table not in tables:
                return 0
            return int(backup.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

        revision = None
        if "alembic_version" in tables:
            row = backup.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = None if row is None else str(row[0])
        return BackupSummary(
            path=target,
            size=target.stat().st_size,
            cdrs=count("cdr"),
            events=count("call_event"),
            dead_letters=count("dead_letter"),
            revision=revision,
            seconds=seconds,
        )
