"""The signed, hash-chained ledger: one row per entry, ``seq`` 1, 2, 3, ... as the key.

On SQLite ``seq`` is ``INTEGER PRIMARY KEY`` (the rowid); elsewhere a BIGINT. ``created_at`` and
``payload`` are TEXT because the entry hash covers their exact stored strings.

Revision ID: m003_ledger
Revises: m002_eval
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m003_ledger"
down_revision = "m002_eval"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("signer", sa.String(200), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_index("ix_ledger_kind", "ledger", ["kind"])
    op.create_index("ix_ledger_hash", "ledger", ["hash"])


def downgrade() -> None:
    op.drop_table("ledger")
