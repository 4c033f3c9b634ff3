"""What every `cdrlog` command that touches the database shares."""

from __future__ import annotations

from typing import Any

import click
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from cdrlog.service.settings import DEFAULT_DATABASE_URL, Settings
from cdrlog.store.database import alembic_config, make_engine, upgrade

database_option = click.option(
    "--db",
    "database_url",
    envvar="CDRLOG_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="SQLAlchemy URL: sqlite:///FILE, mysql+pymysql://USER@HOST/DB, "
    "postgresql+psycopg://USER@HOST/DB.",
)
pbx_timezone_option = click.option(
    "--pbx-timezone",
    envvar="CDRLOG_PBX_TIMEZONE",
    default="UTC",
    show_default=True,
    help="IANA zone of eventTime values written without an offset.",
)
output_option = click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="File (default: stdout).",
)


def settings_of(**values: Any) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as error:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in error.errors())
        raise click.BadParameter(problems) from error


def migrated_engine(database_url: str) -> Engine:
    """An engine on a current schema: SQLite is migrated in place (it is ours alone);
    a server database must have been upgraded with `cdrlog db upgrade`."""
    engine = make_engine(database_url)
    if make_url(database_url).get_backend_name() == "sqlite":
        upgrade(engine)
    else:
        require_current_schema(engine)
    return engine


def require_current_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        head = ScriptDirectory.from_config(alembic_config(connection)).get_current_head()
    if current != head:
        raise click.ClickException(
            f"the database schema is at {current or 'nothing'}, not {head}: "
            "run `cdrlog db upgrade --db URL` first"
        )
