"""The nightly job: score every user in batches and write top-N back, resumably.

For each batch of users (in id order, after the checkpoint): read their histories in one
query, adapt and score them with the estimator, then write their recommendations and the
new checkpoint **in one transaction**. A run killed at any point therefore holds whole
batches only, and ``resume`` continues after the last committed one with the options the
run was started with, writing exactly the rows an uninterrupted run would have written.

A batch that fails rolls back whole; the run is marked ``failed`` with the error, and can
be resumed. How imperfect rows and users are handled is described in
:mod:`recmeta.adapters.batch`; every case is counted in the summary.

Examples
--------
>>> from recmeta.adapters.scoring import ScoreSettings
>>> ScoreSettings(n=20).to_dict()["n"]
20
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from tqdm.auto import tqdm

from recmeta.exceptions import DataError

from . import registry, runs
from .batch import BatchScorer, Counts, check_feedback
from .migrate import require_head
from .sql import Entities, Interactions, SqlReader, SqlSource

if TYPE_CHECKING:
    from recmeta import MetaRecommender

logger = logging.getLogger("recmeta")

TABLE_NAMES = {"user": "users", "item": "items", "candidates": "candidates"}  # in the summary


class JobFailed(RuntimeError):
    """A batch failed: its transaction was rolled back and the run marked failed.

    Attributes
    ----------
    summary : dict
        The run's summary at the time it failed (status ``"failed"``, ``error`` set).
    """

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class ScoreSettings:
    """What a run does.

    Parameters
    ----------
    n : int, default=10
        Recommendations written per user.
    batch_size : int, default=500
        Users per batch (and per transaction). Peak memory grows with it (a MeLU-size
        model at MovieLens-1M size: about 0.9 GiB at 250, 1.6 GiB at 1000); speed hardly.
    history : int or None, default=None
        Interactions read per user, the latest; None takes the model's ``max_history``.
    exclude_seen : bool, default=True
        Never recommend an item from the user's history.
    skip_cold : bool, default=False
        Skip users with no usable history instead of scoring them from their features.
    """

    n: int = 10
    batch_size: int = 500
    history: int | None = None
    exclude_seen: bool = True
    skip_cold: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def source_to_dict(source: SqlSource) -> dict:
    return dataclasses.asdict(source)


def source_from_dict(data: dict) -> SqlSource:
    def entities(value):
        if value is None:
            return None
        features = value.get("features")
        return Entities(**{**value, "features": None if features is None else tuple(features)})

    return SqlSource(Interactions(**data["interactions"]), entities(data.get("users")),
                     entities(data.get("items")), entities(data.get("candidates")))


class NightlyJob:
    """One scoring run: made by :meth:`start` (:meth:`prepare`, then :meth:`create`) or
    :meth:`resume`, then :meth:`run`.

    Examples
    --------
    ``job = NightlyJob.start(engine, SqlSource(), "models/m1", ScoreSettings(n=20))``,
    then ``summary = job.run()``; after a crash, ``NightlyJob.resume(engine, run_id).run()``.
    """

    def __init__(self, reader: SqlReader, settings: ScoreSettings,
                 entry: registry.ModelEntry, model: MetaRecommender,
                 run_id: int | None = None, resumed: bool = False):
        self.engine, self.source, self.reader = reader.engine, reader.source, reader
        self.settings, self.entry, self.model = settings, entry, model
        self.run_id, self.resumed = run_id, resumed

    @classmethod
    def start(cls, engine: sa.Engine, source: SqlSource, model: str,
              settings: ScoreSettings) -> NightlyJob:
        """:meth:`prepare`, then :meth:`create`: a run, status running."""
        job = cls.prepare(engine, source, model, settings)
        job.create()
        return job

    @classmethod
    def prepare(cls, engine: sa.Engine, source: SqlSource, model: str,
                settings: ScoreSettings) -> NightlyJob:
        """Check everything that can be checked; no run exists until :meth:`create`.

        A missing table or column, an unknown or unreadable model: these fail here, before
        any run exists.
        """
        from recmeta import MetaRecommender

        require_head(engine)
        reader = SqlReader(engine, source)

        def checked(fitted: MetaRecommender) -> MetaRecommender:
            with engine.connect() as conn:
                check_feedback(fitted, source.interactions.rating, reader.rating_sample(conn))
            return fitted

        # a directory is read and checked before it is registered, so a broken one, or one
        # the mapping contradicts, is never registered
        fitted = checked(MetaRecommender.load(model)) if Path(model).is_dir() else None
        entry = registry.resolve(engine, model)
        if fitted is None:
            fitted = checked(MetaRecommender.load(entry.artifact))
        return cls(reader, settings, entry, fitted)

    def create(self) -> int:
        """Create the run (status running); returns its id. ``run_id`` is set before the row
        commits: however it is interrupted, :meth:`stopped` finds the run if it exists."""
        parameters = {"source": source_to_dict(self.source),
                      "settings": self.settings.to_dict(),
                      "model_fingerprint": registry.fingerprint(self.entry.artifact)}
        with self.engine.begin() as conn:
            self.run_id = runs.create(conn, self.entry.id, parameters)
        logger.info("run %d started (resume with --resume %d)", self.run_id, self.run_id)
        return self.run_id

    @classmethod
    def resume(cls, engine: sa.Engine, run_id: int) -> NightlyJob:
        """Continue run ``run_id`` after its last committed batch, with its own options and
        its own model: a model directory changed since the run started is refused."""
        from recmeta import MetaRecommender

        require_head(engine)
        state = runs.load(engine, run_id)
        params = state.parameters
        with engine.connect() as conn:
            entry = registry.get(conn, state.model_id)
        job = cls(SqlReader(engine, source_from_dict(params["source"])),
                  ScoreSettings(**params["settings"]), entry,
                  MetaRecommender.load(entry.artifact), run_id, resumed=True)
        started = params.get("model_fingerprint")
        if started is not None and started != registry.fingerprint(entry.artifact):
            raise DataError(
                f"The model directory {entry.artifact} has changed since run {run_id} "
                f"started (retrained into the same --out?): resuming would mix two models' "
                f"recommendations in one run. Start a new run with `recmeta score`.")
        return job

    # -------------------------------------------------------------------- run
    def run(self, progress: bool | None = None) -> dict:
        """Score every user not yet scored; returns the run's summary.

        Parameters
        ----------
        progress : bool or None
            A progress bar on stderr: always, never, or (None) when stderr is a terminal.

        Raises
        ------
        JobFailed
            A batch failed; the run is marked failed and can be resumed.
        """
        state = runs.load(self.engine, self.run_id)
        if state.status == runs.FINISHED:
            return self._summary(state.status, state.checkpoint or {}, None)
        tally = Progress.resume(state.checkpoint)
        try:
            runs.set_status(self.engine, self.run_id, runs.RUNNING)
            scorer = self._scorer()
            tally.catalogue(scorer)
            with self.engine.connect() as conn:
                total = self.reader.count_users(conn)
                tally.survey(self.reader, conn)
            with tqdm(total=total, initial=tally.counts.users_seen, unit="user",
                      desc=f"run {self.run_id}", leave=False,
                      disable=None if progress is None else not progress) as bar:
                self._loop(scorer, state.batches_done, tally, bar)
        except runs.RunConflict:
            raise
        except BaseException as exc:
            error = _describe(exc)
            # the frames it was raised through may hold an open cursor (a SIGTERM or SIGINT
            # can land in a read): let it go, or on SQLite its lock blocks marking the run
            traceback.clear_frames(exc.__traceback__)
            self._mark_failed(error)
            if not isinstance(exc, Exception):
                raise
            committed = runs.load(self.engine, self.run_id).checkpoint or {}
            raise JobFailed(f"Run {self.run_id} failed: {error}. Fix the cause and resume "
                            f"it with --resume {self.run_id}.",
                            self._summary(runs.FAILED, committed, error)) from exc
        checkpoint = tally.checkpoint()
        runs.set_status(self.engine, self.run_id, runs.FINISHED, checkpoint=checkpoint)
        return self._summary(runs.FINISHED, checkpoint, None)

    def summary(self) -> dict:
        """The run's summary as the database holds it now: its status, error and committed
        batches (after an interrupted :meth:`run`, what a resume continues from)."""
        return stored_summary(self.engine, self.run_id, self.resumed)

    def stopped(self, exc: BaseException) -> dict | None:
        """After ``exc`` (a KeyboardInterrupt, or a SIGTERM raised) stopped this process from
        :meth:`create` on: a run it created and left running is marked failed, as :meth:`run`
        marks one; returns the run's summary, or None if no run was created (rolled back)."""
        if self.run_id is None:
            return None
        try:
            state = runs.load(self.engine, self.run_id)
        except DataError:
            self.run_id = None
            return None
        if state.status == runs.RUNNING and not self.resumed:
            self._mark_failed(_describe(exc))
        return self.summary()

    def _scorer(self) -> BatchScorer:
        """The catalogue, read once per process: candidates, else the item table, else the
        model's items."""
        with self.engine.connect() as conn:
            items = self.reader.features(conn, "item")
            candidates = self.reader.features(conn, "candidates")
        s = self.settings
        return BatchScorer(self.model, s.n, s.exclude_seen, s.skip_cold, items,
                           candidates if candidates is not None else items)

    def _loop(self, scorer: BatchScorer, done: int, progress: Progress, bar) -> None:
        """Batch after batch: read, score, then write rows and checkpoint in one transaction."""
        last_n = self.settings.history or self.model.max_history
        while True:
            t0 = time.perf_counter()
            with self.engine.connect() as conn:
                users = self.reader.next_users(conn, progress.last_user,
                                               self.settings.batch_size)
                if not users:
                    return
                history = self.reader.histories(conn, users, last_n)
                user_table = self.reader.features(conn, "user", users)
            t1 = time.perf_counter()
            recs, counts = scorer.score(users, history, user_table)
            t2 = time.perf_counter()
            with self.engine.begin() as conn:
                runs.write(conn, self.run_id, recs)
                progress.add(users[-1], counts, read=t1 - t0, score=t2 - t1,
                             write=time.perf_counter() - t2)
                runs.advance(conn, self.run_id, done, progress.checkpoint())
            done += 1
            bar.update(len(users))

    def _mark_failed(self, error: str) -> None:
        try:
            runs.set_status(self.engine, self.run_id, runs.FAILED, error=error)
        except Exception:  # the database itself may be what failed
            logger.exception("could not mark run %d failed", self.run_id)

    def _summary(self, status: str, checkpoint: dict, error: str | None) -> dict:
        return summary(self.run_id, self.entry.id, status, self.resumed, checkpoint, error)


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
        nulls = reader.null_keys(conn)
        self.feature_tables = {
            TABLE_NAMES[side]: {"null_keys": nulls[side], "duplicate_keys": count,
                                "first_duplicates": [_jsonable_id(k) for k in first]}
            for side, (count, first) in reader.duplicate_keys(conn).items()}

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
                                     "null_rating": c.dropped_null_rating,
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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:2000]
