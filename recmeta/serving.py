"""Serving: adapt many users in memory-bounded chunks, score their rows or a candidate list.

Everything here runs the one inner loop of :mod:`recmeta.adaptation` through the
:class:`~recmeta.meta.MetaLearner`; it only decides chunk sizes, moves tensors between the
CPU and the model's device, and brings results back to the CPU.

This module imports torch and numpy only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .adaptation import InnerLoop, Params
from .episodes import pad
from .meta import MetaLearner, Table

BUDGET = 1 << 24  # floats in the largest intermediate tensor of one chunk
CHUNK = 128  # users per chunk at most on the CPU (measured in benchmarks/core.py)


def chunk_size(learner: MetaLearner, length: int) -> int:
    """Users per chunk so that ``users x length x width`` stays within ``BUDGET``, and on
    the CPU at most ``CHUNK`` users, whose adapted copies then stay in the CPU's cache (a
    GPU is faster with the larger chunks: ``python benchmarks/core.py --device cuda``)."""
    config = learner.scorer.config
    width = max(config.width("user") + config.width("item"), *config.hidden)
    per_user = max(length, 1) * width
    if learner.adapt_all:
        per_user += sum(p.numel() for p in learner.adapted.parameters()) * 3
    step = BUDGET // per_user
    if next(learner.parameters()).device.type == "cpu":
        step = min(step, CHUNK)
    return int(max(1, step))


def adapt_users(learner: MetaLearner, users: Table, items: Table, user_rows: np.ndarray,
                supports: list[tuple[np.ndarray, np.ndarray]], loop: InnerLoop) -> Params:
    """Adapted parameters ``{name: [n, ...]}`` on the CPU for ``n`` users and their supports.

    ``supports[k]`` holds item rows and (scaled) targets of user ``user_rows[k]``; an empty
    support leaves that user at the initialisation.
    """
    items = learner.serving_items(items)
    device = next(learner.parameters()).device
    longest = max((len(i) for i, _ in supports), default=0)
    step = chunk_size(learner, longest)
    order = by_length([i for i, _ in supports])
    parts: list[Params] = []
    for start in range(0, len(user_rows), step):
        chunk = order[start : start + step]
        batch = _supports(user_rows, supports, chunk).to(device)
        with torch.no_grad():
            fast = learner.adapt(users, items, batch, loop)
        parts.append({name: p.detach().cpu() for name, p in fast.items()})
    if not parts:
        return {name: p.detach().cpu().unsqueeze(0)[:0] for name, p in
                learner.adapted.named_parameters()}
    back = torch.as_tensor(np.argsort(order))  # the users' own order again
    return {name: torch.cat([part[name] for part in parts])[back] for name in parts[0]}


def _supports(user_rows: np.ndarray, supports: list, chunk: np.ndarray):
    """The padded support sets of the users at positions ``chunk``."""
    return pad(user_rows[chunk], [supports[k][0] for k in chunk],
               [supports[k][1] for k in chunk])


def by_length(rows: list[np.ndarray]) -> np.ndarray:
    """The order that chunks users of similar support length together, so each chunk pads
    to a length near its own users' (support sizes vary, from a few rows to max_history):
    each user's result is the same in any chunk, up to float rounding."""
    return np.argsort(np.fromiter((len(r) for r in rows), np.int64, len(rows)), kind="stable")


