"""Validation support-size curves: protocol (b) run inside the training users only.

For each seed, protocol (b)'s split of ``recmeta evaluate`` (``new_users`` with that seed) is
drawn first, and its new users are dropped: only its training users are kept. The same
protocol then runs on those training users alone, so a fifth of them become validation new
users (k = 0 to 20 ratings shown, 10 query ratings). The reported new users are never touched.

    python benchmarks/tune_curves.py '{}'                        # the defaults
    python benchmarks/tune_curves.py '{"shrinkage": 5.0}' --dataset ml-1m --seeds 0
    python benchmarks/tune_curves.py '{}' --methods metasgd,supervised,als

Prints the mean validation MAE over the seeds at each k for each method, then each seed's.
ML-100K takes about 1.5 minutes per seed and neural method on one core
(``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from recmeta.datasets import RatingData
from recmeta.evaluate import protocols
from recmeta.evaluate.runner import load_named
from recmeta.evaluate.splits import NewUsers, new_users

ROOT = Path(__file__).resolve().parents[1]


def validation_split(data: RatingData, seed: int) -> tuple[RatingData, NewUsers]:
    """Protocol (b)'s training users for ``seed`` (its new users dropped), split again as
    ``support_curves`` splits them: the data to fit on, and the validation new users."""
    inner = data.subset(new_users(data.ratings, np.random.default_rng(seed)).train)
    split = new_users(inner.ratings, np.random.default_rng(seed))
    return inner.subset(split.train), split


def validation_setup(description: str) -> tuple[argparse.Namespace, RatingData, NewUsers]:
    """The command line of a script fitted on one seed's validation split (``--dataset``,
    ``--seed``, ``--data-dir``; one thread): its arguments, the data to fit on, and the
    validation new users (:func:`validation_split`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "ml-1m"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fit_data, split = validation_split(load_named(args.data_dir, args.dataset), args.seed)
    return args, fit_data, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", help="MetaRecommender parameters as JSON, for every "
                                       "neural method")
    parser.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "ml-1m"))
    parser.add_argument("--methods", default="metasgd,supervised")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--metric", default="MAE")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_named(args.data_dir, args.dataset)
    params = json.loads(args.params)
    results = protocols.Results()
    for seed in (int(s) for s in args.seeds.split(",")):
        train = new_users(data.ratings, np.random.default_rng(seed)).train
        results += protocols.support_curves(data.subset(train), args.methods.split(","),
                                            seeds=(seed,), neural_params=params)
    metrics = results.metrics
    rows = metrics[metrics.metric == args.metric]
    table = rows.pivot_table(index="method", columns="setting", values="value")
    print(f"{args.params} {args.dataset}: validation {args.metric}, mean of seeds {args.seeds}")
    print(table.round(4).to_string())
    print(rows.pivot_table(index=["method", "seed"], columns="setting",
                           values="value").round(4).to_string(), flush=True)


if __name__ == "__main__":
    main()
