"""`cdrlog export` and `cdrlog stats`: the read API, for scripts. Both open an existing
database only, and change nothing in it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, TextIO

import click

from cdrlog.cli.filters import AskedCdrs, cdr_filter_options
from cdrlog.cli.options import output_option, setting_option, settings_of
from cdrlog.core.report import GroupBy, Sort

if TYPE_CHECKING:
    from cdrlog.core.exports import Batch


@click.command()
@setting_option("database_url")
@cdr_filter_options
@click.option(
    "--sort",
    type=click.Choice([s.value for s in Sort]),
    default=Sort.OLDEST.value,
    show_default=True,
    help="By starttime, then id.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N", help="At most N CDRs (then says so)."
)
@click.option(
    "--format", "kind", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@output_option
def export(
    database_url: str,
    asked: AskedCdrs,
    sort: str,
    limit: int | None,
    kind: str,
    output: TextIO,
) -> None:
    """Write every CDR matching the filters (those of GET /api/v1/cdrs), oldest first
    unless --sort says otherwise, as CSV or JSON lines."""
    from cdrlog.cli.databases import reading_engine
    from cdrlog.core.exports import capped, csv_chunks, jsonl_chunks
    from cdrlog.store.reader import Reader

    settings = settings_of(database_url=database_url)
    zone = asked.zone(settings)
    wanted = asked.cdr_filter(zone)
    engine = reading_engine(settings.database_url)
    try:
        reader = Reader(engine)
        total = reader.count(wanted) if limit is not None or _terminal() else None
        batches = capped(reader.batches(wanted, Sort(sort)), limit)
        if _terminal() and total is not None:
            batches = _with_progress(batches, min(total, limit or total))
        chunks = csv_chunks(batches, zone) if kind == "csv" else jsonl_chunks(batches, zone)
        for chunk in chunks:
            output.write(chunk)
    finally:
        engine.dispose()
    if limit is not None and total is not None and total > limit:
        click.echo(f"cdrlog export: wrote {limit:,} of {total:,} CDRs (--limit {limit})", err=True)


def _terminal() -> bool:
    return sys.stderr.isatty()


def _with_progress(batches: Iterator[Batch], total: int) -> Iterator[Batch]:
    """`batches`, counted on a progress bar on stderr as each is taken."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("export", total=total)
        for batch in batches:
            yield batch
            progress.advance(task, len(batch))
        progress.update(task, completed=total)


@click.command()
@setting_option("database_url")
@click.option(
    "--by",
    "group_by",
    type=click.Choice([g.value for g in GroupBy]),
    default="agent",
    show_default=True,
)
@cdr_filter_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(database_url: str, group_by: str, asked: AskedCdrs, as_json: bool) -> None:
    """Calls, ASR, ACD, talk time and ring time per agent, team, day or hour, of the
    CDRs matching the filters (those of GET /api/v1/cdrs)."""
    from cdrlog.cli.databases import reading_engine
    from cdrlog.cli.tables import stats_table
    from cdrlog.store.reader import Reader

    settings = settings_of(database_url=database_url)
    zone = asked.zone(settings)
    wanted = asked.cdr_filter(zone)
    engine = reading_engine(settings.database_url)
    try:
        rows = Reader(engine).stats(wanted, GroupBy(group_by), zone)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    stats_table(rows, GroupBy(group_by))
