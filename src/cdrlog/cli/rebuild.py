"""`cdrlog rebuild`: recompute CDRs from the journal, in place, or as a dry run."""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import TYPE_CHECKING

import click

from cdrlog.cli.options import setting_option, setting_options, settings_of, time_range

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from cdrlog.core.record import Cdr
    from cdrlog.service.ingest import Ingestor
    from cdrlog.service.rebuild import Rebuilt, Selection


@click.command("rebuild")
@setting_option("database_url")
@click.option("--team", help="Only this team's calls.")
@click.option("--from", "start", help="Only calls with an event at or after (ISO-8601).")
@click.option("--to", "end", help="Only calls with an event before (ISO-8601).")
@click.option(
    "--tz",
    metavar="ZONE",
    help="Zone of --from/--to without offset.  [default: --display-timezone]",
)
@setting_options("pbx_timezone", "max_call_minutes")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
def rebuild_command(
    database_url: str,
    team: str | None,
    start: str | None,
    end: str | None,
    tz: str | None,
    pbx_timezone: str,
    max_call_minutes: int,
    dry_run: bool,
) -> None:
    """Parse every journaled event again with today's settings and refold its call.

    Use it after fixing --pbx-timezone (here, in the environment or in the configuration
    file, as `serve` reads it), or after an upgrade that changes a rule. It is safe
    while the service receives events.
    """
    from cdrlog.cli.databases import changing_engine
    from cdrlog.cli.options import zone_option
    from cdrlog.service.rebuild import Selection
    from cdrlog.service.services import build_services

    settings = settings_of(
        database_url=database_url, pbx_timezone=pbx_timezone, max_call_minutes=max_call_minutes
    )
    zone = zone_option(tz) if tz else settings.display_zone
    scope = Selection(team, *time_range(start, end, zone))
    services = build_services(settings, changing_engine(settings.database_url))
    try:
        summary = _run(services.ingestor, settings.pbx_zone, scope, dry_run)
    finally:
        services.close()
    _report(summary, dry_run)


def _run(ingestor: Ingestor, zone: ZoneInfo, scope: Selection, dry_run: bool) -> Rebuilt:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from cdrlog.service.rebuild import rebuild

    if not sys.stderr.isatty():
        return rebuild(ingestor, zone, scope, dry_run=dry_run)
    total = ingestor.journal.count_calls(scope.team)
    columns = (TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("calls", total=total)
        return rebuild(
            ingestor,
            zone,
            scope,
            dry_run=dry_run,
            progress=lambda done: progress.advance(task, done),
        )


def _report(summary: Rebuilt, dry_run: bool) -> None:
    verb = "would change" if dry_run else "changed"
    click.echo(
        f"{summary.calls} calls looked at; {summary.events_reparsed} events parsed differently"
        f" ({summary.events_unparsable} no longer parse, kept as they were);"
        f" {verb} {summary.cdrs_changed} CDRs and {'would create' if dry_run else 'created'}"
        f" {summary.cdrs_created}"
    )
    for key, before, after in summary.changes:
        click.echo(f"  {key[0]}/{key[1]}: {_difference(before, after)}")
    every = summary.cdrs_changed + summary.cdrs_created
    if len(summary.changes) < every:
        click.echo(f"  (showing {len(summary.changes)} of {every:,} changes)")


def _difference(before: Cdr | None, after: Cdr) -> str:
    from cdrlog.core.record import Cdr

    if before is None:
        return "new CDR"
    changed = [
        f"{f.name} {getattr(before, f.name)} -> {getattr(after, f.name)}"
        for f in fields(Cdr)
        if getattr(before, f.name) != getattr(after, f.name)
    ]
    return "; ".join(changed)
