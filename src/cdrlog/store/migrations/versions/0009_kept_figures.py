"""Agents' time in states, summed per hour: what the agent report reads instead of
folding every agent event of its range; and each agent's state now on its registry row,
what the floor's view reads instead of each agent's newest events.

Both are functions of the journal's agent events (store/agenthours.py and
store/presence.py keep them current); this migration computes them from the journal
already held.

On PostgreSQL, an index of agents' state events in time order (see tables.py).

And the covering time index of statistics takes the columns the call-center figures
read (call type, status, end, queue, hold, transfer), so a month's statistics read the
index alone, not a million table rows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
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


BEFORE = ("starttime", "id", "orgidentity", "agentno", "disposition", "billsec", "answertime")
AFTER = (
    *BEFORE,
    "calltype",
    "status",
    "endtime",
    "agent_group",
    "hold_seconds",
    "transferred_to",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_call_event_agent_state",
            "call_event",
            ["orgidentity", "agentno", "event_time", "event"],
            postgresql_where=sa.text("sessionid IS NULL"),
        )
    op.drop_index("ix_cdr_starttime", table_name="cdr")
    op.create_index("ix_cdr_starttime", "cdr", list(AFTER))
    moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL)
    with op.batch_alter_table("agent") as table:
        table.add_column(sa.Column("state", sa.String(16)))
        table.add_column(sa.Column("state_since", moment))
    ident = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "agent_mark",
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("orgidentity", sa.String(64), nullable=False),
        sa.Column("agentno", sa.String(64), nullable=False),
        sa.Column("first_time", moment, nullable=False),
        sa.Column("last_time", moment, nullable=False),
        **_options(),
    )
    op.create_index("ix_agent_mark_agent", "agent_mark", ["orgidentity", "agentno"])
    op.create_table(
        "agent_hour",
        sa.Column("orgidentity", sa.String(64), primary_key=True),
        sa.Column("agentno", sa.String(64), primary_key=True),
        sa.Column("hour", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("available_us", sa.BigInteger(), nullable=False),
        sa.Column("paused_us", sa.BigInteger(), nullable=False),
        sa.Column("after_call_work_us", sa.BigInteger(), nullable=False),
        **_options(),
    )
    # Imported here, not at the top: the rebuild is the same code that keeps the rows
    # current, so the rows it writes are the ones ingest would have written.
    from cdrlog.store.agenthours import rebuild_all

    rebuild_all(op.get_bind())


def downgrade() -> None:
    op.drop_table("agent_mark")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_call_event_agent_state", table_name="call_event")
    op.drop_index("ix_cdr_starttime", table_name="cdr")
    op.create_index("ix_cdr_starttime", "cdr", list(BEFORE))
    op.drop_table("agent_hour")
    with op.batch_alter_table("agent") as table:
        table.drop_column("state_since")
        table.drop_column("state")
