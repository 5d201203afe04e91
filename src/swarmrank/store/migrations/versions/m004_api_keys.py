"""API keys for ``swarmrank serve``: a name and a SHA-256 hash per key, never the key itself.

Revision ID: m004_api_keys
Revises: m003_ledger
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m004_api_keys"
down_revision = "m003_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_api_keys_name", "api_keys", ["name"])


def downgrade() -> None:
    op.drop_table("api_keys")
