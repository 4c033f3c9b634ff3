"""The SQL tables (SQLAlchemy Core), and how rows of calls become domain values (dead
letters become theirs in `deadletters`): above the store, no code sees a row.

Every time column holds naive UTC; `UtcDateTime` converts at this boundary so the rest
of the code sees aware datetimes only. On MySQL/MariaDB the migrations give every table a
binary NO PAD collation, so `abc`, `ABC` and `abc ` are three sessions there as they are
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    or_,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from cdrlog.core.events import CallEvent
from cdrlog.core.record import CDR_COLUMN_OF, Cdr
from cdrlog.core.rules import Disposition, Status
from cdrlog.core.times import from_utc_naive, to_utc_naive

MYSQL = ("mysql", "mariadb")
TABLE_OPTIONS: Mapping[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}

Id = BigInteger().with_variant(Integer(), "sqlite")
LongText = Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL)
Blob = LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, naive UTC with microseconds in the column, aware UTC out."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else to_utc_naive(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_utc_naive(value)


metadata = MetaData()

cdr = Table(
    "cdr",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("orgidentity", String(64), nullable=False),
    Column("diallogid", String(128), nullable=False),
    Column("calltype", String(16), nullable=False),
    Column("target", String(16), nullable=False),
    Column("src", String(64)),
    Column("dst", String(64)),
    Column("agentno", String(64)),
    Column("starttime", UtcDateTime(), nullable=False),
    Column("answertime", UtcDateTime()),
    Column("endtime", UtcDateTime()),
    Column("duration", Integer),
    Column("billsec", Integer),
    Column("disposition", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("did", String(64)),
    Column("agent_group", String(64)),
    Column("hold_seconds", Integer),
    Column("transferred_to", String(64)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # 1 when written first, one more with every change: (CDR, version) names one state.
    Column("version", BigInteger, nullable=False, server_default=text("1")),
    UniqueConstraint("orgidentity", "diallogid", name="uq_cdr_call"),
    # Paging walks (starttime, id); statistics (the call-center figures too) and the
    # floor's waiting calls read the rest without touching the rows.
    Index(
        "ix_cdr_starttime",
        "starttime",
        "id",
        "orgidentity",
        "agentno",
        "disposition",
        "billsec",
        "answertime",
        "calltype",
        "status",
        "endtime",
        "agent_group",
        "hold_seconds",
        "transferred_to",
    ),
    Index("ix_cdr_team_starttime", "orgidentity", "starttime", "id"),
    Index("ix_cdr_agent", "orgidentity", "agentno", "starttime"),
    **TABLE_OPTIONS,
)

# The journal: every accepted event verbatim (`fields`, JSON) with what was parsed from it.
call_event = Table(
    "call_event",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("orgidentity", String(64), nullable=False),
    Column("fingerprint", String(40), nullable=False),
    Column("sessionid", String(128)),
    Column("calltype", String(32)),
    Column("source", String(16)),
    Column("event", String(32), nullable=False),
    Column("event_time", UtcDateTime(), nullable=False),
    Column("activenum", String(64)),
    Column("agentno", String(64)),
    Column("agentphone", String(64)),
    Column("hangupcause", String(64)),
    Column("calleridnum", String(64)),
    Column("didnumber", String(64)),
    Column("uniqueid", String(64)),
    Column("agent_group", String(64)),
    Column("eventid", BigInteger),
    Column("fields", LongText, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    UniqueConstraint("orgidentity", "fingerprint", name="uq_call_event_fingerprint"),
    # A call's events; and, under a NULL sessionid, an agent's events newest first.
    Index("ix_call_event_session", "orgidentity", "sessionid", "agentno", "event_time"),
    # Agents' state events, newest first: PostgreSQL does not walk the session index in
    # time order under `sessionid IS NULL` (not an equality to it), so without this it
    # reads all of an agent's events to find the newest. The others walk it.
    Index(
        "ix_call_event_agent_state",
        "orgidentity",
        "agentno",
        "event_time",
        "event",
        postgresql_where=text("sessionid IS NULL"),
    ).ddl_if(dialect="postgresql"),
    Index("ix_call_event_received", "received_at"),
    **TABLE_OPTIONS,
)

# One row per call ever seen: the row each ingest locks so that the events of one call
# are folded one transaction at a time, while different calls proceed in parallel.
call_session = Table(
    "call_session",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("orgidentity", String(64), nullable=False),
    Column("sessionid", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # A random stamp written by each transaction that changes the call's journal or CDR
    # (0: none since this row was made); see `cdrlog.service.callcache`.
    Column("version", BigInteger, nullable=False, server_default=text("0")),
    UniqueConstraint("orgidentity", "sessionid", name="uq_call_session"),
    **TABLE_OPTIONS,
)

agent = Table(
    "agent",
    metadata,
    Column("orgidentity", String(64), primary_key=True),
    Column("agentno", String(64), primary_key=True),
    Column("phone", String(64)),
    Column("phone_time", UtcDateTime()),
    Column("agent_group", String(64)),
    Column("group_time", UtcDateTime()),
    Column("logged_in", Boolean, nullable=False),
    Column("event_time", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # What the agent is doing, as store/presence.py keeps it (NULL: never in any state).
    Column("state", String(16)),
    Column("state_since", UtcDateTime()),
    **TABLE_OPTIONS,
)

dead_letter = Table(
    "dead_letter",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("orgidentity", String(64)),
    Column("path", String(255), nullable=False),
    Column("content_type", String(255)),
    Column("remote_addr", String(64)),
    Column("body", Blob, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Column("reason", LongText, nullable=False),
    Column("resolved_at", UtcDateTime()),
    Column("resolution", String(255)),
    Index("ix_dead_letter_received", "received_at"),
    **TABLE_OPTIONS,
)


api_token = Table(
    "api_token",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False),
    Column("shown_as", String(32), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("orgidentity", String(64)),
    Column("note", String(255)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
    UniqueConstraint("token_hash", name="uq_api_token_hash"),
    **TABLE_OPTIONS,
)


# Each team's push-auth mode (`cdrlog.core.pushauth`; team "*" is every other team's),
# and its pushes without a token: how many, and the last, for the rollout's progress.
push_auth = Table(
    "push_auth",
    metadata,
    Column("team", String(64), primary_key=True),
    Column("mode", String(16)),
    Column("changed_at", UtcDateTime()),
    Column("tokenless_pushes", BigInteger, nullable=False, default=0),
    Column("last_tokenless_at", UtcDateTime()),
    **TABLE_OPTIONS,
)


# What changed, written by the transaction that changed it (a CDR's new version, an
# alert raised or cleared), until the dispatcher hands it to each subscription's
# deliveries. Written only while a subscription could want it (`service.hooks`).
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("orgidentity", String(64), nullable=False),
    # A CDR's sessionid; an alert's own key.
    Column("subject", String(160), nullable=False),
    Column("cdr_id", BigInteger),
    Column("version", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    # What is sent, for what has no row to read it from (alerts); NULL for CDRs.
    Column("payload", LongText),
    Column("created_at", UtcDateTime(), nullable=False),
    # Never an id again after a delete: ids order what was announced.
    sqlite_autoincrement=True,
    **TABLE_OPTIONS,
)

# Subscriptions: a target (http(s):// or amqp(s)://...?exchange=X), the kinds wanted
# (comma list) and the Standard Webhooks secret; a removed one is kept, marked.
hook = Table(
    "hook",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("orgidentity", String(64)),  # NULL: every team's
    Column("target", String(1024), nullable=False),
    Column("kinds", String(255), nullable=False),
    Column("secret", String(255), nullable=False),
    Column("note", String(255)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("removed_at", UtcDateTime()),
    **TABLE_OPTIONS,
)

# One row per (subscription, subject): the newest version announced and the newest
# delivered. A version announced while an older one waits supersedes it.
hook_delivery = Table(
    "hook_delivery",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("hook_id", BigInteger, nullable=False),
    Column("orgidentity", String(64), nullable=False),
    Column("subject", String(160), nullable=False),
    Column("cdr_id", BigInteger),
    Column("version", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", LongText),
    Column("sent_version", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # pending, done, failed
    Column("attempts", Integer, nullable=False),
    Column("next_at", UtcDateTime(), nullable=False),
    Column("lease_until", UtcDateTime()),
    Column("pending_since", UtcDateTime()),
    Column("last_error", String(512)),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("hook_id", "orgidentity", "subject", name="uq_hook_delivery"),
    Index("ix_hook_delivery_due", "hook_id", "state", "next_at"),
    **TABLE_OPTIONS,
)

# Agents whose state events arrived since their hours and presence were last worked
# out, and between which times: ingest writes one row per agent per batch, and
# store/agenthours.py works them out soon after, or before anything reads them.
agent_mark = Table(
    "agent_mark",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("orgidentity", String(64), nullable=False),
    Column("agentno", String(64), nullable=False),
    Column("first_time", UtcDateTime(), nullable=False),
    Column("last_time", UtcDateTime(), nullable=False),
    Index("ix_agent_mark_agent", "orgidentity", "agentno"),
    **TABLE_OPTIONS,
)

# An agent's time in states per UTC hour, as store/agenthours.py keeps it.
agent_hour = Table(
    "agent_hour",
    metadata,
    Column("orgidentity", String(64), primary_key=True),
    Column("agentno", String(64), primary_key=True),
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("available_us", BigInteger, nullable=False),
    Column("paused_us", BigInteger, nullable=False),
    Column("after_call_work_us", BigInteger, nullable=False),
    **TABLE_OPTIONS,
)


def pairs_in(
    first: ColumnElement[Any], second: ColumnElement[Any], pairs: Iterable[tuple[str, str]]
) -> ColumnElement[bool]:
    """`(first, second) IN pairs`, written so every database uses its composite index:
    per team, `team = ? AND x IN (...)` (SQLite scans, and MariaDB uses only the first
    column, for a row-value IN list)."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for left, right in sorted(set(pairs)):
        grouped[left].append(right)
    return or_(*(and_(first == left, second.in_(rights)) for left, rights in grouped.items()))


