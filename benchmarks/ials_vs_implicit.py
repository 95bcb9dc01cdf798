"""``recmeta.ials.ImplicitALS`` against the ``implicit`` library's ALS, on validation new users.

The issue asked for ``implicit`` where it installs; recmeta keeps its own exact solver (no
compiled dependency), and this script checks it against that library (``pip install
implicit``; 0.7.3 here), on ``tune_ials.py``'s validation split for each seed:

1. the same item factors: ``implicit``'s ``recalculate_user`` (exact Cholesky) and recmeta's
   fold-in of the validation users' k = 5 supports; prints the largest difference;
2. each library fitted on its own (its own initialisation, the same settings; ``implicit``'s
   confidence is ``alpha r`` where recmeta's is ``1 + alpha r``, so it gets ``alpha + 1``) and
   each folding in new users itself: nDCG@10 at every k, side by side.

    python benchmarks/ials_vs_implicit.py                     # ML-100K, seeds 0,1,2
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

try:
    from implicit.cpu.als import AlternatingLeastSquares
except ImportError as error:  # not a dependency of recmeta
    raise SystemExit("This check needs the implicit library: pip install implicit") from error

from recmeta.baselines import Support
from recmeta.evaluate.protocols import KS, _top_k
from recmeta.evaluate.runner import load_named
from recmeta.evaluate.splits import new_users
from recmeta.ials import ImplicitALS

ROOT = Path(__file__).resolve().parents[1]


def interactions(model: ImplicitALS, users: pd.Index, frame: pd.DataFrame) -> sp.csr_matrix:
    """``frame``'s (user, item) pairs as a users x items 0/1 matrix, items ``model`` knows."""
    user, item = users.get_indexer(frame["user_id"]), model.items_.get_indexer(frame["item_id"])
    keep = (user >= 0) & (item >= 0)
    return sp.csr_matrix((np.ones(keep.sum()), (user[keep], item[keep])),
                         shape=(len(users), len(model.items_)))


def library(model: ImplicitALS, seed: int | None = None) -> AlternatingLeastSquares:
    return AlternatingLeastSquares(factors=model.n_factors, regularization=model.reg,
                                   alpha=model.alpha + 1.0, iterations=model.n_iter,
                                   use_cg=False, dtype=np.float64, random_state=seed,
                                   num_threads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "ml-1m"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    ratings = load_named(args.data_dir, args.dataset).ratings
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(seed)
        split = new_users(new_users(ratings, rng).train, rng)  # as tune_ials.py
        ours = ImplicitALS(random_state=seed).fit(split.train)
        theirs = library(ours, seed)
        theirs.fit(interactions(ours, ours.users_, split.train).tocsr(), show_progress=False)
        support = split.support(5)
        users = pd.Index(pd.unique(support["user_id"]))
        same = library(ours)
        same.item_factors, same.user_factors = ours.item_factors_.copy(), np.zeros((1, 1))
        gap = np.abs(ours.fold_in(Support.of(ours, users, support)) - same.recalculate_user(
            np.arange(len(users)), interactions(ours, users, support))).max()
        print(f"seed {seed}: fold-in with the same item factors, largest difference {gap:.1e}")
        candidates = split.candidates
        cand_users = pd.Index(pd.unique(candidates["user_id"]))
        row, item = cand_users.get_indexer(candidates["user_id"]), \
            ours.items_.get_indexer(candidates["item_id"])
        table = {}
        for k in KS:
            support = split.support(k)
            x = theirs.recalculate_user(np.arange(len(cand_users)),
                                        interactions(ours, cand_users, support))
            lib = np.where(item >= 0, np.einsum("nf,nf->n", x[row],
                                                theirs.item_factors[np.maximum(item, 0)]), 0.0)
            table[k] = {name: _top_k(candidates, scores, 10)["nDCG@10"] for name, scores in
                        (("recmeta ials", ours.predict(candidates, support)),
                         ("implicit", lib))}
        print(pd.DataFrame(table).round(4).to_string(), flush=True)


if __name__ == "__main__":
    main()
