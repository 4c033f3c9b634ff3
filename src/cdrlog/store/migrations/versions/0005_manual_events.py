"""asterCC's interface manual: the CDR's queue, DID, hold and transfer; the fields of
each event that the fold reads (legs told apart by `uniqueid`, ties by `eventid`); the
agent's queue; and an index that finds an agent's events newest first.

Existing rows keep NULL in the new columns until `cdrlog rebuild` parses their journal
again; the new CDR columns are NULL for calls folded before this revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _time() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


CDR_COLUMNS: dict[str, Any] = {
    "did": sa.String(64),
    "agent_group": sa.String(64),
    "hold_seconds": sa.Integer(),
    "transferred_to": sa.String(64),
}
EVENT_COLUMNS: dict[str, Any] = {
    "calleridnum": sa.String(64),
    "didnumber": sa.String(64),
    "uniqueid": sa.String(64),
    "agent_group": sa.String(64),
    "eventid": sa.BigInteger(),
}
# Each fact of the registry with the time it became true (the row's `event_time` was
# the time of its newest fact of any kind).
AGENT_COLUMNS: dict[str, Any] = {
    "phone_time": _time(),
    "agent_group": sa.String(64),
    "group_time": _time(),
}
SESSION_INDEX_BEFORE = ("orgidentity", "sessionid")
SESSION_INDEX_AFTER = ("orgidentity", "sessionid", "agentno", "event_time")


def upgrade() -> None:
    for name, kind in CDR_COLUMNS.items():
        op.add_column("cdr", sa.Column(name, kind))
    for name, kind in EVENT_COLUMNS.items():
        op.add_column("call_event", sa.Column(name, kind))
    for name, kind in AGENT_COLUMNS.items():
        op.add_column("agent", sa.Column(name, kind))
    # A phone already known was known as of the row's newest fact.
    op.execute("UPDATE agent SET phone_time = event_time WHERE phone IS NOT NULL")
    op.drop_index("ix_call_event_session", table_name="call_event")
    op.create_index("ix_call_event_session", "call_event", list(SESSION_INDEX_AFTER))


def downgrade() -> None:
    op.drop_index("ix_call_event_session", table_name="call_event")
    op.create_index("ix_call_event_session", "call_event", list(SESSION_INDEX_BEFORE))
    with op.batch_alter_table("agent") as batch:
        for name in AGENT_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("call_event") as batch:
        for name in EVENT_COLUMNS:
            batch.drop_column(name)
    with op.batch_alter_table("cdr") as batch:
        for name in CDR_COLUMNS:
            batch.drop_column(name)
