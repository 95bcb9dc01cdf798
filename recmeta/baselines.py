"""Classic baselines, with one small contract that every one keeps.

``fit(ratings)`` learns from a frame of (user_id, item_id, rating) rows.
``predict(query, support=None)`` scores (user_id, item_id) rows; a model with a per-user part
folds each user in from that user's rows of ``support`` (user_id, item_id, rating), so users
never seen in ``fit`` are served the same way as known ones. ``rank(candidates, support)``
orders each user's candidate items by score. None of them reads side features.

- :class:`GlobalMean`: the mean rating.
- :class:`ItemMean`: each item's mean rating, shrunk towards the global mean.
- :class:`Popularity`: the number of ratings of each item (a ranking, not a rating).
- :class:`BiasBaseline`: ``mu + b_i + b_u``; item biases from ``fit``, each user's bias
  folded in from its support set.
- :class:`BiasedMF`: ``mu + b_u + b_i + p_u . q_i`` fitted by alternating least squares;
  each user's ``(p_u, b_u)`` folded in from its support set by the closed-form ridge solve
  with the item factors fixed.

>>> import pandas as pd
>>> train = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [7, 8, 7],
...                       "rating": [5.0, 3.0, 4.0]})
>>> model = BiasBaseline(reg_item=0.0, reg_user=0.0, n_iter=1).fit(train)
>>> # mu = 4, b_7 = 0.5, b_8 = -1; the new user's b_u = 5 - 4 - 0.5 = 0.5
>>> model.predict(pd.DataFrame({"user_id": [3], "item_id": [8]}),
...               support=pd.DataFrame({"user_id": [3], "item_id": [7], "rating": [5.0]}))
array([3.5])
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from . import columns as C
from .exceptions import DataError
from .frames import check_columns


class Baseline:
    """The contract: ``fit(ratings)``, ``predict(query, support)``, ``rank(candidates, support)``.

    Subclasses implement ``_fit(users, items, ratings, n_users)`` on contiguous indices and
    ``_predict(items, users, support)``, where ``items`` are positions in ``items_`` (``-1``
    for unknown items), ``users`` positions among the predicted users, and ``support`` their
    :class:`Support` rows.
    """

    predicts_ratings: ClassVar[bool] = True
    """False for a model whose scores only order items (their MAE means nothing)."""

    def fit(self, ratings: pd.DataFrame) -> Baseline:
        """Learn from ``ratings``: a frame with user_id, item_id and rating columns."""
        check_columns(ratings, [C.USER, C.ITEM, C.RATING], "ratings")
        if len(ratings) == 0:
            raise DataError("ratings is empty: fit needs at least one rating.")
        values = ratings[C.RATING].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError("ratings has NaN or infinite ratings; drop or fill them first.")
        self.items_ = pd.Index(pd.unique(ratings[C.ITEM]))
        self.mean_ = float(values.mean())
        self.range_ = (float(values.min()), float(values.max()))
        self.users_ = users = pd.Index(pd.unique(ratings[C.USER]))
        self._fit(users.get_indexer(ratings[C.USER]), self.items_.get_indexer(ratings[C.ITEM]),
                  values, len(users))
        return self

    def predict(self, query: pd.DataFrame, support: pd.DataFrame | None = None) -> np.ndarray:
        """Scores of ``query``'s (user_id, item_id) rows, each user folded in from ``support``.

        Parameters
        ----------
        query : DataFrame with columns user_id and item_id
        support : DataFrame with columns user_id, item_id and rating, default=None
            The users' histories. A user without rows here has no personal part.

        Returns
        -------
        ndarray of shape (len(query),)
            Clipped to the range of the ratings in ``fit`` when the model predicts ratings,
            as ``MetaRecommender.predict`` is.
        """
        scores = self.scores(query, support)
        return np.clip(scores, *self.range_) if self.predicts_ratings else scores

    def scores(self, query: pd.DataFrame, support: pd.DataFrame | None = None) -> np.ndarray:
        """:meth:`predict` before clipping: what :meth:`rank` orders by (clipping would tie
        every item predicted past the top of the scale)."""
        if not hasattr(self, "items_"):
            from .exceptions import NotFittedError

            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        check_columns(query, [C.USER, C.ITEM], "query")
        if support is not None:
            check_columns(support, [C.USER, C.ITEM, C.RATING], "support")
        users = pd.Index(pd.unique(query[C.USER]))
        folded = Support.of(self, users, support)
        return self._predict(self.items_.get_indexer(query[C.ITEM]),
                             users.get_indexer(query[C.USER]), folded)

    def rank(self, candidates: pd.DataFrame, support: pd.DataFrame | None = None
             ) -> pd.DataFrame:
        """Each user's candidates ordered by score: user_id, item_id, score, rank (1 is best).

        Ties keep the order of ``candidates``.
        """
        return ranked(candidates, self.scores(candidates, support))

    def _fit(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
             n_users: int) -> None:
        """Learn from rows given as contiguous user and item indices."""

    def _predict(self, items: np.ndarray, users: np.ndarray, support: Support) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


class Support:
    """The support rows of the users being predicted, compressed by user: user ``u``'s rows
    are ``indptr[u]:indptr[u + 1]``.

    ``items`` are positions in the model's item index (``-1`` for items unknown to it).
    """

    def __init__(self, items: np.ndarray, ratings: np.ndarray, indptr: np.ndarray):
        self.items, self.ratings, self.indptr = items, ratings, indptr

    @classmethod
    def of(cls, model: Baseline, users: pd.Index, support: pd.DataFrame | None) -> Support:
        if support is None or len(support) == 0:
            return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(len(users) + 1, np.int64))
        user = users.get_indexer(support[C.USER])
        keep = user >= 0
        order = np.argsort(user[keep], kind="stable")
        items = model.items_.get_indexer(support[C.ITEM])[keep][order]
        ratings = support[C.RATING].to_numpy(dtype=np.float64)[keep][order]
        counts = np.bincount(user[keep], minlength=len(users))
        return cls(items, ratings, np.r_[0, np.cumsum(counts)].astype(np.int64))

    def user_of_rows(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))


class GlobalMean(Baseline):
    """The mean of every training rating, for every row."""

    def _predict(self, items, users, support):
        return np.full(len(items), self.mean_)


class ItemMean(Baseline):
    """Each item's mean rating, shrunk towards the global mean: ``(sum r + s mu) / (n + s)``.

    Parameters
    ----------
    shrinkage : float, default=0.0
        Pseudo-ratings at the global mean added to every item (0: the plain mean). Items
        unseen in ``fit`` get the global mean.
    """

    def __init__(self, shrinkage: float = 0.0):
        self.shrinkage = shrinkage

    def _fit(self, users, items, ratings, n_users):
        n = np.bincount(items, minlength=len(self.items_))
        total = np.bincount(items, weights=ratings, minlength=len(self.items_))
        self.item_mean_ = (total + self.shrinkage * self.mean_) / (n + self.shrinkage)

    def _predict(self, items, users, support):
        return np.where(items >= 0, self.item_mean_[items], self.mean_)


class Popularity(Baseline):
    """The number of training ratings of each item: a ranking, not a rating prediction."""

    predicts_ratings = False

    def _fit(self, users, items, ratings, n_users):
        self.counts_ = np.bincount(items, minlength=len(self.items_)).astype(np.float64)

    def _predict(self, items, users, support):
        return np.where(items >= 0, self.counts_[items], 0.0)


class BiasBaseline(Baseline):
    """``r = mu + b_i + b_u``, the user bias folded in from the support set.

    ``b_i = sum_u (r_ui - mu - b_u) / (reg_item + n_i)`` over the training ratings, with the
    training users' biases alternated with the items' ``n_iter`` times (starting from 0);
    then for each predicted user ``b_u = sum_i (r_ui - mu - b_i) / (reg_user + n_u)`` over
    its support rows (``b_i = 0`` for items unseen in ``fit``).

    Parameters
    ----------
    reg_item, reg_user : float, default=2.0, 5.0
        Shrinkage of the item and user biases towards 0.
    n_iter : int, default=3
        Alternations of item and training-user biases (1: item biases about the mean).
    """

    def __init__(self, reg_item: float = 2.0, reg_user: float = 5.0, n_iter: int = 3):
        self.reg_item = reg_item
        self.reg_user = reg_user
        self.n_iter = n_iter

    def _fit(self, users, items, ratings, n_users):
        n_items = len(self.items_)
        user_bias = np.zeros(n_users)
        for _ in range(max(self.n_iter, 1)):
            residual = ratings - self.mean_ - user_bias[users]
            self.item_bias_ = (np.bincount(items, weights=residual, minlength=n_items)
                               / (self.reg_item + np.bincount(items, minlength=n_items)))
            residual = ratings - self.mean_ - self.item_bias_[items]
            user_bias = (np.bincount(users, weights=residual, minlength=n_users)
                         / (self.reg_user + np.bincount(users, minlength=n_users)))

    def _item_bias(self, items: np.ndarray) -> np.ndarray:
        return np.where(items >= 0, self.item_bias_[items], 0.0)

    def _predict(self, items, users, support):
        n_users = len(support.indptr) - 1
        rows = support.user_of_rows()
        residual = support.ratings - self.mean_ - self._item_bias(support.items)
        user_bias = (np.bincount(rows, weights=residual, minlength=n_users)
                     / (self.reg_user + np.diff(support.indptr)))
        return self.mean_ + self._item_bias(items) + user_bias[users]


class BiasedMF(Baseline):
    """Biased matrix factorisation by alternating least squares, users folded in.

    ``r_ui = mu + b_u + b_i + p_u . q_i``, fitted on the training ratings by minimising
    ``sum (r_ui - r^_ui)^2 + reg (|p_u|^2 + |q_i|^2) + reg_bias (b_u^2 + b_i^2)``, each
    half-step an exact ridge solve. At prediction time each user's ``x_u = (p_u, b_u)`` is
    folded in from its support rows with the items fixed, in closed form:
    ``x_u = (Y_u^T Y_u + diag(reg, .., reg, reg_bias))^-1 Y_u^T (r_u - mu - b_i)``, where the
    rows of ``Y_u`` are ``(q_i, 1)`` (``q_i = 0``, ``b_i = 0`` for items unseen in ``fit``).

    Parameters
    ----------
    n_factors : int, default=32
    reg : float, default=10.0
        Ridge penalty on the factors.
    reg_bias : float, default=2.0
        Ridge penalty on the biases.
    weighted : bool, default=False
        Scale each user's and item's penalties by its number of ratings (the
        weighted-lambda regularisation of Zhou et al., 2008).
    n_iter : int, default=10
        Alternations of the user and item half-steps.
    random_state : int, default=0
        Seed of the item factors' initialisation, ``N(0, 0.1^2)``.
    """

    def __init__(self, n_factors: int = 32, reg: float = 10.0, reg_bias: float = 2.0,
                 weighted: bool = False, n_iter: int = 10, random_state: int = 0):
        self.n_factors = n_factors
        self.reg = reg
        self.reg_bias = reg_bias
        self.weighted = weighted
        self.n_iter = n_iter
        self.random_state = random_state

    def _penalty(self, group: np.ndarray, n_groups: int) -> np.ndarray:
        """``diag(reg, .., reg, reg_bias)``, times each group's row count when weighted."""
        base = np.r_[np.full(self.n_factors, float(self.reg)), float(self.reg_bias)]
        if not self.weighted:
            return base
        counts = np.maximum(np.bincount(group, minlength=n_groups), 1)
        return counts[:, None] * base[None, :]

    def _fit(self, users, items, ratings, n_users):
        rng = np.random.default_rng(self.random_state)
        item_x = np.c_[rng.normal(scale=0.1, size=(len(self.items_), self.n_factors)),
                       np.zeros(len(self.items_))]
        residual = ratings - self.mean_
        for _ in range(self.n_iter):
            # users: x_u = (p_u, b_u) on rows (q_i, 1), targets r - mu - b_i
            user_x = ridge_by_group(users, n_users, _with_one(item_x[items, :-1]),
                                    residual - item_x[items, -1], self._penalty(users, n_users))
            # items: y_i = (q_i, b_i) on rows (p_u, 1), targets r - mu - b_u
            item_x = ridge_by_group(items, len(self.items_), _with_one(user_x[users, :-1]),
                                    residual - user_x[users, -1],
                                    self._penalty(items, len(self.items_)))
        self.item_factors_, self.item_bias_ = item_x[:, :-1], item_x[:, -1]
        # the users of the last item half-step, in the order of ``users_``
        self.user_factors_, self.user_bias_ = user_x[:, :-1], user_x[:, -1]

    def _item_rows(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(q_i, b_i)`` of each item, zeros for items unseen in ``fit``."""
        known = items >= 0
        factors = np.where(known[:, None], self.item_factors_[items], 0.0)
        return factors, np.where(known, self.item_bias_[items], 0.0)

    def fold_in(self, support: Support) -> np.ndarray:
        """Each support user's ``(p_u, b_u)``, shape ``[n_users, n_factors + 1]``."""
        factors, bias = self._item_rows(support.items)
        rows, n_users = support.user_of_rows(), len(support.indptr) - 1
        return ridge_by_group(rows, n_users, _with_one(factors),
                              support.ratings - self.mean_ - bias, self._penalty(rows, n_users))

    def _predict(self, items, users, support):
        user_x = self.fold_in(support)
        factors, bias = self._item_rows(items)
        p_u, b_u = user_x[users, :-1], user_x[users, -1]
        return self.mean_ + b_u + bias + np.einsum("nf,nf->n", p_u, factors)


def ridge_by_group(group: np.ndarray, n_groups: int, features: np.ndarray,
                   targets: np.ndarray, penalty: np.ndarray,
                   base: np.ndarray | None = None) -> np.ndarray:
    """Per group ``g``, ``argmin_x |F_g x - t_g|^2 + sum_j penalty_j x_j^2 + x^T B x``, in
    closed form.

    Parameters
    ----------
    group : ndarray of int of shape (n_rows,)
        The group of each row, in ``0..n_groups-1``.
    features : ndarray of shape (n_rows, d)
    targets : ndarray of shape (n_rows,)
    penalty : ndarray of shape (d,) or (n_groups, d)
        Positive, so every system is solvable (a group without rows gets 0).
    base : ndarray of shape (d, d), default=None
        A positive semi-definite ``B`` shared by every group (None: 0).

    Returns
    -------
    ndarray of shape (n_groups, d)
    """
    d = features.shape[1]
    order = np.argsort(group, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(group, minlength=n_groups))]
    feats, targs = features[order], targets[order]
    grams = np.zeros((n_groups, d, d)) if base is None else np.repeat(base[None], n_groups, 0)
    rhs = np.zeros((n_groups, d))
    for g in np.flatnonzero(np.diff(bounds)):
        rows = feats[bounds[g] : bounds[g + 1]]
        # A_g = F_g^T F_g + diag(penalty) + B;  b_g = F_g^T t_g
        grams[g] += rows.T @ rows
        rhs[g] = rows.T @ targs[bounds[g] : bounds[g + 1]]
    grams[:, np.arange(d), np.arange(d)] += penalty if penalty.ndim == 2 else penalty[None, :]
    return np.linalg.solve(grams, rhs[..., None])[..., 0]


def _with_one(factors: np.ndarray) -> np.ndarray:
    return np.c_[factors, np.ones(len(factors))]


def ranked(candidates: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """user_id, item_id, score and rank (1 best, ties in the given order), sorted by user
    and rank."""
    frame = pd.DataFrame({C.USER: candidates[C.USER].to_numpy(),
                          C.ITEM: candidates[C.ITEM].to_numpy(),
                          C.SCORE: np.asarray(scores, dtype=np.float64)})
    frame = frame.iloc[np.lexsort((-frame[C.SCORE].to_numpy(),
                                   pd.factorize(frame[C.USER])[0]))]
    frame[C.RANK] = frame.groupby(C.USER, sort=False).cumcount().to_numpy() + 1
    return frame.reset_index(drop=True)

