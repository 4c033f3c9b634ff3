"""Dead letters remember when a retry resolved them, and how.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    with op.batch_alter_table("dead_letter") as table:
        table.add_column(sa.Column("resolved_at", moment, nullable=True))
        table.add_column(sa.Column("resolution", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letter") as table:
        table.drop_column("resolution")
        table.drop_column("resolved_at")
