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
from torch.func import functional_call
from torch.nn import functional as F

PAD = 0
ROW_KEY = "_row"  # every encoded table carries its row numbers, so an empty side has a shape
FOLD_KEY = "_fold"  # in meta-training, which of FieldEmbedding.folds a row's user reads


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
    factors : int
        Width of a dot-product term beside the MLP: ``score += p_user . (Q i)``, with the
        user's factor ``p`` adapted like the first layer's offset (0: none, as MeLU).
    item_vectors : tuple of (str, int)
        ``(field, width)``: the item side also embeds a fixed vector per value of the item
        field ``field`` (a buffer ``item.vectors`` of shape ``[cardinality, width]``, set
        after construction; zeros until then), each of its ``width`` columns as a numeric
        field. ``()``: none. The estimator fills it with matrix-factorisation item factors.
        In meta-training it may also set ``item.folds`` (``[n_folds, cardinality, width]``,
        not saved): a row carrying ``FOLD_KEY = f`` reads ``folds[f]`` instead, so a user's
        episodes see item vectors fitted without that user's ratings.
    """

    fields: tuple[FieldShape, ...] = field(default_factory=tuple)
    embedding_dim: int = 32
    hidden: tuple[int, ...] = (64, 64)
    factors: int = 0
    item_vectors: tuple = ()

    def width(self, side: str) -> int:
        extra = self.item_vectors[1] if side == "item" and self.item_vectors else 0
        return self.embedding_dim * (sum(f.side == side for f in self.fields) + extra)


class FieldEmbedding(nn.Module):
    """Embeds one side (user or item): one vector per field, concatenated.

    With ``config.item_vectors = (field, width)`` the item side appends ``width`` more, one
    per column ``j`` of the fixed vector ``v`` of the row's ``field`` value:
    ``v_j * looked[j, 0] + looked[j, 1]``, as a numeric field.
    """

    def __init__(self, config: ScorerConfig, side: str):
        super().__init__()
        self.fields = [f for f in config.fields if f.side == side]
        self.embedding_dim = dim = config.embedding_dim
        self.key, self.looked = None, None
        if side == "item" and config.item_vectors:
            self.key, width = config.item_vectors
            (shape,) = (f for f in self.fields if f.name == self.key)
            self.register_buffer("vectors", torch.zeros(shape.cardinality, width))
            self.register_buffer("folds", None, persistent=False)
            self.looked = nn.Parameter(torch.randn(width, 2, dim) * 0.1)
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
        if self.looked is not None:  # [..., width] -> [..., width, dim] -> [..., width * dim]
            if FOLD_KEY in rows and self.folds is not None:
                v = self.folds[rows[FOLD_KEY], rows[self.key]].unsqueeze(-1)
            else:
                v = self.vectors[rows[self.key]].unsqueeze(-1)
            parts.append((v * self.looked[:, 0] + self.looked[:, 1]).flatten(-2))
        if not parts:
            index = rows[ROW_KEY]
            return index.new_zeros((*index.shape, 0), dtype=torch.get_default_dtype())
        return torch.cat(parts, dim=-1)

    def affine_layout(self) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """Where :meth:`forward`'s output is affine in a single number, ``x * scale + shift``:
        each numeric field's ``dim`` columns, and each item-vector column's. Returns
        ``(kept, columns, scale, shift)``: the indices of every other column ``[D_c]``, and
        per affine block its column indices, scale and shift ``[n, dim]``; None when no
        block is affine. With :meth:`affine_values`, a layer ``W e`` over the embedding
        equals ``W[:, kept] e[kept] + sum_j x_j (W_j scale_j) + sum_j W_j shift_j``, which
        reads ``D_c + n`` inputs instead of ``D_c + n * dim`` (serving's fast scoring)."""
        dim, blocks, scale, shift, j = self.embedding_dim, [], [], [], 0
        for k, f in enumerate(self.fields):
            if f.kind == "num":
                blocks.append(k)
                scale.append(self.numeric[j, 0])
                shift.append(self.numeric[j, 1])
                j += 1
        if self.looked is not None:
            blocks.extend(range(len(self.fields), len(self.fields) + len(self.looked)))
            scale.extend(self.looked[:, 0])
            shift.extend(self.looked[:, 1])
        if not blocks:
            return None
        device = self.looked.device if self.looked is not None else self.numeric.device
        width = dim * (len(self.fields) + (len(self.looked) if self.looked is not None else 0))
        columns = torch.tensor(blocks, device=device)[:, None] * dim + torch.arange(
            dim, device=device)
        affine = torch.zeros(width, dtype=torch.bool, device=device)
        affine[columns.flatten()] = True
        return (torch.nonzero(~affine).squeeze(-1), columns, torch.stack(scale),
                torch.stack(shift))

    def affine_values(self, rows: dict[str, Tensor]) -> Tensor:
        """The numbers ``x`` of :meth:`affine_layout`'s blocks, in its order: ``[..., n]``."""
        values = [rows[f.name].to(self.numeric.dtype) for f in self.fields if f.kind == "num"]
        if self.looked is not None:
            values.extend(self.vectors[rows[self.key]].unbind(-1))
        return torch.stack(values, dim=-1)


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
        if config.factors:  # the dot-product term: item factor Q i, user factor offset p
            self.factor_in = nn.Linear(config.width("item"), config.factors, bias=False)
            self.factor = nn.Parameter(torch.zeros(config.factors))
        else:
            self.factor_in = self.factor = None

    def forward(self, item: Tensor, user_term: Tensor | None = None,
                user_factor: Tensor | None = None) -> Tensor:
        pre = self.item_in(item)  # W1_i i + offset, one fused op
        if user_term is not None:
            pre = pre + user_term.unsqueeze(-2)  # one user term, broadcast over the L items
        h = F.relu(pre)
        for layer in self.layers:
            h = F.relu(layer(h))
        out = self.out(h).squeeze(-1)
        if self.factor is None:
            return out
        p = self.factor if user_factor is None else self.factor + user_factor
        return out + (self.factor_in(item) * p.unsqueeze(-2)).sum(-1)

    @property
    def has_factor(self) -> bool:
        return self.factor is not None

    @property
    def relu_chain(self) -> tuple[tuple[str, str], ...] | None:
        """``(weight, bias)`` names of the layers, first to last, when the body is a plain
        chain of ReLU layers (no dot-product term), for the hand-written inner loop
        (:func:`recmeta.adaptation.adapt_relu_chain`); ``None`` otherwise."""
        if self.has_factor:
            return None
        names = ["item_in", *(f"layers.{j}" for j in range(len(self.layers))), "out"]
        return tuple((f"{n}.weight", f"{n}.bias") for n in names)

    def solve_factor(self, params: dict, inputs: tuple, target: Tensor, weights: Tensor,
                     ridge: float) -> dict:
        """One user's ``params`` with the factor moved by the ridge solution
        ``d = (Q' W Q + ridge I)^-1 Q' W (y - f(x))``, ``W`` the support rows' weights.

        Written for one (padded) user; :func:`recmeta.adaptation.adapt` maps it over users.
        """
        (item,) = inputs
        residual = target - functional_call(self, params, inputs)
        q = F.linear(item, params["factor_in.weight"])  # [L, r]
        wq = q * weights.unsqueeze(-1)  # padding rows weigh 0
        eye = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device)
        gram = q.transpose(-1, -2) @ wq + ridge * eye
        step = torch.linalg.solve(gram, (wq * residual.unsqueeze(-1)).sum(-2))
        return {**params, "factor": params["factor"] + step}


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
        if config.factors:  # the user's factor: p = W_p u + body.factor
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Initializing zero-element tensors")
                self.user_factor = nn.Linear(config.width("user"), config.factors, bias=False)
        else:
            self.user_factor = None
        # one fan-in for both halves and the bias, as if they were one layer over [u; i]
        bound = max(config.width("user") + config.width("item"), 1) ** -0.5
        for weight in (self.user_in.weight, self.body.item_in.weight, self.body.item_in.bias):
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        factor = None if self.user_factor is None else self.user_factor(user)
        return self.body(item, self.user_in(user), factor)

    @property
    def has_factor(self) -> bool:
        return self.user_factor is not None

    def solve_factor_reference(self, params: dict, inputs: tuple, target: Tensor,
                               loop) -> dict:
        """The slow, obvious solve for one unpadded user: the change ``d`` of the user's factor
        minimising ``sum((y - f(x) - q d)^2) / (n + c) + ridge |d|^2``, as a stacked
        least-squares problem."""
        _, item = inputs
        residual = target - functional_call(self, params, inputs)
        q = item @ params["body.factor_in.weight"].T
        r = q.shape[1]
        w = 1.0 / max(len(target) + loop.shrinkage, 1.0)
        design = torch.cat([q * w**0.5,
                            torch.eye(r, dtype=q.dtype, device=q.device) * loop.ridge**0.5])
        rhs = torch.cat([residual * w**0.5, torch.zeros(r, dtype=q.dtype, device=q.device)])
        d = torch.linalg.lstsq(design, rhs.unsqueeze(-1)).solution.squeeze(-1)
        return {**params, "body.factor": params["body.factor"] + d}


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
