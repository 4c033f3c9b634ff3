"""The time index of `cdr` also holds what statistics read, so a month's statistics
are a range scan of that index alone (MariaDB otherwise walked the agent index and
fetched every row: seconds on a million CDRs).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BEFORE = ("starttime", "id")
AFTER = ("starttime", "id", "orgidentity", "agentno", "disposition", "billsec", "answertime")


def upgrade() -> None:
    op.drop_index("ix_cdr_starttime", table_name="cdr")
    op.create_index("ix_cdr_starttime", "cdr", list(AFTER))


def downgrade() -> None:
    op.drop_index("ix_cdr_starttime", table_name="cdr")
    op.create_index("ix_cdr_starttime", "cdr", list(BEFORE))
