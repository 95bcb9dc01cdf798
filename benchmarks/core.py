"""Core figures, measured side by side in one run and printed as one table.

1. Batched adaptation vs the per-user reference loop (MeLU-size model, 2,048 users,
   20 support items, the default inner steps, 100 items scored each): time ratio, max difference.
2. One new user (20 interactions, the default steps, 1,000 candidates): p50 / p99 latency of the
   fast path (``NewUserRecommender``) and of the public ``adapt().recommend()`` path.
3. Meta-training throughput (users/s): the batched outer step vs a per-user loop doing the
   same update (same gradients, checked), and the generic ``vmap(grad)`` inner loop beside
   the hand-written one the default scorer runs.
4. Meta-training steps on support sets of the sizes ``fit`` draws (``--only groups``): in
   groups of users of similar support length (the CPU's default) vs one padded batch; and
   serving's chunks of users of similar history length vs chunks in the users' order.
5. Scoring (``--only scoring``): ``recommend`` over a 3,706-item catalogue for 1,000 users,
   with and without item factors and the ALS blend, timed in turn.
6. Quality on synthetic data, new users with 5 and 20 history items: MAE and RMSE on 10
   held-out ratings per user, meta-trained methods vs the same network trained without meta-learning
   (adapted = fine-tuned with the same steps and the ALS blend, and not adapted: neither).

Run: ``python benchmarks/core.py`` (``--quick`` for a small smoke run; ``--only
adaptation,training`` for some sections; ``--profile`` for where a batched meta-training step
spends its time).

``--device cuda`` puts the CPU and the GPU side by side in one run, with GPU/CPU ratios in
the notes (the per-user reference loops, CPU-only comparisons, are left out): batched
adapt+score of the same users on both (the GPU's scores checked against the CPU's, within
1e-4), and on the GPU with the CPU's cap of 128 users per chunk beside the library's larger
GPU chunks; one fitted model's new-user fast path and
``adapt().recommend()`` on both; the batched meta-training step at 64 and 512 users per
step on both (meta-gradients checked), and a whole ``fit`` on both. Quality fits on the GPU
only. Without a GPU it exits with a message.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
import traceback
from unittest.mock import patch

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call

from recmeta import MetaRecommender, make_synthetic, meta, serving
from recmeta.adaptation import adapt_reference, adapt_vmap, masked_loss
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


LOOP = MetaRecommender()._loop("squared")  # the default estimator's inner loop on ratings
STEPS = LOOP.steps
PER_STEP = 64  # users per meta-training step, the estimator's default batch_size


def _reference_scores(learner, users, items, user, s_items, s_target, q_items, loop):
    """The slow, obvious path for one user: plain autograd, no padding, no batching."""
    inputs = learner.vectors(users, items, torch.tensor(user), torch.as_tensor(s_items))
    slow = adapt_reference(learner.reference, learner.reference_params(),
                           learner.reference_lrs(), inputs, torch.as_tensor(s_target), loop)
    out = functional_call(learner.reference, slow, learner.vectors(
        users, items, torch.tensor(user), torch.as_tensor(q_items)))
    return out.detach().numpy()


def adaptation_case(n_users: int):
    """The adaptation section's users: 20 support items each, 100 items scored each."""
    rng, learner, users, items = melu_world(n_users, 3000)
    support = [(rng.choice(3000, 20, replace=False), rng.normal(size=20).astype(np.float32))
               for _ in range(n_users)]
    scored = [rng.choice(3000, 100, replace=False) for _ in range(n_users)]
    return learner, users, items, np.arange(n_users), support, scored


def bench_adaptation(n_users: int, rows: list, repeats: int = 3) -> None:
    learner, users, items, ids, support, scored = adaptation_case(n_users)
    loop = LOOP
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
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0, device="cpu").fit(
        data.X, data.y)
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
        rows.append((f"new user, 20 items, {STEPS} steps, {len(known)} candidates: fast path, "
                     f"{threads} thread(s)", f"p50 {p50:.1f} ms", f"p99 {p99:.1f} ms "
                                                                  f"(target <= 10 ms)"))
    torch.set_num_threads(default_threads)
    _blend_cost(rows, model, known, repeats)
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


