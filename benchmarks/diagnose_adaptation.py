"""How far does adaptation move each user? A diagnostic for the neural methods on MeLU's data.

Fits one method on protocol (a)'s training state (seed 0) minus a fifth of its users, held
out as validation users (never the reported query sets), then adapts them with 0 to 20 inner
steps and prints, per step count: validation query MAE and nDCG@3, the MAE on the support
rows themselves, and the spread over users of the mean residual on the support rows (how much
of each user's offset adaptation leaves unexplained). The classic baselines are printed on the
same users, and for Meta-SGD the learned inner learning rates.

    python benchmarks/diagnose_adaptation.py --method metasgd [--param max_epochs=10]
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

from recmeta import baselines as B
from recmeta import metrics as M
from recmeta.datasets import load_melu
from recmeta.evaluate.methods import neural_estimator
from recmeta.evaluate.splits import support_query, validation_users

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    parser.add_argument("--method", default="metasgd")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", default="0,1,2,5,10,20")
    args = parser.parse_args()
    torch.set_num_threads(1)
    melu = load_melu(args.data_dir / "ml-1m" / "melu", states=("warm_state",))
    warm = melu.state("warm_state")
    train = support_query(warm.ratings, np.random.default_rng(0)).support
    fit_rows, val = validation_users(train, np.random.default_rng(123))
    for model in (B.BiasBaseline(), B.BiasedMF()):
        report(type(model).__name__, val, model.fit(fit_rows).predict(val.query, val.support))
    params = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
    data = warm.subset(fit_rows)
    model = neural_estimator(args.method, data, 0, **params)
    start = time.perf_counter()
    model.fit(data.X, data.y)
    print(f"{args.method}: fitted in {time.perf_counter() - start:.0f} s, {model.n_epochs_} "
          f"epochs, best {model.best_epoch_ + 1}")
    support_X, support_y = warm.features(val.support), val.support.rating.to_numpy()
    for steps in (int(s) for s in args.steps.split(",")):
        model.set_params(inner_steps=steps)
        query = model.predict(warm.features(val.query), support_X, support_y)
        fitted = model.predict(support_X, support_X, support_y)
        report(f"{args.method} {steps:2d} steps", val, query, fitted)
    if args.method == "metasgd":
        for name, lr in model.learner_.lr.items():
            print(f"learned inner lr {name:20s} mean {float(lr.detach().mean()):.4f}")


def report(name: str, val, query: np.ndarray, fitted: np.ndarray | None = None) -> None:
    q = val.query
    line = (f"{name:22s} query MAE {M.mae(q.user_id, q.rating, query):.4f} nDCG@3 "
            f"{M.melu_ndcg(q.user_id, q.rating, query, 3):.4f}")
    if fitted is not None:
        s = val.support
        offset = pd.Series(s.rating.to_numpy() - fitted).groupby(s.user_id.to_numpy()).mean()
        line += (f"  support MAE {M.mae(s.user_id, s.rating, fitted):.4f}, spread of users' "
                 f"support residual {offset.std():.3f}")
    print(line, flush=True)


if __name__ == "__main__":
    main()
