"""Fitting the blend of :mod:`recmeta.blend`: its ALS, and its weight.

``fit`` calls :func:`fill_blend` after meta-training: a biased ALS (:class:`BiasedMF`, its
defaults) on the training users' ratings fills the blend's item tables, and the weight is
the one of :data:`GRID` whose blended scores have the least meta-loss on the users held out
for early stopping, adapted on the same episodes early stopping watched. Those users are
not in the ALS, so they are folded in as any new user will be.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .adaptation import InnerLoop, masked_loss
from .baselines import BiasedMF
from .blend import BLEND_KEY
from .meta import MetaLearner, Table

GRID = tuple(k / 10 for k in range(11))  # the blend weights "auto" chooses among


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
    learner.eval()
    with torch.no_grad():
        for support, query in episodes:
            fast = learner.adapt(users, items, support, loop)
            als_user = fast.pop(BLEND_KEY)
            net = learner.score(users, items, fast, query.users, query.items)
            codes = items[blend.field][query.items]
            als = blend.predict(als_user, codes)
            for k, weight in enumerate(GRID):
                pred = blend.mix(net, als, codes, weight)
                total[k] += float(masked_loss(pred, query.target, query.mask, loss).sum())
            n_users += len(support.users)
    return total / max(n_users, 1)
