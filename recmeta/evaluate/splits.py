"""Splitting ratings into what a model learns from, what a user shows it, and what is scored.

- :func:`support_query`: MeLU's split. Users with ``min_ratings..max_ratings`` ratings; each
  user's ratings shuffled, ``n_query`` of them the query set, the rest the support set.
- :func:`new_users`: the support-size protocol. Users split into training and new users;
  each new user's ratings shuffled into a fixed query set and nested support sets of
  ``k`` ratings, and a candidate list of its query items plus unrated items.

Every function takes a ``numpy.random.Generator``, so one seed fixes the whole split.
Ids may be of any type pandas holds (integers, strings, a pandas string dtype, mixed
objects): they are only compared through :func:`pandas.factorize` and ``isin``, never cast
to a numpy dtype or sorted by numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from .. import columns as C
from ..exceptions import DataError

RELEVANT = "relevant"


@dataclass
class SupportQuery:
    """Each user's support rows (shown to the model) and query rows (scored)."""

    support: pd.DataFrame
    query: pd.DataFrame


@dataclass
class NewUsers:
    """New users for the support-size curves.

    Attributes
    ----------
    train : DataFrame
        Ratings of the training users.
    pool : DataFrame
        Each new user's ordered support pool, with a ``position`` column ``0..max_k-1``;
        the support set of size ``k`` is the rows with ``position < k``.
    query : DataFrame
        Each new user's held-out ratings.
    candidates : DataFrame
        user_id, item_id, rating (NaN when unrated) and ``relevant``: the query items and
        ``n_unrated`` items the user never rated, in random order within each user.
    """

    train: pd.DataFrame
    pool: pd.DataFrame
    query: pd.DataFrame
    candidates: pd.DataFrame

    def support(self, k: int) -> pd.DataFrame:
        """Each new user's first ``k`` support ratings."""
        return self.pool.loc[self.pool["position"] < k, [C.USER, C.ITEM, C.RATING]]


def check_ratings(ratings, what: str = "The ratings frame") -> None:
    """Refuse, in a sentence that says what to do, ratings the protocols cannot read: not a
    DataFrame, no user_id, item_id or rating column, no row, a rating that is not a number
    or is missing (NaN) or infinite, a row without an id. ``what`` names them."""
    if not isinstance(ratings, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame with columns user_id, item_id and "
                        f"rating, not {type(ratings).__name__}.")
    missing = [c for c in (C.USER, C.ITEM, C.RATING) if c not in ratings]
    if missing:
        raise DataError(f"{what} has no column {missing} (its columns are "
                        f"{list(ratings.columns)[:10]}); it needs user_id, item_id and rating: "
                        f"rename yours to these.")
    if len(ratings) == 0:
        raise DataError(f"{what} has no rows; give it a row per rating (user_id, item_id, "
                        f"rating).")
    values = ratings[C.RATING]
    if not is_numeric_dtype(values):
        text = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
        shown = pd.unique(text if len(text) else values)
        examples = ", ".join(repr(v) for v in shown[:3]) + (", ..." if len(shown) > 3 else "")
        raise DataError(f"{what} has ratings that are not numbers ({examples}); convert them "
                        f"to numbers (pandas.to_numeric) or map labels to a scale, e.g. "
                        f"'good' to 4, or to 0/1 feedback.")
    bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if bad.any():
        raise DataError(f"{what} has {int(bad.sum())} missing (NaN) or infinite rating(s); drop "
                        f"or fill them first, e.g. ratings.dropna(subset=['rating']).")
    no_id = ratings[[C.USER, C.ITEM]].isna().any(axis=1).to_numpy()
    if no_id.any():
        raise DataError(f"{what} has {int(no_id.sum())} row(s) without a user_id or item_id "
                        f"(missing, NaN); drop them first, e.g. "
                        f"ratings.dropna(subset=['user_id', 'item_id']).")


def shuffled_positions(users, rng: np.random.Generator) -> np.ndarray:
    """A random order of each user's rows: the position of every row within its user.

    Users are grouped by their codes, not their values, so ids numpy cannot sort (mixed
    types, pandas extension arrays) group as integers do.
    """
    key = rng.random(len(users))
    codes = pd.factorize(users)[0]
    order = np.lexsort((key, codes))
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    positions = np.empty(len(order), dtype=np.int64)
    positions[order] = np.arange(len(order)) - first
    return positions