def _blend_cost(rows: list, model, known: np.ndarray, repeats: int) -> None:
    """The fast path with and without the ALS blend (``mf_blend``), requests interleaved."""
    if model.learner_.blend is None:
        return
    without = copy.deepcopy(model)
    without.learner_.blend = None
    paths = {"with": NewUserRecommender(model), "without": NewUserRecommender(without)}
    times, rng = {name: [] for name in paths}, np.random.default_rng(2)
    for _ in range(repeats):
        items, ratings = rng.choice(known, 20, replace=False), rng.integers(1, 6, 20)
        for name, fast in paths.items():
            t0 = time.perf_counter()
            fast.recommend(items, ratings, {"gender": "F", "age": "25-34"}, n=10)
            times[name].append(time.perf_counter() - t0)
    p50 = {name: np.percentile(t, 50) * 1000 for name, t in times.items()}
    rows.append((f"  fast path with / without the ALS blend (weight {model.blend_weight_})",
                 f"p50 {p50['with']:.2f} / {p50['without']:.2f} ms",
                 f"{p50['with'] / p50['without']:.2f}x"))


def bench_scoring(rows: list, n_users: int, n_items: int, repeats: int = 3) -> None:
    """What item factors (``mf_features``) and the ALS blend (``mf_blend``) cost the nightly
    job's work: ``recommend`` for ``n_users`` users over the whole catalogue, two models
    fitted for one epoch with and without item factors, each served with the blend's weight
    at 0.5 and at 0 (where the fold-in still runs, its result unused), the four timed in
    turn, median of ``repeats``."""
    data = make_synthetic(n_users=3000, n_items=n_items, ratings_per_user=(20, 300),
                          random_state=0)
    times = {}
    models = {mf: MetaRecommender(max_epochs=1, random_state=0, verbose=0, mf_features=mf,
                                  mf_blend=0.5, device="cpu").fit(data.X, data.y)
              for mf in ("auto", 0)}
    users = list(models[0].users_.ids[:n_users])
    for _ in range(repeats):
        for mf, model in models.items():
            for weight in (0.5, 0.0):
                model.set_params(mf_blend=weight)
                t0 = time.perf_counter()
                model.recommend(users=users, n=20)
                times.setdefault((mf, weight), []).append(time.perf_counter() - t0)
    median = {key: float(np.median(t)) for key, t in times.items()}
    base = median[(0, 0.0)]
    for (mf, weight), seconds in median.items():
        label = (f"recommend, {n_users} users x {n_items} items (top 20): item factors "
                 f"{'on' if mf == 'auto' else 'off'}, blend weight {weight}")
        rows.append((label, f"{seconds:.2f} s", f"{seconds / base:.2f}x the plain network"))


def training_batches(rng, n_batches: int, per_step: int = PER_STEP) -> list:
    """Meta-training episodes of the training section: ``per_step`` users of 2,048 each,
    20 support and 10 query items per user."""
    batches = []
    for _ in range(n_batches):
        ids = rng.choice(2048, per_step, replace=False)
        make = [(rng.choice(3000, k, replace=False), rng.normal(size=k).astype(np.float32))
                for k in [20] * per_step + [10] * per_step]
        batches.append((pad(ids, *zip(*make[:per_step], strict=True)),
                        pad(ids, *zip(*make[per_step:], strict=True))))
    return batches


def bench_training(n_batches: int, rows: list, repeats: int = 3) -> None:
    rng, learner, users, items = melu_world(2048, 3000, seed=1)
    loop, params = LOOP, [p for p in learner.parameters() if p.requires_grad]
    batches = training_batches(rng, n_batches)

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
    label = f"meta-training, Meta-SGD (2nd order, {STEPS} steps), {PER_STEP} users per step"
    rows += [(f"{label}: per-user loop", f"{ups['per-user']:.0f} users/s",
              f"median of {repeats}"),
             (f"{label}: batched", f"{ups['batched']:.0f} users/s",
              f"{ups['batched'] / ups['per-user']:.1f}x (target >= 10x)"),
             ("  max |batched - per-user| meta-gradient", f"{diff['per-user']:.1e}", ""),
             (f"{label}: batched, generic vmap(grad) path", f"{ups['vmap']:.0f} users/s",
              f"{ups['vmap'] / ups['per-user']:.1f}x; the hand-written chain is "
              f"{ups['batched'] / ups['vmap']:.2f}x faster, max diff {diff['vmap']:.1e}")]


