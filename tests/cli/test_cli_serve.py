"""`cdrlog serve` and the schema it finds: a server database whose schema is behind is
refused before anything listens (the operator runs `cdrlog db upgrade`); SQLite is
migrated by serve itself, an in-memory one included."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import click
import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from cdrlog.cli.databases import require_current_schema
from cdrlog.store.database import alembic_config, make_engine, upgrade
from cdrlog.store.tables import metadata
from conftest import Backend, reset_schema
from support.servers import free_port, running_server


def newest_and_previous() -> tuple[str, str]:
    """The newest migration, and the one an install a release behind stopped at."""
    script = ScriptDirectory(str(files("cdrlog.store") / "migrations"))
    head = script.get_current_head()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str), "the newest migration follows exactly one"
    return head, previous


def refusal(current: str) -> str:
    head, _ = newest_and_previous()
    return (
        f"the database schema is at {current}, not {head}: run `cdrlog db upgrade --db URL` first"
    )


def migrate_to(engine: Engine, revision: str) -> None:
    """The schema as an install that stopped at `revision` left it, from nothing."""
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def test_the_schema_check_refuses_a_database_behind_and_passes_a_current_one(
    tmp_path: Path,
) -> None:
    _, previous = newest_and_previous()
    engine = make_engine(f"sqlite:///{tmp_path / 'behind.db'}")
    try:
        migrate_to(engine, previous)
        with pytest.raises(click.ClickException) as behind:
            require_current_schema(engine)
        assert behind.value.message == refusal(previous)
        upgrade(engine)
        require_current_schema(engine)  # current: no complaint
    finally:
        engine.dispose()


def test_the_schema_check_refuses_a_database_without_any_schema() -> None:
    engine = make_engine("sqlite://")
    try:
        with pytest.raises(click.ClickException) as empty:
            require_current_schema(engine)
        assert empty.value.message == refusal("nothing")
    finally:
        engine.dispose()


def test_serve_refuses_a_server_database_whose_schema_is_behind(
    backend: Backend, engine: Engine, tmp_path: Path
) -> None:
    if backend.name == "sqlite":
        pytest.skip("serve migrates SQLite itself: see the test below")
    _, previous = newest_and_previous()
    spool = tmp_path / "spool"
    serve = [sys.executable, "-m", "cdrlog", "serve", "--db", backend.url]
    serve += ["--port", str(free_port()), "--spool-dir", str(spool)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CDRLOG_")}
    try:
        migrate_to(engine, previous)
        # A real process: one that wrongly went on to listen is stopped by the timeout,
        # and fails the test, rather than holding the suite.
        finished = subprocess.run(
            serve, capture_output=True, text=True, timeout=60, env=environment
        )
    finally:
        reset_schema(engine)
    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert finished.stderr.strip() == f"Error: {refusal(previous)}"
    assert "push URL" not in finished.stdout
    assert not spool.exists()


@pytest.mark.slow
def test_serve_migrates_a_sqlite_file_whose_schema_is_behind(tmp_path: Path) -> None:
    _, previous = newest_and_previous()
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    engine = make_engine(url)
    try:
        migrate_to(engine, previous)
        with running_server(url, tmp_path / "behind.log") as base:
            assert httpx.get(f"{base}/api/v1/cdrs").status_code == 200
        require_current_schema(engine)  # brought to the newest by serve
    finally:
        engine.dispose()


EVENT = {
    "sessionid": "memory-1",
    "source": "CALLER",
    "event": "incoming",
    "calltype": "dialin",
    "eventTime": "2026-11-26 09:00:00",
    "callerid": "1",
    "AgentTeamId": "1",
}


@pytest.mark.slow
def test_serve_runs_on_an_in_memory_sqlite_database(tmp_path: Path) -> None:
    with running_server("sqlite://", tmp_path / "memory.log") as base:
        pushed = httpx.post(f"{base}/astercc/1/events", data=EVENT)
        assert pushed.status_code == 200, pushed.text
        events = httpx.get(f"{base}/api/v1/events").json()["events"]
        assert [event["sessionid"] for event in events] == ["memory-1"]
        assert httpx.get(f"{base}/readyz").json()["database"] == "up"
