"""Blending the adapted network with matrix factorisation's fold-in, on the items it knows.

For ratings, ``fit`` also runs a biased ALS (:class:`recmeta.baselines.BiasedMF`) on
every user's ratings and keeps its item factors here. Whenever a user is adapted, the
same history also folds in the user's ALS vector ``(p_u, b_u)`` (the closed-form ridge solve
of ``BiasedMF.fold_in``), and an item the ALS knows is scored
``(1 - w) * network + w * ALS``; any other item (new, or never rated in training) by the
network alone. The two err differently: the network reads side features and is tuned for
the meta-loss, the ALS ranks by who liked what. ``w`` is chosen in ``fit`` on the users held
out for early stopping, with an ALS that has not seen them.

Scores are on the network's scale (targets standardised by ``fit``); the ALS works on
ratings, so the module keeps that scale to convert.

This module imports torch only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

BLEND_KEY = "_blend"  # each user's folded-in (p_u, b_u), carried with its adapted parameters


class MFBlend(nn.Module):
    """The ALS's item tables, indexed by item code, and the blend weight.

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
        self.register_buffer("bias", torch.zeros(n_codes))
        self.register_buffer("known", torch.zeros(n_codes, dtype=torch.bool))
        self.register_buffer("penalty", torch.ones(n_factors + 1))
        # the ALS's global mean; the network's target mean and scale
        self.register_buffer("scales", torch.tensor([0.0, 0.0, 1.0]))
        self.register_buffer("weight", torch.zeros(()))

    def fill(self, codes: Tensor, factors: Tensor, bias: Tensor, penalty: Tensor,
             mean: float, target_mean: float, target_scale: float) -> None:
        """Set the tables: row ``codes[k]`` gets the ALS's item ``k``; other codes zeros."""
        codes = codes.to(self.factors.device)
        with torch.no_grad():
            self.factors.zero_()
            self.bias.zero_()
            self.known.zero_()
            self.factors[codes] = factors.to(self.factors)
            self.bias[codes] = bias.to(self.bias)
            self.known[codes] = True
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
        p, b = user[:, :-1], user[:, -1:]
        if codes.dim() == 1:
            dot = p @ self.factors[codes].T
        else:
            dot = (self.factors[codes] * p.unsqueeze(-2)).sum(-1)
        return (mean + b + self.bias[codes] + dot - target_mean) / target_scale

    def mix(self, net: Tensor, als: Tensor, codes: Tensor, weight: Tensor | float | None = None
            ) -> Tensor:
        """``(1 - w) * net + w * als`` where the ALS knows the item, ``net`` elsewhere."""
        w = self.weight if weight is None else weight
        return torch.where(self.known[codes], net + w * (als - net), net)
