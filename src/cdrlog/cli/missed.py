"""`cdrlog missed`: GET /api/v1/missed for scripts and terminals. It opens an existing
database only, and changes nothing in it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

import click

from cdrlog.cli.options import output_option, setting_option, settings_of, time_range, zone_option

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from cdrlog.core.missed import MissedCall

TABLE_COLUMNS = (
    ("team", "orgidentity"),
    ("caller", "src"),
    ("queue", "agent_group"),
    ("started", "starttime"),
    ("wait s", "wait_seconds"),
    ("called back", "called_back_at"),
    ("by", "callback_agent"),
    ("reached", "callback_answered"),
    ("got through", "got_through_at"),
    ("resolved", "resolved"),
)


@click.command()
@setting_option("database_url")
@click.option(
    "--since", "--from", "start", help="starttime at or after (ISO-8601; zone --tz if naive)."
)
@click.option("--until", "--to", "end", help="starttime before (ISO-8601).")
@click.option("--team", "--orgidentity", "team", help="Only this team.")
@click.option("--queue", "--agent-group", "agent_group", help="Only this AgentGroupId.")
@click.option("--unresolved", is_flag=True, help="Only calls whose customer was not reached.")
@click.option(
    "--callback-hours",
    type=click.IntRange(1, 24 * 31),
    default=24,
    show_default=True,
    metavar="N",
    help="How long after a missed call a callback or a call back in counts.",
)
@click.option(
    "--short-abandon-seconds",
    type=click.IntRange(0, 86_400),
    default=5,
    show_default=True,
    metavar="N",
    help="Shorter waits are misdials, left out.",
)
@click.option(
    "--format", "kind", type=click.Choice(["table", "csv"]), default="table", show_default=True
)
@click.option(
    "--tz",
    metavar="ZONE",
    help="IANA zone of times shown, and of --since/--until without an offset.  "
    "[default: --display-timezone]",
)
@output_option
def missed(
    database_url: str,
    start: str | None,
    end: str | None,
    team: str | None,
    agent_group: str | None,
    unresolved: bool,
    callback_hours: int,
    short_abandon_seconds: int,
    kind: str,
    tz: str | None,
    output: TextIO,
) -> None:
    """Abandoned inbound calls (waited at least --short-abandon-seconds, never answered)
    newest first, with their callbacks and later calls in: as GET /api/v1/missed.

    Resolved means the customer was reached: a callback was answered, or the caller got
    through on a later inbound call, within --callback-hours."""
    from cdrlog.cli.databases import reading_engine
    from cdrlog.core.missed import MissedFilter, missed_csv
    from cdrlog.store.missed import every_missed
    from cdrlog.store.reader import Reader

    settings = settings_of(database_url=database_url)
    zone = zone_option(tz) if tz else settings.display_zone
    since, until = time_range(start, end, zone)
    wanted = MissedFilter(
        start_from=since,
        start_to=until,
        teams=(team,) if team else None,
        agent_group=agent_group,
        short_abandon=timedelta(seconds=short_abandon_seconds),
        window=timedelta(hours=callback_hours),
        unresolved=unresolved,
    )
    engine = reading_engine(settings.database_url)
    try:
        batches = every_missed(Reader(engine), wanted)
        if kind == "csv":
            for chunk in missed_csv(batches, zone):
                output.write(chunk)
            return
        _table(batches, zone, output)
    finally:
        engine.dispose()


def _table(batches: Iterable[Sequence[MissedCall]], zone: ZoneInfo, output: TextIO) -> None:
    from rich.console import Console

    from cdrlog.cli.tables import fitted_table
    from cdrlog.core.missed import missed_fields

    table = fitted_table(*(heading for heading, _ in TABLE_COLUMNS), right=("wait s",))
    for batch in batches:
        for found in batch:
            fields = missed_fields(found, zone)
            table.add_row(*(_text(fields[name]) for _, name in TABLE_COLUMNS))
    Console(file=output).print(table)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
