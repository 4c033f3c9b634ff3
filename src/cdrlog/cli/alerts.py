"""`cdrlog alerts add|list|remove`: rules that raise an alert when a team's figures go
past a threshold, sent as `alert.raised` and `alert.cleared` through the hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cdrlog.cli.options import setting_option, settings_of
from cdrlog.core.alerts import (
    DEFAULT_WINDOW_MINUTES,
    LONGEST_WINDOW_MINUTES,
    MOST_SECONDS,
    RATES,
    UNITS,
    Alert,
    Metric,
    Rule,
)
from cdrlog.core.report import SERVICE_LEVEL_SECONDS, SHORT_ABANDON_SECONDS

if TYPE_CHECKING:
    from sqlalchemy import Engine

METRICS = [metric.value for metric in Metric]


def _engine(database_url: str, creating: bool = False) -> Engine:
    # Imported here: `cdrlog alerts --help` needs no database library.
    from cdrlog.cli import databases

    url = settings_of(database_url=database_url).database_url
    return databases.creating_engine(url) if creating else databases.changing_engine(url)


@click.group()
def alerts() -> None:
    """Alert rules: a team's service level, abandon rate, calls waiting, longest wait or
    silence, past a threshold.

    A running `cdrlog serve` measures every rule every --alert-check-seconds (10) and
    raises its alert once when the figure goes past the threshold, and clears it once
    when it is back: hooks that take `alert.raised` / `alert.cleared` (`cdrlog hooks add
    URL --kind alert.raised --kind alert.cleared`) receive each, and the wallboard and
    the supervisor view show the alerts raised."""


@alerts.command("add")
@setting_option("database_url")
@click.argument("metric", type=click.Choice(METRICS))
@click.argument("threshold", type=float)
@click.option("--team", required=True, help="The team (orgidentity) whose figures to watch.")
@click.option("--queue", help="Only this queue (AgentGroupId).  [default: every queue]")
@click.option(
    "--window-minutes",
    type=click.IntRange(1, LONGEST_WINDOW_MINUTES),
    default=DEFAULT_WINDOW_MINUTES,
    show_default=True,
    help="The rates are of the calls that started this many minutes back.",
)
@click.option(
    "--service-level-seconds",
    type=click.IntRange(1, MOST_SECONDS),
    default=SERVICE_LEVEL_SECONDS,
    show_default=True,
    help="A call answered within this many seconds counts for the service level.",
)
@click.option(
    "--short-abandon-seconds",
    type=click.IntRange(0, MOST_SECONDS),
    default=SHORT_ABANDON_SECONDS,
    show_default=True,
    help="An unanswered call that waited less is left out of both rates.",
)
@click.option("--note", help="What the rule is for (sent with its alerts).")
def alerts_add(
    database_url: str,
    metric: str,
    threshold: float,
    team: str,
    queue: str | None,
    window_minutes: int,
    service_level_seconds: int,
    short_abandon_seconds: int,
    note: str | None,
) -> None:
    """Raise an alert when METRIC of a team goes past THRESHOLD: service_level_below 0.8
    (under 80% of calls answered in time), abandon_rate_above 0.1, waiting_above 5
    (calls), wait_above 120 (seconds a caller has waited), silent_minutes 15 (no event
    at all from the team's PBX for 15 minutes). The rates are those of `cdrlog stats`."""
    from cdrlog.core.alerts import checked_rule
    from cdrlog.service.alertrules import RuleRefused, add_rule
    from cdrlog.service.clock import utc_now

    try:
        asked = checked_rule(
            team,
            queue,
            metric,
            threshold,
            window_minutes=window_minutes,
            service_level_seconds=service_level_seconds,
            short_abandon_seconds=short_abandon_seconds,
            note=note,
        )
    except ValueError as wrong:
        raise click.BadParameter(str(wrong)) from None
    engine = _engine(database_url, creating=True)
    try:
        rule = add_rule(engine, utc_now, asked)
    except RuleRefused as refused:
        raise click.ClickException(str(refused)) from None
    finally:
        engine.dispose()
    click.echo(f"rule {rule.id}: {_described(rule.metric, rule.threshold)} for {_where(rule)}")


def _described(metric: Metric, threshold: float) -> str:
    shown = f"{threshold:g}"
    return f"{metric.value} {shown} ({UNITS[metric]})"


def _where(rule: Rule) -> str:
    return f"team {rule.team}, {'queue ' + rule.queue if rule.queue else 'every queue'}"


@alerts.command("list")
@setting_option("database_url")
def alerts_list(database_url: str) -> None:
    """Every rule, and whether its alert is raised."""
    from rich.console import Console

    from cdrlog.cli.tables import fitted_table
    from cdrlog.store import alerts as stored

    engine = _engine(database_url)
    found = stored.watched(engine)
    engine.dispose()
    table = fitted_table(
        "id",
        "team",
        "queue",
        "metric",
        "threshold",
        "window",
        "alert",
        "value",
        "since (UTC)",
        "note",
        right=("threshold", "value"),
    )
    for alert in found:
        table.add_row(*_row(alert))
    Console().print(table)
    if not found:
        click.echo("no alert rules")


def _row(alert: Alert) -> list[str]:
    rule, state = alert.rule, alert.state
    since = state.raised_at if state.raised else state.cleared_at
    return [
        str(rule.id),
        rule.team,
        rule.queue or "(all)",
        rule.metric.value,
        f"{rule.threshold:g}",
        f"{rule.window_minutes} min" if rule.metric in RATES else "",
        "RAISED" if state.raised else "clear",
        "" if state.value is None else f"{state.value:g}",
        "" if since is None else since.strftime("%Y-%m-%d %H:%M"),
        rule.note or "",
    ]


@alerts.command("remove")
@setting_option("database_url")
@click.argument("rule_id", type=int)
def alerts_remove(database_url: str, rule_id: int) -> None:
    """Remove a rule; its alert, if raised, is cleared (and that sent on)."""
    from cdrlog.service.alertrules import remove_rule
    from cdrlog.service.clock import utc_now

    engine = _engine(database_url)
    gone = remove_rule(engine, utc_now, rule_id)
    engine.dispose()
    if not gone:
        raise click.ClickException(f"no alert rule {rule_id}")
    click.echo(f"alert rule {rule_id} removed")
