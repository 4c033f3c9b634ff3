"""`cdrlog replay` and `cdrlog purge`: operating on what is kept."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from cdrlog.cli.options import setting_option, settings_of

if TYPE_CHECKING:
    from cdrlog.service.replay import ReplaySummary, Source
    from cdrlog.store.purge import PurgeCounts

# The service's and the store's, repeated so that `--help` imports neither; a test
# holds them equal.
REPLAY_BATCH = 2000
PURGE_BATCH = 1000


@click.command("replay")
@setting_option("database_url")
@click.argument(
    "files",
    nargs=-1,
    required=True,
    metavar="FILE...",
    type=click.Path(dir_okay=False, allow_dash=True),
)
@click.option("--team", default=None, help="Store every event for this team, as its push URL.")
@setting_option("pbx_timezone")
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=REPLAY_BATCH,
    show_default=True,
    help="Events stored per transaction: larger is faster, but holds SQLite's one "
    "write lock longer.",
)
@setting_option("max_call_minutes")
@click.option("--dead-letter", is_flag=True, help="Keep refused bodies as dead letters.")
def replay(
    database_url: str,
    files: tuple[str, ...],
    team: str | None,
    pbx_timezone: str,
    batch: int,
    max_call_minutes: int,
    dead_letter: bool,
) -> None:
    """Store the events of FILE... (`-` for stdin): JSON lines (an object or an array a
    line), form-encoded lines (one push body a line) or `cdrlog rejected export` output.
    Idempotent: events stored before count as duplicates. Exits 1 if any was refused."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from cdrlog.cli.databases import creating_engine
    from cdrlog.service.replay import Replayer
    from cdrlog.service.services import build_services

    settings = settings_of(
        database_url=database_url, pbx_timezone=pbx_timezone, max_call_minutes=max_call_minutes
    )
    # The service's own pipeline and maximum call length: replayed calls close as its would.
    services = build_services(settings, creating_engine(settings.database_url))
    replayer = Replayer(services.intake, team=team, batch=batch, keep_refused=dead_letter)
    try:
        with _progress(_total_size(files)) as advance:
            summary = replayer.replay(_opened(files), advance)
    except (OperationalError, InterfaceError) as error:
        raise click.ClickException(
            f"the database failed: {error.orig}; what was stored stays, and replaying "
            "the same files again stores the rest"
        ) from error
    finally:
        services.close()
    click.echo(_summary_text(summary))
    if summary.rejected:
        sys.exit(1)


def _opened(files: Sequence[str]) -> Iterator[Source]:
    """Each file, open for reading bytes only while it is being read."""
    for name in files:
        try:
            stream = click.open_file(name, "rb")
        except OSError as error:
            raise click.FileError(name, error.strerror) from error
        with stream:
            yield ("<stdin>" if name == "-" else name), stream


def _total_size(files: Sequence[str]) -> int | None:
    """The bytes to read, for the progress bar; None when stdin makes it unknown."""
    if "-" in files:
        return None
    try:
        return sum(os.path.getsize(name) for name in files)
    except OSError:
        return None


@contextmanager
def _progress(total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A bar by bytes read, on a terminal only (scripts and logs get the summary)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("replaying"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("replay", total=total)
        yield lambda read: progress.advance(task, read)


def _summary_text(summary: ReplaySummary) -> str:
    lines = [
        f"cdrlog replay: {summary.lines:,} lines read ({summary.skipped:,} blank or comments): "
        f"{summary.accepted:,} events accepted ({summary.stored:,} stored, "
        f"{summary.duplicate:,} duplicate), {summary.rejected:,} rejected; "
        f"{summary.seconds:.1f} s, {summary.events_per_second:,.0f} events/s"
    ]
    if summary.dead_letters:
        lines.append(f"  {summary.dead_letters:,} refused kept as dead letters")
    lines.extend(f"  refused {refusal}" for refusal in summary.refusals)
    if summary.rejected > len(summary.refusals):
        lines.append(f"  ... and {summary.rejected - len(summary.refusals):,} more refused")
    return "\n".join(lines)


@click.command("purge")
@setting_option("database_url")
@click.option(
    "--older-than",
    "days",
    metavar="DAYS",
    type=click.IntRange(min=1),
    required=True,
    help="Delete what is older than this many days.",
)
@click.option("--team", default=None, help="Only this team's rows.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=PURGE_BATCH,
    show_default=True,
    help="Rows per transaction.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress on a terminal.")
def purge(
    database_url: str, days: int, team: str | None, dry_run: bool, batch: int, quiet: bool
) -> None:
    """Delete CDRs (by starttime) with their calls' journal rows, journal rows of calls
    without a CDR, and dead letters (by received time) older than DAYS days."""
    from cdrlog.cli.databases import changing_engine
    from cdrlog.store.purge import purge as delete_older

    settings = settings_of(database_url=database_url)
    cut = datetime.now(UTC) - timedelta(days=days)
    engine = changing_engine(settings.database_url)
    try:
        with _batches_shown(not quiet and sys.stderr.isatty(), dry_run) as begun:
            counts = delete_older(
                engine, cut, team=team, batch=batch, dry_run=dry_run, keep_going=begun
            )
    finally:
        engine.dispose()
    click.echo(_purge_text(counts, cut, team, dry_run))


@contextmanager
def _batches_shown(shown: bool, dry_run: bool) -> Iterator[Callable[[], bool]]:
    """What the purge asks before each batch: a count of them on stderr, if `shown`
    (how many there will be is not known before, so no bar)."""
    if not shown:
        yield lambda: True
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    verb = "counting" if dry_run else "purging"
    columns = (SpinnerColumn(), TextColumn(f"{verb}: batch {{task.completed:,.0f}}"))
    with Progress(
        *columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task("purge", total=None)

        def begun() -> bool:
            progress.advance(task)
            return True

        yield begun


def _purge_text(counts: PurgeCounts, cut: datetime, team: str | None, dry_run: bool) -> str:
    verb = "would delete" if dry_run else "deleted"
    whose = f" of team {team}" if team else ""
    return (
        f"cdrlog purge: {verb}{whose}, older than {cut:%Y-%m-%d %H:%M:%S} UTC: "
        f"{counts.cdr:,} CDRs, {counts.call_event:,} journal rows, "
        f"{counts.call_session:,} call sessions, {counts.dead_letter:,} dead letters "
        f"({counts.batches:,} batches)"
    )
