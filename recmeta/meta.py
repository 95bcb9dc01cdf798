"""Meta-learning: the shared initialisation, the inner learning rates, and the outer update.

Methods
-------
``"maml"``
    Second-order MAML: the query loss differentiates through the inner steps.
``"fomaml"``
    First-order MAML: the inner gradients are treated as constants.
``"metasgd"``
    Meta-SGD: second-order, and the inner learning rate is a learned tensor per parameter.
``"supervised"``
    No meta-learning: the same network trained on all interactions pooled. It is adapted
    at serving time with the same inner loop (fine-tuning), or not at all with 0 steps.

This module imports torch and nothing else of recmeta's dependencies.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .adaptation import (
    InnerLoop,
    Params,
    adapt,
    listwise_loss,
    masked_loss,
    pointwise_loss,
    score,
)
from .blend import BLEND_KEY, Blend
from .episodes import Batch
from .model import FOLD_KEY, ROW_KEY, Scorer

UNKNOWN = 1  # the reserved index of an unknown categorical value (see features.py)
OFFSET = "body.item_in.bias"  # the first layer's bias: per user, it absorbs W1_u u
# parameters of the body each user holds a copy of, and the user-side layer each absorbs
PER_USER = {OFFSET: "user_in", "body.factor": "user_factor"}

EMBEDDED = "_embedded"  # serving's items: every item's vector, embedded once per call
COMPACT = "_compact"  # and for scoring, the same with each affine block cut to its number
# items per user from which scoring reads COMPACT: with fewer, folding each user's weights can
# cost more than it saves (with 50 candidates per user on an 8-wide model it did)
COMPACT_MIN_ITEMS = 128
METHODS = ("maml", "fomaml", "metasgd", "supervised")
ADAPT = ("mlp", "all")
Table = dict[str, Tensor]


def rows(table: Table, index: Tensor) -> Table:
    """Gather rows of an encoded table: every field, and the row numbers themselves."""
    return {name: column[index] for name, column in table.items()}


def as_table(encoded: dict, n_rows: int, device: torch.device | str = "cpu") -> Table:
    """Turn an encoded (numpy) table into tensors, adding the row numbers under ``_row``."""
    table = {name: torch.as_tensor(column, device=device) for name, column in encoded.items()}
    table[ROW_KEY] = torch.arange(n_rows, device=device)
    return table


class MetaLearner(nn.Module):
    """The scorer's initialisation plus the inner learning rates, and what to do with them.

    Parameters
    ----------
    scorer : Scorer
    adapt : {"mlp", "all"}
        Which parameters each user adapts: the MLP head (as MeLU) or every parameter.
    inner_lr : float
        The inner learning rate (the initial one for Meta-SGD).
    learn_lr : bool
        Learn a learning rate per adapted parameter entry (Meta-SGD).
    id_dropout : dict of str to float
        In training mode, each item row's value of these fields is replaced by "unknown"
        with the given probability, so the unknown embedding learns to stand for a new item
        and the other fields learn to carry what the id would.
    blend : Blend, default=None
        When given, adapting a user also folds it into the ALS, and scoring blends the two
        (see :mod:`recmeta.blend`). Meta-training never uses it.

    Attributes
    ----------
    hidden : Tensor or None
        The item rows whose id (any ``id_dropout`` field) the last :meth:`vectors` call hid,
        a bool tensor of its ``item_index``'s shape; None when it hid none. The rows that
        teach how a new item is scored, which a meta-loss may score by their own loss.
    """

    def __init__(self, scorer: Scorer, adapt: str = "mlp", inner_lr: float = 0.1,
                 learn_lr: bool = False, id_dropout: dict[str, float] | None = None,
                 blend: Blend | None = None):
        super().__init__()
        self.scorer = scorer
        self.blend = blend
        self.id_dropout = dict(id_dropout or {})
        self.generator: torch.Generator | None = None
        self.hidden: Tensor | None = None
        self.adapt_all = adapt == "all"
        self.lr = nn.ParameterDict({
            _key(name): nn.Parameter(torch.full_like(p, inner_lr) if learn_lr
                                     else torch.tensor(inner_lr), requires_grad=learn_lr)
            for name, p in self.reference.named_parameters()
        })

    # The reference formulation: the module that adapts, as written, with its parameters.
    @property
    def reference(self) -> nn.Module:
        """The part of the scorer each user adapts: the MLP head, or the whole scorer."""
        return self.scorer if self.adapt_all else self.scorer.head

    def reference_params(self) -> Params:
        return dict(self.reference.named_parameters())

    def reference_lrs(self) -> Params:
        return {name: self.lr[_key(name)] for name, _ in self.reference.named_parameters()}

    def vectors(self, users: Table, items: Table, user_index: Tensor,
                item_index: Tensor) -> tuple:
        """Arguments of :attr:`reference` for users ``[B]`` and their items ``[B, L]`` (or a
        candidate list ``[N]``): embedded vectors, or the raw rows when everything adapts."""
        user_rows = rows(users, user_index)
        if EMBEDDED in items:  # item vectors embedded beforehand (serving)
            return self.scorer.user(user_rows), items[EMBEDDED][item_index]
        item_rows = rows(items, item_index)
        if FOLD_KEY in user_rows and item_index.dim() == 2:  # [B, L]: the users' own rows
            # each item row reads its user's fold of the item vectors
            item_rows[FOLD_KEY] = user_rows[FOLD_KEY].unsqueeze(-1).expand(item_index.shape)
        self.hidden = None
        if self.training:
            for name, p in self.id_dropout.items():
                drop = torch.rand(item_rows[name].shape, generator=self.generator,
                                  device=item_rows[name].device) < p
                item_rows[name] = item_rows[name].masked_fill(drop, UNKNOWN)
                self.hidden = drop if self.hidden is None else self.hidden | drop
        if self.adapt_all:
            return user_rows, item_rows
        return self.scorer.user(user_rows), self.scorer.item(item_rows)

    # The fast formulation: what the batched inner loop runs.
    @property
    def adapted(self) -> nn.Module:
        """The module whose parameters each user's copy holds: the MLP's body (the user term
        folded into its per-user offset), or the whole scorer."""
        return self.scorer if self.adapt_all else self.scorer.head.body

    def start(self, user: Tensor) -> tuple[Params, Params, dict]:
        """Each user's starting parameters and rates, and which of them are per user.

        With only the MLP adapting, ``c = W1_u u + b1`` replaces ``(W1_u, b1)``: a gradient
        step on ``(W1_u, b1)`` moves ``c`` by ``-(alpha_W (u * u) + alpha_b) * dL/dc``, so the
        two formulations give the same adapted scores. The user's factor
        ``p = W_p u + p0`` (when the scorer has factors) is folded the same way.
        """
        head, lrs = self.scorer.head, dict(self.reference_lrs())
        params = {f"body.{n}": p for n, p in head.body.named_parameters()}
        squares = user * user
        for name, linear in PER_USER.items():
            if name not in params:
                continue
            offset = getattr(head, linear)(user) + params[name]
            lr_w = lrs[f"{linear}.weight"]
            # alpha_c = alpha_W (u * u) + alpha_b; a scalar alpha_W gives alpha_W |u|^2
            rate = (F.linear(squares, lr_w) if lr_w.dim() else
                    lr_w * squares.sum(-1, keepdim=True)) + lrs[name]
            params[name], lrs[name] = offset, rate.expand_as(offset)
        strip = len("body.")
        names = [n for n in params]
        dims = {n[strip:]: 0 if n in PER_USER else None for n in names}
        return ({n[strip:]: params[n] for n in names}, {n[strip:]: lrs[n] for n in names}, dims)

    def adapt(self, users: Table, items: Table, support: Batch, loop: InnerLoop) -> Params:
        """Adapted parameters ``{name: [B, ...]}`` of each user in ``support``, and with a
        blend each user's ALS vector under ``BLEND_KEY``."""
        user, item = self.vectors(users, items, support.users, support.items)
        if self.adapt_all:
            fast = adapt(self.scorer, self.reference_params(), self.reference_lrs(),
                         (user, item), support.target, support.mask, loop)
        else:
            params, lrs, dims = self.start(user)
            fast = adapt(self.adapted, params, lrs, (item,), support.target, support.mask,
                         loop, param_dims=dims)
        if self.blend is not None and not self.training:  # serving, not meta-training
            fast[BLEND_KEY] = self.blend.fold_in(items[self.blend.field][support.items],
                                                 support.target, support.mask)
        return fast

    def score(self, users: Table, items: Table, fast: Params, user_index: Tensor,
              item_index: Tensor) -> Tensor:
        """Scores ``[B, L]`` with adapted parameters; ``item_index`` is per user ``[B, L]``
        or a candidate list ``[N]`` shared by every user (then ``[B, N]``). With a blend
        and users adapted with it, items the ALS knows get the blended score."""
        fast = dict(fast)
        als_user = fast.pop(BLEND_KEY, None)
        shared = item_index.dim() == 1
        if self.adapt_all:
            inputs = self.vectors(users, items, user_index, item_index)
            net = score(self.scorer, fast, inputs, in_dims=(0, None) if shared else None)
        elif self.reads_compact(items, item_index.shape[-1]):
            net = score(self.adapted, self.compact(fast), (items[COMPACT][item_index],),
                        in_dims=(None,) if shared else None)
        else:
            item_vec = items[EMBEDDED][item_index] if EMBEDDED in items else \
                self.scorer.item(rows(items, item_index))
            net = score(self.adapted, fast, (item_vec,), in_dims=(None,) if shared else None)
        if als_user is None or self.blend is None:
            return net
        codes = items[self.blend.field][item_index]
        return self.blend.mix(net, self.blend.predict(als_user, codes), codes)

    def serving_items(self, items: Table) -> Table:
        """What serving passes as ``items``: when only the MLP adapts, every item's vector,
        embedded once per call instead of once per user and row (under ``EMBEDDED``), and
        the item ids' codes when there is a blend."""
        if self.adapt_all:
            return items
        with torch.no_grad():
            out = {EMBEDDED: self.scorer.item(items)}
            layout = self._affine_layout()
            if layout is not None:  # what scoring reads: see compact
                out[COMPACT] = torch.cat([out[EMBEDDED][..., layout[0]],
                                          self.scorer.item.affine_values(items)], dim=-1)
        if self.blend is not None:
            out[self.blend.field] = items[self.blend.field]
        return out

    def _affine_layout(self):
        """The item embedding's affine blocks when scoring can read them compactly: the
        default scorer (a ReLU chain whose first layer alone reads the item vector)."""
        if self.adapt_all or self.adapted.relu_chain is None:
            return None
        return self.scorer.item.affine_layout()

    def reads_compact(self, items: Table, n_items: int) -> bool:
        """Whether scoring ``n_items`` per user reads ``items[COMPACT]`` (see :meth:`compact`)."""
        return COMPACT in items and n_items >= COMPACT_MIN_ITEMS

    def compact(self, fast: Params) -> Params:
        """Adapted parameters whose first layer reads :data:`COMPACT` item vectors: each
        affine block's weights ``W_j [H, dim]`` become the one column ``W_j scale_j``, and
        ``sum_j W_j shift_j`` joins the bias, so the layer computes what it did on the full
        vectors (up to float rounding) with ``D_c + n`` inputs instead of ``D_c + n * dim``."""
        kept, columns, scale, shift = self._affine_layout()
        (weight, bias), *_ = self.adapted.relu_chain
        w = fast[weight]  # [..., H, D]
        blocks = w[..., columns]  # [..., H, n, dim]
        return {**fast, weight: torch.cat([w[..., kept], (blocks * scale).sum(-1)], dim=-1),
                bias: fast[bias] + (blocks * shift).sum((-2, -1))}

    def query_loss(self, users: Table, items: Table, support: Batch, query: Batch,
                   loop: InnerLoop, loss: str | None = None, rank_weight: float = 0.0,
                   init_weight: float = 0.0, hidden_loss: str | None = None) -> Tensor:
        """Mean over users of the query loss after adapting on the support set: ``loss``
        (see :func:`~recmeta.adaptation.pointwise_loss`), by default the inner objective,
        and ``hidden_loss`` on the rows whose item id ``id_dropout`` hid, when given (the
        rows that teach how a new item is scored); plus ``rank_weight`` times the listwise
        loss of the query rows' order (:func:`~recmeta.adaptation.listwise_loss`), plus
        ``init_weight`` times the initialisation's own loss, unadapted, over the user's
        support and query rows (the pooled objective, which a user with no history is
        served by)."""
        both = torch.cat([support.items, query.items], dim=1)  # every row the user shows
        if self.adapt_all:
            fast = self.adapt(users, items, support, loop)
            pred = self.score(users, items, fast, query.users, query.items)
            hidden = self.hidden
            if init_weight:  # the adapted path embedded support and query rows apart
                vectors = self.vectors(users, items, support.users, both)
                hidden_both = self.hidden
        else:  # embed support and query items in one go
            width = support.items.shape[1]
            vectors = user, item = self.vectors(users, items, support.users, both)
            hidden_both = self.hidden
            hidden = None if hidden_both is None else hidden_both[:, width:]
            params, lrs, dims = self.start(user)
            fast = adapt(self.adapted, params, lrs, (item[:, :width],), support.target,
                         support.mask, loop, param_dims=dims)
            pred = score(self.adapted, fast, (item[:, width:],))
        objective = loss or loop.objective
        total = masked_loss(pred, query.target, query.mask, objective, hidden, hidden_loss)
        if rank_weight:
            total = total + rank_weight * listwise_loss(pred, query.target, query.mask)
        if init_weight:
            initial = self.reference(*vectors)
            total = total + init_weight * masked_loss(
                initial, torch.cat([support.target, query.target], dim=1),
                torch.cat([support.mask, query.mask], dim=1), objective, hidden_both,
                hidden_loss)
        return total.mean()

    def pooled_loss(self, users: Table, items: Table, batches: list[Batch],
                    objective: str, hidden_loss: str | None = None) -> Tensor:
        """The non-meta objective: the initialisation's loss over every row, pooled (with
        ``hidden_loss`` on the rows whose item id ``id_dropout`` hid, when given)."""
        total, count = 0.0, 0.0
        for batch in batches:
            pred = self.reference(*self.vectors(users, items, batch.users, batch.items))
            rows = pointwise_loss(pred, batch.target, objective, self.hidden, hidden_loss)
            total = total + (rows * batch.mask).sum()
            count = count + batch.mask.sum()
        return total / max(float(count), 1.0)

    def parameter_groups(self, outer_lr: float) -> list[dict]:
        """The outer optimiser's groups: the initialisation, and learned inner rates if any."""
        groups = [{"params": list(self.scorer.parameters()), "lr": outer_lr}]
        learned = [p for p in self.lr.parameters() if p.requires_grad]
        if learned:
            groups.append({"params": learned, "lr": outer_lr})
        return groups


def _key(name: str) -> str:
    return name.replace(".", "__")
