"""The inner loop: a few gradient steps on each user's support set, batched over users.

Adaptation is a pure function over a dict of parameters (``torch.func.functional_call``),
differentiated with ``torch.func.grad`` and batched over users with ``torch.func.vmap``.
Histories differ in length, so every user's support set is padded to a common length and a
mask says which rows are real. The same function serves meta-training (where the outer loss
differentiates through it), evaluation and serving.

For the default scorer, whose adapted part is a plain chain of ReLU layers, :func:`adapt`
runs :func:`adapt_relu_chain` instead: the same steps with the chain's gradient written out
as batched matrix products, which autograd differentiates again for the meta-gradient. It
skips ``vmap``'s and ``grad``'s per-operator bookkeeping (``benchmarks/core.py`` prints the
two side by side); tests hold it equal to the ``vmap`` path and to the reference.

``adapt_reference`` is the slow, obvious version, one user at a time with plain autograd,
kept beside the fast one so tests can hold them equal.

This module imports torch and nothing else of recmeta's dependencies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

Params = dict[str, Tensor]
OBJECTIVES = ("squared", "binary")  # what the inner steps descend
META_LOSSES = ("squared", "absolute", "huber")  # what meta-training may score ratings by
# "huber": squared error within HUBER_DELTA of the truth, absolute past it; on the network's
# scale, where ratings are (y - mean) / std: within one standard deviation of the ratings
HUBER_DELTA = 1.0


@dataclass(frozen=True)
class InnerLoop:
    """How one user is adapted: ``steps`` gradient steps on the support loss.

    ``first_order`` stops gradients through the inner gradients (first-order MAML); the
    adapted parameters still depend on the initialisation, so the outer update is
    ``grad of query loss w.r.t. adapted params`` applied to the initialisation.

    ``shrinkage`` is a pseudo-count ``c`` in the support loss ``sum(loss) / (n + c)``: with
    ``c = 0`` it is the mean over the user's ``n`` rows (MAML's usual loss); with ``c > 0``
    a user with few rows moves less than one with many, by ``n / (n + c)``, as a Bayesian
    estimate of a user's offset would.

    ``ridge > 0`` ends the steps with an exact solve for the user's factor of a scorer with a
    dot-product term (``ScorerConfig.factors``): the change ``d`` of the factor minimising
    ``support loss + ridge |d|^2`` given the rest, as ALS folds a new user in. Squared error
    only; meta-training differentiates through the solve.
    """

    steps: int = 5
    objective: str = "squared"
    first_order: bool = False
    shrinkage: float = 0.0
    ridge: float = 0.0

    def solves(self, module: nn.Module) -> bool:
        """Whether the steps end with the closed-form solve of the user's factor: ``ridge``
        is on, the objective is squared error, and ``module`` has a factor to solve."""
        return (self.ridge > 0 and self.objective == "squared"
                and getattr(module, "has_factor", False))


def pointwise_loss(pred: Tensor, target: Tensor, objective: str,
                   hidden: Tensor | None = None, hidden_objective: str | None = None) -> Tensor:
    """Per-row loss: ``(pred - y)^2`` for ratings (``|pred - y|`` for ``"absolute"`` and
    Huber's ``e^2 / 2`` within ``HUBER_DELTA`` of y, ``|e| - 1/2`` past it, for ``"huber"``:
    meta-losses only), logistic loss on logits for 0/1 feedback. Rows where ``hidden`` is
    true (a bool tensor of ``pred``'s shape) take ``hidden_objective`` instead, when given."""
    if hidden is not None and hidden_objective not in (None, objective):
        return torch.where(hidden, pointwise_loss(pred, target, hidden_objective),
                           pointwise_loss(pred, target, objective))
    if objective == "squared":
        return (pred - target) ** 2
    if objective == "absolute":
        return (pred - target).abs()
    if objective == "huber":
        return F.huber_loss(pred, target, reduction="none", delta=HUBER_DELTA)
    return F.binary_cross_entropy_with_logits(pred, target, reduction="none")


def masked_loss(pred: Tensor, target: Tensor, mask: Tensor, objective: str,
                hidden: Tensor | None = None, hidden_objective: str | None = None) -> Tensor:
    """``sum(mask * loss) / max(sum(mask), 1)`` over the last dim: the mean over a user's real
    rows, 0 for an empty set. ``[L] -> []``, ``[B, L] -> [B]``. Rows where ``hidden`` is
    true (a bool tensor of ``pred``'s shape) take ``hidden_objective`` instead, when given."""
    rows = pointwise_loss(pred, target, objective, hidden, hidden_objective) * mask
    return rows.sum(-1) / mask.sum(-1).clamp(min=1.0)


def listwise_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """ListNet's top-one loss over each user's real rows, ``[B, L] -> [B]``: the cross-entropy
    ``-sum softmax(y) log softmax(pred)``, which is least when the predictions order the rows
    as the targets do (0 for a user with one row or none)."""
    far = torch.finfo(pred.dtype).min / 4  # padding rows: out of both softmaxes, no NaN
    real = mask > 0
    want = torch.softmax(target.masked_fill(~real, far), dim=-1)
    got = torch.log_softmax(pred.masked_fill(~real, far), dim=-1)
    return -(want * got * mask).sum(-1)


def row_weights(mask: Tensor, shrinkage: float) -> Tensor:
    """Weights of the support rows: ``mask / max(sum(mask) + shrinkage, 1)``, so that the
    support loss ``sum(weights * loss)`` is ``sum(loss) / (n + shrinkage)`` over real rows."""
    return mask / (mask.sum(-1, keepdim=True) + shrinkage).clamp(min=1.0)


def adapt_one(
    module: nn.Module, loop: InnerLoop, params: Params, lrs: Params, inputs, target, mask
) -> Params:
    """Adapt one user's copy of ``params`` on its (padded) support set.

    This is the inner loop; :func:`adapt` maps it over a batch of users with ``vmap``.
    """

    weights = row_weights(mask, loop.shrinkage)  # once, not at every step

    def support_loss(fast: Params) -> Tensor:
        pred = functional_call(module, fast, inputs)
        return (pointwise_loss(pred, target, loop.objective) * weights).sum(-1)

    fast = params
    for _ in range(loop.steps):
        grads = grad(support_loss)(fast)
        if loop.first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        # theta_k+1 = theta_k - alpha * grad L_support(theta_k)   (alpha per parameter in Meta-SGD)
        fast = {name: torch.addcmul(fast[name], lrs[name], grads[name], value=-1.0)
                for name in fast}
    if loop.solves(module):
        fast = module.solve_factor(fast, inputs, target, weights, loop.ridge)
    return fast


def adapt(
    module: nn.Module,
    params: Params,
    lrs: Params,
    inputs: tuple,
    target: Tensor,
    mask: Tensor,
    loop: InnerLoop,
    in_dims: tuple | None = None,
    param_dims: dict | None = None,
) -> Params:
    """Adapt a batch of users at once.

    Parameters
    ----------
    module : nn.Module
        The part of the scorer that adapts; its parameters are exactly ``params``.
    params : dict of str to Tensor
        The shared initialisation (not batched).
    lrs : dict of str to Tensor
        Inner learning rate per parameter, broadcastable to it (a scalar for MAML).
    inputs : tuple
        Arguments of ``module.forward``, each batched along dim 0 over users (``[B, L, ...]``),
        unless ``in_dims`` says otherwise.
    target, mask : Tensor of shape (B, L)
        Support targets and the mask of real (non-padding) rows.
    param_dims : dict of str to {0, None}, default=None
        Which entries of ``params`` and ``lrs`` are already per user (batched along dim 0);
        by default none: every user starts from the same ``params``.

    Returns
    -------
    dict of str to Tensor
        Adapted parameters, each with a leading user dimension ``B``.
    """
    chain = getattr(module, "relu_chain", None)
    if chain is not None and in_dims is None and len(inputs) == 1:
        return adapt_relu_chain(chain, params, lrs, inputs[0], target, mask, loop)
    return adapt_vmap(module, params, lrs, inputs, target, mask, loop, in_dims, param_dims)


def adapt_vmap(
    module: nn.Module,
    params: Params,
    lrs: Params,
    inputs: tuple,
    target: Tensor,
    mask: Tensor,
    loop: InnerLoop,
    in_dims: tuple | None = None,
    param_dims: dict | None = None,
) -> Params:
    """:func:`adapt` for any module: :func:`adapt_one` mapped over users with ``vmap``."""
    fn = partial(adapt_one, module, loop)
    dims = in_dims if in_dims is not None else tuple(0 for _ in inputs)
    # vmap expands unbatched outputs, so with zero steps every user gets a copy of params
    return vmap(fn, in_dims=(param_dims, param_dims, dims, 0, 0))(params, lrs, inputs, target,
                                                                  mask)


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x W' + b`` for inputs ``[B, L, i]`` and a weight shared ``[o, i]`` or per user
    ``[B, o, i]`` (its bias ``[o]`` or ``[B, o]``)."""
    if bias.dim() == 2:  # per user: broadcast over the user's rows
        bias = bias.unsqueeze(-2)
    if weight.dim() == 3:
        return torch.baddbmm(bias, x, weight.mT)
    return F.linear(x, weight) + bias


def _chain_forward(chain: tuple[tuple[str, str], ...], params: Params, x: Tensor,
                   keep: bool = True):
    """The chain's output ``[B, L]``, and with ``keep`` each layer's input and each hidden
    pre-activation (the backward pass needs them; scoring does not, so it lets them go)."""
    inputs, pre, h = [x], [], x
    for j, (w, b) in enumerate(chain):
        z = _linear(h, params[w], params[b])
        if j < len(chain) - 1:
            h = F.relu(z)
            if keep:
                pre.append(z)
                inputs.append(h)
    return z.squeeze(-1), inputs, pre


def adapt_relu_chain(
    chain: tuple[tuple[str, str], ...],
    params: Params,
    lrs: Params,
    x: Tensor,
    target: Tensor,
    mask: Tensor,
    loop: InnerLoop,
) -> Params:
    """:func:`adapt` for ``f(x) = W_n relu(... relu(W_1 x + b_1) ...) + b_n`` (scalar out),
    with the chain's gradient written out, all users at once.

    ``chain`` names each layer's ``(weight, bias)`` in ``params``, first to last. A
    parameter is shared ``[...]`` or per user ``[B, ...]`` (a bias ``[B, o]``); the result
    is per user. With ``d = dL/dpre`` of a layer, ``dL/dW = d' h_in`` and ``dL/db = sum(d)``
    over a user's rows, and ``d`` of the layer below is ``(d W) * [pre > 0]``. These are
    ordinary differentiable ops, so the meta-gradient runs through them (second order), or
    not with ``first_order``.
    """
    weights = row_weights(mask, loop.shrinkage)
    fast = params
    for _ in range(loop.steps):
        out, inputs, pre = _chain_forward(chain, fast, x)
        if loop.objective == "squared":  # d/dpred of weights * loss, per row
            d = 2.0 * weights * (out - target)
        elif loop.objective == "binary":
            d = weights * (torch.sigmoid(out) - target)
        else:
            raise ValueError(f"inner objective {loop.objective!r}: choose from {OBJECTIVES}")
        d = d.unsqueeze(-1)  # [B, L, 1]
        grads = {}
        for j in range(len(chain) - 1, -1, -1):
            w, b = chain[j]
            grads[w] = d.mT @ inputs[j]
            grads[b] = d.sum(-2)
            if j:
                d = (d @ fast[w]) * (pre[j - 1] > 0)
        if loop.first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        fast = {name: torch.addcmul(fast[name], lrs[name], grads[name], value=-1.0)
                for name in fast}
    # with no steps some are still shared: every user gets a view of them
    users, shared = target.shape[0], {w: 2 for w, _ in chain} | {b: 1 for _, b in chain}
    return {name: p.expand(users, *p.shape) if p.dim() == shared[name] else p
            for name, p in fast.items()}


def score(module: nn.Module, fast: Params, inputs: tuple, in_dims: tuple | None = None) -> Tensor:
    """Scores ``[B, L]`` of each user's adapted parameters on that user's inputs.

    ``in_dims`` marks inputs shared by every user (``None``), such as a candidate catalogue.
    """
    dims = in_dims if in_dims is not None else tuple(0 for _ in inputs)
    chain = getattr(module, "relu_chain", None)
    if chain is not None and len(inputs) == 1:  # the default scorer: batched products
        (x,) = inputs
        if dims[0] is None:  # one candidate list for every user
            x = x.expand(len(fast[chain[0][0]]), *x.shape)
        return _chain_forward(chain, fast, x, keep=False)[0]
    return vmap(partial(functional_call, module), in_dims=(0, dims))(fast, inputs)


def adapt_reference(
    module: nn.Module,
    params: Params,
    lrs: Params,
    inputs: tuple,
    target: Tensor,
    loop: InnerLoop,
) -> Params:
    """One user, no padding, plain ``torch.autograd.grad``: the slow, obvious inner loop."""
    fast = {n: p if p.requires_grad else p.detach().requires_grad_() for n, p in params.items()}
    if len(target) == 0:  # no history: the initialisation itself
        return fast
    for _ in range(loop.steps):
        pred = functional_call(module, fast, inputs)
        # the same support loss, written out: sum over the user's rows / (n + c)
        loss = pointwise_loss(pred, target, loop.objective).sum() / max(
            len(target) + loop.shrinkage, 1.0)
        grads = torch.autograd.grad(
            loss, list(fast.values()), create_graph=not loop.first_order, allow_unused=True
        )
        fast = {
            n: p - lrs[n] * (g if g is not None else torch.zeros_like(p))
            for (n, p), g in zip(fast.items(), grads, strict=True)
        }
    if loop.solves(module):
        fast = module.solve_factor_reference(fast, inputs, target, loop)
    return fast


def named_params(module: nn.Module, predicate: Callable[[str], bool] = lambda n: True) -> Params:
    return {n: p for n, p in module.named_parameters() if predicate(n)}
