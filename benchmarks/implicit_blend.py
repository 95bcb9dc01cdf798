"""Would blending implicit ALS into the implicit model rank new users' items better?

On ``tune_curves.py``'s validation split (protocol (b) inside the training users only; the
reported new users are never touched), fit ``metasgd-implicit`` and ``ials``, and score each
validation new user's candidates at every k with ``(1 - w) z(net) + w z(ials)`` (the network's
scores as logits), so ``w = 0`` is the implicit model alone and ``w = 1`` implicit ALS alone.
Two tables of nDCG@10 by ``w`` and k: ``z`` standardising every score by one mean and spread
(all rows of that k), which a blend in ``predict`` could do with constants from ``fit``; and
``z`` standardising each user's scores over its own candidates. A measurement for a blend not
built into ``MetaRecommender``.

    python benchmarks/implicit_blend.py                  # ML-100K, seed 0: about 10 minutes
    python benchmarks/implicit_blend.py --dataset ml-1m  # longer
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tune_curves import validation_split

from recmeta.evaluate import methods
from recmeta.evaluate.protocols import KS, _top_k
from recmeta.evaluate.runner import load_named

ROOT = Path(__file__).resolve().parents[1]


def standardised(users: np.ndarray | None, scores: np.ndarray) -> np.ndarray:
    """Each user's scores less their mean, over their standard deviation (1 where 0); with
    ``users`` None, every score by the mean and deviation of all."""
    if users is None:
        return (scores - scores.mean()) / (scores.std() or 1.0)
    by_user = pd.Series(scores).groupby(users)
    spread = by_user.transform("std").replace(0, 1).to_numpy()
    return (scores - by_user.transform("mean").to_numpy()) / spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "ml-1m"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_named(args.data_dir, args.dataset)
    fit_data, split = validation_split(data, args.seed)
    built = methods.build(("metasgd-implicit", "ials"), fit_data, args.seed)
    start = time.perf_counter()
    for method in built.values():
        method.fit(fit_data)
    print(f"fitted in {time.perf_counter() - start:.0f} s", flush=True)
    users, rows = split.candidates["user_id"].to_numpy(), []
    for k in KS:
        support = split.support(k)
        prob = np.clip(built["metasgd-implicit"].predict(split.candidates, support), 1e-6,
                       1 - 1e-6)
        logit, als = np.log(prob) - np.log1p(-prob), built["ials"].predict(split.candidates,
                                                                            support)
        for scope, by in (("one scale for all", None), ("each user's own", users)):
            net, fold = standardised(by, logit), standardised(by, als)
            for w in np.round(np.linspace(0, 1, 11), 1):
                ndcg = _top_k(split.candidates, (1 - w) * net + w * fold, 10)["nDCG@10"]
                rows.append({"scope": scope, "w": w, "k": k, "nDCG@10": ndcg})
    frame = pd.DataFrame(rows)
    for scope, part in frame.groupby("scope", sort=False):
        print(f"{args.dataset} seed {args.seed}, standardised by {scope}: validation nDCG@10 "
              f"(w = 0: the implicit model, w = 1: ials)")
        print(part.pivot(index="w", columns="k", values="nDCG@10").round(4).to_string())


if __name__ == "__main__":
    main()
