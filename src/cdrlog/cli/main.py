"""The `cdrlog` command: serve, db upgrade, agents, simulate, export, stats, rejected."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click
import uvicorn
from sqlalchemy.engine import make_url

from cdrlog.cli.agents import agents
from cdrlog.cli.bulk import bulk_load
from cdrlog.cli.logs import log_config
from cdrlog.cli.ops import purge, replay
from cdrlog.cli.options import database_option, migrated_engine, pbx_timezone_option, settings_of
from cdrlog.cli.read import export, stats
from cdrlog.cli.rebuild import rebuild_command
from cdrlog.cli.rejected import rejected
from cdrlog.cli.simulate import simulate
from cdrlog.cli.tokens import refuse_open_network, token
from cdrlog.cli.workers import worker_environment
from cdrlog.service.clock import utc_now
from cdrlog.service.tokenstore import TokenStore
from cdrlog.store.database import make_engine, upgrade
from cdrlog.web.app import create_app
from cdrlog.web.connections import limited_protocol


@click.group()
@click.version_option(package_name="cdrlog")
def cli() -> None:
    """Receive asterCC push events and keep one correct CDR per call."""


@cli.command()
@database_option
@click.option("--host", envvar="CDRLOG_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="CDRLOG_PORT", default=8080, show_default=True, type=int)
@pbx_timezone_option
@click.option(
    "--display-timezone",
    envvar="CDRLOG_DISPLAY_TIMEZONE",
    default="UTC",
    show_default=True,
    help="IANA zone the API, exports and dashboard show times in by default.",
)
@click.option(
    "--max-body-bytes",
    envvar="CDRLOG_MAX_BODY_BYTES",
    default=1024 * 1024,
    show_default=True,
    type=int,
    help="Largest push body accepted; larger ones get 413.",
)
@click.option(
    "--body-timeout-seconds",
    envvar="CDRLOG_BODY_TIMEOUT_SECONDS",
    default=30.0,
    show_default=True,
    type=float,
    help="A request body not whole this long after its head gets 408.",
)
@click.option(
    "--header-timeout-seconds",
    envvar="CDRLOG_HEADER_TIMEOUT_SECONDS",
    default=10.0,
    show_default=True,
    type=float,
    help="A connection with no whole request head this long after it opened, or after "
    "its last answer, is closed.",
)
@click.option(
    "--keep-alive-seconds",
    envvar="CDRLOG_KEEP_ALIVE_SECONDS",
    default=5,
    show_default=True,
    type=int,
    help="A connection idle this long after an answer is closed.",
)
@click.option(
    "--max-connections-per-address",
    envvar="CDRLOG_MAX_CONNECTIONS_PER_ADDRESS",
    default=64,
    show_default=True,
    type=int,
    help="Open connections one client address may hold (per process); more get 429. "
    "Behind a proxy every connection is the proxy's: raise it above the proxy's own.",
)
@click.option(
    "--max-call-minutes",
    envvar="CDRLOG_MAX_CALL_MINUTES",
    default=240,
    show_default=True,
    type=int,
    help="A call with no hangup this long after it started is closed as timeout.",
)
@click.option(
    "--spool-dir",
    envvar="CDRLOG_SPOOL_DIR",
    default="cdrlog-spool",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where events wait, on disk, while the database is unreachable.",
)
@click.option(
    "--allow-open",
    is_flag=True,
    help="Listen beyond loopback even with no token (only on a trusted network).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A name this service is reached by without tokens (repeatable); addresses and "
    "localhost always are. Guards the open mode against DNS rebinding.",
)
@click.option(
    "--workers",
    envvar="CDRLOG_WORKERS",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes on this port (each with its own writers).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per log line, for log collectors.",
)
@click.option(
    "--access-log/--no-access-log",
    envvar="CDRLOG_ACCESS_LOG",
    default=False,
    show_default=True,
    help="A line per request. Off by default: a busy call center pushes thousands a "
    "second; refused pushes are logged (and kept) either way.",
)
def serve(
    database_url: str,
    allow_open: bool,
    workers: int,
    log_format: str,
    access_log: bool,
    **options: Any,
) -> None:
    """Serve the Push event URL, the API and the dashboard (migrates SQLite itself)."""
    if not options["allowed_hosts"]:
        del options["allowed_hosts"]  # then CDRLOG_ALLOWED_HOSTS, if set, decides
    settings = settings_of(database_url=database_url, allow_open=allow_open, **options)
    engine = migrated_engine(settings.database_url)
    refuse_open_network(settings.host, TokenStore(engine, utc_now).any_active(), allow_open)
    click.echo(f"cdrlog: push URL http://{settings.host}:{settings.port}/astercc/TEAM/events")
    logging = log_config(log_format)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the
    # previous handler: a stop asked for is a clean exit, status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Slow and idle clients are cut off by the protocol, before they cost the app.
    http = limited_protocol(settings)
    if workers == 1:
        app = create_app(settings, engine)
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            http=http,
            timeout_keep_alive=settings.keep_alive_seconds,
            log_config=logging,
            access_log=access_log,
        )
        return
    engine.dispose()
    with worker_environment(settings):
        uvicorn.run(
            "cdrlog.web.app:app_from_environment",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            http=http,
            timeout_keep_alive=settings.keep_alive_seconds,
            log_config=logging,
            access_log=access_log,
        )


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@database_option
def db_upgrade(database_url: str) -> None:
    """Create or migrate the tables to the newest schema."""
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    click.echo(f"cdrlog: schema is current on {make_url(database_url).render_as_string()}")


for command in (
    agents,
    simulate,
    export,
    stats,
    rejected,
    rebuild_command,
    token,
    replay,
    purge,
    bulk_load,
):
    cli.add_command(command)


def main() -> None:
    cli()
