"""The rounds, answers, candidates and judgments tables.

Revision ID: m001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "m001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _child(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("round_id", sa.String(64), sa.ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        *columns,
    )


def upgrade() -> None:
    op.create_table(
        "rounds",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("swarm", sa.String(200), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("task_type", sa.String(32), nullable=False),
        sa.Column("protocol", sa.String(64), nullable=False),
        sa.Column("schedule", sa.String(64)),
        sa.Column("answer", sa.Text),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("winner", sa.Integer),
        sa.Column("wall_seconds", sa.Float, nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("result_json", sa.Text, nullable=False),
    )
    op.create_index("ix_rounds_created_at", "rounds", ["created_at"])
    _child(
        "answers",
        sa.Column("node", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("value", sa.Text),
        sa.Column("excluded", sa.Text),
        sa.Column("candidate", sa.Integer),
        sa.Column("confidence", sa.Float),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("sample", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
    )
    op.create_index("ix_answers_node", "answers", ["node"])
    _child(
        "candidates",
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("strength", sa.Float, nullable=False),
        sa.Column("log_strength", sa.Float),
        sa.Column("stderr", sa.Float),
        sa.Column("votes", sa.Float),
        sa.Column("mean_rank", sa.Float),
        sa.Column("nodes", sa.Text, nullable=False),
    )
    _child(
        "judgments",
        sa.Column("judge", sa.String(200), nullable=False),
        sa.Column("first", sa.Integer, nullable=False),
        sa.Column("second", sa.Integer, nullable=False),
        sa.Column("verdict", sa.String(1), nullable=False),
        sa.Column("reasoning", sa.Text, nullable=False),
        sa.Column("probability", sa.Float),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("retried", sa.Boolean, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
    )
    op.create_index("ix_judgments_judge", "judgments", ["judge"])


def downgrade() -> None:
    for name in ("judgments", "candidates", "answers", "rounds"):
        op.drop_table(name)
