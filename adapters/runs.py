"""Batch runs and the recommendations they write (``recmeta_runs``, ``recmeta_recommendations``).

A run's rows and its checkpoint are written in one transaction per batch, so after any
crash the database holds whole batches and a checkpoint that names exactly the last one.
The checkpoint advances by compare-and-set on ``batches_done``: two processes resuming the
same run can never both commit the same batch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from recmeta import columns as C
from recmeta.exceptions import DataError

from .tables import recommendations, runs

RUNNING, FINISHED, FAILED = "running", "finished", "failed"


class RunConflict(RuntimeError):
    """Another process advanced this run's checkpoint: only one may work on a run."""


@dataclass
class RunState:
    """A run as stored: what it was asked to do and how far it got."""

    id: int
    model_id: int
    status: str
    parameters: dict
    batches_done: int
    checkpoint: dict | None
    error: str | None


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create(conn: sa.Connection, model_id: int, parameters: dict) -> int:
    """Start a run in the transaction of ``conn``; returns its id."""
    result = conn.execute(runs.insert().values(
        model_id=model_id, status=RUNNING, started=now(), parameters=parameters,
        batches_done=0, checkpoint=None))
    return int(result.inserted_primary_key[0])


def load(engine: sa.Engine, run_id: int) -> RunState:
    """The stored state of run ``run_id``, or a DataError saying how to find one."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
    if row is None:
        raise DataError(f"There is no run {run_id} in recmeta_runs. Resume a run that exists "
                        f"(its id is in the JSON summary and on stderr when it starts).")
    return RunState(row["id"], row["model_id"], row["status"], row["parameters"],
                    row["batches_done"], row["checkpoint"], row["error"])


def set_status(engine: sa.Engine, run_id: int, status: str, error: str | None = None,
               checkpoint: dict | None = None) -> None:
    """Mark a run running, finished or failed (with the error that stopped it), and store
    its final checkpoint when given."""
    values = {"status": status, "error": error,
              "finished": now() if status != RUNNING else None}
    if checkpoint is not None:
        values["checkpoint"] = checkpoint
    with engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.id == run_id).values(**values))


def advance(conn: sa.Connection, run_id: int, done: int, checkpoint: dict) -> None:
    """Move the checkpoint from batch ``done`` to ``done + 1`` inside the batch's transaction."""
    result = conn.execute(
        runs.update().where(runs.c.id == run_id, runs.c.batches_done == done)
        .values(batches_done=done + 1, checkpoint=checkpoint))
    if result.rowcount != 1:
        raise RunConflict(f"Run {run_id} moved past batch {done} in another process; this "
                          f"process stops. Only one process may work on a run at a time.")


def write(conn: sa.Connection, run_id: int, frame: pd.DataFrame) -> int:
    """Upsert a frame of (user_id, item_id, score, rank) for ``run_id``; returns rows written.

    Ids are written as text. On SQLite and PostgreSQL this is ``INSERT .. ON CONFLICT DO
    UPDATE`` on the primary key (run, user, rank); elsewhere the batch's users are deleted
    and inserted in the same transaction. Either way, writing twice changes nothing.
    """
    if frame.empty:
        return 0
    rows = [{"run_id": run_id, "user_id": str(u), "item_id": str(i), "score": float(s),
             "rank": int(r)}
            for u, i, s, r in zip(frame[C.USER], frame[C.ITEM], frame[C.SCORE],
                                  frame[C.RANK], strict=True)]
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(conn.dialect.name)
    if dialect is None:
        users = sorted({row["user_id"] for row in rows})
        conn.execute(recommendations.delete().where(
            recommendations.c.run_id == run_id, recommendations.c.user_id.in_(users)))
        conn.execute(recommendations.insert(), rows)
        return len(rows)
    insert = dialect.insert(recommendations)
    conn.execute(insert.on_conflict_do_update(
        index_elements=["run_id", "user_id", "rank"],
        set_={"item_id": insert.excluded.item_id, "score": insert.excluded.score}), rows)
    return len(rows)


def read(engine: sa.Engine, run_id: int, user=None) -> pd.DataFrame:
    """The recommendations of a run (of one user), sorted by user and rank."""
    table = recommendations
    query = sa.select(table.c.user_id, table.c.item_id, table.c.score, table.c.rank).where(
        table.c.run_id == run_id).order_by(table.c.user_id, table.c.rank)
    if user is not None:
        query = query.where(table.c.user_id == str(user))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(), columns=list(C.RECOMMENDATION_COLUMNS))
