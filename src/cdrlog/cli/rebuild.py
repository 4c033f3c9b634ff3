"""`cdrlog rebuild`: recompute CDRs from the journal, in place, or as a dry run."""

from __future__ import annotations

import sys
from dataclasses import fields
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cdrlog.cli.options import (
    migrated_engine,
    moment,
    setting_option,
    setting_options,
    settings_of,
    zone_option,
)
from cdrlog.core.record import Cdr
from cdrlog.service.ingest import Ingestor
from cdrlog.service.rebuild import Rebuilt, Selection, rebuild
from cdrlog.service.services import build_services


@click.command("rebuild")
@setting_option("database_url")
@click.option("--team", help="Only this team's calls.")
@click.option("--from", "start", help="Only calls with an event at or after (ISO-8601).")
@click.option("--to", "end", help="Only calls with an event before (ISO-8601).")
@click.option("--tz", default="UTC", show_default=True, help="Zone of --from/--to without offset.")
@setting_options("pbx_timezone", "max_call_minutes")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
def rebuild_command(
    database_url: str,
    team: str | None,
    start: str | None,
    end: str | None,
    tz: str,
    pbx_timezone: str,
    max_call_minutes: int,
    dry_run: bool,
) -> None:
    """Parse every journaled event again with today's settings and refold its call.

    Use it after fixing --pbx-timezone, or after an upgrade that changes a rule. It is
    safe while the service receives events.
    """
    settings = settings_of(
        database_url=database_url, pbx_timezone=pbx_timezone, max_call_minutes=max_call_minutes
    )
    zone = zone_option(tz)
    scope = Selection(team, moment(start, zone), moment(end, zone))
    services = build_services(settings, migrated_engine(settings.database_url))
    try:
        summary = _run(services.ingestor, settings.pbx_zone, scope, dry_run)
    finally:
        services.close()
    _report(summary, dry_run)


def _run(ingestor: Ingestor, zone: ZoneInfo, scope: Selection, dry_run: bool) -> Rebuilt:
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


def _difference(before: Cdr | None, after: Cdr) -> str:
    if before is None:
        return "new CDR"
    changed = [
        f"{f.name} {getattr(before, f.name)} -> {getattr(after, f.name)}"
        for f in fields(Cdr)
        if getattr(before, f.name) != getattr(after, f.name)
    ]
    return "; ".join(changed)
