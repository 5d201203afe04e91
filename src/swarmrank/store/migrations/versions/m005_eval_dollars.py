"""Evaluation results carry what each system's round cost in dollars (by the swarm's price table).

Revision ID: m005_eval_dollars
Revises: m004_api_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m005_eval_dollars"
down_revision = "m004_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("eval_results") as batch:
        batch.add_column(sa.Column("dollars", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_results") as batch:
        batch.drop_column("dollars")
