"""Engines, migrations and the few statements that differ between SQL dialects."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext, suppress
from importlib.resources import files
from typing import Any, Literal, TypeVar, get_args
from weakref import WeakKeyDictionary

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlalchemy.sql.dml import Insert

T = TypeVar("T")

# MySQL 1213 deadlock, 1205 lock wait timeout; PostgreSQL deadlock and serialization
# failure. A transaction that hits one of these did nothing and may simply run again.
_MYSQL_TRANSIENT = frozenset({1205, 1213})
_POSTGRES_TRANSIENT = frozenset({"40P01", "40001"})
ATTEMPTS = 12
CONNECT_TIMEOUT = 5

# Why a transaction ran again, bounded for a metric's label: a lost link is `other`.
RetryKind = Literal["deadlock", "lock_timeout", "serialization", "locked", "other"]
RETRY_KINDS: tuple[RetryKind, ...] = get_args(RetryKind)
_KIND_OF_CODE: dict[int | str, RetryKind] = {
    1213: "deadlock",
    1205: "lock_timeout",
    "40P01": "deadlock",
    "40001": "serialization",
}

# SQLite has one writer at a time. Threads of one process queue here, in order, instead of
# in SQLite's busy handler, which polls with growing sleeps and so adds seconds of latency.
_SQLITE_WRITERS: WeakKeyDictionary[Engine, threading.Lock] = WeakKeyDictionary()


def make_engine(url: str) -> Engine:
    """An engine set up for durable, concurrent ingest on the URL's database."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and in_memory(url):
        return _memory_engine(parsed)
    if backend == "sqlite":
        _create_private(parsed.database)
        engine = create_engine(
            parsed,
            connect_args={"timeout": 60},
            pool_size=8,
            max_overflow=32,
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        _SQLITE_WRITERS[engine] = threading.Lock()
        return engine
    options: dict[str, Any] = {
        "pool_size": 16,
        "max_overflow": 32,
        # No pre-ping (a round trip per checkout): a connection found dead fails its
        # transaction, which `in_transaction` then runs again on a fresh one.
        "pool_recycle": 3600,
        # Each statement sees what others committed before it: the per-call lock then
        # guarantees the fold sees every event committed before the lock was granted.
        "isolation_level": "READ COMMITTED",
    }
    # Fail fast when the server is away: the receiver then spools instead of waiting.
    if backend in ("mysql", "mariadb"):
        options["connect_args"] = {"charset": "utf8mb4", "connect_timeout": CONNECT_TIMEOUT}
    else:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return create_engine(parsed, **options)


def in_memory(url: str) -> bool:
    """Whether `url` names an in-memory SQLite database (`sqlite://`, `:memory:`, or a
    `file:` URI with `mode=memory`), which lives only as long as its connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database
    return (
        not database
        or database == ":memory:"
        or database.startswith("file::memory:")
        or parsed.query.get("mode") == "memory"
    )


def _memory_engine(parsed: URL) -> Engine:
    """An engine on one in-memory SQLite connection, kept for the engine's life.

    Every connection SQLite opens on `:memory:` is a new, empty database: the pool holds
    exactly one, so that the schema and rows one caller writes are there for the next,
    and lends it to one caller at a time, so that two threads never interleave their
    transactions on it (a single pool slot rather than StaticPool, which would share
    the connection between threads mid-transaction). The data goes with `dispose()`.
    """
    engine = create_engine(
        parsed,
        # Pooled threads take turns on the one connection.
        connect_args={"check_same_thread": False},
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        # A caller waits for the connection as long as a file's writer waits for the lock.
        pool_timeout=60,
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    _SQLITE_WRITERS[engine] = threading.Lock()
    return engine


def _create_private(database: str | None) -> None:
    """A new SQLite file readable by its owner only: it holds every call and token
    hash. SQLite gives its -wal and -shm files the database file's permissions."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _sqlite_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
    # The driver's own transaction handling is switched off so that `begin` below
    # decides: writers take the write lock up front (no lock upgrade deadlocks).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before it returns, so a 200 survives power loss.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get("cdrlog_read_only"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def read_only(connection: Connection) -> Connection:
    """Mark a connection as reading only (SQLite then lets writers go on meanwhile)."""
    return connection.execution_options(cdrlog_read_only=True)


class RetryCount:
    """This process's retries of write transactions, by kind; thread-safe. Listeners
    (the service's metrics) hear of each retry as it happens: the store imports no
    service code, and a metric kept per process is summed across worker processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[RetryKind] = Counter()
        self._listeners: list[Callable[[RetryKind], None]] = []

    def add(self, kind: RetryKind) -> None:
        with self._lock:
            self._counts[kind] += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(kind)

    def listen(self, listener: Callable[[RetryKind], None]) -> None:
        """Call `listener` with the kind of every retry from now on (once, however often
        it is added)."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def counts(self) -> dict[RetryKind, int]:
        """Retries so far, every kind named (0 for none)."""
        with self._lock:
            return {kind: self._counts[kind] for kind in RETRY_KINDS}


TRANSACTION_RETRIES = RetryCount()


def retry_kind(error: DBAPIError) -> RetryKind:
    """What made a transient error transient, as a `RetryKind`."""
    if error.connection_invalidated:
        return "other"
    original = error.orig
    if isinstance(original, sqlite3.OperationalError):
        return "locked"
    # A MySQL driver's error number first: PyMySQL sets `sqlstate` too (40001 for a
    # deadlock, HY000 for a lock wait timeout).
    args: tuple[Any, ...] = getattr(original, "args", ())
    code = args[0] if args and isinstance(args[0], int) else getattr(original, "sqlstate", None)
    return _KIND_OF_CODE.get(code, "other") if isinstance(code, int | str) else "other"


def is_transient(error: DBAPIError) -> bool:
    if error.connection_invalidated:
        return True
    original = error.orig
    if isinstance(original, sqlite3.OperationalError):
        return "locked" in str(original) or "busy" in str(original)
    # A MySQL driver's error number first: PyMySQL sets `sqlstate` too, HY000 for a lock
    # wait timeout, which the SQL state alone would not call transient.
    args: tuple[Any, ...] = getattr(original, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_TRANSIENT
    sqlstate = getattr(original, "sqlstate", None)
    return sqlstate is not None and sqlstate in _POSTGRES_TRANSIENT


def in_transaction(engine: Engine, work: Callable[[Connection], T], *, commit: bool = True) -> T:
    """Run `work` in one transaction, again from the start after a deadlock or lost link
    (each time counted in `TRANSACTION_RETRIES`).

    With `commit=False` the transaction is rolled back at the end: a dry run that
    takes the same locks and sees the same data as the real one.
    """
    writers = _SQLITE_WRITERS.get(engine)
    for attempt in range(ATTEMPTS):
        try:
            with writers or nullcontext(), engine.connect() as connection:
                with connection.begin() as transaction:
                    result = work(connection)
                    if not commit:
                        transaction.rollback()
                return result
        except DBAPIError as error:
            if attempt == ATTEMPTS - 1 or not is_transient(error):
                raise
            TRANSACTION_RETRIES.add(retry_kind(error))
            time.sleep(random.uniform(0, 0.002 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def insert_ignoring_duplicates(engine: Engine, table: Table) -> Insert:
    """INSERT that quietly skips a row whose unique key exists (rowcount 0)."""
    name = engine.dialect.name
    statement: Insert
    if name == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing()
    elif name == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing()
    elif name in ("mysql", "mariadb"):
        statement = mysql.insert(table).prefix_with("IGNORE")
    else:
        raise ValueError(f"unsupported database {name!r}")
    # SQLAlchemy reports an INSERT's row count only when asked to keep it.
    return statement.execution_options(preserve_rowcount=True)


def one_writer_at_a_time(engine: Engine) -> bool:
    """Whether the database takes one writing transaction at a time (SQLite): more
    writer threads would only split its batches."""
    return engine.dialect.name == "sqlite"


def analyze(engine: Engine, tables: tuple[str, ...]) -> None:
    """Bring the query planner's statistics of `tables` up to date (after a bulk load)."""
    name = engine.dialect.name
    with engine.connect() as connection:
        if name == "postgresql":
            # VACUUM also sets the visibility map, which index-only scans rely on.
            auto = connection.execution_options(isolation_level="AUTOCOMMIT")
            auto.exec_driver_sql(f"VACUUM ANALYZE {', '.join(tables)}")
            return
        if name == "sqlite":
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql(f"ANALYZE TABLE {', '.join(tables)}").all()
        connection.commit()


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("cdrlog.store") / "migrations"))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
