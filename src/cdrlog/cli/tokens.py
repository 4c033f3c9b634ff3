"""`cdrlog token create|list|revoke|mode`: who may push, read, or do everything, and
the rollout of push tokens team by team."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

import click

from cdrlog.cli.options import setting_option, settings_of
from cdrlog.core.pushauth import EVERY_TEAM, PushMode, PushModes, TeamPushAuth
from cdrlog.core.tokens import TokenScope

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from cdrlog.service.tokenstore import TokenStore

TAKEN = {
    PushMode.OPEN: "accepted",
    PushMode.OBSERVE: "accepted and counted",
    PushMode.REQUIRED: "refused with 401",
}


def _opened(database_url: str, opening: Literal["reading", "changing", "creating"]) -> TokenStore:
    """The token store of the configured database, opened by `cdrlog.cli.databases`'
    `opening` (reading, changing or creating)."""
    # Imported here: `cdrlog --help` and `token --help` need no database library.
    from cdrlog.cli import databases
    from cdrlog.service.clock import utc_now
    from cdrlog.service.tokenstore import TokenStore

    openers: dict[str, Callable[[str], Engine]] = {
        "reading": databases.reading_engine,
        "changing": databases.changing_engine,
        "creating": databases.creating_engine,
    }
    url = settings_of(database_url=database_url).database_url
    return TokenStore(openers[opening](url), utc_now)


@click.group()
def token() -> None:
    """API tokens, and which teams' pushes need one (`token mode`)."""


@token.command("create")
@setting_option("database_url")
@click.option("--scope", type=click.Choice([s.value for s in TokenScope]), required=True)
@click.option("--team", help="The team (needed for push and read tokens).")
@click.option("--note", help="What the token is for (shown in `token list`).")
@click.option(
    "--public-url",
    metavar="URL",
    help="How asterCC reaches this service, e.g. https://cdr.example.com: a push token's "
    "Push event URL is printed with it.",
)
def token_create(
    database_url: str, scope: str, team: str | None, note: str | None, public_url: str | None
) -> None:
    """Create a token and print it (it is shown this once; only its hash is kept).

    The first token of an install leaves pushes without a token accepted and counted
    (mode observe) until `cdrlog token mode --all required`: nothing is lost while
    asterCC's URLs are changed one team at a time.
    """
    chosen = TokenScope(scope)
    if not chosen.has_team and team:
        raise click.BadParameter(
            f"{scope} tokens are for every team; drop --team", param_hint="--team"
        )
    if chosen.has_team and not team:
        raise click.BadParameter(f"a {scope} token needs --team", param_hint="--team")
    store = _opened(database_url, "creating")
    created = store.create(chosen, team, note, rollout=True)
    mode = store.push_modes().of(team) if chosen is TokenScope.PUSH else None
    store.engine.dispose()
    where = f" for team {team}" if team else ""
    if created.began_rollout:
        _say(
            "This is the first token: pushes without a token stay accepted and are counted "
            "(push-auth mode observe for every team) until you run "
            "`cdrlog token mode --all required`."
        )
    if mode is not None and team is not None:
        base = (public_url or "http://HOST:8080").rstrip("/")
        _say(f"Team {team}'s Push event URL (asterCC: Team -> Advanced -> Push event URL):")
        _say(f"  {base}/astercc/{quote(team, safe='')}/events?token={created.token}")
        _say(f"Pushes for team {team} without a token are now {TAKEN[mode]} (mode {mode}).")
        if mode is not PushMode.REQUIRED:
            _say(
                "Once `cdrlog token list` shows no new tokenless pushes for it: "
                f"cdrlog token mode {team} required"
            )
    _say(f"created {scope} token {created.id}{where}; it is shown only now:")
    click.echo(created.token)


@token.command("list")
@setting_option("database_url")
def token_list(database_url: str) -> None:
    """Every token: id, scope, team, and whether it is revoked."""
    from rich.console import Console

    from cdrlog.cli.tables import fitted_table

    store = _opened(database_url, "reading")
    rows = store.listing()
    table = fitted_table("id", "scope", "team", "token", "created (UTC)", "revoked", "note")
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
    _print_rollout(store.rollout(), store.default_push_mode())
    store.engine.dispose()


