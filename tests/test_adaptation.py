"""The batched inner loop against the slow per-user reference, and meta-gradients against
finite differences."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

from recmeta.adaptation import InnerLoop, adapt_reference, adapt_relu_chain, adapt_vmap
from recmeta.episodes import pad
from recmeta.meta import MetaLearner, as_table
from recmeta.model import FieldShape, Scorer, ScorerConfig

FIELDS = (
    FieldShape("gender", "user", "cat", 4),
    FieldShape("age", "user", "num"),
    FieldShape("item", "item", "cat", 14),
    FieldShape("genres", "item", "multi", 7),
    FieldShape("length", "item", "num"),
)


def _world(seed, n_users=9, n_items=12, dtype=torch.float32):
    rng = np.random.default_rng(seed)
    users = as_table({"gender": rng.integers(1, 4, n_users),
                      "age": rng.normal(size=n_users).astype(np.float32)}, n_users)
    genres = rng.integers(0, 7, size=(n_items, 3))
    genres[:, 0] = np.maximum(genres[:, 0], 1)  # at least one value per item
    items = as_table({"item": np.arange(n_items) + 2, "genres": genres,
                      "length": rng.normal(size=n_items).astype(np.float32)}, n_items)
    for table in (users, items):
        for name, column in table.items():
            if column.is_floating_point():
                table[name] = column.to(dtype)
    return rng, users, items


def _learner(seed, adapt, learn_lr=False, dtype=torch.float32, inner_lr=0.3, factors=0):
    torch.manual_seed(seed)
    scorer = Scorer(ScorerConfig(FIELDS, embedding_dim=4, hidden=(8, 6),
                                 factors=factors)).to(dtype)
    if factors:  # a factor away from zero, so the dot-product term is not silent
        with torch.no_grad():
            scorer.head.body.factor.normal_()
    learner = MetaLearner(scorer, adapt=adapt, inner_lr=inner_lr, learn_lr=learn_lr).to(dtype)
    if learn_lr:  # distinct per-entry rates, so a mix-up between entries would show
        with torch.no_grad():
            for p in learner.lr.parameters():
                p.uniform_(0.05, 0.5)
    return learner


def _ragged(rng, n_users, n_items, lengths):
    users = rng.choice(n_users, size=len(lengths), replace=False)
    items = [rng.choice(n_items, size=k, replace=False) for k in lengths]
    target = [rng.normal(size=k).astype(np.float32) for k in lengths]
    return users, items, target


@pytest.mark.parametrize("adapt", ["mlp", "all"])
@pytest.mark.parametrize("method", ["maml", "fomaml", "metasgd"])
@pytest.mark.parametrize("objective", ["squared", "binary"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("factors", [0, 3])
def test_batched_adaptation_equals_per_user_reference(adapt, method, objective, seed, factors):
    rng, users, items = _world(seed)
    learner = _learner(seed, adapt, learn_lr=method == "metasgd", factors=factors)
    # seed 1 also checks the shrunk support loss sum / (n + c); with factors, the steps
    # end with the ridge solve of the user's factor (squared error, MLP adapting)
    loop = InnerLoop(steps=4, objective=objective, first_order=method == "fomaml",
                     shrinkage=3.0 * seed, ridge=0.5 if factors else 0.0)
    lengths = [int(k) for k in rng.integers(0, 9, size=6)] + [0, 1]
    user_ids, item_lists, targets = _ragged(rng, 9, 12, lengths)
    if objective == "binary":
        targets = [(t > 0).astype(np.float32) for t in targets]
    batch = pad(user_ids, item_lists, targets)
    candidates = torch.arange(12)

    with torch.no_grad():
        fast = learner.adapt(users, items, batch, loop)
        batched = learner.score(users, items, fast, batch.users, candidates)

    for row, user in enumerate(user_ids):
        inputs = learner.vectors(users, items, torch.tensor(user), torch.as_tensor(item_lists[row]))
        slow = adapt_reference(learner.reference, learner.reference_params(),
                               learner.reference_lrs(),
                               inputs, torch.as_tensor(targets[row]), loop)
        expected = functional_call(learner.reference, slow,
                                   learner.vectors(users, items, torch.tensor(user), candidates))
        torch.testing.assert_close(batched[row], expected.detach(), atol=1e-5, rtol=1e-5)


def test_adaptation_moves_users_apart_and_empty_history_stays_at_init():
    rng, users, items = _world(3)
    learner = _learner(3, "mlp")
    user_ids, item_lists, targets = _ragged(rng, 9, 12, [5, 0, 5])
    targets[2] = -targets[0]
    item_lists[2] = item_lists[0]
    batch = pad(user_ids, item_lists, targets)
    candidates = torch.arange(12)
    with torch.no_grad():
        fast = learner.adapt(users, items, batch, InnerLoop(steps=3))
        scores = learner.score(users, items, fast, batch.users, candidates)
        initial = learner.reference(*learner.vectors(users, items, batch.users[1], candidates))
    torch.testing.assert_close(scores[1], initial)
    assert not torch.allclose(scores[0], scores[2])


def _meta_setup(adapt, learn_lr, factors=0):
    rng, users, items = _world(7, dtype=torch.float64)
    learner = _learner(7, adapt, learn_lr=learn_lr, dtype=torch.float64, inner_lr=0.4,
                       factors=factors)
    s_users, s_items, s_target = _ragged(rng, 9, 12, [4, 6, 3])
    q_items = [rng.choice(12, size=3, replace=False) for _ in s_users]
    q_target = [rng.normal(size=3) for _ in s_users]
    support = pad(s_users, s_items, s_target)
    query = pad(s_users, q_items, q_target)
    support.target, query.target = support.target.double(), query.target.double()
    return users, items, learner, support, query


def _meta_loss(learner, users, items, support, query, first_order=False):
    loop = InnerLoop(steps=3, first_order=first_order,
                     ridge=0.5 if learner.scorer.head.has_factor else 0.0)
    return learner.query_loss(users, items, support, query, loop)


def _directional(learner, users, items, support, query, first_order=False):
    """Analytic directional derivative along a fixed random direction, and the central
    finite difference of the (second-order) meta-loss along it."""
    params = [p for p in learner.parameters() if p.requires_grad]
    loss = _meta_loss(learner, users, items, support, query, first_order)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    gen = torch.Generator().manual_seed(0)
    directions = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, directions, strict=True)
                   if g is not None)
    eps = 1e-5
    with torch.no_grad():
        losses = []
        for sign in (1, -1):
            for p, d in zip(params, directions, strict=True):
                p.add_(sign * eps * d)
            losses.append(float(_meta_loss(learner, users, items, support, query)))
            for p, d in zip(params, directions, strict=True):
                p.sub_(sign * eps * d)
    return analytic, (losses[0] - losses[1]) / (2 * eps)


@pytest.mark.parametrize("adapt,learn_lr,factors", [("mlp", False, 0), ("all", False, 0),
                                                    ("mlp", True, 0), ("mlp", True, 3)])
def test_second_order_meta_gradient_matches_finite_differences(adapt, learn_lr, factors):
    # with factors, the meta-gradient also runs through the ridge solve
    users, items, learner, support, query = _meta_setup(adapt, learn_lr, factors)
    analytic, numeric = _directional(learner, users, items, support, query)
    assert abs(analytic - numeric) <= 1e-6 * max(1.0, abs(numeric))


def test_first_order_gradient_differs_from_second_order():
    users, items, learner, support, query = _meta_setup("mlp", False)
    second, numeric = _directional(learner, users, items, support, query)
    first, _ = _directional(learner, users, items, support, query, first_order=True)
    assert abs(second - numeric) <= 1e-6 * max(1.0, abs(numeric))
    # first-order MAML drops the Hessian term: its error is orders of magnitude larger
    assert abs(first - numeric) > 1e-2 * max(1.0, abs(numeric))


@pytest.mark.parametrize("hidden", [(8,), (8, 6), (8, 6, 5)])
@pytest.mark.parametrize("method", ["maml", "fomaml", "metasgd"])
@pytest.mark.parametrize("objective", ["squared", "binary"])
@pytest.mark.parametrize("steps", [0, 3])
def test_hand_written_chain_equals_vmap_of_grad(hidden, method, objective, steps):
    """The default scorer adapts through :func:`adapt_relu_chain`; the generic ``vmap``
    path must give the same adapted parameters and the same meta-gradient."""
    rng, users, items = _world(11, dtype=torch.float64)
    torch.manual_seed(11)
    scorer = Scorer(ScorerConfig(FIELDS, embedding_dim=4, hidden=hidden)).double()
    learner = MetaLearner(scorer, "mlp", inner_lr=0.3, learn_lr=method == "metasgd").double()
    with torch.no_grad():
        for p in learner.lr.parameters():
            p.uniform_(0.05, 0.5)
    loop = InnerLoop(steps=steps, objective=objective, first_order=method == "fomaml",
                     shrinkage=2.0)
    lengths = [int(k) for k in rng.integers(0, 9, size=5)] + [0]
    user_ids, item_lists, targets = _ragged(rng, 9, 12, lengths)
    targets = [(t > 0).astype(np.float64) if objective == "binary" else t.astype(np.float64)
               for t in targets]
    batch = pad(user_ids, item_lists, targets)
    batch.target = batch.target.double()
    chain = learner.adapted.relu_chain
    assert chain is not None and len(chain) == len(hidden) + 1
    trainable = [p for p in learner.parameters() if p.requires_grad]

    def run(fn):
        (item,) = learner.vectors(users, items, batch.users, batch.items)[1:]
        params, lrs, dims = learner.start(learner.vectors(users, items, batch.users,
                                                          batch.items)[0])
        fast = fn(params, lrs, item, dims)
        # a loss that touches every adapted parameter, so its meta-gradient checks them all
        loss = sum((p * torch.linspace(-1, 1, p.numel(), dtype=p.dtype).view(p.shape)).sum()
                   for p in fast.values())
        grads = torch.autograd.grad(loss, trainable, allow_unused=True)
        return {n: p.detach() for n, p in fast.items()}, grads

    hand, hand_grads = run(lambda params, lrs, item, dims: adapt_relu_chain(
        chain, params, lrs, item, batch.target, batch.mask, loop))
    generic, generic_grads = run(lambda params, lrs, item, dims: adapt_vmap(
        learner.adapted, params, lrs, (item,), batch.target, batch.mask, loop, param_dims=dims))
    assert hand.keys() == generic.keys()
    for name in hand:
        assert hand[name].shape == generic[name].shape == (len(user_ids), *generic[name].shape[1:])
        torch.testing.assert_close(hand[name], generic[name], atol=1e-10, rtol=1e-10)
    for a, b in zip(hand_grads, generic_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    if steps:  # the users did move
        assert not torch.allclose(hand["out.weight"][0], hand["out.weight"][-1])


def test_scorer_with_a_factor_takes_the_vmap_path():
    assert Scorer(ScorerConfig(FIELDS, embedding_dim=4, factors=2)).head.body.relu_chain is None
    assert Scorer(ScorerConfig(FIELDS, embedding_dim=4)).head.body.relu_chain is not None


def _slow_loss(error, loss):
    """The mean of a user's per-row errors under ``loss``, written out."""
    if loss == "absolute":
        return error.abs().mean()
    if loss == "huber":  # squared within 1 (on the network's scale), absolute past it
        return torch.stack([0.5 * e**2 if abs(e) <= 1 else abs(e) - 0.5 for e in error]).mean()
    return (error**2).mean()


