"""Validation MAE of MetaRecommender settings on splits carved from MeLU's warm state only.

The reported query sets of ``recmeta evaluate`` are never touched: training uses the warm
state's ratings minus two held-out parts, scored as in MeLU's protocol (users with 13 to 100
ratings, 10 random query ratings, the rest as support):

- ``U``: a fifth of the warm users (seed 123), a proxy for the user-cold state;
- ``I``: the warm users' ratings of films from 1996 on, a proxy for the item-cold state.

By default the models learn from every remaining rating. ``--train eligible`` learns as
``recmeta evaluate`` does: only from the support sets of the remaining users with 13 to 100
ratings (10 random ratings of each such user left out, as the warm state's query sets are).

    python benchmarks/tune_validation.py baselines             # bias and ALS on the same splits
    python benchmarks/tune_validation.py baselines --als-seeds 4   # and ALS less a tenth of users
    python benchmarks/tune_validation.py '{}'                  # the defaults
    python benchmarks/tune_validation.py '{"factors": 16}'     # any MetaRecommender parameters
    python benchmarks/tune_validation.py '{}' --serve          # then 5/8/12 steps x shrinkage
    python benchmarks/tune_validation.py '{}' --blend          # then blended with ALS's
    python benchmarks/tune_validation.py '{}' --weights        # then served at each mf_blend

Each line gives the MAE of U and I, then their RMSE and nDCG@3 (MeLU's formula). One fit
takes 2 to 5 minutes on one core (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recmeta import MetaRecommender
from recmeta import metrics as M
from recmeta.baselines import BiasBaseline, BiasedMF
from recmeta.datasets import RatingData, load_melu
from recmeta.evaluate.splits import eligible, support_query
from recmeta.hybrid import GRID

ROOT = Path(__file__).resolve().parents[1]


def splits(data_dir: Path, train_users: str = "all"):
    melu = load_melu(data_dir / "ml-1m" / "melu", states=("warm_state",))
    ratings = melu.state("warm_state").ratings
    rng = np.random.default_rng(123)
    users = ratings.user_id.unique()
    held_users = set(rng.choice(users, len(users) // 5, replace=False))
    lines = (data_dir / "ml-1m" / "melu" / "movies_extrainfos.dat").read_text(
        encoding="utf-8").splitlines()
    year = pd.Series({int(line.split("::")[0]): int(line.split("::")[2])
                      for line in lines if line})
    held_items = set(year[year >= 1996].index)
    is_user, is_item = ratings.user_id.isin(held_users), ratings.item_id.isin(held_items)
    train = ratings[~is_user & ~is_item]
    if train_users == "eligible":
        train = support_query(train, np.random.default_rng(0), 10).support
    evals = {"U": _protocol(ratings[is_user & ~is_item]),
             "I": _protocol(ratings[~is_user & is_item])}
    return melu, train, evals


def _protocol(rows: pd.DataFrame, seed: int = 0):
    rows = eligible(rows, 13, 100).sample(frac=1, random_state=seed)
    position = rows.groupby("user_id").cumcount()
    return rows[position < 10], rows[position >= 10]  # query, support


def report(name: str, evals: dict, predict) -> None:
    """MAE of each held-out part, then its RMSE and nDCG@3 (MeLU's formula)."""
    scores, more = {}, {}
    for key, (query, support) in evals.items():
        users, y, pred = query.user_id, query.rating, predict(query, support)
        scores[key] = round(M.mae(users, y, pred), 4)
        more[key] = (round(M.rmse(users, y, pred), 4), round(M.melu_ndcg(users, y, pred, 3), 4))
    print(name, scores, "RMSE, nDCG@3:", more, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", help='"baselines", or MetaRecommender parameters as JSON')
    parser.add_argument("--serve", action="store_true",
                        help="also score with other inner steps and shrinkage after the fit")
    parser.add_argument("--blend", action="store_true",
                        help="also score (1 - w) * the model's + w * ALS's prediction")
    parser.add_argument("--als-seeds", type=int, default=0, metavar="N",
                        help="baselines: also ALS in N seeds, on every training user and "
                             "less a random tenth of them")
    parser.add_argument("--weights", action="store_true",
                        help="also serve the fitted model at every blend weight (mf_blend)")
    parser.add_argument("--train", choices=("all", "eligible"), default="all",
                        help="learn from every remaining rating, or as the evaluation does")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    melu, train, evals = splits(args.data_dir, args.train)
    print(f"training on {len(train):,} ratings of {train.user_id.nunique():,} users "
          f"(--train {args.train})", flush=True)
    if args.params == "baselines":
        for baseline in (BiasBaseline(), BiasedMF()):
            baseline.fit(train)
            report(type(baseline).__name__, evals, baseline.predict)
        if args.als_seeds:  # what leaving out the users fit holds back costs the ALS
            users, rng = train.user_id.unique(), np.random.default_rng(5)
            for seed in range(args.als_seeds):
                drop = rng.choice(users, len(users) // 10, replace=False)
                for name, rows in (("all users", train),
                                   ("less a tenth", train[~train.user_id.isin(drop)])):
                    als = BiasedMF(random_state=seed).fit(rows)
                    report(f"  BiasedMF seed {seed}, {name}", evals, als.predict)
        return
    params = json.loads(args.params)
    data = RatingData(train.reset_index(drop=True), melu.users, melu.items)
    start = time.time()
    model = MetaRecommender(**{"random_state": 0, "verbose": 0, **params}).fit(data.X, data.y)
    fitted = (f"fit {time.time() - start:.0f}s, {model.n_epochs_} epochs, "
              f"best {model.best_epoch_ + 1}, ALS weight {model.blend_weight_}")

    def predict(query, support):
        return model.predict(data.features(query), data.features(support),
                             support.rating.to_numpy())

    report(f"{args.params} ({fitted})", evals, predict)
    if model.blend_losses_ is not None:  # what "auto" chose the weight by
        print("  held-out users' meta-loss by weight:",
              dict(zip(GRID, np.round(model.blend_losses_, 5).tolist(), strict=True)))
    print("  validation loss by epoch:", [round(v, 4) for v in model.validation_loss_curve_])
    if args.blend:
        als = BiasedMF().fit(train)
        for weight in (0.25, 0.5, 0.75):
            report(f"  blended with ALS, weight {weight}", evals,
                   lambda q, s, w=weight: (1 - w) * predict(q, s) + w * als.predict(q, s))
    if args.weights and model.blend_weight_ is not None:
        for weight in GRID:
            model.set_params(mf_blend=weight)
            report(f"  served with mf_blend={weight}", evals, predict)
        model.set_params(mf_blend=params.get("mf_blend", "auto"))
    if args.serve:
        for steps in (5, 8, 12):
            for shrinkage in (5.0, 10.0, 20.0):
                model.set_params(inner_steps=steps, shrinkage=shrinkage)
                report(f"  served with {steps} steps, shrinkage {shrinkage}", evals, predict)


if __name__ == "__main__":
    main()
