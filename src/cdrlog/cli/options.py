"""What the `cdrlog` commands share: their settings as options, generated from
`Settings` so that each is declared once, the times and zones of filters, and a
database on a current schema.

A setting's option is derived from its field: the flag `--field-name` (after any older
spelling, which keeps working), the environment variable `CDRLOG_FIELD_NAME`, the
default, the type and bounds, and the help (the field's description). A command passes
the values on to `settings_of`, which checks them as the service itself would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin
from zoneinfo import ZoneInfo

import click
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from cdrlog.service.settings import Settings, zone_named
from cdrlog.store.database import alembic_config, make_engine, upgrade

F = TypeVar("F", bound=Callable[..., Any])

# Every setting, in the order `Settings` declares them (and `serve --help` lists them).
ALL_SETTINGS = tuple(Settings.model_fields)
# Spellings older than the generated `--field-name`: scripts and the docs use them, so
# they come first (and the generated one works as well).
SPELLINGS: dict[str, tuple[str, ...]] = {
    "database_url": ("--db",),
    "allowed_hosts": ("--allowed-host",),
}
METAVARS: dict[str, str] = {
    "database_url": "URL",
    "pbx_timezone": "ZONE",
    "display_timezone": "ZONE",
    "allowed_hosts": "NAME",
    "spool_dir": "DIR",
}


class _Names(click.types.StringParamType):
    """Text, repeatable; from the environment a JSON array, the one form `Settings`
    reads a list in (and `serve --workers` hands to its processes)."""

    def split_envvar_value(self, rv: str) -> Sequence[str]:
        # Checked here, naming the variable: `Settings` would stop at it with a traceback.
        try:
            names = json.loads(rv)
        except json.JSONDecodeError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise click.BadParameter('not a JSON array of names, e.g. ["cdr.example.com"]')
        return names


# What a field's annotation cannot tell: the spool is a directory, never a file.
TYPES: dict[str, click.ParamType[Any]] = {
    "spool_dir": click.Path(file_okay=False, path_type=Path),
}


def flag_of(name: str) -> str:
    """The generated flag of setting `name`: `--field-name`."""
    return "--" + name.replace("_", "-")


def envvar_of(name: str) -> str:
    """The environment variable `Settings` reads setting `name` from."""
    return str(Settings.model_config.get("env_prefix", "")) + name.upper()


def setting_option(name: str, *aliases: str) -> Callable[[F], F]:
    """The option of the `Settings` field `name`, its value passed to the command as
    `name`; `aliases` are further spellings. KeyError for a name that is no field."""
    field = Settings.model_fields[name]
    spellings = dict.fromkeys((*SPELLINGS.get(name, ()), *aliases, flag_of(name)))
    common: dict[str, Any] = {
        "envvar": envvar_of(name),
        "show_envvar": True,
        "default": field.get_default(call_default_factory=True),
        "show_default": True,
        "help": field.description,
    }
    if field.annotation is bool:
        if common["default"]:  # a flag that is on unless said otherwise needs a `--no-`
            spellings = {f"{flag}/--no-{flag[2:]}": None for flag in spellings}
        return click.option(*spellings, name, is_flag=True, **common)
    kind, multiple = _kind(name, field)
    return click.option(
        *spellings, name, type=kind, multiple=multiple, metavar=METAVARS.get(name), **common
    )


def setting_options(*names: str) -> Callable[[F], F]:
    """The options of the settings `names`, listed in `--help` in that order."""

    def decorate(command: F) -> F:
        # click lists options innermost decorator last: apply them last to first.
        for name in reversed(names):
            command = setting_option(name)(command)
        return command

    return decorate


def _kind(name: str, field: FieldInfo) -> tuple[click.ParamType[Any], bool]:
    """The click type of a field's values, and whether the option repeats."""
    if name in TYPES:
        return TYPES[name], False
    annotation = field.annotation
    if get_origin(annotation) is tuple and get_args(annotation) == (str, ...):
        return _Names(), True
    bounds = _bounds(field)
    if annotation is int:
        return (click.IntRange(**bounds) if bounds else click.INT), False
    if annotation is float:
        return (click.FloatRange(**bounds) if bounds else click.FLOAT), False
    if annotation is str:
        return click.STRING, False
    if annotation is Path:
        return click.Path(path_type=Path), False
    raise TypeError(f"no option can be generated for {name}: {annotation}")


def _bounds(field: FieldInfo) -> dict[str, Any]:
    """The field's numeric constraints as a click range's arguments, so that a value
    out of range is refused naming its flag before anything starts."""
    bounds: dict[str, Any] = {}
    for constraint in field.metadata:
        if isinstance(constraint, Ge):
            bounds["min"] = constraint.ge
        elif isinstance(constraint, Gt):
            bounds.update(min=constraint.gt, min_open=True)
        elif isinstance(constraint, Le):
            bounds["max"] = constraint.le
        elif isinstance(constraint, Lt):
            bounds.update(max=constraint.lt, max_open=True)
    return bounds


def settings_of(**values: Any) -> Settings:
    """`Settings` from these values (the rest from the environment); a usage error,
    naming each setting's flag, when any is invalid."""
    try:
        return Settings(**values)
    except ValidationError as error:
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in error.errors())
        raise click.BadParameter(problems) from error


def _problem(where: tuple[int | str, ...], message: str) -> str:
    name = str(where[0]) if where else ""
    if name in Settings.model_fields:
        return f"{SPELLINGS.get(name, (flag_of(name),))[0]}: {message}"
    return f"{name}: {message}"


output_option = click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="File (default: stdout).",
)


def zone_option(value: str) -> ZoneInfo:
    """The IANA zone a `--tz` names; a usage error otherwise."""
    try:
        return zone_named(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def moment(text: str | None, zone: ZoneInfo) -> datetime | None:
    """An ISO-8601 time given on the command line, in UTC; one without an offset is in
    `zone`. None stays None (no bound); anything else is a usage error."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 time") from error
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)


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