def _shuffled_by_user(rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """``rows`` with each row's shuffled ``position`` within its user, sorted by user then
    position.

    Users are sorted by :func:`pandas.factorize`'s sorted codes, the order of the ids
    themselves wherever they can be compared, and still an order where they cannot (ints
    and strings mixed), which ``sort_values`` on the ids would refuse.
    """
    by_user = pd.factorize(rows[C.USER], sort=True)[0]
    rows = rows.assign(position=shuffled_positions(rows[C.USER], rng), _by_user=by_user)
    return rows.sort_values(["_by_user", "position"], kind="stable").drop(columns="_by_user")


def eligible(ratings: pd.DataFrame, min_ratings: int, max_ratings: int | None) -> pd.DataFrame:
    """The rows of users with ``min_ratings`` to ``max_ratings`` ratings (inclusive)."""
    counts = ratings.groupby(C.USER)[C.USER].transform("size").to_numpy()
    keep = counts >= min_ratings
    if max_ratings is not None:
        keep &= counts <= max_ratings
    return ratings.loc[keep].reset_index(drop=True)


def support_query(ratings: pd.DataFrame, rng: np.random.Generator, n_query: int = 10,
                  min_ratings: int = 13, max_ratings: int | None = 100) -> SupportQuery:
    """MeLU's split: eligible users' ratings shuffled, ``n_query`` as query, rest as support.

    Rows come out grouped by user, in the shuffled order within each user.
    """
    check_ratings(ratings)
    if min_ratings <= n_query:
        raise DataError(f"min_ratings ({min_ratings}) must exceed n_query ({n_query}) so that "
                        f"every user keeps a support set.")
    rows = eligible(ratings, min_ratings, max_ratings)
    if len(rows) == 0:
        raise DataError(f"No user has {min_ratings} to {max_ratings} ratings; lower "
                        f"min_ratings or raise max_ratings.")
    rows = _shuffled_by_user(rows, rng)
    is_query = rows["position"].to_numpy() < n_query
    keep = [C.USER, C.ITEM, C.RATING]
    return SupportQuery(rows.loc[~is_query, keep].reset_index(drop=True),
                        rows.loc[is_query, keep].reset_index(drop=True))


def new_users(ratings: pd.DataFrame, rng: np.random.Generator, test_fraction: float = 0.2,
              max_k: int = 20, n_query: int = 10, n_unrated: int = 100,
              relevant_from: float = 4.0, max_test_users: int | None = None) -> NewUsers:
    """Split users into training users and new users with support pools and candidates.

    Parameters
    ----------
    ratings : DataFrame with columns user_id, item_id, rating
    rng : numpy.random.Generator
    test_fraction : float, default=0.2
        Share of users held out as new users.
    max_k : int, default=20
        The largest support set; new users need ``max_k + n_query`` ratings.
    n_query : int, default=10
    n_unrated : int, default=100
        Items each new user never rated, drawn from the training items, added to its
        candidates.
    relevant_from : float, default=4.0
        A query rating of at least this is relevant.
    max_test_users : int, default=None
        Keep at most this many new users (drawn at random), to bound the cost.
    """
    check_ratings(ratings)
    users = pd.unique(ratings[C.USER])
    test = rng.permutation(users)[: round(test_fraction * len(users))]
    is_test = ratings[C.USER].isin(test).to_numpy()
    train = ratings.loc[~is_test].reset_index(drop=True)
    held = eligible(ratings.loc[is_test], max_k + n_query, None)
    if max_test_users is not None and held[C.USER].nunique() > max_test_users:
        chosen = rng.permutation(pd.unique(held[C.USER]))[:max_test_users]
        held = held.loc[held[C.USER].isin(chosen)].reset_index(drop=True)
    if len(held) == 0 or len(train) == 0:
        raise DataError(f"No new user has {max_k + n_query} ratings, or no training user is "
                        f"left; lower max_k (the largest of --ks on the command line: "
                        f"--ks 0,1,3, say) or n_query, or change test_fraction.")
    held = _shuffled_by_user(held, rng)
    query = held.loc[held["position"] < n_query, [C.USER, C.ITEM, C.RATING]]
    pool = held.loc[(held["position"] >= n_query) & (held["position"] < n_query + max_k)]
    pool = pool.assign(position=pool["position"] - n_query)
    catalogue = pd.factorize(train[C.ITEM], sort=True)[1]
    candidates = _candidates(query, ratings.loc[is_test], catalogue, n_unrated,
                             relevant_from, rng)
    return NewUsers(train, pool[[C.USER, C.ITEM, C.RATING, "position"]].reset_index(drop=True),
                    query.reset_index(drop=True), candidates)


def _candidates(query: pd.DataFrame, rated: pd.DataFrame, catalogue: pd.Index,
                n_unrated: int, relevant_from: float, rng: np.random.Generator) -> pd.DataFrame:
    """Query items plus unrated items per user, shuffled within each user.

    ``catalogue`` is the training items, sorted (see :func:`_shuffled_by_user`). The unrated
    items are those of it not in the user's ratings (``isin``: no numpy dtype to agree on,
    so string and extension-dtype ids work), drawn by position; the id columns keep the
    query's dtypes.
    """
    seen = rated.groupby(C.USER)[C.ITEM].agg(list)
    parts = []
    for user, rows in query.groupby(C.USER, sort=False):  # sorted already: by user
        pool = catalogue[~catalogue.isin(seen[user])]
        extra = pool.take(rng.choice(len(pool), size=min(n_unrated, len(pool)), replace=False))
        items = pd.Index(rows[C.ITEM]).append(extra)
        values = np.r_[rows[C.RATING].to_numpy(dtype=np.float64), np.full(len(extra), np.nan)]
        order = rng.permutation(len(items))
        parts.append(pd.DataFrame({C.USER: [user] * len(items), C.ITEM: items.take(order),
                                   C.RATING: values[order]}))
    ids = {C.USER: query[C.USER].dtype, C.ITEM: query[C.ITEM].dtype}
    frame = pd.concat(parts, ignore_index=True).astype(ids)  # not the dtypes pandas infers
    frame[RELEVANT] = (frame[C.RATING] >= relevant_from).to_numpy()
    return frame


def validation_users(train: pd.DataFrame, rng: np.random.Generator, fraction: float = 0.2,
                     n_query: int = 10, min_ratings: int = 13) -> tuple[pd.DataFrame,
                                                                       SupportQuery]:
    """Carve validation users out of a training state, for tuning without the test queries.

    A ``fraction`` of the training users leave the training rows entirely (they are new
    users to what is fitted); those with ``min_ratings`` ratings or more are split as
    :func:`support_query` does.

    Returns
    -------
    fit_rows : DataFrame
        The training rows of the other users.
    validation : SupportQuery
        The validation users' support and query rows.
    """
    users = pd.unique(train[C.USER])
    held = rng.permutation(users)[: round(fraction * len(users))]
    is_held = train[C.USER].isin(held).to_numpy()
    validation = support_query(train.loc[is_held], rng, n_query, min_ratings, None)
    return train.loc[~is_held].reset_index(drop=True), validation
