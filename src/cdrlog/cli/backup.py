"""`cdrlog backup`: a consistent copy of the SQLite database, taken while it serves."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cdrlog.cli.options import setting_option, settings_of

if TYPE_CHECKING:
    from cdrlog.store.backup import BackupSummary, NotSqlite

MiB = 1024 * 1024


class UseDumpTool(click.ClickException):
    """A server database's URL: not a failure of the copy but the wrong tool, so the
    status of a usage error."""

    exit_code = 2


@click.command("backup")
@click.option(
    "--to",
    "target",
    metavar="FILE",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The backup file to write (a SQLite database of its own).",
)
@setting_option("database_url")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def backup(target: Path, database_url: str, force: bool) -> None:
    """Copy the SQLite database into FILE with SQLite's online backup API: one
    consistent state, taken while the service keeps receiving (a `cp` of a database in
    WAL mode is not one). MariaDB/MySQL and PostgreSQL are dumped with their own tools:
    given such a URL, this prints the command to use and exits 2.

    To restore: stop the service, copy FILE over the database file, delete the
    database's -wal and -shm files, start the service.
    """
    from cdrlog.store.backup import NotSqlite, backup_sqlite

    if not target.parent.is_dir():
        raise click.BadParameter(f"{target.parent} is not a directory", param_hint="--to")
    database_url = settings_of(database_url=database_url).database_url  # and the file's
    try:
        summary = backup_sqlite(database_url, target, force=force)
    except NotSqlite as error:
        raise UseDumpTool(_dump_advice(error)) from error
    except (FileExistsError, FileNotFoundError, sqlite3.Error) as error:
        raise click.ClickException(str(error)) from error
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--db") from error
    click.echo(_summary_text(summary))


def _dump_advice(error: NotSqlite) -> str:
    dump = error.dump
    if dump is None:
        return f"cdrlog backup copies SQLite databases only; back up {error.backend} with its tools"
    names = " ".join(f"{name}={value}" for name, value in error.coordinates.items())
    return (
        f"cdrlog backup copies SQLite databases; back up {dump.database} with {dump.tool}, "
        "which takes one consistent snapshot while the service runs:\n\n"
        f"  {names} \\\n  {dump.dump}\n\n"
        "and restore the dump into a new, empty database NEW_DB:\n\n"
        f"  {names} NEW_DB=... \\\n  {dump.restore}\n\n"
        f"The password comes from {dump.passwords}."
    )


def _summary_text(summary: BackupSummary) -> str:
    return (
        f"cdrlog backup: {summary.path} ({summary.size / MiB:,.1f} MiB): "
        f"{summary.cdrs:,} CDRs, {summary.events:,} journal rows, "
        f"{summary.dead_letters:,} dead letters, schema {summary.revision or 'none'}; "
        f"{summary.seconds:.1f} s"
    )
