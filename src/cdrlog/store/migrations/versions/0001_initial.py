"""The receiver's tables: cdr, call_event (journal), call_session, agent, dead_letter.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MYSQL = ("mysql", "mariadb")


def _table_options() -> dict[str, Any]:
    """Exact, NO PAD comparison on MySQL/MariaDB, as on SQLite and PostgreSQL: under
    MariaDB's PAD SPACE `utf8mb4_bin`, team 't ' would be the same key as team 't'."""
    options: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}
    dialect = op.get_bind().dialect
    if dialect.name in MYSQL:
        mariadb = getattr(dialect, "is_mariadb", False)
        options["mysql_collate"] = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
    return options


def _id() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def _time(name: str, nullable: bool = True) -> sa.Column[object]:
    kind = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL)
    return sa.Column(name, kind, nullable=nullable)


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL), nullable=False)


def upgrade() -> None:
    options = _table_options()
    op.create_table(
        "cdr",
        _id(),
        sa.Column("orgidentity", sa.String(64), nullable=False),
        sa.Column("diallogid", sa.String(128), nullable=False),
        sa.Column("calltype", sa.String(16), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("src", sa.String(64)),
        sa.Column("dst", sa.String(64)),
        sa.Column("agentno", sa.String(64)),
        _time("starttime", nullable=False),
        _time("answertime"),
        _time("endtime"),
        sa.Column("duration", sa.Integer()),
        sa.Column("billsec", sa.Integer()),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.UniqueConstraint("orgidentity", "diallogid", name="uq_cdr_call"),
        **options,
    )
    op.create_index("ix_cdr_starttime", "cdr", ["starttime", "id"])
    op.create_index("ix_cdr_team_starttime", "cdr", ["orgidentity", "starttime", "id"])
    op.create_index("ix_cdr_agent", "cdr", ["orgidentity", "agentno", "starttime"])

    op.create_table(
        "call_event",
        _id(),
        sa.Column("orgidentity", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(40), nullable=False),
        sa.Column("sessionid", sa.String(128)),
        sa.Column("calltype", sa.String(32)),
        sa.Column("source", sa.String(16)),
        sa.Column("event", sa.String(32), nullable=False),
        _time("event_time", nullable=False),
        sa.Column("activenum", sa.String(64)),
        sa.Column("agentno", sa.String(64)),
        sa.Column("agentphone", sa.String(64)),
        sa.Column("hangupcause", sa.String(64)),
        _text("fields"),
        _time("received_at", nullable=False),
        sa.UniqueConstraint("orgidentity", "fingerprint", name="uq_call_event_fingerprint"),
        **options,
    )
    op.create_index("ix_call_event_session", "call_event", ["orgidentity", "sessionid"])
    op.create_index("ix_call_event_received", "call_event", ["received_at"])

    op.create_table(
        "call_session",
        _id(),
        sa.Column("orgidentity", sa.String(64), nullable=False),
        sa.Column("sessionid", sa.String(128), nullable=False),
        _time("created_at", nullable=False),
        sa.UniqueConstraint("orgidentity", "sessionid", name="uq_call_session"),
        **options,
    )

    op.create_table(
        "agent",
        sa.Column("orgidentity", sa.String(64), primary_key=True),
        sa.Column("agentno", sa.String(64), primary_key=True),
        sa.Column("phone", sa.String(64)),
        sa.Column("logged_in", sa.Boolean(), nullable=False),
        _time("event_time", nullable=False),
        _time("updated_at", nullable=False),
        **options,
    )

    op.create_table(
        "dead_letter",
        _id(),
        _time("received_at", nullable=False),
        sa.Column("orgidentity", sa.String(64)),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255)),
        sa.Column("remote_addr", sa.String(64)),
        sa.Column("body", sa.LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        _text("reason"),
        **options,
    )
    op.create_index("ix_dead_letter_received", "dead_letter", ["received_at"])


def downgrade() -> None:
    for table in ("dead_letter", "agent", "call_session", "call_event", "cdr"):
        op.drop_table(table)
