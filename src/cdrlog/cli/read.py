"""`cdrlog export` and `cdrlog stats`: the read API, for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import TextIO
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cdrlog.cli.options import (
    migrated_engine,
    moment,
    output_option,
    setting_option,
    zone_option,
)
from cdrlog.core.exports import Batch, csv_chunks, jsonl_chunks
from cdrlog.core.report import CdrFilter, GroupBy, Sort
from cdrlog.store.reader import Reader


def _filter(
    team: str | None, agent: str | None, start: str | None, end: str | None, zone: ZoneInfo
) -> CdrFilter:
    return CdrFilter(
        start_from=moment(start, zone),
        start_to=moment(end, zone),
        teams=(team,) if team else None,
        agentno=agent,
    )


tz_option = click.option("--tz", default="UTC", show_default=True, help="IANA zone for times.")
from_option = click.option("--from", "start", help="starttime at or after (ISO-8601).")
to_option = click.option("--to", "end", help="starttime before (ISO-8601).")
team_option = click.option("--team", help="Only this team.")
agent_option = click.option("--agent", help="Only this agent number.")


@click.command()
@setting_option("database_url")
@from_option
@to_option
@team_option
@agent_option
@tz_option
@click.option(
    "--format", "kind", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True
)
@output_option
def export(
    database_url: str,
    start: str | None,
    end: str | None,
    team: str | None,
    agent: str | None,
    tz: str,
    kind: str,
    output: TextIO,
) -> None:
    """Write every CDR matching the filters, oldest first, as CSV or JSON lines."""
    zone = zone_option(tz)
    wanted = _filter(team, agent, start, end, zone)
    engine = migrated_engine(database_url)
    reader = Reader(engine)
    batches = reader.batches(wanted, Sort.OLDEST)
    if sys.stderr.isatty():
        batches = _with_progress(batches, reader.count(wanted))
    chunks = csv_chunks(batches, zone) if kind == "csv" else jsonl_chunks(batches, zone)
    for chunk in chunks:
        output.write(chunk)
    engine.dispose()


def _with_progress(batches: Iterator[Batch], total: int) -> Iterator[Batch]:
    """`batches`, counted on a progress bar on stderr as each is taken."""
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
@from_option
@to_option
@team_option
@agent_option
@tz_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats(
    database_url: str,
    group_by: str,
    start: str | None,
    end: str | None,
    team: str | None,
    agent: str | None,
    tz: str,
    as_json: bool,
) -> None:
    """Calls, ASR, ACD, talk time and ring time per agent, team, day or hour."""
    zone = zone_option(tz)
    engine = migrated_engine(database_url)
    rows = Reader(engine).stats(_filter(team, agent, start, end, zone), GroupBy(group_by), zone)
    engine.dispose()
    if as_json:
        click.echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    by_agent = group_by == GroupBy.AGENT
    table = Table(box=None, header_style="bold")
    # An hour is labelled with its date and offset, which must not be cut short.
    table.add_column(group_by, no_wrap=True, min_width=22 if group_by == GroupBy.HOUR else 0)
    if by_agent:
        table.add_column("team", no_wrap=True)
    for heading in ("calls", "ans", "noans", "busy", "fail", "ASR", "ACD s", "talk s", "ring s"):
        table.add_column(heading, justify="right", no_wrap=True)
    for row in rows:
        figures = [
            str(row.calls),
            str(row.answered),
            str(row.unanswered),
            str(row.busy),
            str(row.failed),
            f"{row.asr:.1%}",
            _number(row.acd),
            str(row.talk_time),
            _number(row.avg_ring_time),
        ]
        table.add_row(row.group, *([row.team or ""] if by_agent else []), *figures)
    Console().print(table)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
