"""The completion cache and the evaluation runs and their per-item results.

Revision ID: m002_eval
Revises: m001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m002_eval"
down_revision = "m001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "completion_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("node", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completion_json", sa.Text, nullable=False),
    )
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("swarm", sa.String(200), nullable=False),
        sa.Column("protocols", sa.Text, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
    )
    op.create_index("ix_eval_runs_created_at", "eval_runs", ["created_at"])
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("item_id", sa.String(300), primary_key=True),
        sa.Column("system", sa.String(200), primary_key=True),
        sa.Column("gold", sa.Text, nullable=False),
        sa.Column("answer", sa.Text),
        sa.Column("correct", sa.Boolean, nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("judge_calls", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("round_id", sa.String(64)),
    )


def downgrade() -> None:
    for name in ("eval_results", "eval_runs", "completion_cache"):
        op.drop_table(name)
