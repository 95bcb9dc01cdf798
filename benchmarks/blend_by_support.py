"""Which blend weight each support size wants, on validation new users.

The split is ``tune_curves.py``'s: protocol (b)'s training users only, a fifth of them as
validation new users (the reported new users are never touched). The defaults are fitted
once (one seed); then at every k in 0, 1, 3, 5, 10, 20 the validation users are served with
the network alone (``mf_blend=0``) and with the ALS on the items it knows (``mf_blend=1``), and
since the blend is linear in its weight, every weight's predictions are ``net + w (als - net)``.
Prints the MAE at the fitted ("auto") weight, the MAE at each weight, and the weight with the
least MAE and the least RMSE at each k.

    python benchmarks/blend_by_support.py                      # ML-100K, seed 0 (3 minutes)
    python benchmarks/blend_by_support.py --dataset ml-1m      # about 10 minutes, one core
"""

from __future__ import annotations

import time

import numpy as np
from tune_curves import validation_setup

from recmeta import metrics as M
from recmeta.evaluate import methods as methods_
from recmeta.hybrid import GRID


def main() -> None:
    args, fit_data, split = validation_setup(__doc__.splitlines()[0])
    method = methods_.build(("metasgd",), fit_data, args.seed)["metasgd"]
    start = time.time()
    method.fit(fit_data)
    model = method.model_
    print(f"{args.dataset} seed {args.seed}: fit {time.time() - start:.0f}s, "
          f"auto weight {model.blend_weight_}; MAE at weights {list(GRID)}", flush=True)
    query, users, y = split.query, split.query.user_id, split.query.rating
    for k in (0, 1, 3, 5, 10, 20):
        support = split.support(k)
        served = {}
        for weight in (0.0, 1.0, "auto"):
            model.set_params(mf_blend=weight)
            served[weight] = method.predict(query, support)
        model.set_params(mf_blend="auto")
        net, als = served[0.0], served[1.0]
        mae = [M.mae(users, y, net + w * (als - net)) for w in GRID]
        rmse = [M.rmse(users, y, net + w * (als - net)) for w in GRID]
        print(f"  k={k}: auto {M.mae(users, y, served['auto']):.4f}; "
              + " ".join(f"{v:.4f}" for v in mae)
              + f"; least MAE at {GRID[int(np.argmin(mae))]}, least RMSE at "
                f"{GRID[int(np.argmin(rmse))]}", flush=True)


if __name__ == "__main__":
    main()
