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

from .adaptation import InnerLoop, Params, adapt, masked_loss, pointwise_loss, score
from .episodes import Batch
from .model import ROW_KEY, Scorer

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
    """

    def __init__(self, scorer: Scorer, adapt: str = "mlp", inner_lr: float = 0.1,
                 learn_lr: bool = False):
        super().__init__()
        self.scorer = scorer
        self.adapt_all = adapt == "all"
        self.lr = nn.ParameterDict({
            _key(name): nn.Parameter(torch.full_like(p, inner_lr) if learn_lr
                                     else torch.tensor(inner_lr), requires_grad=learn_lr)
            for name, p in self.adapted.named_parameters()
        })

    @property
    def adapted(self) -> nn.Module:
        """The part of the scorer each user adapts (not a registered child: no aliases)."""
        return self.scorer if self.adapt_all else self.scorer.head

    def init_params(self) -> Params:
        return dict(self.adapted.named_parameters())

    def inner_lrs(self) -> Params:
        return {name: self.lr[_key(name)] for name, _ in self.adapted.named_parameters()}

    def inputs(self, users: Table, items: Table, user_index: Tensor, item_index: Tensor) -> tuple:
        """Arguments of the adapted module for users ``[B]`` and their items ``[B, L]`` (or a
        shared candidate list ``[N]``)."""
        user_rows, item_rows = rows(users, user_index), rows(items, item_index)
        if self.adapt_all:
            return user_rows, item_rows
        return self.scorer.user(user_rows), self.scorer.item(item_rows)

    def adapt(self, users: Table, items: Table, support: Batch, loop: InnerLoop) -> Params:
        """Adapted parameters ``{name: [B, ...]}`` of each user in ``support``."""
        inputs = self.inputs(users, items, support.users, support.items)
        return adapt(self.adapted, self.init_params(), self.inner_lrs(), inputs,
                     support.target, support.mask, loop)

    def score(self, users: Table, items: Table, fast: Params, user_index: Tensor,
              item_index: Tensor) -> Tensor:
        """Scores ``[B, L]`` with adapted parameters; ``item_index`` is per user ``[B, L]``
        or a candidate list ``[N]`` shared by every user (then ``[B, N]``)."""
        inputs = self.inputs(users, items, user_index, item_index)
        shared = item_index.dim() == 1
        return score(self.adapted, fast, inputs, in_dims=(0, None) if shared else None)

    def query_loss(self, users: Table, items: Table, support: Batch, query: Batch,
                   loop: InnerLoop) -> Tensor:
        """Mean over users of the query loss after adapting on the support set."""
        fast = self.adapt(users, items, support, loop)
        pred = self.score(users, items, fast, query.users, query.items)
        return masked_loss(pred, query.target, query.mask, loop.objective).mean()

    def pooled_loss(self, users: Table, items: Table, batches: list[Batch],
                    objective: str) -> Tensor:
        """The non-meta objective: the initialisation's loss over every row, pooled."""
        total, count = 0.0, 0.0
        for batch in batches:
            pred = self.scorer(rows(users, batch.users), rows(items, batch.items))
            total = total + (pointwise_loss(pred, batch.target, objective) * batch.mask).sum()
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
