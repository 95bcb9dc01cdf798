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


class MLP(nn.Module):
    """``MLP(u, i)``: the user vector ``[..., du]`` meets item vectors ``[..., L, di]``.

    The first layer keeps its user and item halves as separate weights, so that adapting it
    per user never slices (and re-assembles) one large matrix.
    """

    def __init__(self, config: ScorerConfig):
        super().__init__()
        first, *rest = config.hidden
        self.user_in = nn.Linear(config.width("user"), first)
        self.item_in = nn.Linear(config.width("item"), first, bias=False)
        widths = [first, *rest]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], 1)
        # one fan-in for both halves, as if they were one layer over [u; i]
        bound = (config.width("user") + config.width("item")) ** -0.5
        for weight in (self.user_in.weight, self.item_in.weight, self.user_in.bias):
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        # h1 = relu(W1_i i + (W1_u u + b1)), the user term broadcast over the L items
        h = F.relu(self.item_in(item) + self.user_in(user).unsqueeze(-2))
        for layer in self.layers:
            h = F.relu(layer(h))
        return self.out(h).squeeze(-1)


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
