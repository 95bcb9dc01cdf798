"""recmeta's own tables, as SQLAlchemy Core metadata.

The Alembic history in :mod:`recmeta.migrations` creates exactly these tables (a test holds
the two equal); the runtime code reads and writes them through the objects below. Every
name starts with ``recmeta_`` so they sit beside the host application's tables, and the
version table of recmeta's Alembic history is :data:`VERSION_TABLE`.

Ids of users and items are stored as text (up to 255 characters), so integer, string and
UUID ids all fit; an integer id ``42`` is written as ``"42"``.
"""

from __future__ import annotations

import sqlalchemy as sa

VERSION_TABLE = "recmeta_alembic_version"
ID_LENGTH = 255

metadata = sa.MetaData()

interactions = sa.Table(
    "recmeta_interactions", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("user_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("item_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("rating", sa.Float(), nullable=True),
    sa.Column("timestamp", sa.BigInteger(), nullable=True),
    sa.Index("ix_recmeta_interactions_user_time", "user_id", "timestamp", "item_id"),
    comment="Default interactions table, for applications that have none of their own.",
)

models = sa.Table(
    "recmeta_models", metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("parameters", sa.JSON(), nullable=False),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("artifact", sa.String(1024), nullable=False),
    comment="Model registry: one row per trained model directory.",
)

runs = sa.Table(
    "recmeta_runs", metadata,
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

recommendations = sa.Table(
    "recmeta_recommendations", metadata,
    sa.Column("run_id", sa.Integer(), sa.ForeignKey("recmeta_runs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("rank", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    comment="Top-N per user and run; the primary key makes rewriting a batch idempotent.",
)

RUN_STATUSES = ("running", "finished", "failed")