# What parsing an event's fields determines (`rebuild` parses them again).
CALL_EVENT_PARSED = (
    "calltype",
    "source",
    "event",
    "event_time",
    "activenum",
    "agentno",
    "agentphone",
    "hangupcause",
    "calleridnum",
    "didnumber",
    "uniqueid",
    "agent_group",
    "eventid",
)
# What parsing an agent's event (one of no call) determines.
AGENT_EVENT_PARSED = ("event", "event_time", "agentno", "agentphone", "agent_group", "eventid")
# What `call_event_from_row` reads: a fold needs neither the raw fields nor receipt times.
CALL_EVENT_FOLDED = ("orgidentity", "sessionid", *CALL_EVENT_PARSED)


def call_event_from_row(row: Row[Any]) -> CallEvent:
    return CallEvent(
        team=row.orgidentity,
        sessionid=row.sessionid,
        calltype=row.calltype or "",
        source=row.source or "",
        event=row.event,
        event_time=row.event_time,
        activenum=row.activenum,
        agentno=row.agentno,
        agentphone=row.agentphone,
        hangupcause=row.hangupcause,
        calleridnum=row.calleridnum,
        didnumber=row.didnumber,
        uniqueid=row.uniqueid,
        agent_group=row.agent_group,
        eventid=row.eventid,
    )


