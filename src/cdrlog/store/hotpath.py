"""The statements every ingest transaction runs, as the driver's own SQL.

They run for every batch of every push, so they skip SQLAlchemy's expression layer:
each is one SQL text per dialect, built once, run with `executemany` on rows whose
values are already what the driver takes (times as the `UtcDateTime` columns store
them). What they read and write is what `Journal` reads and writes through SQLAlchemy
elsewhere; the tests read both ways.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql.dml import UpdateBase

from cdrlog.core.times import to_utc_naive
from cdrlog.store.tables import CALL_EVENT_PARSED

CallKey = tuple[str, str]
Params = Sequence[Any]

# Versions of a call's lock row (`call_session.version`) with a meaning; every other
# is a random stamp (`callcache.new_version`). NEW: made by ingest, nothing committed for
# the call since (no events, no CDR). READ_BACK: whatever the journal holds, written
# without a stamp (a bulk load, rows older than versions): read it back.
NEW = 0
READ_BACK = 1

# The columns of a journal row, as `journal.journal_row` names them, in insert order.
JOURNAL_COLUMNS = (
    "orgidentity",
    "fingerprint",
    "sessionid",
    *CALL_EVENT_PARSED,
    "fields",
    "received_at",
)
JOURNAL_TIMES = frozenset({"event_time", "received_at"})
CDR_TIMES = frozenset({"starttime", "answertime", "endtime", "created_at", "updated_at"})


def _sqlite_time(moment: datetime) -> str:
    # SQLAlchemy's text form for SQLite DATETIME (comparisons in SQL are on this text):
    # naive UTC, always with microseconds.
    return to_utc_naive(moment).isoformat(" ", "microseconds")


class HotPath:
    """The statements of one dialect (`sqlite`, `postgresql`, `mysql`/`mariadb`)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.mark = "?" if dialect == "sqlite" else "%s"
        self.time: Callable[[datetime], Any] = _sqlite_time if dialect == "sqlite" else to_utc_naive
        self._insert_journal = self._insert_ignoring("call_event", JOURNAL_COLUMNS)
        self._insert_lock = self._insert_ignoring(
            "call_session", ("orgidentity", "sessionid", "created_at")
        )
        self._cdr_statements: dict[tuple[str, ...], str] = {}

    def _insert_ignoring(self, table: str, columns: Sequence[str]) -> str:
        names = ", ".join(columns)
        marks = ", ".join([self.mark] * len(columns))
        if self.dialect == "sqlite":
            return f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})"
        if self.dialect == "postgresql":
            return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        return f"INSERT IGNORE INTO {table} ({names}) VALUES ({marks})"

    def _where_calls(self, team: str, name: str, calls: Iterable[CallKey]) -> tuple[str, list[str]]:
        """`(orgidentity, <name>) IN calls`, per team, so each database uses its
        composite index (see `tables.pairs_in`)."""
        grouped: dict[str, list[str]] = defaultdict(list)
        for left, right in sorted(set(calls)):
            grouped[left].append(right)
        clauses: list[str] = []
        params: list[str] = []
        for left, rights in grouped.items():
            marks = ", ".join([self.mark] * len(rights))
            clauses.append(f"({team} = {self.mark} AND {name} IN ({marks}))")
            params += [left, *rights]
        return " OR ".join(clauses), params

    # --- Locks and versions -------------------------------------------------------

    def create_locks(self, connection: Connection, calls: Sequence[CallKey], now: datetime) -> None:
        """Insert the missing lock rows of these calls (sorted), in this transaction."""
        moment = self.time(now)
        _many(connection, self._insert_lock, [(t, s, moment) for t, s in calls])

    def lock(self, connection: Connection, calls: Sequence[CallKey]) -> dict[CallKey, int]:
        """Lock these calls' rows in key order (SQLite: the transaction's write lock
        already serialises) and read their versions; a missing row is missing here."""
        where, params = self._where_calls("orgidentity", "sessionid", calls)
        sql = f"SELECT orgidentity, sessionid, version FROM call_session WHERE {where}"
        if self.dialect != "sqlite":
            sql += " ORDER BY orgidentity, sessionid FOR UPDATE"
        return {(row[0], row[1]): int(row[2]) for row in _all(connection, sql, params)}

    def stamp(self, connection: Connection, calls: Iterable[CallKey], version: int) -> None:
        """Give these calls (locked) a new version, in one statement."""
        calls = list(calls)
        if calls:
            where, params = self._where_calls("orgidentity", "sessionid", calls)
            sql = f"UPDATE call_session SET version = {self.mark} WHERE {where}"
            connection.exec_driver_sql(sql, (version, *params))

    # --- The journal ----------------------------------------------------------------

    def known(
        self, connection: Connection, keys: Iterable[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Which of these (team, fingerprint) pairs the journal holds."""
        keys = list(keys)
        if not keys:
            return set()
        where, params = self._where_calls("orgidentity", "fingerprint", keys)
        sql = f"SELECT orgidentity, fingerprint FROM call_event WHERE {where}"
        return {(row[0], row[1]) for row in _all(connection, sql, params)}

    def append(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Journal these rows (`journal_row`); a fingerprint already there is skipped."""
        times: dict[datetime, Any] = {}  # a batch's rows share their receipt time

        def time(moment: datetime) -> Any:
            held = times.get(moment)
            if held is None:
                held = times[moment] = self.time(moment)
            return held

        values = [
            tuple(
                time(row[name]) if name in JOURNAL_TIMES else row[name] for name in JOURNAL_COLUMNS
            )
            for row in rows
        ]
        _many(connection, self._insert_journal, values)

    # --- The agent registry ------------------------------------------------------------

    def phones(
        self, connection: Connection, wanted: Iterable[tuple[str, str]]
    ) -> dict[str, dict[str, str]]:
        """The registry's phone of each of these (team, agent number), per team."""
        where, params = self._where_calls("orgidentity", "agentno", wanted)
        sql = f"SELECT orgidentity, agentno, phone FROM agent WHERE ({where}) AND phone IS NOT NULL"
        found: dict[str, dict[str, str]] = defaultdict(dict)
        for team, agentno, phone in _all(connection, sql, params):
            found[team][agentno] = phone
        return found

    # --- CDRs -----------------------------------------------------------------------

    def write_cdrs(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write these CDR rows (`tables.cdr_values` with `created_at` and `updated_at`,
        every row the same columns): a call's row is inserted, or its row updated in all
        but `created_at`. One upsert, so a batch's CDRs cost one round trip."""
        if not rows:
            return
        columns = tuple(rows[0])
        sql = self._cdr_statements.get(columns)
        if sql is None:
            sql = self._cdr_statements[columns] = self._cdr_upsert(columns)
        time = self.time
        values = [
            tuple(
                (time(row[c]) if row[c] is not None else None) if c in CDR_TIMES else row[c]
                for c in columns
            )
            for row in rows
        ]
        _many(connection, sql, values)

    def _cdr_upsert(self, columns: tuple[str, ...]) -> str:
        marks = ", ".join([self.mark] * len(columns))
        insert = f"INSERT INTO cdr ({', '.join(columns)}) VALUES ({marks})"
        changed = [c for c in columns if c not in _CALL]
        # A new row's version is the column's default, 1; each change adds one.
        if self.dialect in ("mysql", "mariadb"):
            # pymysql sends the rows of this form as one multi-row statement.
            return f"{insert} ON DUPLICATE KEY UPDATE " + ", ".join(
                [f"{c} = VALUES({c})" for c in changed] + ["version = version + 1"]
            )
        return f"{insert} ON CONFLICT (orgidentity, diallogid) DO UPDATE SET " + ", ".join(
            [f"{c} = excluded.{c}" for c in changed] + ["version = cdr.version + 1"]
        )


_CALL = frozenset({"orgidentity", "diallogid", "created_at"})


class Prepared:
    """A statement built with SQLAlchemy, compiled once for a dialect and then run as
    driver SQL: each row's values go through the columns' own bind processing (times
    to naive UTC, booleans as the driver takes them), and nothing else per row."""

    def __init__(self, statement: UpdateBase, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = compiled.positional
        names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self.names = names
        self._processors = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]

    def run(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row (one `executemany`)."""
        if self.positional:
            values: list[Any] = [
                tuple(p(row[n]) if p else row[n] for n, p in self._processors) for row in rows
            ]
        else:
            values = [{n: p(row[n]) if p else row[n] for n, p in self._processors} for row in rows]
        _many(connection, self.sql, values)


def _many(connection: Connection, sql: str, rows: Sequence[Params]) -> None:
    # Through SQLAlchemy's driver-SQL entry only: it adds no per-row work, and wraps the
    # driver's errors so that `in_transaction` still knows a deadlock when it sees one.
    if rows:
        connection.exec_driver_sql(sql, list(rows))


def _all(connection: Connection, sql: str, params: Params) -> list[Any]:
    return list(connection.exec_driver_sql(sql, tuple(params)).all())
