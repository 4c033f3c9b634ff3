"""The `cdrlog` command: its commands, each imported only when it runs."""

from __future__ import annotations

from pathlib import Path

import click

from cdrlog.cli.group import Lazy, LazyGroup

COMMANDS = {
    "agents": Lazy("cdrlog.cli.agents:agents", "Agents: the phone each uses, and their states."),
    "alerts": Lazy(
        "cdrlog.cli.alerts:alerts", "Alert rules on service level, abandons, waits, silence."
    ),
    "backup": Lazy(
        "cdrlog.cli.backup:backup", "Copy the SQLite database while it serves (online backup)."
    ),
    "bulk-load": Lazy("cdrlog.cli.bulk:bulk_load", "Fill a database with many realistic calls."),
    "config": Lazy("cdrlog.cli.config:config", "The effective settings, and where each came from."),
    "db": Lazy("cdrlog.cli.db:db", "The database schema."),
    "export": Lazy(
        "cdrlog.cli.read:export", "Write the CDRs matching filters as CSV or JSON lines."
    ),
    "hooks": Lazy("cdrlog.cli.hooks:hooks", "Send CDR changes on: signed webhooks or RabbitMQ."),
    "missed": Lazy(
        "cdrlog.cli.missed:missed", "Abandoned inbound calls: called back, got through?"
    ),
    "purge": Lazy(
        "cdrlog.cli.ops:purge", "Delete CDRs, journal rows and dead letters older than N days."
    ),
    "rebuild": Lazy("cdrlog.cli.rebuild:rebuild_command", "Recompute CDRs from the journal."),
    "rejected": Lazy(
        "cdrlog.cli.rejected:rejected", "Dead letters: refused push bodies; retry them."
    ),
    "replay": Lazy("cdrlog.cli.ops:replay", "Store the events of files (JSON lines, push bodies)."),
    "serve": Lazy("cdrlog.cli.serve:serve", "Serve the Push event URL, the API and the dashboard."),
    "simulate": Lazy("cdrlog.cli.simulate:simulate", "Play realistic calls against a receiver."),
    "stats": Lazy(
        "cdrlog.cli.read:stats",
        "Calls, ASR, ACD, service level, abandons and waits per agent, team, queue, day, hour.",
    ),
    "token": Lazy("cdrlog.cli.tokens:token", "API tokens: who may push, read, or do everything."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(package_name="cdrlog")
@click.option(
    "--config",
    envvar="CDRLOG_CONFIG",
    show_envvar=True,
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML file of settings (keys as the --option names, with _): below options and "
    "CDRLOG_* variables, above defaults.  [default: /etc/cdrlog/cdrlog.toml if it exists]",
)
def cli(config: Path | None) -> None:
    """Receive asterCC push events and keep one correct CDR per call.

    Every command reads the same settings: its options, else CDRLOG_* environment
    variables, else the configuration file (see `cdrlog config show`).
    """


def main() -> None:
    cli()
