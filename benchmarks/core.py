"""Core figures, measured side by side in one run and printed as one table.

1. Batched adaptation vs the per-user reference loop (MeLU-size model, 2,048 users,
   20 support items, 5 inner steps, 100 items scored each): time ratio, max difference.
2. One new user (20 interactions, 5 steps, 1,000 candidates): p50 / p99 latency of the
   fast path (``NewUserRecommender``) and of the public ``adapt().recommend()`` path.
3. Meta-training throughput (users/s): the batched outer step vs a per-user loop doing the
   same update (same gradients, checked), and the generic ``vmap(grad)`` inner loop beside
   the hand-written one the default scorer runs.
4. Quality on synthetic data, new users with 5 and 20 history items: MAE and RMSE on 10
   held-out ratings per user, meta-trained methods vs the same network trained without meta-learning
   (adapted = fine-tuned with the same steps, and not adapted).

Run: ``python benchmarks/core.py`` (``--quick`` for a small smoke run; ``--only
adaptation,training`` for some sections; ``--profile`` for where a batched meta-training step
spends its time).
"""

from __future__ import annotations

import argparse
import time
from unittest.mock import patch

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call

from recmeta import MetaRecommender, make_synthetic, meta
from recmeta.adaptation import InnerLoop, adapt_reference, adapt_vmap, masked_loss
from recmeta.episodes import pad
from recmeta.fastpath import NewUserRecommender
from recmeta.meta import MetaLearner, as_table
from recmeta.model import FieldShape, Scorer, ScorerConfig
from recmeta.serving import adapt_and_score

# MeLU's fields on MovieLens-1M: 4 user and 4 item fields, 32-d each -> 256 -> 64 -> 64 -> 1
MELU_FIELDS = (
    FieldShape("gender", "user", "cat", 4), FieldShape("age", "user", "cat", 9),
    FieldShape("occupation", "user", "cat", 23), FieldShape("zip", "user", "cat", 3404),
    FieldShape("rate", "item", "cat", 8), FieldShape("genre", "item", "multi", 27),
    FieldShape("director", "item", "multi", 2188), FieldShape("actor", "item", "multi", 8032),
)


