"""`cdrlog agents set|list|report`: which phone each agent uses, what each is doing now,
and how each spent a range of time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from cdrlog.cli.options import setting_option, settings_of

if TYPE_CHECKING:
    from rich.text import Text

    from cdrlog.store.agents import AgentReport, AgentStatus

# How a state reads in a terminal; the API's own words are kept for anything unknown.
STATE_NAMES = {
    "available": "available",
    "on_call": "on a call",
    "paused": "paused",
    "after_call_work": "wrap-up",
    "logged_out": "logged out",
}
STATE_STYLES = {
    "available": "green",
    "on_call": "blue",
    "paused": "yellow",
    "after_call_work": "magenta",
    "logged_out": "dim",
}


@click.group()
def agents() -> None:
    """Agents: the phone each uses, and the state each is in."""


@agents.command("set")
@setting_option("database_url")
@click.argument("team")
@click.argument("agentno")
@click.argument("phone")
def agents_set(database_url: str, team: str, agentno: str, phone: str) -> None:
    """Bind AGENTNO of TEAM to PHONE (used as src of outbound calls)."""
    from cdrlog.cli.databases import creating_engine
    from cdrlog.service.ingest import Ingestor

    settings = settings_of(database_url=database_url)
    engine = creating_engine(settings.database_url)
    try:
        Ingestor(engine).set_agent(team, agentno, phone)
    finally:
        engine.dispose()
    click.echo(f"agent {agentno} of {team} uses phone {phone}")


@agents.command("list")
@setting_option("database_url")
@click.option("--team", default=None, help="Only this team.")
@setting_option("max_call_minutes")
def agents_list(database_url: str, team: str | None, max_call_minutes: int) -> None:
    """Each agent's phone, queue and state now, and how long it has been in it (an
    agent whose call is open longer than --max-call-minutes is no longer on it)."""
    from rich.console import Console

    from cdrlog.cli.databases import reading_engine
    from cdrlog.cli.tables import fitted_table
    from cdrlog.service.clock import utc_now
    from cdrlog.store.agents import listing

    settings = settings_of(database_url=database_url, max_call_minutes=max_call_minutes)
    engine = reading_engine(settings.database_url)
    now = utc_now()
    try:
        longest = timedelta(minutes=settings.max_call_minutes)
        found = listing(engine, (team,) if team else None, now, longest)
    finally:
        engine.dispose()
    table = fitted_table("team", "agent", "phone", "queue", "state", "since (UTC)", "for")
    for agent in found:
        table.add_row(*_row(agent, now))
    Console().print(table)


def _row(agent: AgentStatus, now: datetime) -> list[Text]:
    # Text, not markup: a team or number as pushed may hold brackets rich would read.
    from rich.text import Text

    since = agent.state_since
    return [
        Text(agent.team),
        Text(agent.agentno),
        Text(agent.phone or ""),
        Text(agent.agent_group or ""),
        Text(STATE_NAMES.get(agent.state, agent.state), style=STATE_STYLES.get(agent.state, "")),
        Text("" if since is None else since.strftime("%Y-%m-%d %H:%M:%S")),
        Text("" if since is None else lasting(now - since)),
    ]


REPORT_FIGURES = ("logged in", "paused", "wrap-up", "talk", "answered", "occupancy", "AHT")


@agents.command("report")
@setting_option("database_url")
@click.option("--since", help="At or after (ISO-8601; zone --tz if naive).  [default: today]")
@click.option("--until", help="Before (ISO-8601).  [default: the end of today]")
@click.option("--team", "--orgidentity", "team", help="Only this team.")
@click.option("--queue", "--agent-group", "queue", help="Only agents of this AgentGroupId.")
@click.option(
    "--tz",
    metavar="ZONE",
    help="IANA zone of times shown, of --since/--until without an offset, and of "
    "today.  [default: --display-timezone]",
)
def agents_report(
    database_url: str,
    since: str | None,
    until: str | None,
    team: str | None,
    queue: str | None,
    tz: str | None,
) -> None:
    """Each agent's time logged in, paused and in wrap-up over [--since, --until), with
    the calls it handled that started then, its occupancy and average handle time (the
    figures and definitions of GET /api/v1/agents/report)."""
    from rich.console import Console

    from cdrlog.cli.databases import reading_engine
    from cdrlog.cli.options import moment, zone_option
    from cdrlog.cli.tables import fitted_table
    from cdrlog.core.agenttime import report_range
    from cdrlog.service.clock import utc_now
    from cdrlog.store.agents import time_report

    settings = settings_of(database_url=database_url)
    zone = zone_option(tz) if tz else settings.display_zone
    now = utc_now()
    try:
        start, end = report_range(
            moment(since, zone, "--since"), moment(until, zone, "--until"), now, zone
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=["--since", "--until"]) from error
    engine = reading_engine(settings.database_url)
    try:
        found = time_report(engine, (team,) if team else None, queue, start, end, now)
    finally:
        engine.dispose()
    table = fitted_table("team", "agent", "queue", *REPORT_FIGURES, right=REPORT_FIGURES)
    shown = "%Y-%m-%d %H:%M:%S%z"
    table.title = (
        f"{start.astimezone(zone).strftime(shown)} to {end.astimezone(zone).strftime(shown)}"
    )
    for report in found:
        table.add_row(*_report_row(report))
    Console().print(table)


def _report_row(report: AgentReport) -> list[Text]:
    from rich.text import Text

    figures = report.figures
    occupancy, aht = figures.occupancy, figures.aht
    return [
        Text(report.team),
        Text(report.agentno),
        Text(report.agent_group or ""),
        Text(clock_time(figures.time.logged_in)),
        Text(clock_time(figures.time.paused)),
        Text(clock_time(figures.time.after_call_work)),
        Text(clock_time(figures.talk)),
        Text(str(figures.answered_calls)),
        Text("" if occupancy is None else f"{occupancy:.1%}"),
        Text("" if aht is None else clock_time(round(aht))),
    ]


def clock_time(seconds: int) -> str:
    """Seconds as H:MM:SS (hours beyond 24 kept: a report sums a range of days)."""
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def lasting(span: timedelta) -> str:
    """A span as people say it: 45s, 4m 12s, 2h 05m, 3d 4h (never negative: a PBX clock
    a little ahead of ours must not show a state entered in the future)."""
    seconds = max(0, int(span.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"
