"""Each team's push-auth mode (open, observe, required) and its pushes without a token.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
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
    op.create_table(
        "push_auth",
        sa.Column("team", sa.String(64), primary_key=True),
        sa.Column("mode", sa.String(16)),
        sa.Column("changed_at", moment),
        sa.Column("tokenless_pushes", sa.BigInteger(), nullable=False),
        sa.Column("last_tokenless_at", moment),
        **_options(),
    )


def downgrade() -> None:
    op.drop_table("push_auth")
