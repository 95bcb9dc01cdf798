"""Implicit-feedback matrix factorisation (iALS), the classic baseline for ranking unrated items.

Hu, Koren and Volinsky (2008), "Collaborative filtering for implicit feedback datasets":
every (user, item) pair is a preference ``p_ui`` (1 if the user rated the item, whatever the
rating, else 0) with a confidence ``c_ui = 1 + alpha`` for the rated pairs and 1 for the
others. The factors minimise, over *every* pair,

    sum_ui c_ui (p_ui - x_u . y_i)^2 + reg (|x_u|^2 + |y_i|^2)

by alternating least squares; each half-step is exact and costs only the rated pairs, since
``Y^T C_u Y = Y^T Y + alpha Y_u^T Y_u`` (``Y_u``: the rows of the items ``u`` rated; a pair
rated twice counts once) and
``Y^T C_u p_u = (1 + alpha) Y_u^T 1``. A user unseen in ``fit`` is folded in from its
support rows by that same user half-step with the items fixed, and an item is scored
``x_u . y_i``: what ``recmeta``'s implicit model (``metasgd-implicit`` in
:mod:`recmeta.evaluate`) is judged against. Like :class:`~recmeta.baselines.Popularity`,
its scores order items and predict no rating. A user without history scores every item 0.

>>> import pandas as pd
>>> train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [7, 8, 7, 8, 9],
...                       "rating": [5.0, 3.0, 4.0, 1.0, 2.0]})
>>> model = ImplicitALS(n_factors=2, reg=0.1).fit(train)
>>> # a new user who rated item 7 is closer to 8 (rated with 7 twice) than to 9
>>> s = model.predict(pd.DataFrame({"user_id": [4, 4], "item_id": [8, 9]}),
...                   support=pd.DataFrame({"user_id": [4], "item_id": [7], "rating": [2.0]}))
>>> bool(s[0] > s[1])
True
"""

from __future__ import annotations

import numpy as np

from .baselines import Baseline, Support, ridge_by_group


class ImplicitALS(Baseline):
    """Implicit-feedback ALS (iALS): who rated what, confidence-weighted; users folded in.

    Parameters
    ----------
    n_factors : int, default=64
    reg : float, default=100.0
        Ridge penalty on the user and item factors.
    alpha : float, default=10.0
        Extra confidence of an observed pair (``c = 1 + alpha``; 0: every pair equal).
    n_iter : int, default=15
        Alternations of the user and item half-steps.
    random_state : int, default=0
        Seed of the item factors' initialisation, ``N(0, 0.01^2)``.

    Notes
    -----
    The defaults were chosen by nDCG@10 of validation new users (``benchmarks/tune_ials.py``)
    as one setting near the best on both ML-100K and ML-1M: 0.0017 and 0.0079 below each
    dataset's own best (``alpha=20`` with 32 factors, and ``alpha=5``).
    """

    predicts_ratings = False

    def __init__(self, n_factors: int = 64, reg: float = 100.0, alpha: float = 10.0,
                 n_iter: int = 15, random_state: int = 0):
        self.n_factors = n_factors
        self.reg = reg
        self.alpha = alpha
        self.n_iter = n_iter
        self.random_state = random_state

    def _fit(self, users, items, ratings, n_users):
        if self.n_factors < 1 or not self.reg > 0 or not self.alpha >= 0:
            raise ValueError(f"ImplicitALS needs n_factors >= 1, reg > 0 and alpha >= 0; got "
                             f"n_factors={self.n_factors}, reg={self.reg}, alpha={self.alpha}.")
        users, items = _pairs(users, items)
        rng = np.random.default_rng(self.random_state)
        item_x = rng.normal(scale=0.01, size=(len(self.items_), self.n_factors))
        for _ in range(self.n_iter):
            user_x = self._half_step(users, n_users, item_x, items)
            item_x = self._half_step(items, len(self.items_), user_x, users)
        self.user_factors_, self.item_factors_ = user_x, item_x

    def _half_step(self, group: np.ndarray, n_groups: int, other: np.ndarray,
                   other_index: np.ndarray) -> np.ndarray:
        """Each group's ``(O^T O + alpha O_g^T O_g + reg I)^-1 (1 + alpha) O_g^T 1``, where
        ``O`` is the other side's factors and ``O_g`` the rows of the pairs group ``g`` has.

        As a ridge per group on rows ``sqrt(alpha) o_j`` with targets
        ``(1 + alpha) / sqrt(alpha)``, plus the shared ``O^T O``.
        """
        if self.alpha == 0:  # every pair weighs 1: the gram is shared, no per-group part
            gram = other.T @ other + self.reg * np.eye(self.n_factors)
            rhs = np.zeros((n_groups, self.n_factors))
            np.add.at(rhs, group, other[other_index])
            return np.linalg.solve(gram, rhs.T).T
        root = np.sqrt(self.alpha)
        targets = np.full(len(group), (1.0 + self.alpha) / root)
        return ridge_by_group(group, n_groups, root * other[other_index], targets,
                              np.full(self.n_factors, float(self.reg)), base=other.T @ other)

    def fold_in(self, support: Support) -> np.ndarray:
        """Each support user's ``x_u``, shape ``[n_users, n_factors]``; ratings are ignored
        (a rated item is an interaction) and items unseen in ``fit`` skipped."""
        known = support.items >= 0
        rows, items = _pairs(support.user_of_rows()[known], support.items[known])
        return self._half_step(rows, len(support.indptr) - 1, self.item_factors_, items)

    def _predict(self, items, users, support):
        user_x = self.fold_in(support)
        known = items >= 0
        factors = np.where(known[:, None], self.item_factors_[np.where(known, items, 0)], 0.0)
        return np.einsum("nf,nf->n", user_x[users], factors)


def _pairs(users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (user, item) pairs: an item rated twice is one interaction."""
    if not len(users):
        return users, items
    pairs = np.unique(np.c_[users, items], axis=0)
    return pairs[:, 0], pairs[:, 1]
