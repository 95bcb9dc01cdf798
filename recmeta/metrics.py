"""Evaluation metrics, each computed per user and then averaged over users.

Rating error
    :func:`mae` and :func:`rmse`: the error within each user's rows, then the mean over users
    (MeLU's Eq. 4; RMSE likewise, the root taken within each user).
MeLU's ranking metric
    :func:`melu_ndcg`: a user's query items ranked by predicted rating;
    ``DCG@k = sum_{r=1..k} (2^rating_r - 1) / log2(1 + r)``, divided by the best ``DCG@k``
    for that user (the items ordered by true rating), then averaged over users (MeLU's Eq. 5).
Top-k over a candidate set
    :func:`ndcg_at_k` and :func:`recall_at_k`: each user ranks a list of candidates (rated
    and unrated items); a candidate is relevant when ``relevance`` says so (for example, a
    held-out rating of 4 or more). Binary gains: ``DCG@k = sum_{r<=k} rel_r / log2(1 + r)``,
    ideal DCG from ``min(k, n_relevant)`` relevant items at the top; recall is the share
    of a user's relevant candidates in its top ``k``. Users with no relevant candidate have
    neither, and are left out of the average.

Ties in the scores keep the order the rows were given in, so give the rows of a user in a
random order (evaluation shuffles them): a constant scorer then gets a random ranking.

>>> import numpy as np
>>> users = np.array([1, 1, 2, 2])
>>> mae(users, np.array([4.0, 2.0, 5.0, 3.0]), np.array([3.0, 2.0, 5.0, 5.0]))
0.75
>>> melu_ndcg(users, np.array([5, 1, 3, 4]), np.array([0.9, 0.1, 0.8, 0.2]), k=1)
0.7333333333333334
"""

from __future__ import annotations

import numpy as np

from .exceptions import DataError


def per_user_mean(users, values) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` within each user: ``(user ids, means)``, users sorted."""
    users, values = np.asarray(users), np.asarray(values, dtype=np.float64)
    ids, codes = _unique(users)
    sums = np.bincount(codes, weights=values, minlength=len(ids))
    return ids, sums / np.bincount(codes, minlength=len(ids))


def mae(users, y_true, y_pred) -> float:
    """Mean absolute error within each user, averaged over users.

    Parameters
    ----------
    users : array-like of shape (n_rows,)
    y_true, y_pred : array-like of shape (n_rows,)

    Returns
    -------
    float
    """
    users, y_true, y_pred = _check(users, y_true, y_pred)
    return float(per_user_mean(users, np.abs(y_true - y_pred))[1].mean())


def rmse(users, y_true, y_pred) -> float:
    """Root mean squared error within each user, averaged over users."""
    users, y_true, y_pred = _check(users, y_true, y_pred)
    return float(np.sqrt(per_user_mean(users, (y_true - y_pred) ** 2)[1]).mean())


def melu_ndcg(users, y_true, y_pred, k: int) -> float:
    """MeLU's nDCG@k: query items ranked by prediction, gains ``2^rating - 1``.

    Parameters
    ----------
    users : array-like of shape (n_rows,)
    y_true : array-like of shape (n_rows,)
        True ratings (the gains are ``2^rating - 1``).
    y_pred : array-like of shape (n_rows,)
        Predicted ratings, which order each user's items.
    k : int

    Returns
    -------
    float
        The mean over users of ``DCG@k / ideal DCG@k``; a user whose ideal DCG is 0 (every
        rating 0) counts as 0.
    """
    users, y_true, y_pred = _check(users, y_true, y_pred)
    gains = 2.0 ** y_true - 1.0
    dcg = _dcg(users, gains, y_pred, k)
    ideal = _dcg(users, gains, gains, k)
    return float(np.mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)))


def ndcg_at_k(users, relevance, scores, k: int) -> float:
    """nDCG@k with binary relevance over each user's candidate list.

    Parameters
    ----------
    users : array-like of shape (n_rows,)
    relevance : array-like of bool of shape (n_rows,)
        Whether each candidate is relevant to its user.
    scores : array-like of shape (n_rows,)
        Higher ranks first.
    k : int

    Returns
    -------
    float
        The mean over users with at least one relevant candidate (nan when none has).
    """
    users, relevance, scores = _check(users, relevance, scores)
    gains = (relevance > 0).astype(np.float64)
    n_relevant = _per_user_sum(users, gains)
    dcg = _dcg(users, gains, scores, k)
    # the ideal list puts min(k, n_relevant) relevant items first
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    has = n_relevant > 0
    ideal = discounts[np.minimum(n_relevant[has], k).astype(np.int64) - 1]
    return float(np.mean(dcg[has] / ideal)) if has.any() else float("nan")


def recall_at_k(users, relevance, scores, k: int) -> float:
    """Share of each user's relevant candidates found in its top ``k``, averaged over users
    with at least one relevant candidate (nan when none has)."""
    users, relevance, scores = _check(users, relevance, scores)
    gains = (relevance > 0).astype(np.float64)
    ranks = _ranks(users, scores)
    hits = _per_user_sum(users, gains * (ranks <= k))
    n_relevant = _per_user_sum(users, gains)
    has = n_relevant > 0
    return float(np.mean(hits[has] / n_relevant[has])) if has.any() else float("nan")


def _ranks(users: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of each row within its user: by score, ties in the given order."""
    codes = _unique(users)[1]
    # sort by user, then score descending; lexsort is stable, so ties keep the row order
    order = np.lexsort((-scores, codes))
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order)) - first + 1
    return ranks


def _dcg(users: np.ndarray, gains: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """``sum_{rank r <= k} gain_r / log2(1 + r)`` per user (users sorted), ranked by scores."""
    ranks = _ranks(users, scores)
    top = ranks <= k
    discounted = np.where(top, gains / np.log2(1.0 + ranks), 0.0)
    return _per_user_sum(users, discounted)


def _per_user_sum(users: np.ndarray, values: np.ndarray) -> np.ndarray:
    codes = _unique(users)[1]
    return np.bincount(codes, weights=values.astype(np.float64))


def _unique(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted user ids and each row's index into them, as ``np.unique`` gives; ids numpy
    cannot sort (integers and strings in one object array) are sorted by pandas instead."""
    try:
        return np.unique(users, return_inverse=True)
    except TypeError:
        import pandas as pd

        codes, ids = pd.factorize(users, sort=True)
        return np.asarray(ids), codes


def _check(users, a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    users = np.asarray(users)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if not (users.ndim == a.ndim == b.ndim == 1) or not len(users) == len(a) == len(b):
        raise DataError(f"users, targets and predictions must be 1-d and of one length; got "
                        f"shapes {users.shape}, {a.shape} and {b.shape}.")
    if len(users) == 0:
        raise DataError("No rows to evaluate: pass at least one (user, item) row.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("Targets and predictions must be finite; drop or fill NaN and inf "
                        "before computing metrics.")
    return users, a, b
