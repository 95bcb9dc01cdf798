"""Does the blend of implicit ALS (``mf_blend``) help the implicit model rank new users' items?

On ``tune_curves.py``'s validation split (protocol (b) inside the training users only; the
reported new users are never touched), fit ``metasgd-implicit`` (its defaults: the blend's
weight chosen by ``fit``, "auto") and ``ials``, and print validation nDCG@10 at every k for
``ials`` alone and for the implicit model at each blend weight (``set_params(mf_blend=w)``
after fit: 0 is the network alone, 1 the calibrated implicit ALS alone), the weight "auto"
chose marked, and the held-out users' ``1 - nDCG@10`` it chose by at each weight it tried.

    python benchmarks/implicit_blend.py                  # ML-100K, seed 0: about 10 minutes
    python benchmarks/implicit_blend.py --dataset ml-1m  # about an hour
"""

from __future__ import annotations

import time

import pandas as pd
from tune_curves import validation_setup

from recmeta.evaluate import methods
from recmeta.evaluate.protocols import KS, _top_k
from recmeta.hybrid import GRID, IMPLICIT_GRID


def main() -> None:
    args, fit_data, split = validation_setup(__doc__.splitlines()[0])
    built = methods.build(("metasgd-implicit", "ials"), fit_data, args.seed)
    start = time.perf_counter()
    for method in built.values():
        method.fit(fit_data)
    print(f"fitted in {time.perf_counter() - start:.0f} s", flush=True)
    model, rows = built["metasgd-implicit"].model_, []
    chosen = model.blend_weight_
    for k in KS:
        support = split.support(k)
        scores = {"ials": built["ials"].predict(split.candidates, support)}
        for w in GRID:
            model.set_params(mf_blend=w)
            scores[f"w = {w:.1f}" + (" (auto)" if w == chosen else "")] = \
                built["metasgd-implicit"].predict(split.candidates, support)
        model.set_params(mf_blend="auto")
        for name, score in scores.items():
            rows.append({"method": name, "k": k,
                         "nDCG@10": _top_k(split.candidates, score, 10)["nDCG@10"]})
    frame = pd.DataFrame(rows)
    print(f"{args.dataset} seed {args.seed}: validation nDCG@10 (w: the blend's weight; 0 is the "
          f"implicit network alone); calibration {model.learner_.blend.scales[1:].tolist()}")
    print("what \"auto\" chose by: the held-out users' 1 - nDCG@10 at w = "
          + ", ".join(f"{w:.1f}: {v:.4f}" for w, v in zip(IMPLICIT_GRID, model.blend_losses_,
                                                          strict=True)))
    print(frame.pivot(index="method", columns="k", values="nDCG@10").loc[
        frame.method.unique()].round(4).to_string())

if __name__ == "__main__":
    main()
