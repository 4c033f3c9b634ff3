"""Ordinary mistakes get a line or two naming the option and the fix, with status 2,
never a traceback; reading commands never create (or migrate) a database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cdrlog.cli.main import cli
from cdrlog.cli.options import ALL_SETTINGS, envvar_of
from cdrlog.store.database import make_engine, upgrade

READERS = [
    ["export"],
    ["stats"],
    ["agents", "list"],
    ["rejected", "list"],
    ["rejected", "export"],
]


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_SETTINGS:
        monkeypatch.delenv(envvar_of(name), raising=False)
    monkeypatch.delenv("CDRLOG_CONFIG", raising=False)


def refused(*arguments: str) -> Result:
    result = CliRunner().invoke(cli, list(arguments))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2, result.output
    assert 1 <= len(result.output.splitlines()) <= 2, result.output
    return result


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("cdrlog.db", "'--db': 'cdrlog.db' is not a URL; a SQLite file is sqlite:///cdrlog.db"),
        ("foo://bar", "'--db': unknown database 'foo'; write sqlite:///FILE"),
        ("mysql://root@localhost/x", "the driver of 'mysql' is not installed"),
        (
            "mysql+pymysql://root:pw@127.0.0.1:1/x",
            "cannot open the database at mysql+pymysql://root:***@127.0.0.1:1/x",
        ),
        ("sqlite:///nope/x.db", "no directory nope for the database nope/x.db"),
    ],
)
@pytest.mark.parametrize("command", [["export"], ["serve"], ["db", "upgrade"], ["replay", "-"]])
def test_a_bad_database_url_is_a_line_naming_the_option(
    url: str, said: str, command: list[str]
) -> None:
    result = refused(*command, "--db", url)
    assert said in result.output
    assert "pw" not in result.output


def test_a_bad_database_url_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CDRLOG_DATABASE_URL", "cdrlog.db")
    assert "CDRLOG_DATABASE_URL" in refused("stats").output


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_reading_commands_never_create_a_database(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "cdrlog.dbx"
    result = refused(*command, "--db", f"sqlite:///{missing}")
    assert f"no database at {missing}: check '--db'; `cdrlog serve` creates it" in result.output
    assert not missing.exists()


@pytest.mark.parametrize("command", [["rebuild"], ["purge", "--older-than", "1"]], ids=" ".join)
def test_changing_commands_need_a_database_that_exists(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "cdrlog.dbx"
    assert "no database at" in refused(*command, "--db", f"sqlite:///{missing}").output
    assert not missing.exists()


def test_reading_commands_do_not_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    make_engine(url).dispose()  # a file, with no schema
    result = CliRunner().invoke(cli, ["export", "--db", url])
    assert result.exit_code == 1
    assert "run `cdrlog db upgrade --db URL` first" in result.output
    engine = make_engine(url)
    upgrade(engine)  # and a current one reads
    engine.dispose()
    assert CliRunner().invoke(cli, ["export", "--db", url]).exit_code == 0


@pytest.mark.parametrize("command", [["export"], ["stats"], ["rebuild"]], ids=" ".join)
def test_an_inverted_range_names_both_options(command: list[str]) -> None:
    result = refused(*command, "--from", "2026-02-01", "--to", "2026-01-01")
    assert "'--from' / '--to': 2026-02-01 is not before 2026-01-01" in result.output


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--from", "bad"], "'--from': 'bad' is not an ISO-8601 time"),
        (["--to", "0001-01-01"], "'--to': '0001-01-01' is outside the years 1900 to 2999"),
        (["--tz", "Mars/Base"], "'--tz': 'Mars/Base' is not an IANA time zone"),
        (["--disposition", "ANSWER,LOST"], "'--disposition': 'LOST' is not among NOANSWER, ANSWER"),
        (["--min-billsec", "-1"], "'--min-billsec'"),
    ],
)
def test_a_bad_filter_names_its_option(arguments: list[str], said: str) -> None:
    assert said in refused("export", *arguments).output
