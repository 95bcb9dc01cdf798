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
from .batch import BatchScorer, check_feedback
from .migrate import require_head
from .sql import Entities, Interactions, SqlReader, SqlSource
from .summary import Progress, stored_summary, summary

if TYPE_CHECKING:
    from recmeta import MetaRecommender

logger = logging.getLogger("recmeta")


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
                 run_id: int | None = None, resumed: bool = False,
                 state: runs.RunState | None = None):
        self.engine, self.source, self.reader = reader.engine, reader.source, reader
        self.settings, self.entry, self.model = settings, entry, model
        self.run_id, self.resumed = run_id, resumed
        self.state = state  # the run as :meth:`resume` found it: its status, its batches
        self.written = 0  # recommendations this process committed (the run's may be more)

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
        entry = registry.resolve(engine, model, fitted)
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
                  MetaRecommender.load(entry.artifact), run_id, resumed=True, state=state)
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
        self._committed = state.checkpoint or {}
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
            unmarked = self._mark_failed(error)
            if not isinstance(exc, Exception):
                raise
            if unmarked is not None:  # the database itself went away: say so, in one line
                raise JobFailed(
                    f"Run {self.run_id} failed: {error.rstrip('.')}. The database could not "
                    f"mark it failed either ({unmarked.rstrip('.')}), so it stays marked "
                    f"running with the batches it committed: once the database answers "
                    f"again, resume it with --resume {self.run_id}.",
                    self._summary(runs.RUNNING, self._committed, error)) from exc
            committed = runs.load(self.engine, self.run_id).checkpoint or {}
            raise JobFailed(f"Run {self.run_id} failed: {error.rstrip('.')}. Fix the cause and "
                            f"resume it with --resume {self.run_id}.",
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
                older = (self.reader.older_items(conn, history, last_n)
                         if self.settings.exclude_seen else None)
                user_table = self.reader.features(conn, "user", users)
            t1 = time.perf_counter()
            recs, counts = scorer.score(users, history, user_table, older)
            t2 = time.perf_counter()
            with self.engine.begin() as conn:
                runs.write(conn, self.run_id, recs)
                progress.add(users[-1], counts, read=t1 - t0, score=t2 - t1,
                             write=time.perf_counter() - t2)
                checkpoint = progress.checkpoint()
                runs.advance(conn, self.run_id, done, checkpoint)
            self._committed = checkpoint  # what the database holds, should it go away
            self.written += counts.recommendations
            done += 1
            bar.update(len(users))

    def _mark_failed(self, error: str) -> str | None:
        """Mark the run failed; returns None, or why the database could not be told (it may
        be what failed), which is logged in one line: a resume takes a run left running."""
        try:
            runs.set_status(self.engine, self.run_id, runs.FAILED, error=error)
        except Exception as exc:
            why = _describe(exc)
            logger.warning("could not mark run %d failed: %s", self.run_id, why)
            return why
        return None

    def _summary(self, status: str, checkpoint: dict, error: str | None) -> dict:
        return summary(self.run_id, self.entry.id, status, self.resumed, checkpoint, error)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:2000]
