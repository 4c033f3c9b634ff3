"""`cdrlog backup`: a SQLite database copied into a file of its own; an existing file
kept unless forced; a server database's URL answered with its dump command."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from cdrlog.cli.backup import backup
from cdrlog.store.backup import DUMPS
from cdrlog.store.database import make_engine, upgrade


@pytest.fixture
def database(sqlite_url: str) -> str:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    engine.dispose()
    return sqlite_url


def test_the_backup_is_a_database_of_its_own(database: str, tmp_path: Path) -> None:
    target = tmp_path / "backup.db"
    result = CliRunner().invoke(backup, ["--to", str(target), "--db", database])
    assert result.exit_code == 0, result.output
    assert "0 CDRs" in result.output
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".backup")] == []


def test_an_existing_file_is_overwritten_only_when_forced(database: str, tmp_path: Path) -> None:
    target = tmp_path / "backup.db"
    target.write_text("keep me")
    refused = CliRunner().invoke(backup, ["--to", str(target), "--db", database])
    assert refused.exit_code == 1
    assert "--force" in refused.output
    assert target.read_text() == "keep me"
    forced = CliRunner().invoke(backup, ["--to", str(target), "--db", database, "--force"])
    assert forced.exit_code == 0, forced.output


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = CliRunner().invoke(
        backup, ["--to", str(tmp_path / "b.db"), "--db", f"sqlite:///{missing}"]
    )
    assert result.exit_code == 1
    assert not missing.exists()
    assert not (tmp_path / "b.db").exists()


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("mysql+pymysql://cdr:secret@db.example.com/cdrlog", "mysql"),
        ("postgresql+psycopg://cdr:secret@db.example.com:5433/cdrlog", "postgresql"),
    ],
)
def test_a_server_database_gets_its_dump_command(url: str, backend: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(backup, ["--to", str(tmp_path / "b.db"), "--db", url])
    assert result.exit_code == 2
    assert DUMPS[backend].dump in result.output
    assert DUMPS[backend].restore in result.output
    assert "DB_HOST=db.example.com" in result.output
    assert "secret" not in result.output
    assert not (tmp_path / "b.db").exists()
