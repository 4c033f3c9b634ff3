"""`cdrlog db upgrade`: the database schema."""

from __future__ import annotations

import click

from cdrlog.cli.options import setting_option, settings_of


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@setting_option("database_url")
def db_upgrade(database_url: str) -> None:
    """Create or migrate the tables to the newest schema."""
    from cdrlog.cli.databases import upgraded_engine
    from cdrlog.store.urls import shown

    settings = settings_of(database_url=database_url)
    upgraded_engine(settings.database_url).dispose()
    click.echo(f"cdrlog: schema is current on {shown(settings.database_url)}")
