"""The scorer: an embedding per field, concatenated, then an MLP (the shape MeLU made standard).

``score(user, item) = MLP([e_user ; e_item])`` where ``e_user`` concatenates one embedding per
user field and ``e_item`` one per item field. Multi-valued fields are mean-pooled over their
values; numeric fields are ``value * w + b``. The MLP's first layer is split in two,
``W1 [u; i] = W1_u u + W1_i i``, so one user's vector can meet many candidate items without
copying it onto every row.

This module imports torch and nothing else of recmeta's dependencies.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

PAD = 0
ROW_KEY = "_row"  # every encoded table carries its row numbers, so an empty side has a shape


@dataclass(frozen=True)
class FieldShape:
    """What the network needs to know of one field."""

    name: str
    side: str  # "user" | "item"
    kind: str  # "cat" | "multi" | "num"
    cardinality: int = 0


@dataclass(frozen=True)
class ScorerConfig:
    """One config for every module of the scorer.

    Parameters
    ----------
    fields : tuple of FieldShape
        The user and item fields, in order.
    embedding_dim : int
        Width of each field's embedding (MeLU: 32).
    hidden : tuple of int
        Hidden layer widths of the MLP (MeLU: 64, 64).
    """

    fields: tuple[FieldShape, ...] = field(default_factory=tuple)
    embedding_dim: int = 32
    hidden: tuple[int, ...] = (64, 64)

    def width(self, side: str) -> int:
        return self.embedding_dim * sum(f.side == side for f in self.fields)


class FieldEmbedding(nn.Module):
    """Embeds one side (user or item): one vector per field, concatenated."""

    def __init__(self, config: ScorerConfig, side: str):
        super().__init__()
        self.fields = [f for f in config.fields if f.side == side]
        dim = config.embedding_dim
        self.tables = nn.ModuleList(
            nn.Embedding(f.cardinality, dim, padding_idx=PAD) if f.kind != "num" else nn.Identity()
            for f in self.fields
        )
        # numeric field j: e = x * numeric[j, 0] + numeric[j, 1]
        n_numeric = sum(f.kind == "num" for f in self.fields)
        self.numeric = nn.Parameter(torch.randn(n_numeric, 2, dim) * 0.1) if n_numeric else None
        for table in self.tables:
            if isinstance(table, nn.Embedding):
                nn.init.normal_(table.weight, std=0.1)
                with torch.no_grad():
                    table.weight[PAD].zero_()

    def forward(self, rows: dict[str, Tensor]) -> Tensor:
        parts, j = [], 0
        for f, table in zip(self.fields, self.tables, strict=True):
            x = rows[f.name]
            if f.kind == "cat":
                parts.append(table(x))
            elif f.kind == "multi":
                # mean over the values present: sum_v e_v * [v != pad] / max(count, 1)
                present = (x != PAD).unsqueeze(-1).to(table.weight.dtype)
                parts.append((table(x) * present).sum(-2) / present.sum(-2).clamp(min=1.0))
            else:
                parts.append(x.unsqueeze(-1) * self.numeric[j, 0] + self.numeric[j, 1])
                j += 1
        if not parts:
            index = rows[ROW_KEY]
            return index.new_zeros((*index.shape, 0), dtype=torch.get_default_dtype())
        return torch.cat(parts, dim=-1)


class Body(nn.Module):
    """The MLP after its user term: ``h1 = relu(W1_i i + offset [+ t_user])``, then the rest.

    ``offset`` (``item_in.bias``) is the first layer's bias. When only the MLP adapts, each
    user's copy of it
    also absorbs that user's term ``W1_u u``: the user vector is fixed during adaptation, so
    adapting ``(W1_u, b1)`` is exactly adapting ``c = W1_u u + b1`` with the learning rate
    ``alpha_W (u * u) + alpha_b`` (see :meth:`MetaLearner.start`), with no per-user copy of
    ``W1_u``.
    """

    def __init__(self, config: ScorerConfig):
        super().__init__()
        first, *rest = config.hidden
        # its bias is the first layer's bias b1, the "offset" each user's copy adapts
        self.item_in = nn.Linear(config.width("item"), first)
        widths = [first, *rest]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], 1)

    def forward(self, item: Tensor, user_term: Tensor | None = None) -> Tensor:
        pre = self.item_in(item)  # W1_i i + offset, one fused op
        if user_term is not None:
            pre = pre + user_term.unsqueeze(-2)  # one user term, broadcast over the L items
        h = F.relu(pre)
        for layer in self.layers:
            h = F.relu(layer(h))
        return self.out(h).squeeze(-1)


class MLP(nn.Module):
    """``MLP(u, i)``: the user vector ``[..., du]`` meets item vectors ``[..., L, di]``.

    ``h1 = relu(W1_i i + W1_u u + b1)``: the first layer's user and item halves are separate
    weights, so the user half is computed once per user, not once per row.
    """

    def __init__(self, config: ScorerConfig):
        super().__init__()
        first = config.hidden[0]
        with warnings.catch_warnings():  # no user fields: a 0-wide user half, nothing to init
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.user_in = nn.Linear(config.width("user"), first, bias=False)
        self.body = Body(config)
        # one fan-in for both halves and the bias, as if they were one layer over [u; i]
        bound = max(config.width("user") + config.width("item"), 1) ** -0.5
        for weight in (self.user_in.weight, self.body.item_in.weight, self.body.item_in.bias):
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        return self.body(item, self.user_in(user))


class Scorer(nn.Module):
    """Scores (user, item) pairs: ``MLP(embed_user(u), embed_item(i))``."""

    def __init__(self, config: ScorerConfig):
        super().__init__()
        self.config = config
        self.user = FieldEmbedding(config, "user")
        self.item = FieldEmbedding(config, "item")
        self.head = MLP(config)

    def forward(self, user_rows: dict[str, Tensor], item_rows: dict[str, Tensor]) -> Tensor:
        """Scores of shape ``[..., L]`` for user rows ``[...]`` and item rows ``[..., L]``."""
        return self.head(self.user(user_rows), self.item(item_rows))
