"""What each criterion would choose as the blend's weight, on the validation split of
``tune_validation.py --train eligible``.

``fit`` with ``mf_blend="auto"`` scores the weights 0, 0.1, ..., 1 on the users held out for
early stopping (:func:`recmeta.hybrid.blend_losses`) and keeps the least meta-loss (the
absolute error by default). This script fits the defaults once and, on those very episodes,
prints the absolute and the squared error, and MeLU's nDCG@1 and nDCG@3 of the held-out
users' query rows at every weight; then the
validation users' U figures (MAE, RMSE, nDCG@3, nDCG@1) served at every weight. So one run
shows the weight each criterion picks and what it gives on users the fit never saw.

    python benchmarks/blend_criteria.py            # seed 0
    python benchmarks/blend_criteria.py --seed 1

About 3 to 5 minutes on one core (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tune_validation import splits

import recmeta._fitting as fitting
from recmeta import MetaRecommender
from recmeta import metrics as M
from recmeta.adaptation import masked_loss
from recmeta.datasets import RatingData
from recmeta.hybrid import GRID, blend_losses, blend_scores

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT: dict = {}


def scoring_every_criterion(learner, users, items, episodes, loop, loss):
    """``blend_losses``, and beside it the held-out users' figures by other criteria."""
    blend = learner.blend
    _, target_mean, target_scale = blend.scales.tolist()
    errors, n_users = {"absolute": np.zeros(len(GRID)), "squared": np.zeros(len(GRID))}, 0
    rows = [[] for _ in GRID]  # per weight: (user, rating, prediction) of real query rows
    with torch.no_grad():
        for query, net, als, codes in blend_scores(learner, users, items, episodes, loop):
            real = (query.mask > 0).cpu()
            user = query.users.cpu().unsqueeze(-1).expand_as(real)[real].numpy()
            rating = (query.target.cpu() * target_scale + target_mean)[real].numpy()
            for k, weight in enumerate(GRID):
                pred = blend.mix(net, als, codes, weight)
                for name, total in errors.items():
                    total[k] += float(masked_loss(pred, query.target, query.mask,
                                                  name).sum())
                rows[k].append((user, rating,
                                (pred.cpu() * target_scale + target_mean)[real].numpy()))
            n_users += len(query.users)
    for name, total in errors.items():
        HELD_OUT[f"{name} error"] = total / max(n_users, 1)
    for k in (1, 3):
        HELD_OUT[f"nDCG@{k}"] = np.array([
            M.melu_ndcg(*(np.concatenate(part) for part in zip(*by_weight, strict=True)), k)
            for by_weight in rows])
    HELD_OUT["users"] = n_users
    return blend_losses(learner, users, items, episodes, loop, loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    melu, train, evals = splits(args.data_dir, "eligible")
    data = RatingData(train.reset_index(drop=True), melu.users, melu.items)
    fitting.blend_losses = scoring_every_criterion
    start = time.time()
    model = MetaRecommender(random_state=args.seed, verbose=0).fit(data.X, data.y)
    print(f"seed {args.seed}: fit {time.time() - start:.0f}s, {model.n_epochs_} epochs, "
          f"chosen weight {model.blend_weight_}")
    print(f"held-out users ({HELD_OUT.pop('users')}), by weight {list(GRID)}:")
    for name, values in HELD_OUT.items():
        best = values.argmax() if name.startswith("nDCG") else values.argmin()
        print(f"  {name}: {json.dumps(np.round(values, 5).tolist())} -> {GRID[best]}")
    query, support = evals["U"]
    print("validation users U, served at each weight:")
    for weight in GRID:
        model.set_params(mf_blend=weight)
        pred = model.predict(data.features(query), data.features(support),
                             support.rating.to_numpy())
        users, y = query.user_id, query.rating
        print(f"  w={weight:.1f}: MAE {M.mae(users, y, pred):.4f} RMSE "
              f"{M.rmse(users, y, pred):.4f} nDCG@3 {M.melu_ndcg(users, y, pred, 3):.4f} "
              f"nDCG@1 {M.melu_ndcg(users, y, pred, 1):.4f}", flush=True)


if __name__ == "__main__":
    main()
