"""What a scoring run reports: its progress, committed with each batch, and its summary.

:class:`Progress` is the checkpoint of a run: where it is (the last user of the last
committed batch), what it has counted and how long it took, added up over every process
that worked on it. :func:`summary` turns a checkpoint into the JSON summary that
``recmeta score`` prints; :func:`stored_summary` reads it from the database.
:func:`feature_table_counts` is what both the job and ``recmeta train`` report of the
feature tables.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import runs
from .batch import Counts

if TYPE_CHECKING:
    from .batch import BatchScorer
    from .sql import SqlReader

TABLE_NAMES = {"user": "users", "item": "items", "candidates": "candidates"}  # in the summary


@dataclass
class Progress:
    """What a run has done so far: the checkpoint, as it is committed with each batch.

    Counts and timings add up over every process that worked on the run; ``elapsed_s`` is
    the time spent working on it, not counting the time it lay killed.
    """

    last_user: object = None
    counts: Counts = dataclasses.field(default_factory=Counts)
    timings: dict = dataclasses.field(
        default_factory=lambda: {"read": 0.0, "score": 0.0, "write": 0.0})
    elapsed_before: float = 0.0
    started: float = dataclasses.field(default_factory=time.perf_counter)
    n_candidates: int | None = None
    candidates_dropped: int = 0
    not_in_users_table: int = 0
    null_user_id: int = 0
    feature_tables: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def resume(cls, checkpoint: dict | None) -> Progress:
        c = checkpoint or {}
        progress = cls(c.get("last_user"), Counts.from_dict(c.get("counts")),
                       elapsed_before=float(c.get("elapsed_s", 0.0)))
        progress.timings.update(c.get("timings_s") or {})
        return progress

    def catalogue(self, scorer: BatchScorer) -> None:
        self.n_candidates, self.candidates_dropped = (scorer.n_candidates(),
                                                      scorer.candidates_dropped)

    def survey(self, reader: SqlReader, conn: sa.Connection) -> None:
        """What no batch sees, counted over whole tables once per run: users the users table
        lacks, interactions without a user id, feature table rows without a key or sharing
        one."""
        self.not_in_users_table = reader.count_users_without_row(conn)
        self.null_user_id = reader.count_rows_without_user(conn)
        self.feature_tables = feature_table_counts(reader, conn)

    def add(self, last_user, counts: Counts, **seconds: float) -> None:
        self.last_user = _jsonable_id(last_user)
        self.counts += counts
        for name, value in seconds.items():
            self.timings[name] += value

    def checkpoint(self) -> dict:
        return {"last_user": self.last_user, "counts": self.counts.to_dict(),
                "timings_s": dict(self.timings), "n_candidates": self.n_candidates,
                "candidates_dropped": self.candidates_dropped,
                "not_in_users_table": self.not_in_users_table,
                "null_user_id": self.null_user_id,
                "feature_tables": self.feature_tables,
                "elapsed_s": self.elapsed_before + time.perf_counter() - self.started}


def feature_table_counts(reader: SqlReader, conn: sa.Connection) -> dict:
    """Per feature table (by its name in the summary): rows whose key is NULL, keys on more
    than one row, and the first of those; what the job and ``recmeta train`` report."""
    nulls = reader.null_keys(conn)
    return {TABLE_NAMES[side]: {"null_keys": nulls[side], "duplicate_keys": count,
                                "first_duplicates": [_jsonable_id(k) for k in first]}
            for side, (count, first) in reader.duplicate_keys(conn).items()}


def stored_summary(engine: sa.Engine, run_id: int, resumed: bool) -> dict:
    """The summary of run ``run_id`` as the database holds it."""
    state = runs.load(engine, run_id)
    return summary(run_id, state.model_id, state.status, resumed, state.checkpoint or {},
                   state.error)


def summary(run_id: int, model_id: int, status: str, resumed: bool, checkpoint: dict,
            error: str | None) -> dict:
    """The JSON summary of a run, from its checkpoint."""
    c = Counts.from_dict(checkpoint.get("counts"))
    elapsed = float(checkpoint.get("elapsed_s", 0.0))
    timings = {k: round(v, 3) for k, v in (checkpoint.get("timings_s") or {}).items()}
    return {
        "run_id": run_id, "model_id": model_id, "status": status, "resumed": resumed,
        "users": {"seen": c.users_seen, "scored": c.users_scored, "new": c.users_new,
                  "cold_start": c.users_cold,
                  "skipped": {"no_history": c.skipped_no_history,
                              "no_candidates": c.skipped_no_candidates},
                  "not_in_users_table": checkpoint.get("not_in_users_table", 0)},
        "history_rows": {"read": c.rows_read, "used": c.rows_used,
                         "dropped": {"null_user_id": checkpoint.get("null_user_id", 0),
                                     "null_item_id": c.dropped_null_item,
                                     # NULL, NaN or not a number ('n/a'): the key's
                                     # name is older than the reading, and kept
                                     "null_rating": c.dropped_null_rating,
                                     "off_scale": c.dropped_off_scale,
                                     "unknown_item": c.dropped_unknown_item,
                                     "duplicate": c.dropped_duplicate}},
        "candidates": {"items": checkpoint.get("n_candidates"),
                       "dropped_unknown": checkpoint.get("candidates_dropped", 0)},
        "feature_tables": checkpoint.get("feature_tables", {}),
        "recommendations_written": c.recommendations,
        "timings_s": {**timings, "total": round(elapsed, 3)},
        "users_per_s": round(c.users_scored / elapsed, 1) if elapsed > 0 else None,
        "error": error,
    }


def _jsonable_id(value):
    """A user id as the checkpoint stores it (JSON): ints and strings as they are."""
    if isinstance(value, bool | int | str):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)
