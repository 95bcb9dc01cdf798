"""Default interactions table and the model registry.

Revision ID: 0001
Revises:
Create Date: 2025-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# the tables downgrade() drops: `recmeta db downgrade` asks before it drops rows
drops_on_downgrade: tuple[str, ...] = ("recmeta_models", "recmeta_interactions")


def upgrade() -> None:
    op.create_table(
        "recmeta_interactions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("rating", sa.Float(), nullable=True),
        sa.Column("timestamp", sa.BigInteger(), nullable=True),
        comment="Default interactions table, for applications that have none of their own.",
    )
    # (user, time, item): the order of "the last N per user", read backwards, LIMIT N
    op.create_index("ix_recmeta_interactions_user_time", "recmeta_interactions",
                    ["user_id", "timestamp", "item_id"])
    op.create_table(
        "recmeta_models",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artifact", sa.String(1024), nullable=False),
        comment="Model registry: one row per trained model directory.",
    )


def downgrade() -> None:
    op.drop_table("recmeta_models")
    op.drop_index("ix_recmeta_interactions_user_time", table_name="recmeta_interactions")
    op.drop_table("recmeta_interactions")