def melu_world(n_users: int, n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = {f.name: rng.integers(2, f.cardinality, n_users) for f in MELU_FIELDS[:4]}
    items = {"rate": rng.integers(2, 8, n_items)}
    for name, card, width in (("genre", 27, 4), ("director", 2188, 2), ("actor", 8032, 4)):
        values = rng.integers(2, card, size=(n_items, width))
        values[:, 1:][rng.random((n_items, width - 1)) < 0.4] = 0  # ragged lists
        items[name] = values
    torch.manual_seed(seed)
    # the default method: Meta-SGD, a learned rate per adapted parameter entry
    learner = MetaLearner(Scorer(ScorerConfig(MELU_FIELDS)), "mlp", inner_lr=0.1, learn_lr=True)
    return rng, learner, as_table(users, n_users), as_table(items, n_items)


LOOP = InnerLoop(steps=5, shrinkage=10.0)  # the estimator's defaults
PER_STEP = 64  # users per meta-training step, the estimator's default batch_size


def _reference_scores(learner, users, items, user, s_items, s_target, q_items, loop):
    """The slow, obvious path for one user: plain autograd, no padding, no batching."""
    inputs = learner.vectors(users, items, torch.tensor(user), torch.as_tensor(s_items))
    slow = adapt_reference(learner.reference, learner.reference_params(),
                           learner.reference_lrs(), inputs, torch.as_tensor(s_target), loop)
    out = functional_call(learner.reference, slow, learner.vectors(
        users, items, torch.tensor(user), torch.as_tensor(q_items)))
    return out.detach().numpy()


def bench_adaptation(n_users: int, rows: list, repeats: int = 3) -> None:
    rng, learner, users, items = melu_world(n_users, 3000)
    loop = LOOP
    support = [(rng.choice(3000, 20, replace=False), rng.normal(size=20).astype(np.float32))
               for _ in range(n_users)]
    scored = [rng.choice(3000, 100, replace=False) for _ in range(n_users)]
    ids = np.arange(n_users)
    # warm both paths up (first calls allocate and trace), then time
    adapt_and_score(learner, users, items, ids[:256], support[:256], scored[:256], loop)
    for u in range(8):
        _reference_scores(learner, users, items, u, *support[u], scored[u], loop)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        batched = adapt_and_score(learner, users, items, ids, support, scored, loop)
        times.append(time.perf_counter() - t0)
    t_batched = float(np.median(times))
    t0, diffs = time.perf_counter(), np.zeros(n_users)
    for u in range(n_users):
        out = _reference_scores(learner, users, items, u, *support[u], scored[u], loop)
        diffs[u] = np.abs(out - batched[u]).max()
    t_ref = time.perf_counter() - t0
    # In float32 a pre-activation within rounding of 0 can fall on either side of a ReLU
    # in the two summation orders, and the step after it then differs. Such users are
    # recomputed in float64, where both paths must agree to 1e-9.
    odd = np.flatnonzero(diffs > 1e-5)
    diff64 = 0.0
    if len(odd):
        learner.double()
        again = adapt_and_score(learner, users, items, odd, [support[u] for u in odd],
                                [scored[u] for u in odd], loop)
        for k, u in enumerate(odd):
            out = _reference_scores(learner, users, items, u, *support[u], scored[u], loop)
            diff64 = max(diff64, float(np.abs(out - again[k]).max()))
        learner.float()
    rows += [(f"adapt+score {n_users} users: per-user reference loop", f"{t_ref:.2f} s", ""),
             (f"adapt+score {n_users} users: batched (median of {repeats})",
              f"{t_batched:.2f} s", f"{t_ref / t_batched:.1f}x faster (target >= 20x)"),
             ("  users whose 100 scores match the reference within 1e-5 (float32)",
              f"{n_users - len(odd)} / {n_users}", f"max diff {diffs.max():.1e}"),
             ("  the others, recomputed in float64: max |batched - reference|",
              f"{diff64:.1e}" if len(odd) else "none", "(ReLU ties in float32)")]


def bench_latency(rows: list, repeats: int) -> None:
    data = make_synthetic(n_users=400, n_items=1000, ratings_per_user=(20, 60), random_state=0)
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0).fit(data.X, data.y)
    known = model.items_.ids.to_numpy()
    rng = np.random.default_rng(1)
    fast = NewUserRecommender(model)
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        times = []
        for _ in range(repeats):
            items, ratings = rng.choice(known, 20, replace=False), rng.integers(1, 6, 20)
            t0 = time.perf_counter()
            fast.recommend(items, ratings, {"gender": "F", "age": "25-34"}, n=10)
            times.append(time.perf_counter() - t0)
        p50, p99 = np.percentile(times, [50, 99]) * 1000
        rows.append((f"new user, 20 items, 5 steps, {len(known)} candidates: fast path, "
                     f"{threads} thread(s)", f"p50 {p50:.1f} ms", f"p99 {p99:.1f} ms "
                                                                  f"(target <= 10 ms)"))
    torch.set_num_threads(default_threads)
    times = []
    for _ in range(max(repeats // 5, 10)):
        items, ratings = rng.choice(known, 20, replace=False), rng.integers(1, 6, 20)
        history = data.items.set_index("item_id").loc[items].reset_index().assign(
            user_id="new", gender="F", age="25-34", occupation="artist")
        t0 = time.perf_counter()
        model.adapt(history, ratings.astype(float)).recommend(n=10)
        times.append(time.perf_counter() - t0)
    p50, p99 = np.percentile(times, [50, 99]) * 1000
    rows.append(("  same through adapt(frame).recommend() (pandas in the path)",
                 f"p50 {p50:.1f} ms", f"p99 {p99:.1f} ms"))


def bench_training(n_batches: int, rows: list, repeats: int = 3) -> None:
    rng, learner, users, items = melu_world(2048, 3000, seed=1)
    loop, params = LOOP, [p for p in learner.parameters() if p.requires_grad]
    batches = []
    for _ in range(n_batches):
        ids = rng.choice(2048, PER_STEP, replace=False)
        make = [(rng.choice(3000, k, replace=False), rng.normal(size=k).astype(np.float32))
                for k in [20] * PER_STEP + [10] * PER_STEP]
        batches.append((pad(ids, *zip(*make[:PER_STEP], strict=True)),
                        pad(ids, *zip(*make[PER_STEP:], strict=True))))

    def batched_grads(support, query):
        return torch.autograd.grad(learner.query_loss(users, items, support, query, loop),
                                   params, allow_unused=True)

    def per_user_grads(support, query):
        total = 0.0
        for b, user in enumerate(support.users):
            n_s, n_q = int(support.mask[b].sum()), int(query.mask[b].sum())
            inputs = learner.vectors(users, items, user, support.items[b, :n_s])
            slow = adapt_reference(learner.reference, learner.reference_params(),
                               learner.reference_lrs(),
                                   inputs, support.target[b, :n_s], loop)
            pred = functional_call(learner.reference, slow, learner.vectors(
                users, items, user, query.items[b, :n_q]))
            total = total + masked_loss(pred, query.target[b, :n_q],
                                        torch.ones(n_q), "squared")
        return torch.autograd.grad(total / len(support.users), params, allow_unused=True)

    def vmap_grads(support, query):  # the generic path: vmap of torch.func.grad
        with patch.object(meta, "adapt", adapt_vmap):
            return batched_grads(support, query)

    sides = {"batched": batched_grads, "vmap": vmap_grads, "per-user": per_user_grads}
    times: dict = {name: [] for name in sides}
    grads: dict = {}
    for fn in sides.values():
        fn(*batches[0])  # warm-up
    for _ in range(repeats):  # interleaved, so both sides see the same machine
        for name, fn in sides.items():
            t0 = time.perf_counter()
            grads[name] = [fn(s, q) for s, q in batches]
            times[name].append(time.perf_counter() - t0)
    diff = {other: max(float((a - b).abs().max()) for ga, gb in zip(
        grads["batched"], grads[other], strict=True) for a, b in zip(ga, gb, strict=True)
        if a is not None) for other in ("vmap", "per-user")}
    n = PER_STEP * n_batches
    ups = {k: n / float(np.median(v)) for k, v in times.items()}
    label = f"meta-training, Meta-SGD (2nd order, 5 steps), {PER_STEP} users per step"
    rows += [(f"{label}: per-user loop", f"{ups['per-user']:.0f} users/s",
              f"median of {repeats}"),
             (f"{label}: batched", f"{ups['batched']:.0f} users/s",
              f"{ups['batched'] / ups['per-user']:.1f}x (target >= 10x)"),
             ("  max |batched - per-user| meta-gradient", f"{diff['per-user']:.1e}", ""),
             (f"{label}: batched, generic vmap(grad) path", f"{ups['vmap']:.0f} users/s",
              f"{ups['vmap'] / ups['per-user']:.1f}x; the hand-written chain is "
              f"{ups['batched'] / ups['vmap']:.2f}x faster, max diff {diff['vmap']:.1e}")]


def profile_training(steps: int = 5) -> None:
    """``torch.profiler``'s table of one batched Meta-SGD step (the training section's
    setting), on one thread: which operators the time goes to."""
    from torch.profiler import profile

    torch.set_num_threads(1)
    rng, learner, users, items = melu_world(2048, 3000, seed=1)
    params = [p for p in learner.parameters() if p.requires_grad]
    ids = rng.choice(2048, PER_STEP, replace=False)
    make = [(rng.choice(3000, k, replace=False), rng.normal(size=k).astype(np.float32))
            for k in [20] * PER_STEP + [10] * PER_STEP]
    support = pad(ids, *zip(*make[:PER_STEP], strict=True))
    query = pad(ids, *zip(*make[PER_STEP:], strict=True))

    def step():
        loss = learner.query_loss(users, items, support, query, LOOP)
        return torch.autograd.grad(loss, params, allow_unused=True)

    for _ in range(3):  # warm-up
        step()
    with profile() as prof:
        for _ in range(steps):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def _split(X: pd.DataFrame, y: np.ndarray, users: np.ndarray, k: int, seed: int):
    frame = X[X.user_id.isin(users)].assign(_y=y[X.user_id.isin(users).to_numpy()])
    frame = frame.sample(frac=1.0, random_state=seed)
    position = frame.groupby("user_id").cumcount()
    return frame[position < k], frame[(position >= k) & (position < k + 10)]


def bench_quality(n_users: int, epochs: int, rows: list, seed: int = 0) -> None:
    data = make_synthetic(n_users=n_users, n_items=800, ratings_per_user=(30, 80),
                          random_state=seed)
    rng = np.random.default_rng(seed)
    new = rng.choice(n_users, n_users // 5, replace=False)
    train = ~data.X.user_id.isin(new).to_numpy()
    columns = list(data.X.columns)
    methods = [("metasgd (default)", {}, None), ("maml", {"method": "maml"}, None),
               ("fomaml", {"method": "fomaml"}, None),
               ("same network, no meta-learning, fine-tuned 5 steps",
                {"method": "supervised"}, None),
               ("same network, no meta-learning, not adapted", {"method": "supervised"}, 0)]
    fitted = {}
    for name, params, steps in methods:
        key = tuple(sorted(params.items()))
        if key not in fitted:
            t0 = time.perf_counter()
            fitted[key] = (MetaRecommender(max_epochs=epochs, random_state=seed, verbose=0,
                                           **params).fit(data.X[train], data.y[train]),
                           time.perf_counter() - t0)
        model, seconds = fitted[key]
        model.set_params(inner_steps=5 if steps is None else steps)
        mae, rmse = [], []
        for k in (5, 20):
            support, query = _split(data.X, data.y, new, k, seed)
            error = model.predict(query[columns], support[columns], support._y) - query._y
            mae.append(float(np.mean(np.abs(error))))
            rmse.append(float(np.sqrt(np.mean(error**2))))
        rows.append((f"new users MAE k=5 / k=20: {name}", f"{mae[0]:.4f} / {mae[1]:.4f}",
                     f"RMSE {rmse[0]:.4f} / {rmse[1]:.4f}; fit {seconds:.0f} s, "
                     f"{model.n_epochs_} epochs"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="adaptation,latency,training,quality",
                        help="comma-separated sections to run")
    parser.add_argument("--profile", action="store_true",
                        help="profile one batched meta-training step instead (1 thread)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.profile:
        profile_training()
        return
    rows: list = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu",
          flush=True)
    quick = args.quick
    sections = {
        "adaptation": lambda: bench_adaptation(128 if quick else 2048, rows),
        "latency": lambda: bench_latency(rows, 30 if quick else 500),
        "training": lambda: bench_training(1 if quick else 4, rows),
        "quality": lambda: bench_quality(200 if quick else 2500, 2 if quick else 30, rows),
    }
    for name in args.only.split(","):
        if name not in sections:
            parser.error(f"--only: no section {name!r}; choose from {', '.join(sections)}")
        sections[name]()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>22}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>22}  {note}")


if __name__ == "__main__":
    main()
