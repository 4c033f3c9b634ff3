"""`cdrlog config show`: the settings every command reads, and where each came from."""

from __future__ import annotations

import json
from typing import Any

import click

from cdrlog.cli.options import ALL_SETTINGS, setting_options, settings_of, source_of


@click.group()
def config() -> None:
    """The settings: options, CDRLOG_* variables, the configuration file, defaults."""


@config.command("show")
@setting_options(*ALL_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def config_show(as_json: bool, **values: Any) -> None:
    """Each setting, its value (a database password hidden) and where it came from:
    an option given here, an environment variable, the configuration file (`cdrlog
    --config FILE`, CDRLOG_CONFIG, or /etc/cdrlog/cdrlog.toml when it exists) or the
    default. Options given here show what `serve` would run with the same options."""
    from cdrlog.store.urls import shown

    settings = settings_of(**values)
    dumped = settings.model_dump(mode="json")
    dumped["database_url"] = shown(settings.database_url)
    rows = [(name, dumped[name], *source_of(name)) for name in ALL_SETTINGS]
    if as_json:
        described = {
            name: {"value": value, "source": kind, "from": where or None}
            for name, value, kind, where in rows
        }
        click.echo(json.dumps(described, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape

    from cdrlog.cli.tables import fitted_table

    table = fitted_table("setting", "value", "from", lined=False)
    for name, value, kind, where in rows:
        text = value if isinstance(value, str) else json.dumps(value)
        table.add_row(name, escape(text), escape(f"{kind} {where}".strip()))
    Console().print(table)
