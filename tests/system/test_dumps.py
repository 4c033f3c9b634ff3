"""Backing up MariaDB/MySQL and PostgreSQL as docs/operations.md says: the guide's own
dump command, restored with its own restore command into a new database, gives back
every row of every table (CDRs, journal, sessions, agents, dead letters with bodies
that are not text, tokens) and the schema revision."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import URL, make_url

from cdrlog.core.tokens import TokenScope
from cdrlog.service.clock import utc_now
from cdrlog.service.ingest import Ingestor
from cdrlog.service.tokenstore import TokenStore
from cdrlog.sim.bulk import load
from cdrlog.store.backup import DEFAULT_PORTS, DUMPS, Dump
from cdrlog.store.database import make_engine
from cdrlog.store.deadletters import DeadLetter
from cdrlog.store.tables import metadata
from conftest import Backend, skip_unless_optional

GUIDE = Path(__file__).parents[2] / "docs" / "operations.md"
CALLS = 300
DUMP_OF = {"mariadb": DUMPS["mysql"], "postgresql": DUMPS["postgresql"]}


@pytest.mark.parametrize("dump", list(DUMPS.values()), ids=list(DUMPS))
def test_the_guide_shows_the_commands_the_tests_run(dump: Dump) -> None:
    guide = GUIDE.read_text()
    assert dump.dump in guide
    assert dump.restore in guide


def everything(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary key order, and the schema revision."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            query = select(table).order_by(*table.primary_key.columns)
            rows[table.name] = [tuple(row) for row in connection.execute(query)]
        revision = connection.execute(text("SELECT version_num FROM alembic_version"))
        rows["alembic_version"] = [tuple(row) for row in revision]
    return rows


def variables(url: URL, new_database: str) -> dict[str, str]:
    """The environment the guide's commands read: the database's coordinates, and its
    password where the tools look for one."""
    backend = "mysql" if url.get_backend_name() in ("mysql", "mariadb") else "postgresql"
    values = {
        "DB_HOST": url.host or "localhost",
        "DB_PORT": str(url.port or DEFAULT_PORTS[backend]),
        "DB_USER": url.username or "",
        "DB_NAME": url.database or "",
        "NEW_DB": new_database,
    }
    if url.password:
        values["MYSQL_PWD" if backend == "mysql" else "PGPASSWORD"] = str(url.password)
    return values


def run(command: str, environment: Mapping[str, str], where: Path) -> None:
    done = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, **environment},
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{command}\n{done.stderr}"


@pytest.fixture
def new_database(backend: Backend) -> Iterator[str]:
    """A new, empty database beside the test database, dropped afterwards."""
    name = f"cdrlog_restore_{uuid4().hex[:10]}"
    server = make_engine(backend.url).execution_options(isolation_level="AUTOCOMMIT")
    charset = " CHARACTER SET utf8mb4" if backend.name == "mariadb" else ""
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}{charset}"))
    try:
        yield name
    finally:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def fill(engine: Engine) -> None:
    """Calls with their journal and agents, a dead letter whose body is not text, and
    a token: a little of everything the tables hold."""
    load(engine, CALLS, seed=3, days=3, teams=2, agents=5, progress=False, workers=1)
    body = bytes(random.Random(3).randrange(256) for _ in range(512))
    letter = DeadLetter("/astercc/team1/events", "team1", None, None, body, False, {"body": "x"})
    Ingestor(engine, utc_now).dead_letter(letter)
    TokenStore(engine, utc_now).create(TokenScope.ADMIN, None)


@pytest.mark.parametrize("backend", ["mariadb", "postgresql"], indirect=True)
def test_a_dump_restored_into_a_new_database_holds_the_same_rows(
    backend: Backend, engine: Engine, new_database: str, tmp_path: Path
) -> None:
    dump = DUMP_OF[backend.name]
    if shutil.which(dump.tool) is None:
        skip_unless_optional(f"{dump.tool} is not installed: the {backend.name} dump is not tested")
    fill(engine)
    url = make_url(backend.url)
    environment = variables(url, new_database)
    run(dump.dump, environment, tmp_path)
    run(dump.restore, environment, tmp_path)
    restored = make_engine(url.set(database=new_database).render_as_string(hide_password=False))
    try:
        before, after = everything(engine), everything(restored)
    finally:
        restored.dispose()
    assert len(before["cdr"]) == CALLS
    assert after == before
