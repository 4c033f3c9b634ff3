"""`cdrlog missed`: the API's missed calls, as a table or CSV, with its filters."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from cdrlog.cli.main import COMMANDS, cli
from cdrlog.store.database import make_engine, upgrade
from support.missedcalls import WORLD, store


@pytest.fixture
def database(sqlite_url: str) -> str:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    store(engine, WORLD)
    engine.dispose()
    return sqlite_url


def run(*arguments: str) -> str:
    result = CliRunner(env={"COLUMNS": "160"}).invoke(cli, list(arguments))
    assert result.exit_code == 0, result.output
    return result.output


def listed(database: str, *filters: str) -> list[str]:
    output = run("missed", "--db", database, "--format", "csv", *filters)
    return [row["diallogid"] for row in csv.DictReader(io.StringIO(output))]


def test_registered_lazily() -> None:
    assert COMMANDS["missed"].target == "cdrlog.cli.missed:missed"


def test_filters(database: str) -> None:
    assert listed(database, "--team", "team1") == [
        "a-late",
        "a-returned",
        "a-unreached",
        "a-reached",
    ]
    assert listed(database, "--team", "team1", "--unresolved") == ["a-late", "a-unreached"]
    assert listed(database, "--team", "team1", "--unresolved", "--callback-hours", "30") == [
        "a-unreached"
    ]
    assert listed(database, "--queue", "200") == ["a-returned"]
    window = ("--since", "2026-11-26T17:30", "--until", "2026-11-26T20:00")
    assert listed(database, *window, "--tz", "Asia/Shanghai") == ["z-missed", "a-unreached"]
    assert "a-misdial" in listed(database, "--short-abandon-seconds", "0")


def test_table(database: str) -> None:
    output = run("missed", "--db", database, "--team", "team2", "--tz", "Asia/Shanghai")
    assert "caller" in output
    assert "resolved" in output
    assert "2026-11-26T19:30:00+08:00" in output
    assert "111" not in output


def test_a_bad_range_is_a_usage_error(database: str) -> None:
    result = CliRunner().invoke(
        cli, ["missed", "--db", database, "--since", "2026-11-27", "--until", "2026-11-26"]
    )
    assert result.exit_code == 2
