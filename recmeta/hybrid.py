"""The matrix-factorisation parts of ``fit``: item vectors as features, and the ALS blend.

For ratings both fit a biased ALS (:class:`~recmeta.baselines.BiasedMF`):

- :func:`fill_item_vectors` gives each item id its ALS factors and bias as numeric item
  fields (``mf_features``), with leak-free tables for meta-training; its ALS sees the
  training users' ratings only (never the users held out for early stopping);
- :func:`fill_blend` fills the tables of :mod:`recmeta.blend` (``mf_blend``), and
  :func:`blend_losses` scores the weights of :data:`GRID` on the users held out for early
  stopping, adapted on the very episodes early stopping watched, with an ALS of the training
  users only: those users are folded in as any new user will be. The ALS that then serves
  is fitted again on every user's ratings.

For 0/1 feedback the blend's ALS is implicit ALS (:class:`~recmeta.ials.ImplicitALS`):
:func:`fill_implicit_blend` fills its tables, :func:`calibrate_blend` maps its scores to
logits on those held-out users, and :func:`ranking_losses` scores the weights by how well
the users' query interactions rank among every item (nDCG@10), as recommendations are
judged; the rest as for ratings.
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
from .features import UNKNOWN
from .frames import ITEM_ID_FIELD
from .ials import ImplicitALS
from .meta import MetaLearner, Table
from .metrics import ndcg_at_k

GRID = tuple(k / 10 for k in range(11))  # the blend weights "auto" chooses among
# For 0/1 feedback "auto" stops short of 1: there the network would have no say on any item
# the ALS knows, and implicit ALS has no item bias, so a user with no interaction yet would
# get every known item tied (random order), and a user with a few would lose the network's
# prior of what people like (on ML-100K's validation new users, seeds 0 to 2, 0.9 ranked
# better than 1 at every k from 0 to 5).
IMPLICIT_GRID = GRID[:-1]
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


def fill_implicit_blend(learner: MetaLearner, interactions: pd.DataFrame, codes: np.ndarray,
                        seed: int) -> None:
    """Fit implicit ALS on ``interactions`` (user_id, item_id = item row: who interacted
    with what) and fill the blend's tables; ``codes[row]`` is item row ``row``'s code.

    Every item of ``codes`` is known to the blend: one with no interaction gets zero
    factors, the score implicit ALS gives an item nobody chose. Left unknown, it was
    scored by the network alone, on another scale than the blended logits; with 0/1
    feedback that holds explicit 0s (rated, not liked), items that only ever got 0s then
    outranked every item someone liked, for a user with a short history above all."""
    ials = ImplicitALS(n_factors=learner.blend.factors.shape[1], random_state=seed)
    ials.fit(interactions)
    rows = ials.items_.to_numpy()
    blend = learner.blend
    blend.fill(torch.as_tensor(codes[rows]), torch.as_tensor(ials.item_factors_),
               ials.reg, ials.alpha)
    with torch.no_grad():
        blend.known[torch.as_tensor(codes[codes > UNKNOWN], device=blend.known.device)] = True


def calibrate_blend(learner: MetaLearner, users: Table, items: Table, episodes: list,
                    loop: InnerLoop) -> tuple[float, float]:
    """Map implicit ALS's scores to logits: the logistic regression of the episodes' query
    labels (0/1, sampled negatives included) on the ALS's score of each row, each user
    folded in from its support set. Sets the blend's calibration; returns slope and
    intercept."""
    blend, scores, labels = learner.blend, [], []
    blend.calibrate(1.0, 0.0)
    with torch.no_grad():
        for query, _, als, codes in blend_scores(learner, users, items, episodes, loop):
            keep = (query.mask > 0) & blend.known[codes]
            scores.append(als[keep].double().cpu().numpy())
            labels.append(query.target[keep].double().cpu().numpy())
    slope, intercept = logistic_fit(np.concatenate(scores), np.concatenate(labels))
    blend.calibrate(slope, intercept)
    return slope, intercept


def logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-6,
                 n_iter: int = 50) -> tuple[float, float]:
    """``(a, b)`` minimising the mean logistic loss of ``a * x + b`` for labels ``y`` in
    [0, 1] (Newton's method; a tiny ridge on ``a`` keeps it finite on separable data).
    ``(0, 0)`` without rows."""
    if not len(x):
        return 0.0, 0.0
    design, beta = np.c_[x, np.ones(len(x))], np.zeros(2)
    for _ in range(n_iter):
        p = 1.0 / (1.0 + np.exp(-(design @ beta)))
        grad = design.T @ (p - y) / len(x) + ridge * np.r_[beta[0], 0.0]
        hess = (design * (p * (1 - p))[:, None]).T @ design / len(x) + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


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


RANK_CUTOFF = 10  # 0/1 feedback: "auto" weighs the blend by nDCG at this cutoff


def ranking_losses(learner: MetaLearner, users: Table, items: Table, episodes: list,
                   loop: InnerLoop, histories: Histories) -> np.ndarray:
    """``1 - nDCG@10`` per weight of :data:`IMPLICIT_GRID`, the mean over the episodes' users of
    ranking each user's query interactions (target 1) among every item it has no row
    with (its support and the rest of its history are left out): what a new user's
    recommendations are judged by. Users without an interaction in the query are left out."""
    blend, total, n_users = learner.blend, np.zeros(len(IMPLICIT_GRID)), 0
    codes = items[blend.field]
    every = torch.arange(len(codes), device=codes.device)
    learner.eval()
    with torch.no_grad():
        for support, query in episodes:
            fast = learner.adapt(users, items, support, loop)
            als = blend.predict(fast.pop(BLEND_KEY), codes)
            net = learner.score(users, items, fast, query.users, every)
            relevant = torch.zeros_like(net, dtype=torch.bool)
            candidate = torch.ones_like(relevant)
            for b, user in enumerate(query.users.tolist()):
                rows = query.items[b][(query.mask[b] > 0) & (query.target[b] > 0.5)]
                candidate[b, torch.as_tensor(histories.of(user)[0], device=net.device)] = False
                relevant[b, rows] = True
            has = relevant.any(-1, keepdim=True)  # users with an interaction only
            candidate = (candidate & has) | relevant
            n = int(has.sum())
            if not n:
                continue
            owner, item = torch.nonzero(candidate, as_tuple=True)
            owner_np, relevant_np = owner.cpu().numpy(), relevant[owner, item].cpu().numpy()
            for k, weight in enumerate(IMPLICIT_GRID):
                scores = blend.mix(net, als, codes, weight)[owner, item]
                total[k] += n * ndcg_at_k(owner_np, relevant_np, scores.double().cpu().numpy(),
                                          RANK_CUTOFF)
            n_users += n
    return 1.0 - total / max(n_users, 1)


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
