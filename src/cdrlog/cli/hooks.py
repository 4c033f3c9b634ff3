"""`cdrlog hooks add|list|remove|test|failed|replay`: where CDRs (and alerts) go once
they change, signed webhooks or RabbitMQ, and the deliveries that failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cdrlog.cli.options import setting_option, settings_of
from cdrlog.core.hooks import DEFAULT_KINDS, Kind, parse_kinds
from cdrlog.core.targets import shown

if TYPE_CHECKING:
    from sqlalchemy import Engine

KIND_NAMES = [kind.value for kind in Kind]


def _engine(database_url: str, creating: bool = False) -> Engine:
    # Imported here: `cdrlog hooks --help` needs no database library.
    from cdrlog.cli import databases

    url = settings_of(database_url=database_url).database_url
    return databases.creating_engine(url) if creating else databases.changing_engine(url)


@click.group()
def hooks() -> None:
    """Subscriptions: CDR changes (and alerts) sent on as signed webhooks or to RabbitMQ.

    Delivery is at least once, in order per CDR: a receiver drops a repeat by its
    webhook-id, and keeps the highest version of each CDR."""


@hooks.command("add")
@setting_option("database_url")
@click.argument("target")
@click.option("--team", help="Only this team's changes (default: every team's).")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KIND_NAMES),
    help=f"What to send; repeat for several.  [default: {', '.join(DEFAULT_KINDS)}]",
)
@click.option("--secret", help="The Standard Webhooks secret (whsec_...); made if not given.")
@click.option("--note", help="What the hook is for (shown in `hooks list`).")
@setting_option("allow_private_targets")
def hooks_add(
    database_url: str,
    target: str,
    team: str | None,
    kinds: tuple[str, ...],
    secret: str | None,
    note: str | None,
    allow_private_targets: bool,
) -> None:
    """Send changes to TARGET: an http(s):// URL (a signed POST per change), or
    amqp://USER:PASS@HOST/VHOST?exchange=NAME (a persistent message per change, routing
    key <kind>.<team>). A running `cdrlog serve` starts within seconds; the secret is
    shown this once."""
    from cdrlog.service.clock import utc_now
    from cdrlog.service.hookadmin import HookRefused, subscribe

    engine = _engine(database_url, creating=True)
    try:
        made = subscribe(
            engine,
            utc_now,
            target,
            team=team,
            kinds=parse_kinds(kinds),
            secret=secret,
            note=note,
            allow_private=allow_private_targets,
        )
    except HookRefused as refused:
        raise click.BadParameter(str(refused), param_hint="TARGET or --secret") from None
    finally:
        engine.dispose()
    hook = made.subscription
    # The words on stderr, the secret alone on stdout: `$(cdrlog hooks add ...)` keeps it.
    click.echo(
        f"hook {hook.id}: {shown(hook.target)} for {hook.team or 'every team'}, "
        f"kinds {', '.join(hook.kinds)}",
        err=True,
    )
    click.echo("its secret, shown only now (receivers verify signatures with it):", err=True)
    click.echo(made.secret)


@hooks.command("list")
@setting_option("database_url")
def hooks_list(database_url: str) -> None:
    """Every hook, with its deliveries waiting and failed."""
    from rich.console import Console

    from cdrlog.cli.tables import fitted_table
    from cdrlog.store import hooks as stored

    engine = _engine(database_url)
    found = stored.active(engine)
    backlog = {row.hook_id: row for row in stored.backlog(engine)}
    engine.dispose()
    table = fitted_table(
        "id",
        "team",
        "target",
        "kinds",
        "waiting",
        "failed",
        "created (UTC)",
        "note",
        right=("waiting", "failed"),
    )
    for hook in found:
        waits = backlog.get(hook.id)
        table.add_row(
            str(hook.id),
            hook.team or "(all)",
            shown(hook.target),
            ", ".join(hook.kinds),
            str(waits.pending if waits else 0),
            str(waits.failed if waits else 0),
            hook.created_at.strftime("%Y-%m-%d %H:%M"),
            hook.note or "",
        )
    Console().print(table)


@hooks.command("remove")
@setting_option("database_url")
@click.argument("hook_id", type=int)
def hooks_remove(database_url: str, hook_id: int) -> None:
    """Stop sending to a hook; what it had waiting is dropped."""
    from cdrlog.service.clock import utc_now
    from cdrlog.store import hooks as stored

    engine = _engine(database_url)
    gone = stored.remove(engine, hook_id, utc_now())
    engine.dispose()
    if not gone:
        raise click.ClickException(f"no hook {hook_id}")
    click.echo(f"hook {hook_id} removed")


@hooks.command("test")
@setting_option("database_url")
@setting_option("hook_timeout_seconds")
@setting_option("allow_private_targets")
@click.argument("hook_id", type=int)
def hooks_test(
    database_url: str, hook_timeout_seconds: float, allow_private_targets: bool, hook_id: int
) -> None:
    """Send a signed `hook.test` message to a hook now and say how it went."""
    from cdrlog.service.clock import utc_now
    from cdrlog.service.hookadmin import HookRefused, SendFailed, send_test

    settings = settings_of(
        database_url=database_url,
        hook_timeout_seconds=hook_timeout_seconds,
        allow_private_targets=allow_private_targets,
    )
    engine = _engine(database_url)
    try:
        outcome = send_test(
            engine,
            utc_now,
            hook_id,
            settings.hook_timeout_seconds,
            settings.allow_private_targets,
        )
    except (HookRefused, SendFailed) as error:
        raise click.ClickException(str(error)) from None
    finally:
        engine.dispose()
    click.echo(f"hook {hook_id}: {outcome}")


@hooks.command("failed")
@setting_option("database_url")
@click.option("--hook", "hook_id", type=int, help="Only this hook's.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
def hooks_failed(database_url: str, hook_id: int | None, limit: int) -> None:
    """Deliveries given up on (after the retry time), newest first."""
    from rich.console import Console

    from cdrlog.cli.tables import fitted_table
    from cdrlog.store import hooks as stored

    engine = _engine(database_url)
    found = stored.failed(engine, hook_id, limit)
    engine.dispose()
    table = fitted_table(
        "id",
        "hook",
        "team",
        "subject",
        "version",
        "kind",
        "tries",
        "last error",
        right=("version", "tries"),
    )
    for row in found:
        table.add_row(
            str(row.id),
            str(row.hook_id),
            row.team,
            row.subject,
            str(row.version),
            row.kind,
            str(row.attempts),
            row.last_error or "",
        )
    Console().print(table)
    if not found:
        click.echo("no failed deliveries")


@hooks.command("replay")
@setting_option("database_url")
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--hook", "hook_id", type=int, help="Every failed delivery of this hook.")
@click.option("--all", "every", is_flag=True, help="Every failed delivery.")
def hooks_replay(
    database_url: str, delivery_ids: tuple[int, ...], hook_id: int | None, every: bool
) -> None:
    """Send failed deliveries again (a running `cdrlog serve` does, at once): these ids,
    a hook's (--hook), or all (--all). Each sends its CDR as it is now."""
    from cdrlog.service.clock import utc_now
    from cdrlog.store import hooks as stored

    if not (delivery_ids or hook_id is not None or every):
        raise click.UsageError("name deliveries, --hook ID, or --all")
    engine = _engine(database_url)
    count = stored.replay(engine, utc_now(), hook_id, delivery_ids)
    engine.dispose()
    click.echo(f"{count} deliveries due again")
