"""`cdrlog rejected list|retry|export`: refused push bodies, storing them after a fix
(an upgrade that accepts what an older version refused, a corrected `--pbx-timezone`),
and writing them out for `cdrlog replay`."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

import click

from cdrlog.cli.options import (
    output_option,
    setting_option,
    setting_options,
    settings_of,
)

if TYPE_CHECKING:
    from cdrlog.service.intake import Intake
    from cdrlog.store.deadletters import KeptLetter
    from cdrlog.store.reader import Reader

EXPORT_PAGE = 1000

team_option = click.option("--team", help="Only this team.")


@click.group()
def rejected() -> None:
    """Dead letters: refused push bodies, and retrying them after a fix."""


@rejected.command("list")
@setting_option("database_url")
@team_option
@click.option("--all", "everything", is_flag=True, help="Include resolved ones.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def rejected_list(database_url: str, team: str | None, everything: bool, limit: int) -> None:
    """The newest dead letters and why they were refused."""
    from rich.console import Console

    from cdrlog.cli.databases import reading_engine
    from cdrlog.cli.tables import fitted_table
    from cdrlog.core.excerpts import utf8
    from cdrlog.store.reader import Reader

    settings = settings_of(database_url=database_url)
    engine = reading_engine(settings.database_url)
    try:
        # One more than shown: whether the listing is cut, without counting them all.
        letters = Reader(engine).dead_letters(
            (team,) if team else None, None, limit + 1, not everything
        )
    finally:
        engine.dispose()
    table = fitted_table("id", "received (UTC)", "team", "reason", "body", "resolved", right=["id"])
    for letter in letters[:limit]:
        table.add_row(
            str(letter.id),
            letter.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            letter.team or "",
            "; ".join(f"{k}: {v}" for k, v in letter.reason.items()),
            utf8(letter.body[:240])[:60],
            letter.resolution or "",
        )
    Console().print(table)
    if len(letters) > limit:
        click.echo(f"showing the newest {limit}; --limit N for more")


@rejected.command("retry")
@setting_option("database_url")
@setting_options("pbx_timezone", "max_call_minutes")
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Every unresolved dead letter, oldest first (after an upgrade).",
)
@team_option
@click.argument("letter_ids", nargs=-1, type=int)
def rejected_retry(
    database_url: str,
    pbx_timezone: str,
    max_call_minutes: int,
    everything: bool,
    team: str | None,
    letter_ids: tuple[int, ...],
) -> None:
    """Run dead letters LETTER_IDS (or --all) through the receiver again. Exits 1 when
    any of them is still refused."""
    if everything == bool(letter_ids):
        raise click.UsageError("give dead letter ids, or --all")
    if team is not None and not everything:
        raise click.UsageError("--team goes with --all")
    from cdrlog.cli.databases import changing_engine
    from cdrlog.service.services import build_services

    settings = settings_of(
        database_url=database_url, pbx_timezone=pbx_timezone, max_call_minutes=max_call_minutes
    )
    services = build_services(settings, changing_engine(settings.database_url))
    intake, reader = services.intake, services.reader
    try:
        if everything:
            failed = _retry_all(intake, reader, team)
        else:
            failed = sum(not _retry_one(intake, reader, letter_id) for letter_id in letter_ids)
    finally:
        services.close()
    if failed:
        sys.exit(1)


def _retry_all(intake: Intake, reader: Reader, team: str | None) -> int:
    """Every unresolved letter with a progress bar; prints only those still refused."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ids = reader.unresolved_dead_letter_ids((team,) if team else None)
    columns = (TextColumn("retrying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    resolved = failed = 0
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("retry", total=len(ids))
        for letter_id in ids:
            if _retry_one(intake, reader, letter_id, quiet=True):
                resolved += 1
            else:
                failed += 1
            progress.advance(task)
    click.echo(
        f"{len(ids):,} dead letters retried: {resolved:,} resolved, {failed:,} still refused"
    )
    return failed


def _retry_one(intake: Intake, reader: Reader, letter_id: int, *, quiet: bool = False) -> bool:
    from cdrlog.service.intake import RetryRefused

    letter = reader.dead_letter(letter_id)
    if letter is None:
        click.echo(f"{letter_id}: no such dead letter", err=True)
        return False
    try:
        result = intake.retry(letter)
    except RetryRefused as error:
        click.echo(f"{letter_id}: {error}", err=True)
        return False
    if result.status == "resolved":
        if not quiet:
            click.echo(
                f"{letter_id}: resolved: {result.stored} stored, {result.duplicate} duplicate"
            )
        return True
    click.echo(f"{letter_id}: still refused: {refusals(result.errors)}", err=True)
    return False


def refusals(errors: Mapping[str, Any]) -> str:
    """A retry's errors as a line: `body: why`, or `item N: field: why; ...` per item of
    a batch (the intake keys them by the item's index)."""
    parts = []
    for key, problem in errors.items():
        where = key if not key.isdigit() else f"item {key}"
        if isinstance(problem, Mapping):
            problem = "; ".join(f"{field}: {why}" for field, why in problem.items())
        parts.append(f"{where}: {problem}")
    return " | ".join(parts)


@rejected.command("export")
@setting_option("database_url")
@click.option("--team", default=None, help="Only this team's dead letters.")
@click.option("--all", "everything", is_flag=True, help="Include resolved ones.")
@output_option
def rejected_export(database_url: str, team: str | None, everything: bool, output: TextIO) -> None:
    """Write dead letters (unresolved ones unless --all), newest first, as JSON lines
    that `cdrlog replay` takes back: `body` as text, `body_base64` as the exact bytes."""
    from cdrlog.cli.databases import reading_engine
    from cdrlog.store.reader import Reader

    settings = settings_of(database_url=database_url)
    engine = reading_engine(settings.database_url)
    reader = Reader(engine)
    try:
        for letter in _letters(reader, team, not everything):
            output.write(json.dumps(exported(letter), ensure_ascii=False) + "\n")
    finally:
        engine.dispose()


def _letters(reader: Reader, team: str | None, unresolved: bool) -> Iterator[KeptLetter]:
    """Every matching dead letter, a page at a time, so memory stays flat."""
    before: int | None = None
    while page := reader.dead_letters((team,) if team else None, before, EXPORT_PAGE, unresolved):
        yield from page
        before = page[-1].id


def exported(letter: KeptLetter) -> dict[str, Any]:
    """One dead letter as a line of `cdrlog rejected export`."""
    from cdrlog.core.excerpts import utf8

    resolved = letter.resolved_at
    return {
        "id": letter.id,
        "received_at": letter.received_at.isoformat(),
        "orgidentity": letter.team,
        "path": letter.path,
        "content_type": letter.content_type,
        "reason": dict(letter.reason),
        "body": utf8(letter.body),
        "body_base64": base64.b64encode(letter.body).decode("ascii"),
        "truncated": letter.truncated,
        "resolved_at": resolved.isoformat() if resolved else None,
        "resolution": letter.resolution,
    }