def bench_groups(n_batches: int, rows: list, repeats: int = 3) -> None:
    """Meta-training steps on support sets of the sizes fit draws (0 to the whole history,
    capped at 100): worked through in groups of users of similar support length, as the
    CPU does by default, against one padded batch, interleaved (same batches, same
    gradients, checked)."""
    from recmeta import training
    from recmeta.episodes import EpisodeSampler, Histories
    from recmeta.training import Trainer, TrainSettings

    cpu, default = torch.device("cpu"), dict(training.GROUP_OVERHEAD)
    cases = (("ratings, histories of 13 to 100 (MeLU's users)", (13, 101), 0, "squared"),
             ("0/1 feedback, histories of 20 to 300, 4 negatives each", (20, 301), 4, "binary"))
    for label, span, negatives, objective in cases:
        rng, learner, users, items = melu_world(2048, 3000, seed=2)
        lengths = rng.integers(*span, size=2048)
        target = (np.ones(lengths.sum()) if objective == "binary"
                  else rng.normal(size=lengths.sum()))
        histories = Histories.from_arrays(
            np.repeat(np.arange(2048), lengths),
            np.concatenate([rng.choice(3000, n, replace=False) for n in lengths]), target, 2048)
        sampler = EpisodeSampler(100, 10, negatives, 3000)
        settings = TrainSettings(MetaRecommender()._loop(objective), "metasgd",
                                 "huber" if objective == "squared" else "binary", clip_norm=1e9)
        trainer = Trainer(learner, users, items, histories, sampler, settings, cpu)
        trainer.optimizer.step = lambda: None  # time the step, keep the gradients
        batches = [sampler.sample(histories, rng.choice(2048, PER_STEP, replace=False), rng)
                   for _ in range(n_batches)]
        params = [p for p in learner.parameters() if p.requires_grad]
        sides = {"one padded batch": {}, "groups": default}
        times: dict = {name: [] for name in sides}
        grads: dict = {}
        try:
            for _ in range(repeats):  # interleaved, so both sides see the same machine
                for name, overhead in sides.items():
                    training.GROUP_OVERHEAD = overhead
                    t0, grads[name] = time.perf_counter(), []
                    for support, query in batches:
                        trainer.train_step(support, query)
                        grads[name].append([p.grad.clone() for p in params
                                            if p.grad is not None])
                    times[name].append(time.perf_counter() - t0)
        finally:
            training.GROUP_OVERHEAD = default
        diff = max(float((a - b).abs().max()) for ga, gb in zip(
            grads["groups"], grads["one padded batch"], strict=True)
            for a, b in zip(ga, gb, strict=True))
        ups = {k: PER_STEP * n_batches / float(np.median(v)) for k, v in times.items()}
        rows += [(f"meta-training step, {label}: one padded batch",
                  f"{ups['one padded batch']:.0f} users/s", f"median of {repeats}"),
                 ("  the same in groups of similar support length (CPU default)",
                  f"{ups['groups']:.0f} users/s",
                  f"{ups['groups'] / ups['one padded batch']:.2f}x; max gradient diff "
                  f"{diff:.1e}")]


def bench_serving_order(n_users: int, rows: list, repeats: int = 3) -> None:
    """Adapting users whose histories run from 1 to 100 items, in chunks of users of similar
    length (the default) against chunks in the users' own order, interleaved."""
    rng, learner, users, items = melu_world(n_users, 3000, seed=3)
    supports = [(rng.choice(3000, k, replace=False), rng.normal(size=k).astype(np.float32))
                for k in rng.integers(1, 101, size=n_users)]
    ids = np.arange(n_users)
    own = lambda rows_: np.arange(len(rows_))  # noqa: E731
    sides = {"in the users' order": own, "by length": serving.by_length}
    times: dict = {name: [] for name in sides}
    out: dict = {}
    for _ in range(repeats):
        for name, order in sides.items():
            with patch.object(serving, "by_length", order):
                t0 = time.perf_counter()
                out[name] = serving.adapt_users(learner, users, items, ids, supports, LOOP)
                times[name].append(time.perf_counter() - t0)
    diff = max(float((out["by length"][k] - out["in the users' order"][k]).abs().max())
               for k in out["by length"])
    mixed, ordered = (float(np.median(times[k])) for k in sides)
    rows += [(f"adapt {n_users:,} users, histories of 1 to 100 items: chunks in the users' "
              f"order", f"{mixed:.2f} s", f"median of {repeats}"),
             ("  the same, chunks of users of similar length (the default)",
              f"{ordered:.2f} s", f"{mixed / ordered:.2f}x; max diff {diff:.1e}")]


