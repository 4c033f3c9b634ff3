"""Each call's lock row carries the version of its journal and CDR: a random stamp that
every transaction changing them writes, so a writer that holds the call's state from
the stamp it wrote itself can fold new events onto it instead of reading it back.
Version 0 means a row ingest made with nothing committed for its call since: no events,
no CDR. Existing rows hold events, so they get 1, a version no writer ever writes: every
writer reads them back once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_session") as table:
        table.add_column(
            sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    op.execute("UPDATE call_session SET version = 1")


def downgrade() -> None:
    with op.batch_alter_table("call_session") as table:
        table.drop_column("version")
