"""The steps of :meth:`MetaRecommender.fit <recmeta.MetaRecommender.fit>`, and the model's
internals that serving reads, as a mixin of the estimator.

``fit`` reads and checks the training frame (:meth:`FitSteps._read`), encodes it
(``_encode``), builds the learner (``_build_learner``), holds users out for early stopping
(``_split``), fits the item vectors (``_fill_item_vectors``), meta-trains (``_train``) and
fits the ALS blend (``_fit_blend``). Serving (:mod:`recmeta.adapted`, :mod:`recmeta.fastpath`)
reads targets in and out through ``_scale`` / ``_output`` and adapts with ``_serving_loop``.
Every step reads the estimator's parameters from ``self``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import _params as P
from . import columns as C
from .adaptation import InnerLoop
from .baselines import BiasedMF
from .blend import ImplicitBlend, MFBlend
from .catalog import EntityTable, raw_side
from .episodes import EpisodeSampler, Histories
from .exceptions import DataError
from .features import FeatureSpace
from .frames import (
    ITEM_ID_FIELD,
    Schema,
    check_target,
    drop_duplicates,
    drop_rows_without_ids,
    resolve_schema,
    to_frame,
    with_row_items,
)
from .hybrid import (
    GRID,
    IMPLICIT_GRID,
    blend_losses,
    calibrate_blend,
    fill_blend,
    fill_implicit_blend,
    fill_item_vectors,
    ranking_losses,
    training_ratings,
)
from .ials import ImplicitALS
from .meta import MetaLearner
from .model import FOLD_KEY, FieldShape, Scorer, ScorerConfig
from .training import Trainer, TrainSettings

MF_AUTO = 8  # mf_features="auto": factors for ratings


@dataclass
class _Data:
    """A training frame, read and checked."""

    frame: pd.DataFrame
    target: np.ndarray
    schema: Schema
    objective: str
    mean: float
    scale: float
    span: tuple[float, float] | None  # the least and greatest rating; None for 0/1
    columns: list


class FitSteps:
    """What ``fit`` does step by step, and what serving reads of the fitted model."""

    def _read(self, X, y) -> _Data:
        """Check the input, decide the column roles, apply the duplicate policy."""
        frame = to_frame(X)
        target = check_target(y, len(frame))
        columns = list(frame.columns)
        if self.item_col is None:
            frame = with_row_items(frame, 0)
        frame, target = drop_rows_without_ids(frame, target, [self.user_col, self.item_col])
        schema = resolve_schema(frame, self.user_col, self.item_col, self.time_col,
                                self.user_features, self.item_features, self.use_item_ids,
                                self.feature_kinds)
        frame, target = drop_duplicates(frame, target, schema)
        objective = self._objective(target)
        mean, scale = (float(target.mean()), float(target.std()) or 1.0) \
            if objective == "squared" else (0.0, 1.0)
        span = (float(target.min()), float(target.max())) if objective == "squared" else None
        return _Data(frame, target, schema, objective, mean, scale, span, columns)

    def _encode(self, data: _Data):
        """Learn the vocabularies; encode users, items and the histories (scaled targets)."""
        schema, frame = data.schema, data.frame
        user_raw = raw_side(frame, schema.user_col, schema.user_fields, "user")
        item_raw = raw_side(frame, schema.item_col, schema.item_fields, "item")
        least = {name: 1 if name == ITEM_ID_FIELD else self.min_frequency
                 for name in schema.kinds}
        space = FeatureSpace.fit(user_raw, item_raw, schema.kinds, least)
        users = EntityTable(pd.Index(user_raw.index), space.encode("user", user_raw))
        items = EntityTable(pd.Index(item_raw.index), space.encode("item", item_raw))
        histories = Histories.from_arrays(
            users.positions(frame[schema.user_col]), items.positions(frame[schema.item_col]),
            ((data.target - data.mean) / data.scale).astype(np.float32), len(users))
        return space, users, items, histories

    def _scale(self, target: np.ndarray) -> np.ndarray:
        """Targets as the network sees them: ``(y - mean) / scale`` for ratings."""
        return ((target - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _off_scale(self, target: np.ndarray) -> np.ndarray:
        """Which of ``target`` are off the scale of ``y`` in ``fit``: not 0/1 for a model
        of 0/1 feedback, outside the fitted range for ratings."""
        if self.objective_ == "binary":
            return ~np.isin(target, (0.0, 1.0))
        span = getattr(self, "target_range_", None)  # None: saved or pickled before it was
        if span is None:
            return np.zeros(len(target), dtype=bool)
        return (target < span[0]) | (target > span[1])

    def _check_scale(self, target: np.ndarray, what: str) -> None:
        """Refuse a history on another scale than ``y`` in ``fit``: ratings for a model of
        0/1 feedback (read as logistic targets, they gave plausible, meaningless scores), or
        ratings outside the fitted range (a 1-to-10 scale for a 1-to-5 model: adapting on
        them drove the scores off the scale, to NaN at x100)."""
        off = self._off_scale(target)
        if not off.any():
            return
        if self.objective_ == "binary":
            other = np.unique(target[off])
            raise DataError(
                f"{what} holds {', '.join(f'{v:g}' for v in other[:5])}"
                f"{', ...' if other.size > 5 else ''}, but the model was fitted on 0/1 "
                f"feedback (1: the user interacted with the item). Give 1 for each "
                f"interaction, e.g. (ratings > 0), or fit a model of ratings.")
        low, high = self.target_range_
        raise DataError(
            f"{what} holds ratings from {target.min():g} to {target.max():g}, outside the "
            f"scale the model was fitted on ({low:g} to {high:g}, the range of y in fit). "
            f"Rescale them to it: on another scale a user's adapted scores are meaningless.")

    def _output(self, scores: np.ndarray) -> np.ndarray:
        """Network outputs back on the caller's scale: probabilities, or ratings clipped to
        the range of ``y`` in ``fit`` (a 5.3 on a 1-to-5 scale is a 5: never further from
        the truth, as every rating lies in the range). Callers rank by ``scores`` first."""
        if self.objective_ == "binary":
            return 1.0 / (1.0 + np.exp(-scores))
        ratings = scores * self.target_scale_ + self.target_mean_
        span = getattr(self, "target_range_", None)  # None: saved or pickled before it was
        return ratings if span is None else np.clip(ratings, *span)

    def _objective(self, target: np.ndarray) -> str:
        binary = np.isin(target, (0.0, 1.0))
        if self.objective == "binary" and not binary.all():
            other = np.unique(target[~binary])
            raise DataError(
                f"objective='binary' needs y of 0 and 1 (1: the user interacted with the "
                f"item); y also holds {', '.join(f'{v:g}' for v in other[:5])}"
                f"{', ...' if len(other) > 5 else ''}. Map it to 0/1, e.g. (y > 0), or fit "
                f"ratings with objective='auto'.")
        if self.objective != "auto":
            return self.objective
        if binary.all():
            return "binary"
        counted = count_like(target)
        if counted is not None:
            values, counts = counted
            warnings.warn(
                f"y looks like counts (whole numbers from {values[0]:g} to {values[-1]:g}, "
                f"most often {values[np.argmax(counts)]:g}): recmeta fits them as ratings, and "
                f"recommend() then ranks the items by the count it predicts a user would have, "
                f"not by how likely the user is to interact with them. If y counts "
                f"interactions (plays, clicks, purchases), fit y = 1 for every row instead "
                f"(0/1 feedback, with sampled negatives). Pass objective='squared' to keep "
                f"the counts as ratings without this warning.", UserWarning, stacklevel=4)
        return "squared"

    def _mf_width(self, space: FeatureSpace, objective: str) -> int:
        """Columns of each item's matrix-factorisation vector (its factors and its bias), 0
        for none. 0/1 feedback (all ones) has no ratings to factorise."""
        if not self._option_on("mf_features", space, objective,
                               ("factorises ratings", "gives each item id a vector")):
            return 0
        return (MF_AUTO if self.mf_features == "auto" else self.mf_features) + 1

    def _option_on(self, name: str, space: FeatureSpace, objective: str,
                   does: tuple[str, str], needs_ratings: bool = True) -> bool:
        """Whether the option ``name`` (``"auto"`` or a number) is on. It needs item ids,
        and unless ``needs_ratings`` is False ratings: ``"auto"`` is on only with what it
        needs, a nonzero number without it raises, saying what the option ``does`` with
        each."""
        value, has_ids = getattr(self, name), ITEM_ID_FIELD in space.names()
        rated = objective != "binary" or not needs_ratings
        if value == "auto":
            return rated and has_ids
        if value and not rated:
            raise P.InvalidParameterError(
                f"{name}={value!r} {does[0]}, but y holds 0/1 feedback (objective 'binary'); "
                f"use {name}=0 or 'auto'.")
        if value and not has_ids:
            raise P.InvalidParameterError(
                f"{name}={value!r} {does[1]}, but item ids are not used (use_item_ids=False "
                f"or item_col=None); use {name}=0.")
        return bool(value)

    def _build_learner(self, space: FeatureSpace, objective: str,
                       blend: bool = True) -> MetaLearner:
        """The learner the parameters describe; ``blend=False`` leaves out the ALS blend
        (a model saved without one)."""
        shapes = tuple(FieldShape(f.name, f.side, f.kind, f.cardinality) for f in space.fields)
        width = self._mf_width(space, objective)
        config = ScorerConfig(shapes, self.embedding_dim, tuple(self.hidden), self.factors,
                              (ITEM_ID_FIELD, width) if width else ())
        rate = (0.25 if width else 0.1) if self.id_dropout == "auto" else self.id_dropout
        dropout = {ITEM_ID_FIELD: rate} if ITEM_ID_FIELD in space.names() else {}
        if blend and self._option_on("mf_blend", space, objective,
                                     ("blends in an ALS", "blends in an ALS of item ids"),
                                     needs_ratings=False):
            (n_codes,) = (f.cardinality for f in space.fields if f.name == ITEM_ID_FIELD)
            blend = ImplicitBlend(n_codes, ImplicitALS().n_factors, ITEM_ID_FIELD) \
                if objective == "binary" else MFBlend(n_codes, BiasedMF().n_factors,
                                                      ITEM_ID_FIELD)
        else:
            blend = None
        return MetaLearner(Scorer(config), self.adapted, self.inner_lr,
                           learn_lr=self.method == "metasgd", id_dropout=dropout, blend=blend)

    def _check_blend(self, objective: str, validation: np.ndarray) -> None:
        """For 0/1 feedback a blend weight needs users held out for early stopping, on
        whom the implicit ALS's scores are calibrated to logits."""
        if objective == "binary" and self.mf_blend not in ("auto", 0, 0.0) \
                and not len(validation):
            raise P.InvalidParameterError(
                f"mf_blend={self.mf_blend!r} with 0/1 feedback calibrates the implicit ALS's "
                f"scores on the users held out for early stopping, but none are (fewer than "
                f"20 users with 2 or more rows, or validation_fraction=0); use mf_blend='auto' "
                f"or 0, or hold users out.")

    def _fit_blend(self, learner, users, items, histories, data, train, result, seed,
                   device) -> tuple[float | None, list | None]:
        """Fill the blend's ALS and set its weight. "auto" takes the weight that early
        stopping's users score best with an ALS of the training users alone (they are new
        to it, as a new user will be); then, whatever the weight, the ALS that serves is
        fitted on every user's ratings, as an ALS alone would be. For 0/1 feedback, the
        implicit ALS's scores are calibrated to logits on those same users and that same
        ALS first. Returns the weight, and with "auto" the held-out users' loss at each
        weight tried."""
        blend = learner.blend
        if blend is None:
            return None, None
        codes, implicit = items.encoded[ITEM_ID_FIELD], isinstance(blend, ImplicitBlend)

        def fill(rows: np.ndarray) -> None:  # the ALS of these users' ratings
            ratings = training_ratings(histories, rows, data.mean, data.scale)
            if implicit:  # who interacted with what: the rows with 1
                fill_implicit_blend(learner, ratings[ratings[C.RATING] > 0.5], codes, seed)
            else:
                fill_blend(learner, ratings, codes, data.mean, data.scale, seed)

        weight, losses, calibration = self.mf_blend, None, None
        if result.episodes and (weight == "auto" or implicit):
            fill(train)
            tables = users.tensors(device), items.tensors(device)
            loop = self._loop(data.objective)
            if implicit:
                calibration = calibrate_blend(learner, *tables, result.episodes, loop)
                if calibration[0] <= 0:  # its scores do not rise with the interactions
                    warnings.warn(
                        f"The implicit ALS's scores did not rise with the interactions of the "
                        f"users held out for early stopping (calibration slope "
                        f"{calibration[0]:.3g}), so the blend cannot help: "
                        + ("'auto' serves the network alone." if weight == "auto" else
                           f"mf_blend={weight!r} mixes it in all the same; mf_blend='auto' "
                           f"or 0 serves the network alone."), UserWarning, stacklevel=3)
                    if weight == "auto":
                        weight = 0.0
            if weight == "auto":
                losses = ranking_losses(learner, *tables, result.episodes, loop, histories) \
                    if implicit else blend_losses(learner, *tables, result.episodes, loop,
                                                  self._meta_loss(data.objective))
                weight = (IMPLICIT_GRID if implicit else GRID)[int(np.argmin(losses))]
                losses = [float(v) for v in losses]
        if weight == "auto":  # no users held out: the network alone
            weight = 0.0
        fill(np.arange(histories.n_users))
        if calibration is not None:
            blend.calibrate(*calibration)
        blend.weight.fill_(float(weight))
        return float(weight), losses

    def _serving_loop(self) -> InnerLoop:
        """The inner loop as the parameters say now: ``inner_steps``, and ``inner_lr`` for
        methods whose rates are not learned, may be changed with ``set_params`` after fit;
        so may a fitted blend's weight (``mf_blend``: a number, or "auto" for the fitted
        one; 0 serves the network alone)."""
        rates = list(self.learner_.lr.parameters())
        if not any(p.requires_grad for p in rates):
            with torch.no_grad():
                for p in rates:
                    p.fill_(self.inner_lr)
        blend = self.learner_.blend
        if blend is not None:
            weight = self.blend_weight_ if self.mf_blend == "auto" else self.mf_blend
            blend.weight.fill_(float(weight))
        return self._loop(self.objective_)

    def _meta_loss(self, objective: str) -> str:
        """What meta-training scores query rows by (and early-stops on): for ratings,
        ``meta_loss`` ("auto": Huber's loss, see :meth:`_hidden_loss`); for 0/1 feedback, the
        logistic loss."""
        if objective == "binary":
            if self.meta_loss != "auto":
                raise P.InvalidParameterError(
                    f"meta_loss={self.meta_loss!r} applies to ratings, but y holds 0/1 "
                    f"feedback (objective 'binary'), which meta-training scores by the "
                    f"logistic loss; leave meta_loss='auto'.")
            return "binary"
        return "huber" if self.meta_loss == "auto" else self.meta_loss

    def _hidden_loss(self, objective: str) -> str | None:
        """What meta-training scores the rows whose item id ``id_dropout`` hid by (the rows
        that teach how a new item is scored, from its features alone): for ratings with
        ``meta_loss`` "auto", the absolute error; else None, the meta-loss of every row."""
        return "absolute" if objective != "binary" and self.meta_loss == "auto" else None

    def _loop(self, objective: str) -> InnerLoop:
        return InnerLoop(self.inner_steps, objective, first_order=self.method == "fomaml",
                         shrinkage=self.shrinkage, ridge=self.factor_ridge)

    def _split(self, histories: Histories, rng) -> tuple[np.ndarray, np.ndarray]:
        """Training users and the users held out for early stopping."""
        n_users = histories.n_users
        eligible = np.flatnonzero(histories.lengths() >= 2)
        n_val = round(self.validation_fraction * n_users) if n_users >= 20 else 0
        n_val = min(n_val, len(eligible))
        validation = np.sort(rng.choice(eligible, size=n_val, replace=False))
        return np.setdiff1d(np.arange(n_users), validation), validation

    def _fill_item_vectors(self, learner, items, histories, train, data, seed):
        """Item vectors from an ALS of the training users (``mf_features``); see
        :func:`~recmeta.hybrid.fill_item_vectors`. Returns each user's fold, or None."""
        return fill_item_vectors(learner, items, training_ratings(histories, train, data.mean,
                                                                  data.scale),
                                 train, histories.n_users, seed)

    def _train(self, learner, users, items, histories, objective, device, rng, train,
               validation, folds=None):
        sampler = EpisodeSampler(self.max_history, self.query_size,
                                 self.negatives if objective == "binary" else 0, len(items))
        settings = TrainSettings(self._loop(objective), self.method, self._meta_loss(objective),
                                 hidden_loss=self._hidden_loss(objective),
                                 rank_weight=self.rank_weight,
                                 init_weight=self.init_weight, outer_lr=self.outer_lr,
                                 batch_size=self.batch_size, max_epochs=self.max_epochs,
                                 patience=self.patience, verbose=self.verbose)
        user_table = users.tensors(device)
        if folds is not None:
            user_table[FOLD_KEY] = torch.as_tensor(folds, device=device)
        trainer = Trainer(learner, user_table, items.tensors(device),
                          histories, sampler, settings, device)
        return trainer.fit(train, validation, rng)


def resolve_device(device: str) -> torch.device:
    """``"auto"``: the GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise P.InvalidParameterError(
            f"device={device!r} but torch sees no GPU here; use device='auto' or 'cpu'.")
    if resolved.type not in ("cpu", "cuda"):  # mps, xpu, ...: is this torch built with it?
        try:
            torch.empty(0, device=resolved)
        except (RuntimeError, AssertionError):
            raise P.InvalidParameterError(
                f"device={device!r} is not usable here: this torch build cannot put a tensor "
                f"on it. Use device='auto' or 'cpu'.") from None
    return resolved


def count_like(target: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The distinct values of ``target`` and how often each comes, if they look like counts:
    whole numbers >= 0 reaching past any rating scale's 10, most often the least value
    (counts of plays or clicks pile up at the bottom; ratings do not); else None."""
    if not len(target) or (target < 0).any() or (target != np.round(target)).any():
        return None
    values, counts = np.unique(target, return_counts=True)
    return (values, counts) if values[-1] > 10 and np.argmax(counts) == 0 else None
