"""The methods an evaluation compares, behind one contract.

``fit(train)`` learns from a :class:`~recmeta.datasets.RatingData`; ``predict(query,
support)`` scores (user_id, item_id) rows, each user adapted on (or folded in from) its rows
of ``support`` (user_id, item_id, rating; None or empty for no history). The classic
baselines ignore side features; the neural methods join them from ``train``'s user and item
tables, so users and items unseen in training are scored from their features.

Names
-----
``global``, ``item``, ``popularity``, ``bias``, ``als``
    :mod:`recmeta.baselines` with their defaults.
``ials``
    :class:`recmeta.ials.ImplicitALS` with its defaults: who rated what, for ranking (no
    rating predicted).
``metasgd``, ``maml``, ``fomaml``
    :class:`~recmeta.MetaRecommender` meta-trained with that method and adapted per user.
``supervised``
    The same network trained on pooled rows, not adapted (``inner_steps=0``, and no ALS
    fold-in: ``mf_blend=0``).
``supervised-ft``
    That network fine-tuned per user with the meta methods' inner steps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import baselines as B
from .. import columns as C
from ..datasets import RatingData
from ..exceptions import DataError
from ..ials import ImplicitALS

if TYPE_CHECKING:  # imported where used, so the command line starts without torch
    from ..estimator import MetaRecommender

logger = logging.getLogger("recmeta")

BASELINES = {"global": B.GlobalMean, "item": B.ItemMean, "popularity": B.Popularity,
             "bias": B.BiasBaseline, "als": B.BiasedMF, "ials": ImplicitALS}
NEURAL = ("metasgd", "maml", "fomaml", "supervised", "supervised-ft", "metasgd-implicit")
METHODS = (*BASELINES, *NEURAL)
CLASSIC = tuple(BASELINES)
RANKERS = (*(n for n, c in BASELINES.items() if not c.predicts_ratings),
           *(n for n in NEURAL if n.endswith("-implicit")))  # they predict no rating


@dataclass
class FitInfo:
    """What fitting cost: seconds, and for the neural methods epochs run and kept, and
    the ALS blend's weight ``fit`` set (nan without a blend)."""

    seconds: float = 0.0
    n_epochs: int = 0
    best_epoch: int = 0
    blend_weight: float = float("nan")

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / self.n_epochs if self.n_epochs else float("nan")


class BaselineMethod:
    """A :mod:`recmeta.baselines` model under the evaluation contract."""

    def __init__(self, model: B.Baseline):
        self.model = model
        self.predicts_ratings = model.predicts_ratings

    def fit(self, train: RatingData) -> FitInfo:
        start = time.perf_counter()
        self.model.fit(train.ratings)
        return FitInfo(time.perf_counter() - start)

    def predict(self, query: pd.DataFrame, support: pd.DataFrame | None) -> np.ndarray:
        return self.model.predict(query, support)

    def scores(self, query: pd.DataFrame, support: pd.DataFrame | None) -> np.ndarray:
        """What to rank by: the predictions before clipping to the rating scale."""
        return self.model.scores(query, support)


@dataclass
class NeuralMethod:
    """A :class:`~recmeta.MetaRecommender` under the evaluation contract.

    Parameters
    ----------
    estimator : MetaRecommender
        Unfitted; cloned in ``fit``.
    adapt : bool, default=True
        False scores every user with the initialisation (``inner_steps=0``, ``mf_blend=0``).
    shared : dict, default=None
        A cache shared by methods built on one estimator (``supervised`` and
        ``supervised-ft``), so it is fitted once.
    implicit : bool, default=False
        Learn from who rated what, not how: every rating is a 1 (binary objective with
        sampled negatives), and scores are the probability of an interaction. For ranking
        items a user has not rated; it predicts no rating.
    """

    estimator: MetaRecommender
    adapt: bool = True
    shared: dict | None = None
    predicts_ratings: bool = True
    implicit: bool = False
    _features: RatingData | None = field(default=None, repr=False)

    def fit(self, train: RatingData) -> FitInfo:
        key = id(train)
        if self.shared is not None and self.shared.get("key") == key:
            self.model_, info = self.shared["model"], self.shared["info"]
        else:
            from sklearn.base import clone

            self.model_ = clone(self.estimator)
            start = time.perf_counter()
            self.model_.fit(train.X, self._target(train.y))
            weight = self.model_.blend_weight_
            info = FitInfo(time.perf_counter() - start, self.model_.n_epochs_,
                           self.model_.best_epoch_ + 1,
                           float("nan") if weight is None else weight)
            if self.shared is not None:
                self.shared.update(key=key, model=self.model_, info=info)
        self._features = train
        # the blend's weight as served: none for the network not adapted (see predict)
        return info if self.adapt else replace(info, blend_weight=float("nan"))

    def predict(self, query: pd.DataFrame, support: pd.DataFrame | None) -> np.ndarray:
        model = self.model_
        steps, blend = model.inner_steps, model.mf_blend
        if not self.adapt:  # nothing of the user's history: no steps, no ALS fold-in
            model.set_params(inner_steps=0, mf_blend=0.0)
        try:
            X = self._features.features(query)
            if support is None or len(support) == 0:
                return model.predict(X)
            history = self._features.features(support)
            return model.predict(X, history,
                                 self._target(support[C.RATING].to_numpy(dtype=np.float64)))
        finally:
            model.set_params(inner_steps=steps, mf_blend=blend)

    def scores(self, query: pd.DataFrame, support: pd.DataFrame | None) -> np.ndarray:
        """What to rank by: the predictions before clipping to the rating scale (as
        ``recommend`` ranks), so no item ties with another at the top of the scale."""
        span, self.model_.target_range_ = self.model_.target_range_, None
        try:
            return self.predict(query, support)
        finally:
            self.model_.target_range_ = span

    def _target(self, ratings: np.ndarray) -> np.ndarray:
        """Implicit methods learn from who rated what: every rating becomes a 1."""
        return np.ones_like(ratings) if self.implicit else ratings


def neural_estimator(method: str, data: RatingData, seed: int, **params) -> MetaRecommender:
    """A MetaRecommender for ``method`` with ``data``'s feature columns named explicitly."""
    from ..estimator import MetaRecommender

    kinds = {c: "multi" for c in ("genres", "directors", "actors") if c in data.items}
    defaults = dict(user_features=data.user_features, item_features=data.item_features,
                    feature_kinds=kinds or None, random_state=seed, verbose=0)
    defaults.update(params)
    core = "supervised" if method.startswith("supervised") else method.split("-")[0]
    return MetaRecommender(method=core, **defaults)


def build(names: tuple[str, ...], data: RatingData, seed: int,
          neural_params: dict | None = None) -> dict[str, object]:
    """The methods called ``names``, ready to ``fit`` (see the module docstring)."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise DataError(f"Unknown method(s) {unknown}; choose from {list(METHODS)}.")
    shared: dict = {}
    out = {}
    for name in names:
        if name in BASELINES:
            out[name] = BaselineMethod(BASELINES[name]())
        else:
            estimator = neural_estimator(name, data, seed, **(neural_params or {}))
            implicit = name.endswith("-implicit")
            out[name] = NeuralMethod(estimator, adapt=name != "supervised",
                                     shared=shared if name.startswith("supervised") else None,
                                     predicts_ratings=not implicit, implicit=implicit)
    return out
