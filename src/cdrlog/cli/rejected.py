"""`cdrlog rejected list` and `cdrlog rejected retry`: refused push bodies, and storing
them after a fix (an upgrade that accepts what an older version refused, a corrected
`--pbx-timezone`)."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cdrlog.cli.options import database_option, migrated_engine, pbx_timezone_option, settings_of
from cdrlog.service.ingest import Ingestor
from cdrlog.store.reader import Reader
from cdrlog.web.push import Receiver, RetryRefused, retry

team_option = click.option("--team", help="Only this team.")


@click.group()
def rejected() -> None:
    """Dead letters: refused push bodies, and retrying them after a fix."""


@rejected.command("list")
@database_option
@team_option
@click.option("--all", "everything", is_flag=True, help="Include resolved ones.")
@click.option("--limit", default=50, show_default=True)
def rejected_list(database_url: str, team: str | None, everything: bool, limit: int) -> None:
    """The newest dead letters and why they were refused."""
    engine = migrated_engine(database_url)
    letters = Reader(engine).dead_letters((team,) if team else None, None, limit, not everything)
    engine.dispose()
    table = Table("id", "received (UTC)", "team", "reason", "body", "resolved")
    for letter in letters:
        table.add_row(
            str(letter["id"]),
            letter["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
            letter["orgidentity"] or "",
            "; ".join(f"{k}: {v}" for k, v in letter["reason"].items()),
            letter["body"][:60],
            letter["resolution"] or "",
        )
    Console().print(table)


@rejected.command("retry")
@database_option
@pbx_timezone_option
@click.option("--max-call-minutes", envvar="CDRLOG_MAX_CALL_MINUTES", default=240, type=int)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Every unresolved dead letter, oldest first (after an upgrade).",
)
@team_option
@click.argument("letter_ids", nargs=-1, type=int)
def rejected_retry(
    database_url: str,
    pbx_timezone: str,
    max_call_minutes: int,
    everything: bool,
    team: str | None,
    letter_ids: tuple[int, ...],
) -> None:
    """Run dead letters LETTER_IDS (or --all) through the receiver again. Exits 1 when
    any of them is still refused."""
    if everything == bool(letter_ids):
        raise click.UsageError("give dead letter ids, or --all")
    if team is not None and not everything:
        raise click.UsageError("--team goes with --all")
    settings = settings_of(
        database_url=database_url, pbx_timezone=pbx_timezone, max_call_minutes=max_call_minutes
    )
    engine = migrated_engine(database_url)
    ingestor = Ingestor(engine, max_call_length=timedelta(minutes=settings.max_call_minutes))
    receiver, reader = Receiver(settings, ingestor), Reader(engine)
    if everything:
        failed = _retry_all(receiver, reader, team)
    else:
        failed = sum(not _retry_one(receiver, reader, letter_id) for letter_id in letter_ids)
    engine.dispose()
    if failed:
        sys.exit(1)


def _retry_all(receiver: Receiver, reader: Reader, team: str | None) -> int:
    """Every unresolved letter with a progress bar; prints only those still refused."""
    ids = reader.unresolved_dead_letter_ids((team,) if team else None)
    columns = (TextColumn("retrying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    resolved = failed = 0
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("retry", total=len(ids))
        for letter_id in ids:
            if _retry_one(receiver, reader, letter_id, quiet=True):
                resolved += 1
            else:
                failed += 1
            progress.advance(task)
    click.echo(
        f"{len(ids):,} dead letters retried: {resolved:,} resolved, {failed:,} still refused"
    )
    return failed


def _retry_one(receiver: Receiver, reader: Reader, letter_id: int, *, quiet: bool = False) -> bool:
    letter = reader.dead_letter(letter_id)
    if letter is None:
        click.echo(f"{letter_id}: no such dead letter", err=True)
        return False
    try:
        result = retry(receiver, letter)
    except RetryRefused as error:
        click.echo(f"{letter_id}: {error}", err=True)
        return False
    detail: Any = result.errors or f"{result.stored} stored, {result.duplicate} duplicate"
    if result.status != "resolved" or not quiet:
        click.echo(f"{letter_id}: {result.status}: {detail}", err=result.status != "resolved")
    return result.status == "resolved"
