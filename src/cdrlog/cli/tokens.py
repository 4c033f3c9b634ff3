"""`cdrlog token create|list|revoke`: who may push, read, or do everything."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from cdrlog.cli.options import migrated_engine, setting_option
from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.tokenstore import TokenStore
from cdrlog.web.auth import is_loopback


@click.group()
def token() -> None:
    """API tokens. Once one exists, every push and every read needs one."""


@token.command("create")
@setting_option("database_url")
@click.option("--scope", type=click.Choice([s.value for s in TokenScope]), required=True)
@click.option("--team", help="The team (needed for push and read tokens).")
@click.option("--note", help="What the token is for (shown in `token list`).")
def token_create(database_url: str, scope: str, team: str | None, note: str | None) -> None:
    """Create a token and print it (it is shown this once; only its hash is kept)."""
    chosen = TokenScope(scope)
    if not chosen.has_team and team:
        raise click.BadParameter(
            f"{scope} tokens are for every team; drop --team", param_hint="--team"
        )
    if chosen.has_team and not team:
        raise click.BadParameter(f"a {scope} token needs --team", param_hint="--team")
    engine = migrated_engine(database_url)
    created = TokenStore(engine, utc_now).create(chosen, team, note)
    engine.dispose()
    where = f" for team {team}" if team else ""
    click.echo(f"created {scope} token {created.id}{where}; it is shown only now:", err=True)
    click.echo(created.token)


@token.command("list")
@setting_option("database_url")
def token_list(database_url: str) -> None:
    """Every token: id, scope, team, and whether it is revoked."""
    engine = migrated_engine(database_url)
    rows = TokenStore(engine, utc_now).listing()
    engine.dispose()
    table = Table("id", "scope", "team", "token", "created (UTC)", "revoked", "note")
    for row in rows:
        revoked = row["revoked_at"].strftime("%Y-%m-%d %H:%M") if row["revoked_at"] else ""
        table.add_row(
            str(row["id"]),
            row["scope"],
            row["orgidentity"] or "(all)",
            row["shown_as"] + "…",
            row["created_at"].strftime("%Y-%m-%d %H:%M"),
            revoked,
            row["note"] or "",
        )
    Console().print(table)


@token.command("revoke")
@setting_option("database_url")
@click.argument("token_id", type=int)
def token_revoke(database_url: str, token_id: int) -> None:
    """Revoke token TOKEN_ID (effective within seconds on running servers)."""
    engine = migrated_engine(database_url)
    revoked = TokenStore(engine, utc_now).revoke(token_id)
    engine.dispose()
    if not revoked:
        raise click.ClickException(f"no active token {token_id}")
    click.echo(f"revoked token {token_id}")


def refuse_open_network(host: str, has_tokens: bool, allow_open: bool) -> None:
    """Without tokens, anyone who reaches the port could inject or read calls."""
    if has_tokens or allow_open or is_loopback(host):
        return
    raise click.ClickException(
        f"refusing to listen on {host} without any token: anyone on the network could push "
        "fake calls and read every CDR. Create one first, e.g.\n"
        "  cdrlog token create --scope admin --db URL\n"
        "  cdrlog token create --scope push --team TEAM --db URL\n"
        "or pass --allow-open if this network is trusted."
    )
