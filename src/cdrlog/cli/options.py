"""What the `cdrlog` commands share: their settings as options, generated from
`Settings` so that each is declared once, the times and zones of filters, and a
database on a current schema.

A setting's option is derived from its field: the flag `--field-name` (after any older
spelling, which keeps working), the environment variable `CDRLOG_FIELD_NAME`, the
default, the type and bounds, and the help (the field's description). A command passes
the values on to `settings_of`, which keeps only those given (on the command line or in
the environment), so that the configuration file fills in the rest, and checks them as
the service itself would.

Only click, pydantic and the settings are imported here: a command's `--help` needs
nothing more, and each command imports what it runs on when it runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin
from zoneinfo import ZoneInfo

import click
from annotated_types import Ge, Gt, Le, Lt
from click.core import ParameterSource
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from cdrlog.core.report import asked_time
from cdrlog.service.settings import (
    ConfigError,
    Settings,
    config_file,
    config_values,
    reading_config,
    zone_named,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

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
    # `int | None`: the option of an int, whose default None means unset.
    if get_origin(annotation) is UnionType and NoneType in get_args(annotation):
        (annotation,) = (arg for arg in get_args(annotation) if arg is not NoneType)
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
    """`Settings` from these option values, of those given on the command line or in
    the environment (the rest come from the configuration file or the defaults); a
    usage error naming where each invalid value came from."""
    context = click.get_current_context(silent=True)
    given = {name: value for name, value in values.items() if _given(context, name)}
    try:
        with reading_config(named_config(context)):
            return Settings(**given)
    except ConfigError as error:
        raise click.UsageError(str(error)) from error
    except ValidationError as error:
        problems = [(_where(e["loc"]), _message(e["msg"])) for e in error.errors()]
        if len(problems) == 1:
            where, message = problems[0]
            raise click.BadParameter(message, param_hint=where) from error
        raise click.UsageError("; ".join(f"{w}: {m}" for w, m in problems)) from error


def named_config(context: click.Context | None) -> Path | None:
    """The file `cdrlog --config` named (None: CDRLOG_CONFIG's, or the default)."""
    if context is None:
        return None
    named = context.find_root().params.get("config")
    return named if isinstance(named, Path) else None


def _given(context: click.Context | None, name: str) -> bool:
    """Whether option `name` was given: its click default must not hide the file's."""
    if context is None:
        return True
    source = context.get_parameter_source(name)
    return source is not None and source not in (ParameterSource.DEFAULT,)


def origin(name: str) -> str:
    """Where setting `name` came from, as a message names it for a person to look:
    its flag (given, or to give), its environment variable, or its key in the file."""
    kind, where = source_of(name)
    if kind == "environment":
        return where
    if kind == "file":
        return f"{name} in {where}"
    return f"'{SPELLINGS.get(name, (flag_of(name),))[0]}'"


def source_of(name: str) -> tuple[str, str]:
    """Where the value of setting `name` comes from in this command: ("option", its
    flag), ("environment", the variable), ("file", its path) or ("default", "")."""
    context = click.get_current_context(silent=True)
    if context is not None and name in context.params:
        source = context.get_parameter_source(name)
        if source == ParameterSource.COMMANDLINE:
            return "option", SPELLINGS.get(name, (flag_of(name),))[0]
        if source == ParameterSource.ENVIRONMENT:
            return "environment", envvar_of(name)
    if os.environ.get(envvar_of(name)):
        return "environment", envvar_of(name)
    try:
        with reading_config(named_config(context)):
            path = config_file()
        if path is not None and name in config_values(path):
            return "file", str(path)
    except ConfigError:
        pass  # the file's own problem is reported where it is read
    return "default", ""


def _where(location: tuple[int | str, ...]) -> str:
    name = str(location[0]) if location else ""
    return origin(name) if name in Settings.model_fields else name


def _message(text: str) -> str:
    # pydantic prefixes a validator's own words: they are the message.
    return text.removeprefix("Value error, ")


output_option = click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="File (default: stdout).",
)


def zone_option(value: str, option: str = "--tz") -> ZoneInfo:
    """The IANA zone `option` names; a usage error naming it otherwise."""
    try:
        return zone_named(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=f"'{option}'") from error


def moment(text: str | None, zone: ZoneInfo, option: str | None = None) -> datetime | None:
    """An ISO-8601 time given on the command line (by `option`), in UTC; one without an
    offset is in `zone`. None stays None (no bound); anything else, or a time outside
    what the API takes, is a usage error naming the option."""
    if text is None:
        return None
    hint = None if option is None else f"'{option}'"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 time", param_hint=hint) from error
    try:
        return asked_time(parsed, zone)
    except ValueError as error:
        raise click.BadParameter(f"{text!r} {error}", param_hint=hint) from error


def time_range(
    start: str | None, end: str | None, zone: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    """`--from` and `--to` in UTC; a usage error naming both when nothing could be
    between them (`--to` is excluded)."""
    since, until = moment(start, zone, "--from"), moment(end, zone, "--to")
    if since is not None and until is not None and since >= until:
        raise click.BadParameter(
            f"{start} is not before {end}: no time is in the range; swap them?",
            param_hint=["--from", "--to"],
        )
    return since, until


def migrated_engine(database_url: str) -> Engine:
    """An engine on a current schema (see `cdrlog.cli.databases.creating_engine`)."""
    from cdrlog.cli.databases import creating_engine

    return creating_engine(database_url)
