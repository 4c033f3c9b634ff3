"""API tokens (push, read, admin), stored as hashes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
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
        "api_token",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("shown_as", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("orgidentity", sa.String(64)),
        sa.Column("note", sa.String(255)),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("revoked_at", moment),
        sa.UniqueConstraint("token_hash", name="uq_api_token_hash"),
        **_options(),
    )


def downgrade() -> None:
    op.drop_table("api_token")
