"""The outer loop: Adam over batches of users, validation users, early stopping.

Each step samples a batch of training users, splits each history into support and query,
adapts on the support sets (the inner loop) and updates the initialisation, and for
Meta-SGD the inner learning rates, on the query loss. After every epoch the validation
users, carved from the training users, are adapted and scored the same way (each with a
support set of random size and with its whole history); training stops
when their query loss has not improved for ``patience`` epochs and the best state is kept.

This module imports torch, numpy and tqdm only.
"""

from __future__ import annotations

import copy
import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from .adaptation import InnerLoop
from .episodes import Batch, EpisodeSampler, Histories, length_groups
from .meta import MetaLearner, Table

logger = logging.getLogger("recmeta")

# What one more group of users costs, in padded support rows, by device type (see
# Trainer._groups): on the CPU a batch is worked through in groups of users of similar
# support length (`python benchmarks/core.py --only groups` measures it); on a GPU, whose
# time goes to kernel launches more than to rows at these sizes, in one padded batch.
GROUP_OVERHEAD = {"cpu": 100.0}


class _BarSafeHandler(logging.Handler):
    """Writes records to stderr above the progress bar (tqdm.write), not through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextmanager
def epoch_log(on: bool):
    """``verbose=2``: the outer loop's line per epoch reaches the user. The "recmeta" logger
    is set to INFO for the fit; an app that configured logging gets the records through its
    own handlers, else a handler of the fit's own writes them to stderr. Both are put back
    as they were after the fit."""
    if not on:
        yield
        return
    level = logger.level
    handler = None if logger.hasHandlers() else _BarSafeHandler()
    logger.setLevel(logging.INFO)
    if handler is not None:
        handler.setFormatter(logging.Formatter("recmeta: %(message)s"))
        logger.addHandler(handler)
    try:
        yield
    finally:
        logger.setLevel(level)
        if handler is not None:
            logger.removeHandler(handler)


@dataclass(frozen=True)
class TrainSettings:
    """What the outer loop needs besides the model and the data."""

    loop: InnerLoop
    method: str = "maml"
    meta_loss: str | None = None  # the loss on query rows; None: the inner objective
    hidden_loss: str | None = None  # on rows whose item id id_dropout hid; None: meta_loss
    rank_weight: float = 0.0  # weight of the listwise loss of the query rows' order
    init_weight: float = 0.0  # weight of the unadapted initialisation's loss (training only)
    outer_lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 3
    clip_norm: float = 10.0
    verbose: int = 1


@dataclass
class TrainResult:
    """What happened: per-epoch losses, and the epoch whose state was kept."""

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    episodes: list = field(default_factory=list, repr=False)  # the validation users'

    @property
    def n_epochs(self) -> int:
        return len(self.train_loss)


class Trainer:
    """Runs the outer loop for one :class:`MetaLearner` on one set of histories."""

    def __init__(self, learner: MetaLearner, users: Table, items: Table, histories: Histories,
                 sampler: EpisodeSampler, settings: TrainSettings, device: torch.device):
        self.learner, self.users, self.items = learner, users, items
        self.histories, self.sampler, self.settings, self.device = (
            histories, sampler, settings, device)
        self.optimizer = torch.optim.Adam(learner.parameter_groups(settings.outer_lr))
        self.generator = torch.Generator(device=device)
        # no meta-learning: the initialisation learns from every row, whole histories in
        self.pooled = settings.method == "supervised"
        self.train_sampler = replace(sampler, full_support=True) if self.pooled else sampler

    def train_step(self, support: Batch, query: Batch) -> float:
        """One outer update on one batch of users; returns its loss."""
        learner, loop = self.learner, self.settings.loop
        self.optimizer.zero_grad(set_to_none=True)
        if self.pooled:
            loss = learner.pooled_loss(self.users, self.items, [support, query],
                                       self.settings.meta_loss or loop.objective,
                                       self.settings.hidden_loss)
            loss.backward()
            total = float(loss.detach())
        else:  # the batch's mean query loss, a group of users at a time (see _groups)
            total = 0.0
            for share, group_support, group_query in self._groups(support, query):
                loss = self._query_loss(group_support, group_query, self.settings.init_weight)
                (loss * share).backward()
                total += float(loss.detach()) * share
        torch.nn.utils.clip_grad_norm_(learner.parameters(), self.settings.clip_norm)
        self.optimizer.step()
        return total

    def _groups(self, support: Batch, query: Batch):
        """The batch as groups of users of similar support length, each group padded to its
        own longest (:func:`~recmeta.episodes.length_groups`), with each group's share of
        the batch's users. The query loss is a mean over users, so the groups' losses
        weighted by their shares sum to the batch's, and so do their gradients (up to float
        rounding): the same step, less padding (``id_dropout`` draws its hidden ids group by
        group, so a seed fits otherwise than it did in one batch). Training draws support
        sizes from 0 to the longest history, so one padded batch spends about half of the
        inner loop's work on padding rows, more when histories are short; a group costs fixed
        work of its own (:data:`GROUP_OVERHEAD`)."""
        n_users = len(support.users)
        overhead = GROUP_OVERHEAD.get(support.mask.device.type)
        if overhead is None or n_users < 2:
            yield 1.0, support, query
            return
        for index in length_groups(support.mask.sum(-1).cpu().numpy(), overhead):
            index = torch.as_tensor(index, device=support.users.device)
            yield len(index) / n_users, support.rows(index), query.rows(index)

    def _query_loss(self, support: Batch, query: Batch, init_weight: float = 0.0):
        """The meta-objective of one batch: the query loss after adapting (see
        :meth:`MetaLearner.query_loss`), as these settings score it. Validation leaves out
        the initialisation's own loss (``init_weight``): it watches adapted users only."""
        settings = self.settings
        return self.learner.query_loss(self.users, self.items, support, query, settings.loop,
                                       settings.meta_loss, settings.rank_weight, init_weight,
                                       settings.hidden_loss)

    def evaluation_step(self, support: Batch, query: Batch) -> float:
        """Query loss after adapting, without updating anything."""
        self.learner.eval()
        try:
            with torch.no_grad():
                return sum(float(self._query_loss(s, q)) * share
                           for share, s, q in self._groups(support, query))
        finally:
            self.learner.train()

    def validation_loss(self, episodes: list) -> float:
        """The mean query loss per validation user: each episode's loss (a mean over its
        users) weighted by its number of users, so a short last batch counts per user."""
        losses = [self.evaluation_step(support, query) for support, query in episodes]
        return float(np.average(losses, weights=[len(support.users) for support, _ in episodes]))

    def fit(self, train_users: np.ndarray, validation_users: np.ndarray,
            rng: np.random.Generator) -> TrainResult:
        with epoch_log(self.settings.verbose >= 2):
            return self._fit(train_users, validation_users, rng)

    def _fit(self, train_users: np.ndarray, validation_users: np.ndarray,
             rng: np.random.Generator) -> TrainResult:
        settings, result = self.settings, TrainResult()
        self.generator.manual_seed(int(rng.integers(2**62)))
        self.learner.generator = self.generator
        self.learner.train()
        fixed = np.random.default_rng(rng.integers(2**32))
        validation = result.episodes = self._fixed_episodes(validation_users, fixed)
        best_loss, best_state, stale = np.inf, None, 0
        steps = -(-len(train_users) // settings.batch_size)
        bar = tqdm(total=settings.max_epochs * steps, desc="meta-training", unit="batch",
                   disable=None if settings.verbose else True, leave=False)
        try:
            for epoch in range(settings.max_epochs):
                result.train_loss.append(self._epoch(train_users, rng, bar))
                if not validation:
                    continue
                loss = self.validation_loss(validation)
                result.validation_loss.append(loss)
                bar.set_postfix(train=f"{result.train_loss[-1]:.4f}", validation=f"{loss:.4f}")
                logger.info("epoch %d: train loss %.4f, validation loss %.4f",
                            epoch + 1, result.train_loss[-1], loss)
                if best_state is None or loss < best_loss - 1e-4 * abs(best_loss):
                    best_loss, stale, result.best_epoch = loss, 0, epoch
                    best_state = copy.deepcopy(self.learner.state_dict())
                else:
                    stale += 1
                    if stale >= settings.patience:
                        break
        finally:
            bar.close()
        self.learner.eval()
        self.learner.generator = self.learner.hidden = None  # nothing of training kept
        if best_state is not None:
            self.learner.load_state_dict(best_state)
        else:
            result.best_epoch = result.n_epochs - 1
        return result

    def _epoch(self, train_users: np.ndarray, rng: np.random.Generator, bar) -> float:
        order = rng.permutation(train_users)
        losses, sizes = [], []
        for start in range(0, len(order), self.settings.batch_size):
            users = order[start : start + self.settings.batch_size]
            support, query = self.train_sampler.sample(self.histories, users, rng)
            losses.append(self.train_step(support.to(self.device), query.to(self.device)))
            sizes.append(len(users))
            bar.update(1)
        return float(np.average(losses, weights=sizes))  # a short last batch weighs less

    def _fixed_episodes(self, users: np.ndarray, rng: np.random.Generator) -> list:
        """The validation episodes, drawn once: each validation user twice, once with a
        support set of random size (as training draws them: new users, short histories) and
        once with the whole history as support (as serving and the nightly job adapt), so
        early stopping watches both uses."""
        batch = max(self.settings.batch_size, 256)
        return [tuple(b.to(self.device) for b in
                      sampler.sample(self.histories, users[i : i + batch], rng))
                for sampler in (self.sampler, replace(self.sampler, full_support=True))
                for i in range(0, len(users), batch)]