@pytest.mark.parametrize("loss", ["absolute", "squared", "huber"])
@pytest.mark.parametrize("rank_weight,init_weight", [(0.0, 0.0), (0.7, 0.0), (0.0, 0.4),
                                                     (0.7, 0.4)])
@pytest.mark.parametrize("adapt", ["mlp", "all"])
def test_query_loss_scores_adapted_predictions_by_the_meta_loss(loss, rank_weight,
                                                                 init_weight, adapt):
    """The meta-loss on query rows after adapting, plus the weighted listwise loss of their
    order, plus the weighted loss of the unadapted initialisation on every real support and
    query row, against a per-user reference."""
    users, items, learner, support, query = _meta_setup(adapt, True)
    query.mask[0, 1:] = 0.0  # a user with one query row: no order to get wrong
    query.mask[1, -1] = 0.0  # and one with a padding row
    loop = InnerLoop(steps=3)
    got = learner.query_loss(users, items, support, query, loop, loss, rank_weight,
                             init_weight)
    per_user = []
    for b, user in enumerate(support.users):
        n_s = int(support.mask[b].sum())
        slow = adapt_reference(learner.reference, learner.reference_params(),
                               learner.reference_lrs(),
                               learner.vectors(users, items, user, support.items[b, :n_s]),
                               support.target[b, :n_s], loop)
        real = query.mask[b] > 0
        pred = functional_call(learner.reference, slow,
                               learner.vectors(users, items, user, query.items[b][real]))
        y = query.target[b][real]
        error = pred - y
        point = _slow_loss(error, loss)
        # ListNet: -sum_j P(j first | y) log P(j first | pred), softmax over the real rows
        order = -(torch.exp(y) / torch.exp(y).sum() * torch.log(
            torch.exp(pred) / torch.exp(pred).sum())).sum()
        # the initialisation, not adapted, on the user's support rows and query rows
        seen = torch.cat([support.items[b, :n_s], query.items[b][real]])
        initial = functional_call(learner.reference, learner.reference_params(),
                                  learner.vectors(users, items, user, seen))
        gap = initial - torch.cat([support.target[b, :n_s], y])
        own = _slow_loss(gap, loss)
        per_user.append(point + rank_weight * order + init_weight * own)
    torch.testing.assert_close(got, torch.stack(per_user).mean())
    assert query.mask.sum(1).min() == 1  # the checks above saw a user with one row


