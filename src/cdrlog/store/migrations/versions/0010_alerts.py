"""Alerts: the rules (a figure of a team and queue, and its threshold), each rule's
alert state, and an index on the journal by team and receipt time.

The index makes "the team's newest event" (alerts on a silent PBX) one probe at any size
of the journal. Ingest pays one more index entry per event, written at the end of its
team's range (receipt times only grow), so no page but the last is touched; on an
existing journal the index is built once, here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MYSQL = ("mysql", "mariadb")


def _options() -> dict[str, Any]:
    options: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}
    dialect = op.get_bind().dialect
    if dialect.name in MYSQL:
        mariadb = getattr(dialect, "is_mariadb", False)
        options["mysql_collate"] = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
    return options


def upgrade() -> None:
    moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL)
    ident = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "alert_rule",
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("orgidentity", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64)),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("service_level_seconds", sa.Integer(), nullable=False),
        sa.Column("short_abandon_seconds", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(255)),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("removed_at", moment),
        **_options(),
    )
    op.create_table(
        "alert_state",
        sa.Column("rule_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("raised", sa.Boolean(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("raised_at", moment),
        sa.Column("cleared_at", moment),
        sa.Column("value", sa.Double()),
        sa.Column("measured_at", moment),
        **_options(),
    )
    op.create_index("ix_call_event_team_received", "call_event", ["orgidentity", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_call_event_team_received", "call_event")
    op.drop_table("alert_state")
    op.drop_table("alert_rule")
