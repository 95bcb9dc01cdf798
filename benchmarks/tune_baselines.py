"""Tune the classic baselines on validation users carved from MeLU's warm training state.

The training state is protocol (a)'s (the support sets of the warm users with 13 to 100
ratings, seed 0); a fifth of its users are held out as new validation users (10 query
ratings each, the rest as support). The reported query sets are never touched. Prints the
validation MAE of each setting; the defaults of ``recmeta.baselines`` are the best here.

    python benchmarks/tune_baselines.py [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import numpy as np

from recmeta import baselines as B
from recmeta import metrics as M
from recmeta.datasets import load_melu
from recmeta.evaluate.splits import support_query, validation_users

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "RECMETA_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    melu = load_melu(args.data_dir / "ml-1m" / "melu", states=("warm_state",))
    train = support_query(melu.states["warm_state"], np.random.default_rng(0)).support
    fit_rows, val = validation_users(train, np.random.default_rng(123))
    print(f"fit on {len(fit_rows)} rows; {val.query.user_id.nunique()} validation users")
    grids = {
        B.BiasBaseline: dict(reg_item=[1, 2, 5, 10, 25], reg_user=[1, 3, 5, 10], n_iter=[1, 3]),
        B.BiasedMF: dict(n_factors=[8, 32, 64], reg=[3, 6, 10, 13, 30], reg_bias=[2, 5]),
    }
    for cls, grid in grids.items():
        scores = [(validation_mae(cls(**params), fit_rows, val), params)
                  for params in (dict(zip(grid, values, strict=True))
                                 for values in itertools.product(*grid.values()))]
        for mae, params in sorted(scores, key=lambda s: s[0])[:5]:
            print(f"{cls.__name__:13s} validation MAE {mae:.4f}  {params}")
        print(f"{cls.__name__:13s} validation MAE {validation_mae(cls(), fit_rows, val):.4f}"
              f"  defaults {cls()!r}")


def validation_mae(model: B.Baseline, fit_rows, val) -> float:
    pred = model.fit(fit_rows).predict(val.query, val.support)
    return M.mae(val.query.user_id, val.query.rating, pred)


if __name__ == "__main__":
    main()
