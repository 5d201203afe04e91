"""Rounds saved under ``[trust]`` are marked (``rounds.trusted``): each must have its ledger entries.

Since this revision a trusted round and the ledger entries that record it are written in one
transaction, and ``swarmrank ledger verify`` reports a trusted round without them. Rounds that the
ledger already records are marked here; a round stored before this revision whose entries were
never written cannot be told from a round of a swarm without trust, and stays unmarked.

Revision ID: m006_trusted_rounds
Revises: m004_api_keys
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "m006_trusted_rounds"
down_revision = "m005_eval_dollars"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    op.add_column("rounds", sa.Column("trusted", sa.Boolean(), nullable=False, server_default=sa.false()))
    conn = op.get_bind()
    recorded = set()
    for (payload,) in conn.execute(sa.text("SELECT payload FROM ledger WHERE kind = 'round'")):
        try:
            round_id = json.loads(payload).get("round_id")
        except (ValueError, AttributeError):
            continue  # a damaged entry: `ledger verify` reports it
        if isinstance(round_id, str):
            recorded.add(round_id)
    ids = sorted(recorded)
    for start in range(0, len(ids), _BATCH):
        conn.execute(sa.text("UPDATE rounds SET trusted = :yes WHERE id IN :ids")
                     .bindparams(sa.bindparam("ids", expanding=True)),
                     {"yes": True, "ids": ids[start:start + _BATCH]})


def downgrade() -> None:
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("trusted")
