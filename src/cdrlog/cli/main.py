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
from cdrlog.cli.options import (
    ALL_SETTINGS,
    migrated_engine,
    setting_option,
    setting_options,
    settings_of,
)
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
@setting_options(*ALL_SETTINGS)
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
def serve(workers: int, log_format: str, access_log: bool, **values: Any) -> None:
    """Serve the Push event URL, the API and the dashboard (migrates SQLite itself).

    Every setting is an option here and a CDRLOG_* environment variable alike.
    """
    settings = settings_of(**values)
    engine = migrated_engine(settings.database_url)
    has_tokens = TokenStore(engine, utc_now).any_active()
    refuse_open_network(settings.host, has_tokens, settings.allow_open)
    click.echo(f"cdrlog: push URL http://{settings.host}:{settings.port}/astercc/TEAM/events")
    logging = log_config(log_format)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the
    # previous handler: a stop asked for is a clean exit, status 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Slow and idle clients are cut off by the protocol, before they cost the app.
    http = limited_protocol(settings)
    served: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": http,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "log_config": logging,
        "access_log": access_log,
    }
    if workers == 1:
        uvicorn.run(create_app(settings, engine), **served)
        return
    engine.dispose()
    with worker_environment(settings):
        uvicorn.run("cdrlog.web.app:app_from_environment", factory=True, workers=workers, **served)


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@setting_option("database_url")
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
