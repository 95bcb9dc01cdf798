"""The two evaluation protocols, run for several seeds, into one long frame of results.

(a) :func:`melu_states`: MeLU's four states. The methods learn from the warm state (the
    support sets of its users with 13 to 100 ratings, by default); in every state each such
    user's 10 query ratings are predicted after adapting on the rest. MAE, RMSE, nDCG@1 and
    nDCG@3 as MeLU defines them.
(b) :func:`support_curves`: new users. Users are split into training users and new users;
    each new user is shown ``k`` of its ratings for ``k`` in ``ks``, then its 10 query
    ratings are predicted (MAE, RMSE) and a candidate list of its query items plus 100 items
    it never rated is ranked (nDCG@10 and Recall@10, relevant = a query rating of 4 or more,
    a 1 on 0/1 feedback, or of ``relevant_from``). On 0/1 feedback (every rating 0 or 1) the
    curves rank alone: no MAE or RMSE (see :func:`support_curves`).

Every result row is (protocol, dataset, setting, method, seed, metric, value); every fit
adds a row to the timings (protocol, dataset, method, seed, seconds, n_epochs, best_epoch,
blend_weight); every split adds a row to the counts (protocol, dataset, setting, seed,
users, query_ratings, ranked_users): how many users the metrics average over, which is what
says how noisy they are. ``ranked_users`` is the curves' users with a relevant candidate,
the only ones nDCG@10 and Recall@10 average over; the curves' counts are one row per seed,
setting ``"every k"``, as every ``k`` scores the same query sets.
Only the users carved out inside the neural methods' ``fit`` (validation users of the
training state) ever steer training; the reported query sets never do.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import columns as C
from .. import metrics as M
from ..datasets import MELU_STATES, MeluData, RatingData
from ..exceptions import DataError
from . import methods as methods_
from .splits import RELEVANT, check_ratings, new_users, support_query

logger = logging.getLogger("recmeta")

KS = (0, 1, 3, 5, 10, 20)
RELEVANT_FROM = 4.0  # MovieLens' 4 of 5: the curves' relevance threshold on ratings
RESULT_COLUMNS = ["protocol", "dataset", "setting", "method", "seed", "metric", "value"]
TIMING_COLUMNS = ["protocol", "dataset", "method", "seed", "seconds", "n_epochs", "best_epoch",
                  "blend_weight"]
COUNT_COLUMNS = ["protocol", "dataset", "setting", "seed", "users", "query_ratings",
                 "ranked_users"]
EVERY_K = "every k"


@dataclass
class Results:
    """Metric values, fit timings and the users each split evaluated, one row each."""

    metrics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RESULT_COLUMNS))
    timings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TIMING_COLUMNS))
    counts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COUNT_COLUMNS))

    def __add__(self, other: Results) -> Results:
        return Results(_concat(self.metrics, other.metrics), _concat(self.timings, other.timings),
                       _concat(self.counts, other.counts))


@dataclass
class _Collector:
    protocol: str
    dataset: str
    rows: list = field(default_factory=list)
    fits: list = field(default_factory=list)
    sizes: list = field(default_factory=list)

    def add(self, setting, method: str, seed: int, values: dict) -> None:
        for metric, value in values.items():
            self.rows.append((self.protocol, self.dataset, setting, method, seed, metric,
                              float(value)))

    def fitted(self, method: str, seed: int, info: methods_.FitInfo) -> None:
        self.fits.append((self.protocol, self.dataset, method, seed, info.seconds,
                          info.n_epochs, info.best_epoch, info.blend_weight))
        logger.info("%s/%s seed %d: %s fitted in %.1f s (%d epochs)", self.protocol,
                    self.dataset, seed, method, info.seconds, info.n_epochs)

    def counted(self, setting, seed: int, query: pd.DataFrame,
                candidates: pd.DataFrame | None = None) -> None:
        """The users and query ratings one split scores (and, for the candidates, the users
        with a relevant one: those nDCG@k and Recall@k average over)."""
        ranked = (np.nan if candidates is None
                  else int(candidates.groupby(C.USER, sort=False)[RELEVANT].any().sum()))
        self.sizes.append((self.protocol, self.dataset, setting, seed,
                           int(query[C.USER].nunique()), len(query), ranked))

    def results(self) -> Results:
        return Results(pd.DataFrame(self.rows, columns=RESULT_COLUMNS),
                       pd.DataFrame(self.fits, columns=TIMING_COLUMNS),
                       pd.DataFrame(self.sizes, columns=COUNT_COLUMNS))


def melu_states(melu: MeluData, methods: Sequence[str], seeds: Sequence[int] = (0, 1, 2), *,
                states: Sequence[str] = MELU_STATES, n_query: int = 10,
                train_users: str = "eligible", neural_params: dict | None = None,
                max_users: int | None = None,
                progress: Callable[[str], None] | None = None) -> Results:
    """Protocol (a): MeLU's four states.

    Parameters
    ----------
    melu : MeluData
        From :func:`recmeta.datasets.load_melu`.
    methods : sequence of str
        Names from :data:`recmeta.evaluate.methods.METHODS`.
    seeds : sequence of int
        One support/query shuffle (and neural initialisation) per seed.
    states : sequence of str
        The states to report; the warm state is always split, as the training data.
    n_query : int, default=10
    train_users : {"eligible", "all"}, default="eligible"
        Learn from the support sets of the warm users with 13 to 100 ratings (as MeLU), or
        from every warm-state rating except the warm query sets.
    neural_params : dict, default=None
        Extra MetaRecommender parameters (``max_epochs``, ``inner_steps``, ...).
    max_users : int, default=None
        Keep at most this many evaluated users per state (and training users), for quick runs.
    progress : callable, default=None
        Called with a line of text after every fit.
    """
    collect = _Collector("melu", "ml-1m")
    for seed in seeds:
        rng = np.random.default_rng(seed)
        splits = {s: _cap(support_query(melu.states[s], rng, n_query), max_users, rng)
                  for s in dict.fromkeys(("warm_state", *states))}
        train = splits["warm_state"].support
        if train_users == "all":
            warm = melu.states["warm_state"]
            held = splits["warm_state"].query
            train = warm.merge(held[[C.USER, C.ITEM]], how="left", indicator=True)
            train = train.loc[train["_merge"] == "left_only", [C.USER, C.ITEM, C.RATING]]
        for state in states:
            collect.counted(state, seed, splits[state].query)
        data = melu.state("warm_state").subset(train)
        for name, method in methods_.build(tuple(methods), data, seed, neural_params).items():
            collect.fitted(name, seed, method.fit(data))
            for state in states:
                split = splits[state]
                pred = (method.predict(split.query, split.support)
                        if method.predicts_ratings else None)
                scores = method.scores(split.query, split.support)
                collect.add(state, name, seed, _melu_metrics(split.query, pred, scores))
            if progress is not None:
                progress(f"melu seed {seed}: {name} done")
    return collect.results()


def support_curves(data: RatingData | pd.DataFrame, methods: Sequence[str],
                   seeds: Sequence[int] = (0, 1, 2),
                   *, ks: Sequence[int] = KS, n_query: int = 10, n_unrated: int = 100,
                   test_fraction: float = 0.2, k_top: int = 10,
                   relevant_from: float | None = None,
                   max_test_users: int | None = None, max_train_users: int | None = None,
                   neural_params: dict | None = None,
                   progress: Callable[[str], None] | None = None) -> Results:
    """Protocol (b): metric against the number ``k`` of a new user's ratings shown.

    Parameters
    ----------
    data : RatingData or DataFrame
        Any rating data with features (MovieLens, or your own), or your own ratings alone: a
        DataFrame with columns user_id, item_id and rating, a row per rating, ratings as
        numbers (0/1 feedback too; ids of any type), no missing value. Your own with
        features: ``RatingData(ratings, users, items, name)``, tables keyed by user_id and
        item_id (see :mod:`recmeta.datasets`). Ratings that do not read so raise a
        :class:`~recmeta.DataError` that says what is wrong.
    methods, seeds, neural_params, progress
        As in :func:`melu_states`.
    ks : sequence of int, default=(0, 1, 3, 5, 10, 20)
        Support sizes; new users need ``max(ks) + n_query`` ratings.
    n_query, n_unrated : int, default=10, 100
        Held-out ratings per new user, and never-rated items added to its candidates.
    test_fraction : float, default=0.2
        Share of users held out as new users.
    k_top : int, default=10
        The cut-off of nDCG and Recall.
    relevant_from : float, default=None
        A held-out rating at or above it is relevant to nDCG and Recall; there must be one.
        None: 4, as on MovieLens' 1 to 5 (with a warning where the ratings do not run up to
        5), and 1 on 0/1 feedback.
    max_test_users, max_train_users : int, default=None
        Bounds on the new users evaluated and the training users kept, for quick runs.

    On 0/1 feedback (every rating 0 or 1) no MAE or RMSE is computed, only nDCG and Recall:
    the neural methods then predict the probability of an interaction (learnt with sampled
    negatives) and the rating baselines a mean of 0s and 1s, whose errors are not
    comparable.
    """
    data = _rating_data(data)
    binary = bool(data.ratings[C.RATING].isin((0, 1)).all())  # 0/1 feedback: ranked alone
    given, relevant_from = relevant_from, relevance_threshold(data.ratings, relevant_from)
    if not (data.ratings[C.RATING] >= relevant_from).any():
        low, high = data.ratings[C.RATING].min(), data.ratings[C.RATING].max()
        raise DataError(f"No rating of {data.name!r} is {relevant_from:g} or more (they run "
                        f"from {low:g} to {high:g}), so no item would be relevant to nDCG and "
                        f"Recall. Set the rating from which an item counts as relevant "
                        f"(relevant_from, --relevant-from on the command line; MovieLens' is "
                        f"4 of 5).")
    if given is None and not binary and data.ratings[C.RATING].max() != 5:
        low, high = data.ratings[C.RATING].min(), data.ratings[C.RATING].max()
        warnings.warn(f"The ratings of {data.name!r} run from {low:g} to {high:g}, not 1 to 5, "
                      f"yet nDCG@{k_top} and Recall@{k_top} count one of {relevant_from:g} or "
                      f"more as relevant (MovieLens' 4 of 5). Set relevant_from "
                      f"(--relevant-from on the command line) to the rating from which an "
                      f"item is relevant on your scale.", UserWarning, stacklevel=2)
    collect = _Collector("curves", data.name)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        split = new_users(data.ratings, rng, test_fraction, max(ks), n_query, n_unrated,
                          relevant_from=relevant_from, max_test_users=max_test_users)
        collect.counted(EVERY_K, seed, split.query, split.candidates)
        train = _cap_users(split.train, max_train_users, rng)
        train_data = data.subset(train)
        for name, method in methods_.build(tuple(methods), train_data, seed,
                                           neural_params).items():
            collect.fitted(name, seed, method.fit(train_data))
            for k in ks:
                support = split.support(k)
                values = {}
                if method.predicts_ratings and not binary:
                    pred = method.predict(split.query, support)
                    values |= _errors(split.query, pred)
                scores = method.scores(split.candidates, support)
                values |= _top_k(split.candidates, scores, k_top)
                collect.add(int(k), name, seed, values)
            if progress is not None:
                progress(f"curves {data.name} seed {seed}: {name} done")
    return collect.results()


def _rating_data(data) -> RatingData:
    """``data`` checked, a frame of ratings alone as RatingData (ids, no features)."""
    if isinstance(data, pd.DataFrame):
        check_ratings(data)
        return RatingData(data, pd.DataFrame({C.USER: pd.unique(data[C.USER])}),
                          pd.DataFrame({C.ITEM: pd.unique(data[C.ITEM])}), "ratings")
    if not isinstance(data, RatingData):
        raise DataError(f"support_curves takes a RatingData or a DataFrame of ratings (user_id, "
                        f"item_id, rating), not {type(data).__name__}.")
    check_ratings(data.ratings, f"The ratings frame of {data.name!r}" if data.name
                  else "The ratings frame")
    return data


def relevance_threshold(ratings: pd.DataFrame, relevant_from: float | None = None) -> float:
    """The rating from which the curves count a held-out item as relevant: ``relevant_from``
    where set, else a 1 on 0/1 feedback (every rating 0 or 1) and 4 on any other scale."""
    if relevant_from is not None:
        return float(relevant_from)
    return 1.0 if ratings[C.RATING].isin((0, 1)).all() else RELEVANT_FROM


def _errors(query: pd.DataFrame, pred: np.ndarray) -> dict:
    users, y = query[C.USER].to_numpy(), query[C.RATING].to_numpy(dtype=np.float64)
    return {"MAE": M.mae(users, y, pred), "RMSE": M.rmse(users, y, pred)}


def _melu_metrics(query: pd.DataFrame, pred: np.ndarray | None, scores: np.ndarray) -> dict:
    """MAE and RMSE of the predicted ratings (None: the method predicts none), and MeLU's
    nDCG of the order of ``scores`` (the predictions before clipping to the scale)."""
    users, y = query[C.USER].to_numpy(), query[C.RATING].to_numpy(dtype=np.float64)
    values = _errors(query, pred) if pred is not None else {}
    return values | {"nDCG@1": M.melu_ndcg(users, y, scores, 1),
                     "nDCG@3": M.melu_ndcg(users, y, scores, 3)}


def _top_k(candidates: pd.DataFrame, scores: np.ndarray, k: int) -> dict:
    users, relevant = candidates[C.USER].to_numpy(), candidates[RELEVANT].to_numpy()
    return {f"nDCG@{k}": M.ndcg_at_k(users, relevant, scores, k),
            f"Recall@{k}": M.recall_at_k(users, relevant, scores, k)}


def _cap(split, max_users: int | None, rng: np.random.Generator):
    if max_users is None:
        return split
    users = pd.unique(split.query[C.USER])
    if len(users) <= max_users:
        return split
    keep = set(rng.choice(users, size=max_users, replace=False).tolist())
    split.support = split.support.loc[split.support[C.USER].isin(keep)].reset_index(drop=True)
    split.query = split.query.loc[split.query[C.USER].isin(keep)].reset_index(drop=True)
    return split


def _cap_users(ratings: pd.DataFrame, max_users: int | None,
               rng: np.random.Generator) -> pd.DataFrame:
    users = pd.unique(ratings[C.USER])
    if max_users is None or len(users) <= max_users:
        return ratings
    keep = rng.choice(users, size=max_users, replace=False)
    return ratings.loc[ratings[C.USER].isin(keep)].reset_index(drop=True)


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in (a, b) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else a