def test_listwise_loss_is_least_when_the_order_is_right():
    from recmeta.adaptation import listwise_loss

    y = torch.tensor([[5.0, 1.0, 3.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    right, wrong = torch.tensor([[2.0, 0.0, 1.0, 9.0]]), torch.tensor([[0.0, 2.0, 1.0, 9.0]])
    assert listwise_loss(right, y, mask) < listwise_loss(wrong, y, mask)
    shifted = listwise_loss(right + 3.0, y, mask)  # a shift of every score: the same order
    torch.testing.assert_close(shifted, listwise_loss(right, y, mask))
    assert listwise_loss(right, y, torch.zeros_like(mask)).item() == 0.0  # no rows: no loss


# ------------------------------------------------------------- the same on a GPU
# On a machine with CUDA, the batched inner loop and its meta-gradient must give on the GPU
# what they give on the CPU (float32: up to rounding, as the two sum in other orders).
GPU = torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _on(device, learner, users, items, *batches):
    """A copy of the learner, the tables and the batches on ``device``."""
    import copy

    return (copy.deepcopy(learner).to(device),
            *({k: v.to(device) for k, v in table.items()} for table in (users, items)),
            *(b.to(device) for b in batches))


@needs_cuda
@pytest.mark.parametrize("adapt", ["mlp", "all"])
@pytest.mark.parametrize("method", ["maml", "fomaml", "metasgd"])
@pytest.mark.parametrize("factors", [0, 3])
def test_batched_adaptation_on_cuda_equals_cpu(adapt, method, factors):
    # factors=0 with "mlp" runs the hand-written chain; the rest the vmap path (with the
    # ridge solve of the user's factor when there is one)
    rng, users, items = _world(5)
    learner = _learner(5, adapt, learn_lr=method == "metasgd", factors=factors)
    loop = InnerLoop(steps=4, first_order=method == "fomaml", shrinkage=2.0,
                     ridge=0.5 if factors else 0.0)
    lengths = [int(k) for k in rng.integers(0, 9, size=6)] + [0, 1]
    batch = pad(*_ragged(rng, 9, 12, lengths))
    results = []
    for device in ("cpu", GPU):
        model, u, i, b = _on(device, learner, users, items, batch)
        with torch.no_grad():
            fast = model.adapt(u, i, b, loop)
            scores = model.score(u, i, fast, b.users, torch.arange(12, device=device))
        assert scores.device.type == torch.device(device).type
        results.append(({n: p.cpu() for n, p in fast.items()}, scores.cpu()))
    (fast_cpu, scores_cpu), (fast_gpu, scores_gpu) = results
    assert fast_cpu.keys() == fast_gpu.keys()
    for name in fast_cpu:
        torch.testing.assert_close(fast_gpu[name], fast_cpu[name], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores_gpu, scores_cpu, atol=1e-4, rtol=1e-4)


@needs_cuda
@pytest.mark.parametrize("adapt,learn_lr,factors,first_order", [
    ("mlp", False, 0, False), ("mlp", True, 0, False), ("mlp", True, 0, True),
    ("all", False, 0, False), ("mlp", True, 3, False)])
def test_meta_gradient_on_cuda_equals_cpu(adapt, learn_lr, factors, first_order):
    """The outer loss's gradient, second order through the inner steps (and through the
    ridge solve with factors), in float64, where the two devices agree to rounding."""
    users, items, learner, support, query = _meta_setup(adapt, learn_lr, factors)
    grads = []
    for device in ("cpu", GPU):
        model, u, i, s, q = _on(device, learner, users, items, support, query)
        params = [p for p in model.parameters() if p.requires_grad]
        loss = _meta_loss(model, u, i, s, q, first_order)
        grads.append([None if g is None else g.cpu()
                      for g in torch.autograd.grad(loss, params, allow_unused=True)])
    assert any(g is not None and g.abs().max() > 0 for g in grads[0])
    for a, b in zip(*grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-9)


@needs_cuda
def test_meta_gradient_on_cuda_equals_cpu_in_float32():
    """The same in float32, the precision training runs in: equal up to rounding."""
    rng, users, items = _world(8)
    learner = _learner(8, "mlp", learn_lr=True)
    s_users, s_items, s_target = _ragged(rng, 9, 12, [6, 2, 8, 0, 5])
    support = pad(s_users, s_items, s_target)
    query = pad(s_users, [rng.choice(12, size=4, replace=False) for _ in s_users],
                [rng.normal(size=4).astype(np.float32) for _ in s_users])
    loop = InnerLoop(steps=5, shrinkage=10.0)
    grads = []
    for device in ("cpu", GPU):
        model, u, i, s, q = _on(device, learner, users, items, support, query)
        params = [p for p in model.parameters() if p.requires_grad]
        grads.append([None if g is None else g.cpu() for g in torch.autograd.grad(
            model.query_loss(u, i, s, q, loop), params, allow_unused=True)])
    for a, b in zip(*grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_chunks_are_capped_on_the_cpu_and_bounded_by_the_budget_elsewhere():
    from recmeta import serving

    learner = _learner(0, "mlp")
    config = learner.scorer.config
    width = max(config.width("user") + config.width("item"), *config.hidden)
    assert serving.chunk_size(learner, 20) == serving.CHUNK  # short histories: the cap
    assert serving.chunk_size(learner, 10**5) == serving.BUDGET // (10**5 * width) < 100
    learner.to("meta")  # stands in for a GPU: no cap, only the budget
    assert serving.chunk_size(learner, 20) == serving.BUDGET // (20 * width) > serving.CHUNK


def test_item_vectors_embed_each_column_of_the_looked_up_row_as_a_numeric_field():
    torch.manual_seed(0)
    plain = Scorer(ScorerConfig(FIELDS, embedding_dim=4))
    scorer = Scorer(ScorerConfig(FIELDS, embedding_dim=4, item_vectors=("item", 3)))
    assert scorer.config.width("item") == plain.config.width("item") + 3 * 4
    with torch.no_grad():
        scorer.item.vectors.normal_()
    _, _, items = _world(0)
    got = scorer.item(items)
    # reference: the other fields as they are, then v_j * looked[j, 0] + looked[j, 1] per
    # column j of the row's vector, one item at a time
    scorer.item.looked, looked = None, scorer.item.looked
    base = scorer.item(items)
    for row in range(len(items["item"])):
        v = scorer.item.vectors[items["item"][row]]
        want = torch.cat([base[row], *(v[j] * looked[j, 0] + looked[j, 1] for j in range(3))])
        torch.testing.assert_close(got[row], want)
    # the vectors are a buffer, so they are saved with the weights
    assert "item.vectors" in scorer.state_dict()