# ------------------------------------------------------- the CPU and a GPU side by side
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, repeats: int, device: torch.device):
    """``fn()``'s last result and its median wall time over ``repeats`` calls, the device
    synchronised before and after each (call it once beforehand to warm up)."""
    times, out = [], None
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def _moved(learner: MetaLearner, tables: tuple, device: torch.device):
    """A copy of ``learner`` and of the encoded ``tables`` on ``device``."""
    return (copy.deepcopy(learner).to(device),
            *({k: v.to(device) for k, v in table.items()} for table in tables))


def bench_adaptation_device(n_users: int, rows: list, device: torch.device,
                            repeats: int = 3) -> None:
    """Batched adapt+score of the same users on the CPU and on ``device``, scores compared."""
    cpu = torch.device("cpu")
    learner, users, items, ids, support, scored = adaptation_case(n_users)
    on_gpu = _moved(learner, (users, items), device)

    def run(model, u, i, who=ids):
        return adapt_and_score(model, u, i, who, [support[k] for k in who],
                               [scored[k] for k in who], LOOP)

    run(learner, users, items, ids[:256])  # warm-up: first calls allocate, load kernels
    run(*on_gpu, ids[:256])
    at_cpu, t_cpu = _timed(lambda: run(learner, users, items), repeats, cpu)
    at_gpu, t_gpu = _timed(lambda: run(*on_gpu), repeats, device)
    # on a GPU the library's chunks are bounded by serving.BUDGET only; the same call with
    # the CPU's cap of serving.CHUNK users beside it
    big, sized = serving.chunk_size(on_gpu[0], 100), serving.chunk_size
    with patch.object(serving, "chunk_size", lambda *a: min(sized(*a), serving.CHUNK)):
        run(*on_gpu)
        at_small, t_small = _timed(lambda: run(*on_gpu), repeats, device)
    diffs = np.asarray([max(float(np.abs(a - b).max()), float(np.abs(a - c).max()))
                        for a, b, c in zip(at_cpu, at_gpu, at_small, strict=True)])
    # as against the reference: a pre-activation within rounding of 0 can fall on either
    # side of a ReLU in the two devices' summation orders; recompute such users in float64
    odd = np.flatnonzero(diffs > 1e-4)
    diff64 = 0.0
    if len(odd):
        for model in (learner, on_gpu[0]):
            model.double()
        for table in (users, items, *on_gpu[1:]):
            for k, v in table.items():
                if v.is_floating_point():
                    table[k] = v.double()
        again = run(learner, users, items, odd), run(*on_gpu, odd)
        diff64 = max(float(np.abs(a - b).max()) for a, b in zip(*again, strict=True))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    label = f"adapt+score {n_users} users ({STEPS} steps, Meta-SGD, MeLU size), batched"
    rows += [(f"{label}: cpu, median of {repeats}", f"{t_cpu:.3f} s", ""),
             (f"{label}: {device.type} ({name}), chunks of {big} users (the library's)",
              f"{t_gpu:.3f} s", f"{t_cpu / t_gpu:.2f}x the CPU (GPU/CPU speed)"),
             (f"{label}: {device.type}, chunks of {serving.CHUNK} users (the CPU's cap)",
              f"{t_small:.3f} s", f"{t_cpu / t_small:.2f}x the CPU"),
             (f"  users whose 100 {device.type} scores match the CPU's within 1e-4 (float32)",
              f"{n_users - len(odd)} / {n_users}",
              f"max diff {diffs.max():.1e}: {'PASS' if not len(odd) else 'see float64'}"),
             ("  the others, recomputed in float64 on both: max |gpu - cpu|",
              f"{diff64:.1e}" if len(odd) else "none",
              ("PASS" if diff64 < 1e-9 else "FAIL (> 1e-9)") if len(odd) else "")]


