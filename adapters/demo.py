"""The demo: the nightly job end to end on a SQLite file of deterministic synthetic data.

1. Generate users, items and ratings (:func:`recmeta.make_synthetic`); the latest ratings of
   every user are kept aside as "tomorrow", to measure quality on.
2. Create ``demo.db``, migrate it, load the items, the users and the ratings of the users
   of day one into ``demo_items``, ``demo_users`` and ``recmeta_interactions``.
3. Train on the database (as ``recmeta train``) and register the model.
4. New users arrive: their ratings are added to the database.
5. Run the nightly job (as ``recmeta score``) over everyone, writing top-N.
6. Rank each user's held-out ratings with the adapted model and with item popularity, and
   compare (MeLU's nDCG@k with gains ``2^rating - 1``), for day-one and new users apart.

Everything is written under one directory, and only ``demo.db`` and ``model/`` in it are
replaced on a rerun.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recmeta import columns as C
from recmeta.metrics import melu_ndcg

from . import migrate, training
from .scoring import NightlyJob, ScoreSettings
from .sql import Entities, SqlReader, SqlSource

SOURCE = SqlSource(users=Entities("demo_users", C.USER), items=Entities("demo_items", C.ITEM))
KS = (3, 10)


@dataclass(frozen=True)
class DemoOptions:
    """Sizes and seed of the demo; the defaults run in about a minute on two CPU cores."""

    directory: Path = Path("recmeta-demo")
    n_users: int = 2000
    n_items: int = 600
    new_users: float = 0.2
    epochs: int = 8
    seed: int = 0
    holdout: int = 10
    n: int = 10


@dataclass
class Split:
    """The generated data, cut by time and by user."""

    users: pd.DataFrame
    items: pd.DataFrame
    past: pd.DataFrame  # what the database holds, all users
    future: pd.DataFrame  # the held-out latest ratings of every user
    new_users: np.ndarray  # ids of the users who arrive after training


def make_split(options: DemoOptions) -> Split:
    """Synthetic data; per user the latest ``holdout`` ratings held out; some users new."""
    from recmeta import make_synthetic

    lo = options.holdout + 5
    data = make_synthetic(options.n_users, options.n_items, ratings_per_user=(lo, 4 * lo),
                          random_state=options.seed)
    rows = data.interactions.sort_values([C.USER, C.TIME], kind="stable")
    from_end = rows.groupby(C.USER).cumcount(ascending=False).to_numpy()
    rng = np.random.default_rng(options.seed)
    n_new = round(options.new_users * options.n_users)
    new = np.sort(rng.choice(data.users[C.USER].to_numpy(), size=n_new, replace=False))
    return Split(data.users, data.items, rows[from_end >= options.holdout],
                 rows[from_end < options.holdout], new)


def run_demo(options: DemoOptions, progress: bool | None = None,
             log: Callable[[str], None] | None = None) -> dict:
    """Run every step; returns a report (sizes, timings, run summary, quality)."""
    log = log or (lambda message: None)
    directory = options.directory
    directory.mkdir(parents=True, exist_ok=True)
    db, model_dir = directory / "demo.db", directory / "model"
    db.unlink(missing_ok=True)
    shutil.rmtree(model_dir, ignore_errors=True)
    timings, clock = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    log(f"generating {options.n_users} users x {options.n_items} items into {db}")
    split = make_split(options)
    engine = sa.create_engine(f"sqlite:///{db}")
    revision = migrate.upgrade(engine)
    day_one = ~split.past[C.USER].isin(split.new_users)
    _load(engine, split, split.past[day_one.to_numpy()])
    lap("data")
    log("training on the users of day one")
    model, model_id = _train(engine, model_dir, options, progress)
    lap("train")
    _insert(engine, split.past[~day_one.to_numpy()])
    log("new users arrived; running the nightly job over everyone")
    job = NightlyJob.start(engine, SOURCE, str(model_dir), ScoreSettings(n=options.n))
    run = job.run(progress)
    lap("score")
    quality = evaluate(model, split, options.seed)
    lap("evaluate")
    return {"options": options, "db": str(db), "url": f"sqlite:///{db}",
            "model_dir": str(model_dir), "model_id": model_id, "revision": revision,
            "n_ratings": len(split.past) + len(split.future), "n_new": len(split.new_users),
            "epochs": model.n_epochs_, "run": run, "quality": quality, "timings_s": timings}


def _load(engine: sa.Engine, split: Split, interactions: pd.DataFrame) -> None:
    split.users.to_sql("demo_users", engine, index=False)
    split.items.to_sql("demo_items", engine, index=False)
    _insert(engine, interactions)


def _insert(engine: sa.Engine, interactions: pd.DataFrame) -> None:
    """Append to recmeta's default interactions table (ids as text, as it stores them)."""
    rows = interactions[[C.USER, C.ITEM, C.RATING, C.TIME]].astype(
        {C.USER: str, C.ITEM: str})
    rows.to_sql("recmeta_interactions", engine, if_exists="append", index=False,
                chunksize=20_000)


def _train(engine: sa.Engine, out: Path, options: DemoOptions, progress: bool | None):
    reader = SqlReader(engine, SOURCE)
    X, y, _ = training.frame_from_sql(reader)
    params = {"user_features": reader.user_features, "item_features": reader.item_features,
              "max_epochs": options.epochs, "random_state": options.seed,
              "verbose": 0 if progress is False else 1}
    model, metrics = training.fit_and_save(X, y, params, out)
    return model, training.register(engine, out, model, metrics, "demo")


def evaluate(model, split: Split, seed: int) -> dict:
    """nDCG@k of each user's held-out ratings ranked by the adapted model and by popularity,
    for day-one and new users apart."""
    def frame(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows.astype({C.USER: str, C.ITEM: str}).merge(
            split.users.astype({C.USER: str}), on=C.USER).merge(
            split.items.astype({C.ITEM: str}), on=C.ITEM)
        return out

    # shuffled, so that ties in a score fall in a random order (see recmeta.metrics)
    future = frame(split.future.sample(frac=1.0, random_state=seed))
    past = frame(split.past)
    predicted = model.predict(future.drop(columns=[C.RATING]),
                              history_X=past.drop(columns=[C.RATING]),
                              history_y=past[C.RATING].to_numpy())
    popularity = past[C.ITEM].value_counts()
    popular = future[C.ITEM].map(popularity).fillna(0).to_numpy(np.float64)
    new = future[C.USER].isin(pd.Index(split.new_users).astype(str)).to_numpy()
    out = {}
    for group, rows in (("day_one", ~new), ("new", new)):
        if not rows.any():
            continue
        users, truth = future[C.USER].to_numpy()[rows], future[C.RATING].to_numpy()[rows]
        out[group] = {name: {f"ndcg@{k}": round(melu_ndcg(users, truth, scores[rows], k), 4)
                             for k in KS}
                      for name, scores in (("recmeta", predicted), ("popularity", popular))}
    return out