def adapt_and_score(learner: MetaLearner, users: Table, items: Table, user_rows: np.ndarray,
                    supports: list[tuple[np.ndarray, np.ndarray]],
                    item_lists: list[np.ndarray], loop: InnerLoop) -> list[np.ndarray]:
    """Adapt each user on its support and score its ``item_lists`` entry, a chunk at a time:
    the streaming path, which never holds more than one chunk's adapted parameters."""
    items = learner.serving_items(items)
    device = next(learner.parameters()).device
    longest = max((len(x) for x in (*[i for i, _ in supports], *item_lists)), default=0)
    step = chunk_size(learner, longest)
    order = by_length([i for i, _ in supports])
    out: list = [None] * len(user_rows)
    for start in range(0, len(user_rows), step):
        chunk = order[start : start + step]
        support = _supports(user_rows, supports, chunk).to(device)
        lists = [item_lists[k] for k in chunk]
        query = pad(user_rows[chunk], lists, [np.zeros(len(i), np.float32) for i in lists])
        query = query.to(device)
        with torch.no_grad():
            fast = learner.adapt(users, items, support, loop)
            scores = learner.score(users, items, fast, query.users, query.items).cpu().numpy()
        for row, k in enumerate(chunk):
            out[k] = scores[row, : len(item_lists[k])]
    return out


def _take(fast: Params, index: np.ndarray | slice, device) -> Params:
    return {name: p[index].to(device) for name, p in fast.items()}


def score_rows(learner: MetaLearner, users: Table, items: Table, fast: Params,
               fast_rows: np.ndarray, user_rows: np.ndarray,
               item_lists: list[np.ndarray]) -> list[np.ndarray]:
    """Scores of ``item_lists[k]`` for user ``user_rows[k]``, adapted at ``fast_rows[k]``."""
    items = learner.serving_items(items)
    device = next(learner.parameters()).device
    longest = max((len(i) for i in item_lists), default=0)
    step = chunk_size(learner, longest)
    out: list[np.ndarray] = []
    for start in range(0, len(user_rows), step):
        chunk = slice(start, start + step)
        lists = item_lists[chunk]
        batch = pad(user_rows[chunk], lists, [np.zeros(len(i), np.float32) for i in lists])
        batch = batch.to(device)
        with torch.no_grad():
            scores = learner.score(users, items, _take(fast, fast_rows[chunk], device),
                                   batch.users, batch.items).cpu().numpy()
        out.extend(scores[k, : len(i)] for k, i in enumerate(lists))
    return out


def top_n(learner: MetaLearner, users: Table, items: Table, fast: Params,
          user_rows: np.ndarray, candidates: np.ndarray, exclude: list[np.ndarray] | None,
          n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best candidates per user: ``(item rows [U, n], scores [U, n])``.

    ``exclude[k]`` lists item rows never to recommend to user ``k`` (its history); those and
    any shortfall come back as row ``-1`` with score ``-inf``.
    """
    items = learner.serving_items(items)
    device = next(learner.parameters()).device
    cand = torch.as_tensor(candidates, dtype=torch.long, device=device)
    n = min(n, len(candidates))
    step = chunk_size(learner, len(candidates))
    where = {int(item): k for k, item in enumerate(candidates)}
    rows_out, scores_out = [], []
    for start in range(0, len(user_rows), step):
        index = np.arange(start, min(start + step, len(user_rows)))
        with torch.no_grad():
            scores = learner.score(users, items, _take(fast, index, device),
                                   torch.as_tensor(user_rows[index], device=device), cand)
            if exclude is not None:
                _mask_seen(scores, [exclude[k] for k in index], where)
            best, at = torch.topk(scores, n, dim=1)
        at = cand[at].cpu().numpy()
        best = best.cpu().numpy()
        at[~np.isfinite(best)] = -1
        rows_out.append(at)
        scores_out.append(best)
    if not rows_out:
        return np.zeros((0, n), np.int64), np.zeros((0, n), np.float32)
    return np.concatenate(rows_out), np.concatenate(scores_out)


def _mask_seen(scores: Tensor, seen: list[np.ndarray], where: dict[int, int]) -> None:
    user_idx, cand_idx = [], []
    for k, items in enumerate(seen):
        cols = [where[i] for i in items.tolist() if i in where]
        user_idx.extend([k] * len(cols))
        cand_idx.extend(cols)
    if user_idx:
        device = scores.device
        scores[torch.as_tensor(user_idx, device=device),
               torch.as_tensor(cand_idx, device=device)] = -torch.inf
