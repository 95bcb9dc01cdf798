"""Blending the adapted network with matrix factorisation's fold-in, on the items it knows.

For ratings (:class:`MFBlend`), ``fit`` also runs a biased ALS
(:class:`recmeta.baselines.BiasedMF`) on every user's ratings and keeps its item factors
here. Whenever a user is adapted, the same history also folds in the user's ALS vector
``(p_u, b_u)`` (the closed-form ridge solve of ``BiasedMF.fold_in``), and an item the ALS
knows is scored ``(1 - w) * network + w * ALS``; any other item (new, or never rated in
training) by the network alone. The two err differently: the network reads side features
and is tuned for the meta-loss, the ALS ranks by who liked what. ``w`` is chosen in ``fit``
on the users held out for early stopping, with an ALS that has not seen them.

Scores are on the network's scale (targets standardised by ``fit``); the ALS works on
ratings, so the module keeps that scale to convert.

For 0/1 feedback (:class:`ImplicitBlend`), the ALS is implicit-feedback ALS
(:class:`recmeta.ials.ImplicitALS`, who interacted with what): a user is folded in by its
exact user half-step from the history's positive rows, and its score ``x_u . y_i`` is mapped
to a logit, the network's scale, by ``a * score + b``, a logistic fit on the users held out
for early stopping. The mix is then the same, of logits.

This module imports torch only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

BLEND_KEY = "_blend"  # each user's folded-in (p_u, b_u), carried with its adapted parameters


class Blend(nn.Module):
    """What every blend has: the item factors indexed by item code, which codes the ALS
    knows, and the weight; and the mix.

    Parameters
    ----------
    n_codes : int
        Cardinality of the item-id field.
    n_factors : int
        The ALS's factors.
    field : str
        The item-id field whose codes index the tables.
    """

    def __init__(self, n_codes: int, n_factors: int, field: str):
        super().__init__()
        self.field = field
        self.register_buffer("factors", torch.zeros(n_codes, n_factors))
        self.register_buffer("known", torch.zeros(n_codes, dtype=torch.bool))
        self.register_buffer("weight", torch.zeros(()))

    def _fill_factors(self, codes: Tensor, factors: Tensor) -> Tensor:
        """Row ``codes[k]`` gets ``factors[k]``, other codes zeros; returns ``codes`` on the
        tables' device."""
        codes = codes.to(self.factors.device)
        with torch.no_grad():
            self.factors.zero_()
            self.known.zero_()
            self.factors[codes] = factors.to(self.factors)
            self.known[codes] = True
        return codes

    def _dot(self, user: Tensor, codes: Tensor) -> Tensor:
        """``p_u . q_i`` for users ``[B, r]`` and items ``[B, L]`` or one list ``[N]``."""
        if codes.dim() == 1:
            return user @ self.factors[codes].T
        return (self.factors[codes] * user.unsqueeze(-2)).sum(-1)

    def mix(self, net: Tensor, als: Tensor, codes: Tensor, weight: Tensor | float | None = None
            ) -> Tensor:
        """``(1 - w) * net + w * als`` where the ALS knows the item, ``net`` elsewhere."""
        w = self.weight if weight is None else weight
        return torch.where(self.known[codes], net + w * (als - net), net)