def cdr_from_row(row: Row[Any]) -> Cdr:
    """A stored CDR's record: the columns `CDR_COLUMN_OF` names, enums as their enums."""
    values = {name: getattr(row, column) for name, column in CDR_COLUMN_OF.items()}
    values["disposition"] = Disposition(row.disposition)
    values["status"] = Status(row.status)
    return Cdr(**values)


def cdr_values(record: Cdr) -> dict[str, Any]:
    """The columns a fold determines (everything but ids and bookkeeping times), in
    `CDR_COLUMN_OF` order; enums as their text."""
    values = {column: getattr(record, name) for name, column in CDR_COLUMN_OF.items()}
    values["disposition"] = record.disposition.value
    values["status"] = record.status.value
    return values


# Alert rules (`cdrlog alerts add`): which figure of which team and queue to watch, past
# which threshold. A removed rule is kept (`removed_at`) for its recent alert's sake.
alert_rule = Table(
    "alert_rule",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("orgidentity", String(64), nullable=False),
    Column("queue", String(64)),  # NULL: every queue of the team
    Column("metric", String(32), nullable=False),
    Column("threshold", Double(), nullable=False),
    Column("window_minutes", Integer, nullable=False),
    Column("service_level_seconds", Integer, nullable=False),
    Column("short_abandon_seconds", Integer, nullable=False),
    Column("note", String(255)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("removed_at", UtcDateTime()),
    **TABLE_OPTIONS,
)

# Each rule's alert (`core.alerts.AlertState`), made with the rule. `version` goes up by
# one with every raise and clear, and only an UPDATE that finds the version it read may
# change it: of several evaluators, one announces each change (`store.alerts`).
alert_state = Table(
    "alert_state",
    metadata,
    Column("rule_id", BigInteger, primary_key=True, autoincrement=False),
    Column("raised", Boolean, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("raised_at", UtcDateTime()),
    Column("cleared_at", UtcDateTime()),
    Column("value", Double()),
    Column("measured_at", UtcDateTime()),
    **TABLE_OPTIONS,
)

# A team's newest event in one index probe, for alerts on a silent PBX: without it, that
# is a scan of the team's whole journal (or of every team's recent events).
Index("ix_call_event_team_received", call_event.c.orgidentity, call_event.c.received_at)
