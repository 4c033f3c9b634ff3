"""CDRs onward: each CDR's version, the outbox its changes are announced in, the
subscriptions (hooks) they go to and each subscription's deliveries.

Every existing CDR starts at version 1; a change increments it in the transaction that
makes it, so (CDR, version) names one state of a CDR.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
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
    long_text = sa.Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL)
    with op.batch_alter_table("cdr") as table:
        table.add_column(
            sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("1"))
        )
    op.create_table(
        "outbox",
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("orgidentity", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("cdr_id", sa.BigInteger()),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", long_text),
        sa.Column("created_at", moment, nullable=False),
        sqlite_autoincrement=True,
        **_options(),
    )
    op.create_table(
        "hook",
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("orgidentity", sa.String(64)),
        sa.Column("target", sa.String(1024), nullable=False),
        sa.Column("kinds", sa.String(255), nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("note", sa.String(255)),
        sa.Column("created_at", moment, nullable=False),
        sa.Column("removed_at", moment),
        **_options(),
    )
    op.create_table(
        "hook_delivery",
        sa.Column("id", ident, primary_key=True, autoincrement=True),
        sa.Column("hook_id", sa.BigInteger(), nullable=False),
        sa.Column("orgidentity", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(160), nullable=False),
        sa.Column("cdr_id", sa.BigInteger()),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", long_text),
        sa.Column("sent_version", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", moment, nullable=False),
        sa.Column("lease_until", moment),
        sa.Column("pending_since", moment),
        sa.Column("last_error", sa.String(512)),
        sa.Column("updated_at", moment, nullable=False),
        sa.UniqueConstraint("hook_id", "orgidentity", "subject", name="uq_hook_delivery"),
        **_options(),
    )
    op.create_index("ix_hook_delivery_due", "hook_delivery", ["hook_id", "state", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_hook_delivery_due", "hook_delivery")
    op.drop_table("hook_delivery")
    op.drop_table("hook")
    op.drop_table("outbox")
    with op.batch_alter_table("cdr") as table:
        table.drop_column("version")