class MFBlend(Blend):
    """A biased ALS of ratings (:class:`~recmeta.baselines.BiasedMF`): item factors and
    biases, the fold-in's penalty, and the scales between ratings and the network's."""

    def __init__(self, n_codes: int, n_factors: int, field: str):
        super().__init__(n_codes, n_factors, field)
        self.register_buffer("bias", torch.zeros(n_codes))
        self.register_buffer("penalty", torch.ones(n_factors + 1))
        # the ALS's global mean; the network's target mean and scale
        self.register_buffer("scales", torch.tensor([0.0, 0.0, 1.0]))

    def fill(self, codes: Tensor, factors: Tensor, bias: Tensor, penalty: Tensor,
             mean: float, target_mean: float, target_scale: float) -> None:
        """Set the tables: row ``codes[k]`` gets the ALS's item ``k``; other codes zeros."""
        codes = self._fill_factors(codes, factors)
        with torch.no_grad():
            self.bias.zero_()
            self.bias[codes] = bias.to(self.bias)
            self.penalty.copy_(penalty)
            self.scales.copy_(torch.tensor([mean, target_mean, target_scale]))

    def fold_in(self, codes: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Each user's ``(p_u, b_u)`` ``[B, r + 1]`` from its (padded) rows ``[B, L]``:
        ``argmin sum(mask * (y - mu - b_i - b_u - p_u . q_i)^2) + sum(penalty * x^2)``,
        ``y`` the rows' ratings (``target`` is on the network's scale)."""
        mean, target_mean, target_scale = self.scales
        rating = target * target_scale + target_mean
        design = torch.cat([self.factors[codes], torch.ones_like(rating).unsqueeze(-1)], -1)
        weighted = design * mask.unsqueeze(-1)
        gram = weighted.mT @ design + torch.diag(self.penalty)
        rhs = weighted.mT @ (rating - mean - self.bias[codes]).unsqueeze(-1)
        return torch.linalg.solve(gram, rhs).squeeze(-1)

    def predict(self, user: Tensor, codes: Tensor) -> Tensor:
        """The ALS's scores ``[B, L]`` (network scale) of users ``[B, r + 1]`` on items
        ``[B, L]``, or on one list ``[N]`` for every user (then ``[B, N]``)."""
        mean, target_mean, target_scale = self.scales
        dot = self._dot(user[:, :-1], codes)
        return (mean + user[:, -1:] + self.bias[codes] + dot - target_mean) / target_scale


class ImplicitBlend(Blend):
    """Implicit-feedback ALS (:class:`~recmeta.ials.ImplicitALS`) for 0/1 feedback: item
    factors ``y_i``, the shared ``Y^T Y + reg I``, ``alpha``, and the calibration of its
    scores to logits."""

    def __init__(self, n_codes: int, n_factors: int, field: str):
        super().__init__(n_codes, n_factors, field)
        self.register_buffer("gram", torch.eye(n_factors))
        # alpha; the calibration's slope and intercept (score -> logit)
        self.register_buffer("scales", torch.tensor([0.0, 1.0, 0.0]))

    def fill(self, codes: Tensor, factors: Tensor, reg: float, alpha: float) -> None:
        """Set the tables from the ALS's item factors (row ``codes[k]`` gets item ``k``);
        the calibration is reset to the raw score (slope 1, intercept 0)."""
        self._fill_factors(codes, factors)
        gram = factors.T @ factors + reg * torch.eye(factors.shape[1], dtype=factors.dtype)
        with torch.no_grad():
            self.gram.copy_(gram.to(self.gram))
            self.scales.copy_(torch.tensor([alpha, 1.0, 0.0]))

    def calibrate(self, slope: float, intercept: float) -> None:
        """Score ``logit = slope * x_u . y_i + intercept`` from now on."""
        with torch.no_grad():
            self.scales[1:] = torch.tensor([slope, intercept])

    def fold_in(self, codes: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Each user's ``x_u`` ``[B, r]`` from its (padded) rows ``[B, L]``: iALS's user
        half-step ``(Y^T Y + alpha Y_u^T Y_u + reg I)^-1 (1 + alpha) Y_u^T 1`` over the rows
        with target 1 (``Y_u``; rows with 0, such as sampled negatives, count as unobserved,
        and an item unknown to the ALS adds nothing)."""
        alpha = self.scales[0]
        seen = self.factors[codes] * (mask * (target > 0.5)).unsqueeze(-1)
        gram = self.gram + alpha * (seen.mT @ seen)
        rhs = (1.0 + alpha) * seen.sum(-2, keepdim=True).mT
        return torch.linalg.solve(gram, rhs).squeeze(-1)

    def predict(self, user: Tensor, codes: Tensor) -> Tensor:
        """The calibrated scores ``[B, L]`` (logits) of users ``[B, r]`` on items ``[B, L]``,
        or on one list ``[N]`` for every user (then ``[B, N]``)."""
        return self.scales[1] * self._dot(user, codes) + self.scales[2]