@token.command("mode")
@setting_option("database_url")
@click.argument("team", required=False)
@click.argument("mode", required=False, type=click.Choice([m.value for m in PushMode]))
@click.option("--all", "every", is_flag=True, help="Set the default of every team.")
@click.option("--clear", is_flag=True, help="Drop TEAM's own mode: the default applies.")
def token_mode(
    database_url: str, team: str | None, mode: str | None, every: bool, clear: bool
) -> None:
    """Show or set whether pushes need a token: TEAM MODE, or --all MODE.

    \b
    open      pushes without a token are accepted
    observe   ... accepted and counted (`token list` shows who still sends them)
    required  ... refused with 401
    """
    if every and mode is None and team in {m.value for m in PushMode}:
        team, mode = None, team  # `--all required`: the one argument is the mode
    if every == (team is not None) and (mode or clear):
        raise click.UsageError("name a TEAM or give --all, not both")
    target = EVERY_TEAM if every else team
    changing = target is not None and bool(mode or clear)
    store = _opened(database_url, "changing" if changing else "reading")
    if target is not None and (mode or clear):
        store.set_push_mode(target, PushMode(mode) if mode and not clear else None)
        whom = "every team without its own mode" if every else f"team {team}"
        now = store.push_modes().of(None if every else team)
        click.echo(f"pushes without a token for {whom}: {TAKEN[now]} (mode {now})")
    else:
        _print_rollout(store.rollout(), store.default_push_mode())
    store.engine.dispose()


def _say(text: str) -> None:
    """To stderr: stdout holds only the token, for scripts that capture it."""
    click.echo(text, err=True)


def _print_rollout(teams: list[TeamPushAuth], default: PushMode) -> None:
    """The push-auth table: which teams still push without a token, and when they last did."""
    from rich.console import Console

    from cdrlog.cli.tables import fitted_table

    table = fitted_table("team", "mode", "push tokens", "tokenless events", "last tokenless (UTC)")
    for one in teams:
        shown_mode = one.mode.value if one.own_mode else f"{one.mode.value} (default)"
        table.add_row(
            one.team,
            shown_mode,
            str(one.push_tokens),
            f"{one.tokenless_pushes:,}",
            _when(one.last_tokenless_at),
        )
    console = Console()
    console.print(f"Pushes without a token: {TAKEN[default]} by default (mode {default}).")
    if teams:
        console.print(table)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


@token.command("revoke")
@setting_option("database_url")
@click.argument("token_id", type=int)
def token_revoke(database_url: str, token_id: int) -> None:
    """Revoke token TOKEN_ID (effective within seconds on running servers)."""
    store = _opened(database_url, "changing")
    revoked = store.revoke(token_id)
    store.engine.dispose()
    if not revoked:
        raise click.ClickException(f"no active token {token_id}")
    click.echo(f"revoked token {token_id}")


def tokenless_teams(modes: PushModes) -> str | None:
    """Which teams take pushes without a token while tokens exist, in words; None when
    none does (or no token exists: the service is then open on loopback only)."""
    if not modes.any_token:
        return None
    named = [
        f"team {team} ({mode})"
        for team, mode in sorted(modes.by_team.items())
        if team != EVERY_TEAM and mode.takes_tokenless
    ]
    default = modes.of(None)
    if default.takes_tokenless:
        named.insert(0, f"every team without its own mode ({default})")
    return ", ".join(named) or None


def refuse_open_network(host: str, has_tokens: bool, allow_open: bool) -> None:
    """Without tokens, anyone who reaches the port could inject or read calls."""
    from cdrlog.web.auth import is_loopback

    if has_tokens or allow_open or is_loopback(host):
        return
    raise click.ClickException(
        f"refusing to listen on {host} without any token: anyone on the network could push "
        "fake calls and read every CDR. Create one first, e.g.\n"
        "  cdrlog token create --scope admin --db URL\n"
        "  cdrlog token create --scope push --team TEAM --db URL\n"
        "or pass --allow-open if this network is trusted."
    )
