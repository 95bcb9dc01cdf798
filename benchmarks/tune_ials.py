"""Tune the implicit-feedback ALS baseline (``ials``) on validation new users.

For each seed, protocol (b)'s split of ``recmeta evaluate`` is drawn and its new users
dropped; a fifth of the remaining training users then become validation new users (k = 0 to
20 ratings shown, 10 query items among 100 unrated ones), drawn with the same generator
carried on (so not the very users of ``tune_curves.validation_split``, which starts it
again). The reported new users are never touched. Every setting of the grid is fitted on the other
training users and scored by nDCG@10; the table is sorted by the mean over k >= 3 (the
targets' range), best first.

    python benchmarks/tune_ials.py                       # ML-100K, seeds 0,1,2
    python benchmarks/tune_ials.py --dataset ml-1m --seeds 0
    python benchmarks/tune_ials.py --grid '{"reg": [100, 300], "alpha": [10, 20]}'
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recmeta.evaluate.protocols import KS, _top_k
from recmeta.evaluate.runner import load_named
from recmeta.evaluate.splits import new_users
from recmeta.ials import ImplicitALS

ROOT = Path(__file__).resolve().parents[1]
GRID = dict(n_factors=[32, 64, 128], reg=[1.0, 10.0, 100.0], alpha=[1.0, 5.0, 20.0, 50.0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "ml-1m"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--grid", default="{}", help="JSON: values replacing GRID's")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    ratings = load_named(args.data_dir, args.dataset).ratings
    grid = GRID | json.loads(args.grid)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(seed)
        train = new_users(ratings, rng).train  # the reported new users: dropped
        split = new_users(train, rng)  # validation new users among the training users
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values, strict=True))
            start = time.perf_counter()
            model = ImplicitALS(**params, random_state=seed).fit(split.train)
            for k in KS:
                scores = model.predict(split.candidates, split.support(k))
                ndcg = _top_k(split.candidates, scores, 10)["nDCG@10"]
                rows.append({**params, "seed": seed, "k": k, "nDCG@10": ndcg})
            print(f"seed {seed} {params}: {time.perf_counter() - start:.1f} s", flush=True)
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(index=list(grid), columns="k", values="nDCG@10")
    table["mean k>=3"] = table[[k for k in KS if k >= 3]].mean(axis=1)
    print(f"{args.dataset}: validation nDCG@10, mean of seeds {args.seeds}")
    print(table.sort_values("mean k>=3", ascending=False).round(4).to_string())


if __name__ == "__main__":
    main()
