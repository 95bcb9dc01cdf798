"""Episodes: each user's history split into a support set and a query set, padded into tensors.

A batch of users becomes ``[users, max_len]`` tensors of item indices, targets and a mask of
real rows, so the whole batch is one tensor program. Histories are stored compressed by user
(CSR: ``indptr``, ``items``, ``target``), in the order they should be read (oldest first).

This module imports numpy and torch only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class Histories:
    """Every user's interactions, compressed by user: rows ``indptr[u]:indptr[u+1]``."""

    indptr: np.ndarray
    items: np.ndarray
    target: np.ndarray

    @classmethod
    def from_arrays(cls, users: np.ndarray, items: np.ndarray, target: np.ndarray,
                    n_users: int) -> Histories:
        """Group rows by user, keeping their given order within each user."""
        order = np.argsort(users, kind="stable")
        counts = np.bincount(users, minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, items[order].astype(np.int64), target[order].astype(np.float32))

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def of(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[user], self.indptr[user + 1]
        return self.items[lo:hi], self.target[lo:hi]


@dataclass
class Batch:
    """A padded batch: row ``b`` holds user ``users[b]``'s items, targets and real-row mask."""

    users: Tensor  # [B]
    items: Tensor  # [B, L]
    target: Tensor  # [B, L]
    mask: Tensor  # [B, L]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in (self.users, self.items, self.target, self.mask)))

    def rows(self, index: Tensor) -> Batch:
        """The users at ``index``, their padding cut to the longest of them."""
        mask = self.mask[index]
        width = max(int(mask.sum(-1).max()) if len(index) else 0, 1)
        return Batch(self.users[index], self.items[index, :width],
                     self.target[index, :width], mask[:, :width])


def length_groups(lengths: np.ndarray, overhead: float) -> list[np.ndarray]:
    """Split a batch's users into groups of similar length, so that padding each group to
    its own longest costs least: the groups minimise ``sum(len(group) * longest(group)) +
    overhead * number of groups``, ``overhead`` being what one more group costs in padded
    rows (its fixed per-call work). Exact, by dynamic programming over the sorted lengths.
    Returns indices into ``lengths``, each group in ascending order of length."""
    order = np.argsort(lengths, kind="stable")
    ordered = np.asarray(lengths, dtype=np.float64)[order]
    n = len(ordered)
    best = np.full(n + 1, np.inf)
    best[0], cut = 0.0, np.zeros(n + 1, dtype=np.int64)
    for end in range(1, n + 1):  # the last group is ordered[start:end], padded to ordered[end-1]
        costs = best[:end] + (end - np.arange(end)) * ordered[end - 1] + overhead
        cut[end] = int(np.argmin(costs))
        best[end] = costs[cut[end]]
    groups, end = [], n
    while end:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


def pad(users: np.ndarray, items: list[np.ndarray], target: list[np.ndarray]) -> Batch:
    """Pad ragged per-user lists into a ``Batch`` (padding rows point at item 0, masked out)."""
    width = max((len(x) for x in items), default=0)
    width = max(width, 1)
    out_items = np.zeros((len(items), width), dtype=np.int64)
    out_target = np.zeros((len(items), width), dtype=np.float32)
    out_mask = np.zeros((len(items), width), dtype=np.float32)
    for row, (i, t) in enumerate(zip(items, target, strict=True)):
        out_items[row, : len(i)] = i
        out_target[row, : len(t)] = t
        out_mask[row, : len(i)] = 1.0
    return Batch(
        torch.as_tensor(np.asarray(users, dtype=np.int64)),
        torch.from_numpy(out_items),
        torch.from_numpy(out_target),
        torch.from_numpy(out_mask),
    )


def recent(histories: Histories, users: np.ndarray, max_len: int) -> Batch:
    """Each user's last ``max_len`` interactions as a support batch (for serving)."""
    parts = [histories.of(u) for u in users]
    return pad(users, [i[-max_len:] for i, _ in parts], [t[-max_len:] for _, t in parts])


@dataclass(frozen=True)
class EpisodeSampler:
    """Draws support/query splits for meta-training.

    Parameters
    ----------
    max_support : int
        Largest support set; sizes are drawn uniformly from 0 to this (capped by the
        history), so the initialisation learns to serve cold users and short histories too.
    query_size : int
        Query rows per user (at most half the history, at least one).
    negatives : int
        For 0/1 feedback: random items per positive added with target 0 to each set.
    n_items : int
        Catalogue size, for drawing negatives.
    full_support : bool
        Always take the largest support set (for the pooled, non-meta objective).
    """

    max_support: int = 64
    query_size: int = 10
    negatives: int = 0
    n_items: int = 0
    full_support: bool = False

    def sample(self, histories: Histories, users: np.ndarray,
               rng: np.random.Generator) -> tuple[Batch, Batch]:
        support_items, support_target, query_items, query_target = [], [], [], []
        for u in users:
            items, target = histories.of(u)
            n = len(items)
            order = rng.permutation(n)
            n_query = max(1, min(self.query_size, n // 2)) if n else 0
            cap = min(self.max_support, n - n_query)
            # uniform over 0..cap: cold users, short and long histories alike
            n_support = cap if self.full_support else int(rng.integers(0, cap + 1))
            q, s = order[:n_query], order[n_query : n_query + n_support]
            for idx, out_i, out_t in ((s, support_items, support_target),
                                      (q, query_items, query_target)):
                i, t = self._with_negatives(items[idx], target[idx], items, rng)
                out_i.append(i)
                out_t.append(t)
        return pad(users, support_items, support_target), pad(users, query_items, query_target)

    def _with_negatives(self, items: np.ndarray, target: np.ndarray, seen: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return with_negatives(items, target, seen, self.negatives, self.n_items, rng)


def serving_negatives(items: np.ndarray, target: np.ndarray, negatives: int,
                      n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """A history's rows with its sampled negatives, as adapting a user to serve it draws
    them: from a generator seeded by the history itself (which items, and which of them are
    1; not their order), so a user's scores depend neither on the users adapted beside it
    nor on the order its history comes in (the nightly job's batches, ``adapt``, ``predict``
    and the fast path agree), and users with other histories get other negatives."""
    entropy = np.sort(np.asarray(items, np.uint64) * 2 + (np.asarray(target) > 0.5))
    rng = np.random.default_rng(np.concatenate([[len(entropy)], entropy]).astype(np.uint64))
    return with_negatives(items, target, items, negatives, n_items, rng)


def with_negatives(items: np.ndarray, target: np.ndarray, seen: np.ndarray, negatives: int,
                   n_items: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Append ``negatives`` random unseen items per row, with target 0 (implicit feedback)."""
    if not negatives or not len(items) or not n_items:
        return items, target
    drawn = rng.integers(0, n_items, size=len(items) * negatives)
    drawn = drawn[~np.isin(drawn, seen)]
    return (np.concatenate([items, drawn]),
            np.concatenate([target, np.zeros(len(drawn), dtype=target.dtype)]))