def bench_latency_device(rows: list, repeats: int, device: torch.device) -> None:
    """One fitted model served on the CPU and on ``device``: the new-user fast path and
    ``adapt(frame).recommend()``, the same requests on both."""
    data = make_synthetic(n_users=400, n_items=1000, ratings_per_user=(20, 60), random_state=0)
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0, device="cpu").fit(
        data.X, data.y)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        models = {"cpu": model, "dev": MetaRecommender.load(tmp, device=str(device))}
    known = model.items_.ids.to_numpy()
    catalog = data.items.set_index("item_id")
    tops = {}
    for side, m in models.items():
        fast, rng = NewUserRecommender(m), np.random.default_rng(1)
        for _ in range(5):  # warm-up
            fast.recommend(known[:20], np.full(20, 4), {"gender": "F"}, n=10)
        times, tops[side] = [], []
        for _ in range(repeats):
            items, ratings = rng.choice(known, 20, replace=False), rng.integers(1, 6, 20)
            t0 = time.perf_counter()  # recommend() ends on the CPU: it waits for the device
            top = fast.recommend(items, ratings, {"gender": "F", "age": "25-34"}, n=10)
            times.append(time.perf_counter() - t0)
            tops[side].append(top)
        p50, p99 = np.percentile(times, [50, 99]) * 1000
        where = "cpu" if side == "cpu" else device.type
        rows.append((f"new user, 20 items, {STEPS} steps, {len(known)} candidates: fast path, "
                     f"{where}", f"p50 {p50:.1f} ms", f"p99 {p99:.1f} ms"))
        times = []
        for _ in range(max(repeats // 5, 10)):
            items, ratings = rng.choice(known, 20, replace=False), rng.integers(1, 6, 20)
            history = catalog.loc[items].reset_index().assign(
                user_id="new", gender="F", age="25-34", occupation="artist")
            t0 = time.perf_counter()
            m.adapt(history, ratings.astype(float)).recommend(n=10)
            times.append(time.perf_counter() - t0)
        p50, p99 = np.percentile(times, [50, 99]) * 1000
        rows.append((f"  same through adapt(frame).recommend(), {where}", f"p50 {p50:.1f} ms",
                     f"p99 {p99:.1f} ms"))
    same = [[r["item_id"] for r in a] == [r["item_id"] for r in b]
            for a, b in zip(tops["cpu"], tops["dev"], strict=True)]
    gap = max(abs(x["score"] - y["score"]) for a, b in zip(tops["cpu"], tops["dev"],
                                                            strict=True)
              for x, y in zip(a, b, strict=True))
    rows.append((f"  fast path: same top 10 on cpu and {device.type}",
                 f"{sum(same)} / {len(same)} requests",
                 f"max |score diff| {gap:.1e}, rank by rank (ratings scale)"))


def bench_training_device(n_batches: int, rows: list, device: torch.device,
                          repeats: int = 3) -> None:
    """Meta-gradients of the batched step (the training section's) on the CPU and on
    ``device``, at the estimator's 64 users per step and at 512; then a whole fit."""
    cpu = torch.device("cpu")
    rng, learner, users, items = melu_world(2048, 3000, seed=1)
    sides = {"cpu": (learner, users, items), "dev": _moved(learner, (users, items), device)}

    def grads_of(model, u, i, batches):
        params = [p for p in model.parameters() if p.requires_grad]
        return [torch.autograd.grad(model.query_loss(u, i, s, q, LOOP), params,
                                    allow_unused=True) for s, q in batches]

    label = f"meta-training, Meta-SGD (2nd order, {STEPS} steps), batched"
    for per_step in (PER_STEP, 512):
        batches = training_batches(rng, n_batches, per_step)
        on = {"cpu": batches, "dev": [(s.to(device), q.to(device)) for s, q in batches]}
        runs = {side: (lambda side=side, on=on: grads_of(*sides[side], on[side]))
                for side in sides}
        if per_step == PER_STEP:  # the generic vmap(grad) inner loop, on the device

            def vmap_run(on=on):
                with patch.object(meta, "adapt", adapt_vmap):
                    return grads_of(*sides["dev"], on["dev"])

            runs["vmap"] = vmap_run
        times: dict = {name: [] for name in runs}
        grads: dict = {}
        for fn in runs.values():
            fn()  # warm-up
        for _ in range(repeats):  # interleaved, so each side sees the same machine
            for name, fn in runs.items():
                where = cpu if name == "cpu" else device
                grads[name], seconds = _timed(fn, 1, where)
                times[name].append(seconds)
        ups = {k: n_batches * per_step / float(np.median(v)) for k, v in times.items()}
        pairs = [(a, b) for ga, gb in zip(grads["cpu"], grads["dev"], strict=True)
                 for a, b in zip(ga, gb, strict=True) if a is not None]
        diff = max(float((a - b.cpu()).abs().max()) for a, b in pairs)
        scale = max(float(a.abs().max()) for a, _ in pairs)
        rows += [(f"{label}, {per_step} users per step: cpu", f"{ups['cpu']:.0f} users/s",
                  f"median of {repeats}, {n_batches} steps each"),
                 (f"{label}, {per_step} users per step: {device.type}",
                  f"{ups['dev']:.0f} users/s",
                  f"{ups['dev'] / ups['cpu']:.2f}x the CPU (GPU/CPU speed)"),
                 (f"  max |{device.type} - cpu| meta-gradient", f"{diff:.1e}",
                  f"largest |gradient| {scale:.1e}: "
                  f"{'PASS' if diff <= 1e-4 * max(scale, 1.0) else 'FAIL'} (1e-4 relative)")]
        if "vmap" in runs:
            rows.append((f"{label}, {per_step} users per step: {device.type}, generic "
                         f"vmap(grad) path", f"{ups['vmap']:.0f} users/s",
                         f"the hand-written chain is {ups['dev'] / ups['vmap']:.2f}x faster "
                         f"on the {device.type}"))
    bench_fit_device(rows, device, n_users=2000 if n_batches > 1 else 300)


def bench_fit_device(rows: list, device: torch.device, n_users: int, epochs: int = 3) -> None:
    """``MetaRecommender.fit`` on the CPU and on ``device``, the same data and seed:
    everything a training epoch does (sampling episodes on the CPU, copying, stepping).
    No id dropout: its draws come from each device's own generator, so with it the two fits
    would differ by more than rounding."""
    data = make_synthetic(n_users=n_users, n_items=500, ratings_per_user=(20, 80),
                          random_state=0)
    small = make_synthetic(n_users=60, n_items=40, random_state=1)
    params = dict(max_epochs=epochs, patience=epochs, random_state=0, verbose=0,
                  id_dropout=0.0)
    out = []
    for side in ("cpu", str(device)):
        MetaRecommender(**{**params, "max_epochs": 1}, device=side).fit(small.X, small.y)
        t0 = time.perf_counter()
        model = MetaRecommender(**params, device=side).fit(data.X, data.y)
        out.append(((time.perf_counter() - t0) / model.n_epochs_, model))
    (t_cpu, m_cpu), (t_gpu, m_gpu) = out
    n_train = len(m_cpu.users_) - round(0.1 * len(m_cpu.users_))
    head = data.X.head(200)
    gap = float(np.abs(m_cpu.predict(head) - m_gpu.predict(head)).max())
    label = (f"MetaRecommender.fit, synthetic, {n_users} users ({n_train} train), no id "
             f"dropout, per epoch")
    rows += [(f"{label}: cpu", f"{t_cpu:.2f} s",
              f"{n_train / t_cpu:.0f} users/s, validation loss "
              + " ".join(f"{v:.4f}" for v in m_cpu.validation_loss_curve_)),
             (f"{label}: {device.type}", f"{t_gpu:.2f} s",
              f"{t_cpu / t_gpu:.2f}x the CPU; validation loss "
              + " ".join(f"{v:.4f}" for v in m_gpu.validation_loss_curve_)),
             (f"  max |{device.type} fit - cpu fit| prediction, 200 rows", f"{gap:.1e}",
              "(ratings scale; only float rounding differs, which training steps carry on)")]


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


def bench_quality(n_users: int, epochs: int, rows: list, seed: int = 0,
                  device: str = "cpu") -> None:
    data = make_synthetic(n_users=n_users, n_items=800, ratings_per_user=(30, 80),
                          random_state=seed)
    rng = np.random.default_rng(seed)
    new = rng.choice(n_users, n_users // 5, replace=False)
    train = ~data.X.user_id.isin(new).to_numpy()
    columns = list(data.X.columns)
    adapted = {"inner_steps": STEPS, "mf_blend": "auto"}
    # not adapted: no steps and no ALS fold-in (the blend would use the user's history)
    methods = [("metasgd (default)", {}, adapted), ("maml", {"method": "maml"}, adapted),
               ("fomaml", {"method": "fomaml"}, adapted),
               (f"same network, no meta-learning, fine-tuned {STEPS} steps",
                {"method": "supervised"}, adapted),
               ("same network, no meta-learning, not adapted", {"method": "supervised"},
                {"inner_steps": 0, "mf_blend": 0.0})]
    fitted = {}
    for name, params, served in methods:
        key = tuple(sorted(params.items()))
        if key not in fitted:
            t0 = time.perf_counter()
            fitted[key] = (MetaRecommender(max_epochs=epochs, random_state=seed, verbose=0,
                                           device=device, **params).fit(data.X[train],
                                                                        data.y[train]),
                           time.perf_counter() - t0)
        model, seconds = fitted[key]
        model.set_params(**served)
        mae, rmse = [], []
        for k in (5, 20):
            support, query = _split(data.X, data.y, new, k, seed)
            error = model.predict(query[columns], support[columns], support._y) - query._y
            mae.append(float(np.mean(np.abs(error))))
            rmse.append(float(np.sqrt(np.mean(error**2))))
        rows.append((f"new users MAE k=5 / k=20: {name}", f"{mae[0]:.4f} / {mae[1]:.4f}",
                     f"RMSE {rmse[0]:.4f} / {rmse[1]:.4f}; fit {seconds:.0f} s, "
                     f"{model.n_epochs_} epochs"))


def _print_rows(rows: list, width: int) -> None:
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>22}  {note}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="adaptation,latency,training,groups,scoring,quality",
                        help="comma-separated sections to run")
    parser.add_argument("--profile", action="store_true",
                        help="profile one batched meta-training step instead (1 thread)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default), or cuda: each section on the CPU and the GPU "
                             "side by side (quality on the GPU only)")
    args = parser.parse_args()
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError):
        parser.error(f"--device: {args.device!r} is not a torch device; use cpu or cuda")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device: {args.device!r}: choose cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no GPU here "
                     f"(torch.cuda.is_available() is False; CUDA build: {torch.version.cuda})")
    torch.manual_seed(0)
    if args.profile:
        profile_training()
        return
    rows: list = []
    quick = args.quick
    if device.type == "cpu":
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu",
              flush=True)
        sections = {
            "adaptation": lambda: bench_adaptation(128 if quick else 2048, rows),
            "latency": lambda: bench_latency(rows, 30 if quick else 500),
            "training": lambda: bench_training(1 if quick else 4, rows),
            "groups": lambda: (bench_groups(2 if quick else 8, rows),
                               bench_serving_order(256 if quick else 2048, rows)),
            "scoring": lambda: bench_scoring(rows, 100 if quick else 1000, 500 if quick else 3706),
            "quality": lambda: bench_quality(200 if quick else 2500, 2 if quick else 30, rows),
        }
    else:
        torch.zeros(1, device=device)  # start CUDA here, not inside a timing
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices cpu "
              f"and {device} ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, "
              f"float32 matmul precision {torch.get_float32_matmul_precision()})", flush=True)
        sections = {
            "adaptation": lambda: bench_adaptation_device(128 if quick else 2048, rows, device),
            "latency": lambda: bench_latency_device(rows, 30 if quick else 300, device),
            "training": lambda: bench_training_device(1 if quick else 4, rows, device),
            "quality": lambda: bench_quality(200 if quick else 2500, 2 if quick else 30, rows,
                                             device=str(device)),
        }
    names = args.only.split(",")
    for name in names:
        if name not in sections:
            parser.error(f"--only: no section {name!r}; choose from {', '.join(sections)}")
    if device.type == "cpu":
        for name in names:
            sections[name]()
        width = max(len(r[0]) for r in rows)
        _print_rows([("measure", "value", "note"), *rows], width)
        return
    # On a GPU (a machine one may get once, for minutes): the table comes out a section at a
    # time, and a section that fails leaves the others' rows standing.
    width, failed = 110, []
    _print_rows([("measure", "value", "note")], width)
    for name in names:
        start, t0 = len(rows), time.perf_counter()
        try:
            sections[name]()
        except Exception as exc:
            traceback.print_exc()
            failed.append(name)
            rows.append((f"section {name}: FAILED", type(exc).__name__, str(exc)[:200]))
        rows.append((f"  ({name}: {time.perf_counter() - t0:.0f} s)", "", ""))
        _print_rows(rows[start:], width)
    if failed:
        sys.exit(f"sections that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
