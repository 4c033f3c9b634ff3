"""`cdrlog export` and `cdrlog stats`: the read API, for scripts. Both open an existing
database only, and change nothing in it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, TextIO

import click

from cdrlog.cli.filters import AskedCdrs, cdr_filter_options
from cdrlog.cli.options import output_option, setting_option, settings_of
from cdrlog.core.hours import DAY_SECONDS, BusinessHours
from cdrlog.core.report import (
    SERVICE_LEVEL_SECONDS,
    SHORT_ABANDON_SECONDS,
    GroupBy,
    Sort,
    StatsTerms,
)

if TYPE_CHECKING:
    from cdrlog.core.exports import Batch
    from cdrlog.core.report import StatsRow


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
    "--group-by",
    "group_by",
    type=click.Choice([g.value for g in GroupBy]),
    default="agent",
    show_default=True,
    help='queue: agent_group ("" without one); day, hour, weekday_hour: local to --tz.',
)
@cdr_filter_options
@click.option(
    "--service-level-seconds",
    type=click.IntRange(0, DAY_SECONDS),
    default=SERVICE_LEVEL_SECONDS,
    show_default=True,
    help="Answered inbound calls that waited at most this count as within service level.",
)
@click.option(
    "--short-abandon-seconds",
    type=click.IntRange(0, DAY_SECONDS),
    default=SHORT_ABANDON_SECONDS,
    show_default=True,
    help="Unanswered inbound calls that waited less are short abandons, left out of rates.",
)
@click.option(
    "--business-hours", metavar="HH:MM-HH:MM", help="Only calls started then (local to --tz)."
)
@click.option(
    "--business-days", metavar="DAYS", help="Only calls started on these local days: mon-fri."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def stats(
    database_url: str,
    group_by: str,
    asked: AskedCdrs,
    service_level_seconds: int,
    short_abandon_seconds: int,
    business_hours: str | None,
    business_days: str | None,
    as_json: bool,
) -> None:
    """Calls, ASR, ACD, talk time and ring time per agent, team, queue, day, hour or hour
    of the week, of the CDRs matching the filters (those of GET /api/v1/cdrs); then the
    call-center figures of inbound calls (those of GET /api/v1/stats: offered, abandons,
    service level, waits), and holds and transfers of every call."""
    from cdrlog.cli.databases import reading_engine
    from cdrlog.cli.tables import stats_table
    from cdrlog.store.reader import Reader

    terms = StatsTerms(
        service_level_seconds,
        short_abandon_seconds,
        _business(business_hours, business_days),
    )
    settings = settings_of(database_url=database_url)
    zone = asked.zone(settings)
    wanted = asked.cdr_filter(zone)
    engine = reading_engine(settings.database_url)
    try:
        rows = Reader(engine).stats(wanted, GroupBy(group_by), zone, terms)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    stats_table(rows, GroupBy(group_by))
    click.echo()
    _call_center_table(rows, GroupBy(group_by))


def _business(hours: str | None, days: str | None) -> BusinessHours | None:
    try:
        BusinessHours.parse(hours, None)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--business-hours'") from error
    try:
        return BusinessHours.parse(hours, days)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--business-days'") from error


# The figures a queue is watched by; --json gives all (answered_within, avg_abandon_wait).
CALL_CENTER = ("offer", "short", "aband", "SL", "aband%", "ASA s", "max s", "hold s", "xfer")


def _call_center_table(rows: Sequence[StatsRow], group_by: GroupBy) -> None:
    """The call-center figures of `rows`, under the figures of `stats_table`."""
    from rich.console import Console

    from cdrlog.cli.tables import fitted_table

    by_team = group_by in (GroupBy.AGENT, GroupBy.QUEUE)
    headings = (group_by.value, *(["team"] if by_team else []), *CALL_CENTER)
    table = fitted_table(*headings, right=CALL_CENTER, lined=False)
    table.columns[0].no_wrap = True
    for row in rows:
        figures = [
            str(row.offered),
            str(row.short_abandoned),
            str(row.abandoned),
            _share(row.service_level),
            _share(row.abandon_rate),
            _seconds(row.asa),
            "" if row.max_wait is None else str(row.max_wait),
            str(row.hold_seconds),
            str(row.transfers),
        ]
        table.add_row(row.group, *([row.team or ""] if by_team else []), *figures)
    Console().print(table)


def _share(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.1%}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
