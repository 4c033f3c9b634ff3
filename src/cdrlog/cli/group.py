"""The `cdrlog` group's machinery: commands imported only when run, and usage errors in
two lines.

Importing every command's module would import the web app, SQLAlchemy, alembic and
pydantic before `cdrlog --help` could answer (more than a second): the group knows each
command by the module and attribute that hold it, and by its one-line help.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import click


class Lazy(NamedTuple):
    """Where a command lives (`module:attribute`) and its line in `cdrlog --help`."""

    target: str
    help: str


class LazyGroup(click.Group):
    """A group whose commands are imported when one is run (or asked for its help)."""

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(_load(cmd_name, self.lazy[cmd_name].target), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The registry's help lines: listing commands must not import them.
        rows = [
            (name, self.lazy[name].help if name in self.lazy else _short(self.commands[name]))
            for name in self.list_commands(ctx)
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _briefly():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _briefly():
            return super().invoke(ctx)


def _load(name: str, target: str) -> click.Command:
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} (command {name}) is not a click command")
    return command


def _short(command: click.Command) -> str:
    return command.get_short_help_str(limit=80)


class BriefUsageError(click.UsageError):
    """A usage error as the error and where help is, without the usage line between:
    the message names the option, which says more than the command's synopsis."""

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)
        if self.ctx is not None:
            click.echo(f"Try '{self.ctx.command_path} --help' for help.", err=True)


@contextmanager
def _briefly() -> Iterator[None]:
    try:
        yield
    except BriefUsageError:
        raise
    except click.UsageError as error:
        brief = BriefUsageError(error.format_message(), error.ctx)
        raise brief from error
