"""Synthetic interaction data with real structure, deterministic by seed.

Users belong to taste clusters, and their demographics hint at the cluster. Items have one to
three genres and a power-law popularity. A rating is a global mean plus a user bias, an item
bias and the match of a user's tastes with an item's genres, plus noise, rounded to 1..5.
Every user also deviates from its cluster in its own way, so features alone cannot predict
it: a few of its ratings can, which is what per-user adaptation is for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import columns as C

GENRES = ("action", "adventure", "animation", "comedy", "crime", "documentary", "drama",
          "fantasy", "horror", "musical", "mystery", "romance", "scifi", "thriller", "war",
          "western")
OCCUPATIONS = ("student", "engineer", "artist", "doctor", "writer", "retired", "sales",
               "teacher", "lawyer", "farmer")
AGES = ("<18", "18-24", "25-34", "35-44", "45-54", "55+")


@dataclass
class SyntheticData:
    """A generated data set.

    Attributes
    ----------
    X : DataFrame
        A row per interaction: user_id, item_id, user features (gender, age, occupation)
        and item features (genres as ``"a|b"``, decade, length). What ``fit`` takes.
    y : ndarray
        Ratings 1..5, or ones for implicit feedback.
    interactions : DataFrame
        user_id, item_id, rating (or clicked), timestamp.
    users, items : DataFrame
        One row per user / item with its features.
    """

    X: pd.DataFrame
    y: np.ndarray
    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame


def make_synthetic(n_users: int = 1000, n_items: int = 500, *, n_clusters: int = 8,
                   ratings_per_user: tuple[int, int] = (10, 60), dim: int = 8,
                   noise: float = 0.4, implicit: bool = False,
                   random_state: int = 0) -> SyntheticData:
    """Generate users, items and ratings.

    Parameters
    ----------
    n_users, n_items : int
    n_clusters : int
        Taste clusters of users.
    ratings_per_user : (int, int)
        Range of history lengths, drawn log-uniformly.
    dim : int
        Latent dimension of tastes.
    noise : float
        Standard deviation of rating noise.
    implicit : bool
        Keep only ratings of 4 and 5, as clicks with ``y = 1``.
    random_state : int

    Examples
    --------
    >>> data = make_synthetic(n_users=50, n_items=30, random_state=1)
    >>> data.X.columns.tolist()
    ['user_id', 'item_id', 'gender', 'age', 'occupation', 'genres', 'decade', 'length']
    >>> bool(data.y.min() >= 1 and data.y.max() <= 5)
    True
    """
    lo, hi = ratings_per_user
    if not 1 <= lo <= hi:
        raise ValueError(f"ratings_per_user must be (low, high) with 1 <= low <= high; "
                         f"got {ratings_per_user!r}.")
    if n_users < 1 or n_items < 1:
        raise ValueError(f"n_users and n_items must be positive; got {n_users}, {n_items}.")
    rng = np.random.default_rng(random_state)
    genre_taste = rng.normal(size=(len(GENRES), dim))
    items, item_vec, item_bias, popularity = _items(rng, n_items, genre_taste)
    users, user_vec, user_bias = _users(rng, n_users, n_clusters, dim)
    interactions = _rate(rng, users, items, user_vec, user_bias, item_vec, item_bias,
                         popularity, (lo, min(hi, n_items)), noise)
    if implicit:
        interactions = interactions[interactions[C.RATING] >= 4].reset_index(drop=True)
        interactions = interactions.rename(columns={C.RATING: "clicked"})
        interactions["clicked"] = 1
    X = interactions[[C.USER, C.ITEM]].merge(users, on=C.USER, how="left")
    X = X.merge(items, on=C.ITEM, how="left")
    y = interactions.iloc[:, 2].to_numpy(dtype=np.float64)
    return SyntheticData(X, y, interactions, users, items)


def _items(rng, n_items, genre_taste):
    n_genres = rng.choice([1, 2, 3], size=n_items, p=[0.45, 0.4, 0.15])
    genre_p = rng.dirichlet(np.full(len(GENRES), 0.8))
    genres = [rng.choice(len(GENRES), size=k, replace=False, p=genre_p) for k in n_genres]
    vec = np.stack([genre_taste[g].mean(0) for g in genres])
    vec += rng.normal(scale=0.35, size=vec.shape)
    bias = rng.normal(scale=0.35, size=n_items)
    decade = rng.choice(["1970s", "1980s", "1990s", "2000s", "2010s"], size=n_items)
    length = np.round(rng.normal(110, 20, size=n_items)).clip(60, 200).astype(np.float64)
    popularity = 1.0 / rng.permutation(np.arange(1, n_items + 1)) ** 0.9
    # better items are a little more popular
    popularity *= np.exp(0.5 * bias)
    frame = pd.DataFrame({
        C.ITEM: np.arange(n_items),
        "genres": ["|".join(GENRES[i] for i in sorted(g)) for g in genres],
        "decade": decade,
        "length": length,
    })
    return frame, vec, bias, popularity / popularity.sum()


def _users(rng, n_users, n_clusters, dim):
    centres = rng.normal(size=(n_clusters, dim))
    cluster = rng.integers(0, n_clusters, size=n_users)
    vec = centres[cluster] + rng.normal(scale=0.7, size=(n_users, dim))
    bias = rng.normal(scale=0.4, size=n_users)
    # demographics hint at the cluster: each cluster prefers some values
    age_p = rng.dirichlet(np.full(len(AGES), 0.5), size=n_clusters)
    job_p = rng.dirichlet(np.full(len(OCCUPATIONS), 0.4), size=n_clusters)
    male_p = rng.uniform(0.2, 0.8, size=n_clusters)
    frame = pd.DataFrame({
        C.USER: np.arange(n_users),
        "gender": np.where(rng.random(n_users) < male_p[cluster], "M", "F"),
        "age": [AGES[rng.choice(len(AGES), p=age_p[c])] for c in cluster],
        "occupation": [OCCUPATIONS[rng.choice(len(OCCUPATIONS), p=job_p[c])] for c in cluster],
    })
    return frame, vec, bias


def _rate(rng, users, items, user_vec, user_bias, item_vec, item_bias, popularity, span,
          noise):
    lo, hi = span
    n_users = len(users)
    counts = np.exp(rng.uniform(np.log(lo), np.log(hi + 1), size=n_users)).astype(int)
    counts = counts.clip(lo, hi)
    user_ids, item_ids, ratings = [], [], []
    scale = 1.0 / np.sqrt(user_vec.shape[1])
    for u, k in enumerate(counts):
        chosen = rng.choice(len(items), size=k, replace=False, p=popularity)
        # r = 3.6 + b_u + b_i + <p_u, q_i> / sqrt(d) + noise
        r = (3.6 + user_bias[u] + item_bias[chosen] + scale * item_vec[chosen] @ user_vec[u]
             + rng.normal(scale=noise, size=k))
        user_ids.append(np.full(k, u))
        item_ids.append(chosen)
        ratings.append(np.clip(np.round(r), 1, 5))
    frame = pd.DataFrame({
        C.USER: np.concatenate(user_ids),
        C.ITEM: np.concatenate(item_ids),
        C.RATING: np.concatenate(ratings).astype(np.float64),
    })
    # timestamps: each user's ratings in the order drawn, users interleaved over a year
    start = rng.integers(1_600_000_000, 1_630_000_000, size=n_users)
    within = frame.groupby(C.USER).cumcount().to_numpy()
    frame[C.TIME] = start[frame[C.USER].to_numpy()] + within * 3600
    return frame
