"""Batch scoring runs (with their checkpoint) and the recommendations they write.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# the tables downgrade() drops: `recmeta db downgrade` asks before it drops rows
drops_on_downgrade: tuple[str, ...] = ("recmeta_recommendations", "recmeta_runs")


def upgrade() -> None:
    op.create_table(
        "recmeta_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("recmeta_models.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("batches_done", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("checkpoint", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        comment="Batch scoring runs; checkpoint is committed with each batch's rows.",
    )
    op.create_table(
        "recmeta_recommendations",
        sa.Column("run_id", sa.Integer(),
                  sa.ForeignKey("recmeta_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("rank", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        comment="Top-N per user and run; the primary key makes rewriting a batch idempotent.",
    )


def downgrade() -> None:
    op.drop_table("recmeta_recommendations")
    op.drop_table("recmeta_runs")
