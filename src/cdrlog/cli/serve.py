"""`cdrlog serve`: the receiver, the API and the dashboard, under uvicorn."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from cdrlog.cli.options import ALL_SETTINGS, setting_options, settings_of


@click.command()
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

    Every setting is an option here, a CDRLOG_* environment variable and a key of the
    configuration file alike.
    """
    # Imported here: the server, the app and the database are what serving needs, not
    # what reading this command's help does.
    import uvicorn

    from cdrlog.cli.databases import creating_engine
    from cdrlog.cli.logs import log_config
    from cdrlog.cli.tokens import refuse_open_network, tokenless_teams
    from cdrlog.cli.workers import worker_environment
    from cdrlog.service.clock import utc_now
    from cdrlog.service.tokenstore import TokenStore
    from cdrlog.web.app import create_app
    from cdrlog.web.connections import limited_protocol

    settings = settings_of(**values)
    engine = creating_engine(settings.database_url)
    tokens = TokenStore(engine, utc_now)
    has_tokens = tokens.any_active()
    refuse_open_network(settings.host, has_tokens, settings.allow_open)
    still_open = tokenless_teams(tokens.push_modes())
    if still_open:
        click.echo(
            f"cdrlog: pushes without a token are accepted for {still_open}; "
            "`cdrlog token list` shows who still sends them, "
            "`cdrlog token mode --all required` ends it"
        )
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
