"""Fixtures: the three real databases, a clean schema per backend, and the app on each.

MariaDB and PostgreSQL come from CDRLOG_TEST_MYSQL_URL / CDRLOG_TEST_POSTGRES_URL;
where one is unset or unreachable its tests are skipped with the reason shown. With
CDRLOG_TEST_FIND_DATABASES set (`make test` sets it), an unset one is looked for on
this machine first: database `test` of a local server that lets root / postgres in
without a password (its cdrlog tables are dropped and made again).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cdrlog.service.settings import Settings
from cdrlog.store.database import make_engine, upgrade
from cdrlog.store.tables import metadata
from cdrlog.web.app import create_app

BACKENDS = {
    "sqlite": None,
    "mariadb": "CDRLOG_TEST_MYSQL_URL",
    "postgresql": "CDRLOG_TEST_POSTGRES_URL",
}


@pytest.fixture(autouse=True)
def own_spool(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every app a test builds in-process spools into a directory of its own, never into
    the working directory's `cdrlog-spool` (servers a test starts get theirs by flag)."""
    spool = tmp_path_factory.mktemp("spool")
    monkeypatch.setenv("CDRLOG_SPOOL_DIR", str(spool))
    return spool


@dataclass(frozen=True)
class Backend:
    name: str
    url: str


def skip_unless_optional(reason: str) -> NoReturn:
    """Skip, with the reason shown; where CDRLOG_REQUIRE_ALL is set (CI), fail instead."""
    if os.environ.get("CDRLOG_REQUIRE_ALL"):
        pytest.fail(f"required but unavailable: {reason}")
    pytest.skip(reason)


LOCAL_SERVERS = {
    "CDRLOG_TEST_MYSQL_URL": "mysql+pymysql://root@127.0.0.1:3306/test",
    "CDRLOG_TEST_POSTGRES_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
}


def _answers(url: str) -> str | None:
    """None when a server answers at `url`; else why not, in a line."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as error:
        return str(error.orig).splitlines()[0] if error.orig else str(error)
    finally:
        engine.dispose()
    return None


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CDRLOG_TEST_FIND_DATABASES"):
        for variable, url in LOCAL_SERVERS.items():
            # A server that is not there refuses at once: no wait for a timeout.
            if not os.environ.get(variable) and _answers(url) is None:
                os.environ[variable] = url
    # Tests run in parallel (pytest-xdist) each empty the tables as they begin: each
    # worker has databases of its own on the same servers.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        for variable in LOCAL_SERVERS:
            named = os.environ.get(variable)
            if named and _answers(named) is None:
                os.environ[variable] = _database_of_its_own(named, worker)


def _database_of_its_own(url: str, worker: str) -> str:
    """The URL of `<database>_<worker>` on the same server, made if it is missing."""
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            # CREATE DATABASE runs outside a transaction on PostgreSQL.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql":
                found = connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).first()
                if found is None:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                connection.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
    finally:
        engine.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _server_url(variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        skip_unless_optional(f"{variable} is not set: this backend's tests do not run")
    problem = _answers(url)
    if problem is not None:
        skip_unless_optional(f"{variable}={url} is unreachable: {problem}")
    return url


def reset_schema(engine: Engine) -> None:
    """Drop whatever an earlier run left and migrate from nothing, as a new install does."""
    with engine.begin() as connection:
        metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(engine)


def empty_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture(scope="session", params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    name: str = request.param
    variable = BACKENDS[name]
    if variable is None:
        path = tmp_path_factory.mktemp("sqlite") / "cdrlog.db"
        url = f"sqlite:///{path}"
    else:
        url = _server_url(variable)
    engine = make_engine(url)
    reset_schema(engine)
    engine.dispose()
    return Backend(name, url)


@pytest.fixture
def engine(backend: Backend) -> Iterator[Engine]:
    engine = make_engine(backend.url)
    empty_tables(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return Settings(database_url=backend.url)


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cdrlog.db'}"


def pytest_report_header() -> list[str]:
    return [f"cdrlog backends: {_backends()}"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Said again at the end, where it is read: which databases the run covered."""
    terminalreporter.write_line(f"cdrlog backends: {_backends()}")


def _backends() -> str:
    shown = []
    for name, variable in BACKENDS.items():
        if variable is None:
            shown.append(name)
            continue
        url = os.environ.get(variable)
        problem = _answers(url) if url else None
        if url and problem is None:
            shown.append(f"{name} on {make_url(url).render_as_string()}")
        elif url:
            shown.append(f"{name} skipped ({problem})")
        else:
            shown.append(f"{name} skipped ({variable} is not set and no local server answered)")
    return "; ".join(shown)


LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The RabbitMQ broker for the AMQP publisher's tests: CDRLOG_TEST_AMQP_URL, else one on
    this machine that lets RabbitMQ's default guest in, when it answers."""
    url = os.environ.get("CDRLOG_TEST_AMQP_URL")
    if url:
        return url
    try:
        # A broker that is not there refuses at once; one second covers a busy machine.
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
    except OSError as error:
        skip_unless_optional(
            f"CDRLOG_TEST_AMQP_URL is not set and no broker answers on 127.0.0.1:5672: {error}"
        )
    return LOCAL_AMQP_URL


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run in parallel (`--dist loadgroup`), the tests of the one broker, which a test
    restarts, run one after another on one worker."""
    for item in items:
        if "amqp_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("rabbitmq"))
