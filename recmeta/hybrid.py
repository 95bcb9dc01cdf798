"""The matrix-factorisation parts of ``fit``: item vectors as features, and the ALS blend.

Both fit a biased ALS (:class:`~recmeta.baselines.BiasedMF`):

- :func:`fill_item_vectors` gives each item id its ALS factors and bias as numeric item
  fields (``mf_features``), with leak-free tables for meta-training; its ALS sees the
  training users' ratings only (never the users held out for early stopping);
- :func:`fill_blend` fills the tables of :mod:`recmeta.blend` (``mf_blend``), and
  :func:`blend_losses` scores the weights of :data:`GRID` on the users held out for early
  stopping, adapted on the very episodes early stopping watched, with an ALS of the training
  users only: those users are folded in as any new user will be. The ALS that then serves
  is fitted again on every user's ratings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import columns as C
from .adaptation import InnerLoop, masked_loss
from .baselines import BiasedMF, ridge_by_group
from .blend import BLEND_KEY
from .catalog import EntityTable
from .episodes import Histories
from .frames import ITEM_ID_FIELD
from .meta import MetaLearner, Table

GRID = tuple(k / 10 for k in range(11))  # the blend weights "auto" chooses among
MF_FOLDS = 5  # folds of the training users for leak-free item vectors in meta-training


def training_ratings(histories: Histories, train: np.ndarray, mean: float,
                     scale: float) -> pd.DataFrame:
    """The ``train`` users' rows as ratings: user row, item row, rating (the histories'
    scaled targets, unscaled)."""
    lengths = histories.lengths()
    owner = np.repeat(np.arange(len(lengths)), lengths)
    keep = np.isin(owner, train)
    return pd.DataFrame({C.USER: owner[keep], C.ITEM: histories.items[keep],
                         C.RATING: histories.target[keep] * scale + mean})


def fill_item_vectors(learner: MetaLearner, items: EntityTable, ratings: pd.DataFrame,
                      train: np.ndarray, n_users: int, seed: int) -> np.ndarray | None:
    """Fit a biased ALS on the training users' ``ratings`` and give each item id its factors
    and bias, each column standardised over the items; items those users never rated keep
    zeros (the mean), as do new items.

    Meta-training must not see an item's vector fitted on the very ratings it scores a user
    on, or it learns to trust the vectors more than a new user's will deserve. So the
    ``train`` users are dealt into ``MF_FOLDS`` folds, and fold ``k`` reads item vectors
    re-solved from the other folds' ratings, with the users' factors of the full fit (so
    every fold shares its coordinates); users held out for early stopping read the full
    fit, as new users will.

    Returns each user's fold (``MF_FOLDS`` for the full fit), or None without vectors.
    """
    embed = learner.scorer.item
    if embed.looked is None or ratings.empty:
        return None
    mf = BiasedMF(n_factors=embed.vectors.shape[1] - 1, random_state=seed).fit(ratings)
    fold = np.full(n_users, MF_FOLDS)
    fold[train] = np.random.default_rng(seed).permutation(len(train)) % MF_FOLDS
    tables, known = _fold_tables(mf, ratings, fold[ratings[C.USER].to_numpy()])
    full = tables[MF_FOLDS]
    spread = full.std(axis=0)
    values = (tables - full.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    values *= known[..., None]  # an item no other fold rated: unknown, zeros
    codes = items.encoded[ITEM_ID_FIELD][mf.items_.to_numpy()]
    folds = torch.zeros((MF_FOLDS + 1, *embed.vectors.shape), dtype=embed.vectors.dtype)
    folds[:, torch.as_tensor(codes)] = torch.as_tensor(values).to(folds)
    with torch.no_grad():
        embed.vectors.copy_(folds[MF_FOLDS])
    embed.folds = folds
    return fold


def _fold_tables(mf: BiasedMF, ratings: pd.DataFrame,
                 row_fold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each fold's item table ``(q_i, b_i)`` re-solved without that fold's ratings (one
    ridge half-step with the full fit's user factors), then the full fit's own; and which
    items each table knows. Shapes ``[MF_FOLDS + 1, n_items, n_factors + 1]`` and
    ``[MF_FOLDS + 1, n_items]``."""
    n_items = len(mf.items_)
    user = mf.users_.get_indexer(ratings[C.USER])
    item = mf.items_.get_indexer(ratings[C.ITEM])
    # fold k's item half-step: rows (p_u, 1) of the other folds, targets r - mu - b_u
    target = ratings[C.RATING].to_numpy() - mf.mean_ - mf.user_bias_[user]
    design = np.c_[mf.user_factors_[user], np.ones(len(user))]
    tables, known = [], []
    for k in range(MF_FOLDS):
        other = row_fold != k
        tables.append(ridge_by_group(item[other], n_items, design[other], target[other],
                                     mf._penalty(item[other], n_items)))
        known.append(np.bincount(item[other], minlength=n_items) > 0)
    tables.append(np.c_[mf.item_factors_, mf.item_bias_])
    known.append(np.ones(n_items, dtype=bool))
    return np.stack(tables), np.stack(known)


def fill_blend(learner: MetaLearner, ratings: pd.DataFrame, codes: np.ndarray,
               target_mean: float, target_scale: float, seed: int) -> None:
    """Fit the ALS on ``ratings`` (user_id, item_id = item row, rating) and fill the blend's
    tables; ``codes[row]`` is the item-id code of item row ``row``."""
    mf = BiasedMF(random_state=seed).fit(ratings)
    rows = mf.items_.to_numpy()
    penalty = mf._penalty(np.zeros(0, dtype=np.int64), 0)  # the fold-in's own penalty
    learner.blend.fill(torch.as_tensor(codes[rows]), torch.as_tensor(mf.item_factors_),
                       torch.as_tensor(mf.item_bias_), torch.as_tensor(penalty),
                       mf.mean_, target_mean, target_scale)


def blend_losses(learner: MetaLearner, users: Table, items: Table, episodes: list,
                 loop: InnerLoop, loss: str) -> np.ndarray:
    """The mean query loss per user of the episodes' users at each weight of :data:`GRID`
    (at 0, the network alone: early stopping's validation loss)."""
    blend, total, n_users = learner.blend, np.zeros(len(GRID)), 0
    with torch.no_grad():
        for query, net, als, codes in blend_scores(learner, users, items, episodes, loop):
            for k, weight in enumerate(GRID):
                pred = blend.mix(net, als, codes, weight)
                total[k] += float(masked_loss(pred, query.target, query.mask, loss).sum())
            n_users += len(query.users)
    return total / max(n_users, 1)


def blend_scores(learner: MetaLearner, users: Table, items: Table, episodes: list,
                 loop: InnerLoop):
    """Per episode, each user adapted on its support set: the query batch, the network's and
    the ALS's scores of its rows and their item-id codes (``query, net, als, codes``). Sets
    eval mode; call it under ``torch.no_grad()``."""
    learner.eval()
    for support, query in episodes:
        fast = learner.adapt(users, items, support, loop)
        als_user = fast.pop(BLEND_KEY)
        net = learner.score(users, items, fast, query.users, query.items)
        codes = items[learner.blend.field][query.items]
        yield query, net, learner.blend.predict(als_user, codes), codes
