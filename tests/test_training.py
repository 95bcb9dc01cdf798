"""The outer loop's validation: each validation user with a short and a full support, and
the early-stopping loss as a mean over validation users."""

import numpy as np
import pytest
import torch

from recmeta.adaptation import InnerLoop
from recmeta.episodes import EpisodeSampler, Histories
from recmeta.training import Trainer, TrainSettings


def _trainer(histories, sampler, batch_size=4):
    trainer = object.__new__(Trainer)  # _fixed_episodes needs no model
    trainer.histories, trainer.sampler, trainer.device = histories, sampler, torch.device("cpu")
    trainer.settings = TrainSettings(InnerLoop(), batch_size=batch_size)
    return trainer


def test_validation_scores_each_user_with_a_random_and_with_its_whole_support():
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 40, size=300)
    users = np.repeat(np.arange(len(lengths)), lengths)
    items = np.concatenate([rng.permutation(100)[:n] for n in lengths])
    histories = Histories.from_arrays(users, items, rng.random(len(items)), len(lengths))
    sampler = EpisodeSampler(max_support=25, query_size=3)
    validation = np.arange(0, 300, 2)

    episodes = _trainer(histories, sampler)._fixed_episodes(validation, rng)

    short, full = episodes[: len(episodes) // 2], episodes[len(episodes) // 2 :]
    for part in (short, full):
        assert np.concatenate([s.users.numpy() for s, _ in part]).tolist() == validation.tolist()
    for support, query in full:
        for row, user in enumerate(support.users.numpy()):
            n = lengths[user]
            n_query = min(3, n // 2)
            assert query.mask[row].sum() == n_query
            assert support.mask[row].sum() == min(25, n - n_query)
            held = set(support.items[row][support.mask[row] > 0].tolist())
            asked = set(query.items[row][query.mask[row] > 0].tolist())
            assert not held & asked and held | asked <= set(histories.of(user)[0].tolist())
    sizes = np.concatenate([s.mask.sum(1).numpy() for s, _ in short])
    caps = np.minimum(25, lengths[validation] - np.minimum(3, lengths[validation] // 2))
    assert (sizes <= caps).all() and (sizes < caps).mean() > 0.5  # drawn, not all full


def test_validation_loss_is_the_mean_over_users_not_over_batches():
    """A short last batch (here 4 users beside 256) must count for its 4 users only."""
    from recmeta import MetaRecommender, make_synthetic
    from recmeta.episodes import Batch

    data = make_synthetic(n_users=300, n_items=60, random_state=0)
    # the trainer below is built on the CPU, so the learner must be there too (not "auto")
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0, device="cpu").fit(data.X,
                                                                                       data.y)
    sampler = EpisodeSampler(max_support=100, query_size=10)
    settings = TrainSettings(model._loop("squared"), meta_loss="squared")
    trainer = Trainer(model.learner_, model.users_.tensors("cpu"), model.items_.tensors("cpu"),
                      model.histories_, sampler, settings, torch.device("cpu"))
    episodes = trainer._fixed_episodes(np.arange(260), np.random.default_rng(1))
    assert sorted(len(s.users) for s, _ in episodes) == [4, 4, 256, 256]

    def one(batch, row):
        return Batch(*(t[row : row + 1] for t in (batch.users, batch.items, batch.target,
                                                  batch.mask)))

    per_user = [trainer.evaluation_step(one(s, r), one(q, r))
                for s, q in episodes for r in range(len(s.users))]
    np.testing.assert_allclose(trainer.validation_loss(episodes), np.mean(per_user), rtol=1e-5)


def test_the_initialisation_term_trains_but_validation_leaves_it_out():
    """``init_weight`` adds the unadapted loss to each training step's objective only: the
    validation loss early stopping watches is the adapted users' query loss either way."""
    import copy

    from recmeta import MetaRecommender, make_synthetic

    data = make_synthetic(n_users=60, n_items=30, random_state=0)
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0, device="cpu").fit(data.X,
                                                                                       data.y)
    model.learner_.id_dropout = {}  # the same rows in training mode: losses comparable
    users, items = model.users_.tensors("cpu"), model.items_.tensors("cpu")
    sampler = EpisodeSampler(max_support=20, query_size=5)
    support, query = sampler.sample(model.histories_, np.arange(40), np.random.default_rng(0))
    loop = model._loop("squared")
    learner = model.learner_
    adapted = float(learner.query_loss(users, items, support, query, loop, "squared").detach())
    initial = float(learner.query_loss(users, items, support, query, loop, "squared",
                                       init_weight=1.0).detach()) - adapted
    assert initial > 0
    seen = {}
    for weight in (0.0, 2.0):
        settings = TrainSettings(loop, method="metasgd", meta_loss="squared",
                                 init_weight=weight)
        trainer = Trainer(copy.deepcopy(model.learner_), users, items, model.histories_,
                          sampler, settings, torch.device("cpu"))
        # the validation loss first, then one training step (it returns the loss it took)
        seen[weight] = (trainer.evaluation_step(support, query),
                        trainer.train_step(support, query))
    assert seen[0.0][0] == seen[2.0][0]
    np.testing.assert_allclose(seen[0.0][0], adapted, rtol=1e-6)
    np.testing.assert_allclose(seen[0.0][1], adapted, rtol=1e-6)
    np.testing.assert_allclose(seen[2.0][1], adapted + 2.0 * initial, rtol=1e-5)


@pytest.mark.parametrize("adapted", ["mlp", "all"])
def test_query_rows_whose_item_id_is_hidden_take_the_hidden_loss(adapted, monkeypatch):
    """``hidden_loss`` scores the query rows whose item id ``id_dropout`` hid, the meta-loss
    the others: against each row scored, in a Python loop, by the loss its own draw calls
    for (the draw repeated from the same seed), then the mean per user and over users."""
    from recmeta import MetaRecommender, make_synthetic
    from recmeta import meta as meta_module

    data = make_synthetic(n_users=60, n_items=30, random_state=0)
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0, device="cpu",
                            id_dropout=0.5, adapted=adapted, embedding_dim=8,
                            hidden=(16, 16)).fit(data.X, data.y)
    learner, loop = model.learner_, model._loop("squared")
    users, items = model.users_.tensors("cpu"), model.items_.tensors("cpu")
    support, query = EpisodeSampler(max_support=20, query_size=5).sample(
        model.histories_, np.arange(40), np.random.default_rng(0))
    seen = []
    real = meta_module.masked_loss
    monkeypatch.setattr(meta_module, "masked_loss",
                        lambda pred, *rest: seen.append(pred.detach()) or real(pred, *rest))
    learner.train()
    learner.generator = torch.Generator().manual_seed(7)
    got = float(learner.query_loss(users, items, support, query, loop, "huber",
                                   hidden_loss="absolute").detach())
    learner.generator = torch.Generator().manual_seed(7)  # the same draw again
    if adapted == "all":  # support rows embedded, then query rows
        learner.vectors(users, items, support.users, support.items)
        learner.vectors(users, items, query.users, query.items)
        hidden = learner.hidden
    else:  # support and query rows in one go
        both = torch.cat([support.items, query.items], dim=1)
        learner.vectors(users, items, support.users, both)
        hidden = learner.hidden[:, support.items.shape[1]:]
    [pred] = seen
    assert 0 < int((hidden & (query.mask > 0)).sum()) < int(query.mask.sum())
    per_user = []
    for b in range(len(query.users)):
        rows = []
        for j in range(query.items.shape[1]):
            if query.mask[b, j] > 0:
                e = float(pred[b, j] - query.target[b, j])
                rows.append(abs(e) if hidden[b, j] else
                            (e * e / 2 if abs(e) <= 1.0 else abs(e) - 0.5))
        per_user.append(np.mean(rows) if rows else 0.0)
    np.testing.assert_allclose(got, np.mean(per_user), rtol=1e-5)
    learner.eval()


def test_the_pooled_loss_scores_hidden_rows_by_the_hidden_loss():
    """The network trained without meta-learning (``supervised``) takes the same rule: with
    every id hidden its loss is the hidden loss's, with none the meta-loss's, from one draw."""
    from recmeta import MetaRecommender, make_synthetic

    data = make_synthetic(n_users=60, n_items=30, random_state=0)
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0, device="cpu",
                            method="supervised", embedding_dim=8, hidden=(16, 16)).fit(data.X,
                                                                                       data.y)
    learner = model.learner_
    users, items = model.users_.tensors("cpu"), model.items_.tensors("cpu")
    batches = list(EpisodeSampler(max_support=20, query_size=5).sample(
        model.histories_, np.arange(40), np.random.default_rng(0)))
    learner.train()

    def loss(p, objective, hidden_loss=None):
        learner.id_dropout = {name: p for name in learner.id_dropout}
        learner.generator = torch.Generator().manual_seed(3)
        return float(learner.pooled_loss(users, items, batches, objective, hidden_loss).detach())

    assert learner.id_dropout  # the item id can be hidden
    np.testing.assert_allclose(loss(1.0, "huber", "absolute"), loss(1.0, "absolute"),
                               rtol=1e-6)
    np.testing.assert_allclose(loss(0.0, "huber", "absolute"), loss(0.0, "huber"), rtol=1e-6)
    assert loss(1.0, "huber") != loss(1.0, "absolute")  # the two losses differ here
    learner.eval()


def test_length_groups_are_the_cheapest_split_of_the_sorted_lengths():
    """Against every way of cutting the sorted lengths into contiguous groups."""
    from itertools import combinations

    from recmeta.episodes import length_groups

    rng = np.random.default_rng(0)
    for overhead in (0.0, 3.0, 40.0):
        for _ in range(20):
            lengths = rng.integers(0, 30, size=int(rng.integers(1, 9)))
            groups = length_groups(lengths, overhead)
            assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))

            def cost(parts, overhead=overhead):
                return sum(len(p) * max(p) + overhead for p in parts)

            ordered = np.sort(lengths).tolist()
            n = len(ordered)
            cheapest = min(
                cost([ordered[a:b] for a, b in zip((0, *cuts), (*cuts, n), strict=True)])
                for k in range(n) for cuts in combinations(range(1, n), k))
            assert cost([lengths[g].tolist() for g in groups]) == cheapest


@pytest.mark.parametrize("method,extra", [("metasgd", {}), ("fomaml", {}),
                                          ("maml", {"init_weight": 0.5, "rank_weight": 0.5})])
def test_a_step_in_groups_of_similar_support_length_is_the_padded_batchs_step(
        method, extra, monkeypatch):
    """Working a batch through in groups (less padding) gives its loss and its gradients,
    up to float rounding, as one padded batch does."""
    import copy

    from recmeta import MetaRecommender, make_synthetic
    from recmeta import training as T

    data = make_synthetic(n_users=80, n_items=50, ratings_per_user=(5, 40), random_state=0)
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0, device="cpu",
                            method=method, id_dropout=0.0, embedding_dim=8, hidden=(16, 16)
                            ).fit(data.X, data.y)
    settings = TrainSettings(model._loop("squared"), method, "huber", clip_norm=1e9,
                             **{"rank_weight": 0.0, "init_weight": 0.0, **extra})
    sampler = EpisodeSampler(max_support=40, query_size=5)
    support, query = sampler.sample(model.histories_, np.arange(64), np.random.default_rng(3))
    found = {}
    for name, overhead in (("one batch", None), ("groups", 10.0)):
        monkeypatch.setattr(T, "GROUP_OVERHEAD", {} if overhead is None else {"cpu": overhead})
        learner = copy.deepcopy(model.learner_).train()
        trainer = Trainer(learner, model.users_.tensors("cpu"), model.items_.tensors("cpu"),
                          model.histories_, sampler, settings, torch.device("cpu"))
        trainer.optimizer.step = lambda: None  # keep the gradients to compare
        groups = len(list(trainer._groups(support, query)))
        loss = trainer.train_step(support, query)
        found[name] = (groups, loss, [p.grad.clone() for p in learner.parameters()
                                      if p.grad is not None])
    assert found["one batch"][0] == 1 and found["groups"][0] >= 3
    np.testing.assert_allclose(found["groups"][1], found["one batch"][1], rtol=1e-5)
    assert len(found["groups"][2]) == len(found["one batch"][2]) > 0
    for grouped, whole in zip(found["groups"][2], found["one batch"][2], strict=True):
        torch.testing.assert_close(grouped, whole, rtol=1e-4, atol=1e-6)


def test_verbose_2_writes_a_line_per_epoch_and_leaves_logging_as_it_was(capsys, caplog,
                                                                         monkeypatch):
    """With no handler configured (here: the "recmeta" logger not propagating to pytest's),
    the fit writes its epochs to stderr itself; an app's own logging gets the records."""
    import logging

    from recmeta import MetaRecommender, make_synthetic

    data = make_synthetic(n_users=60, n_items=30, random_state=0)
    log = logging.getLogger("recmeta")
    level, handlers = log.level, list(log.handlers)
    monkeypatch.setattr(log, "propagate", False)
    model = MetaRecommender(max_epochs=2, patience=5, random_state=0, verbose=2).fit(data.X,
                                                                                     data.y)
    lines = [x for x in capsys.readouterr().err.splitlines() if "validation loss" in x]
    assert len(lines) == model.n_epochs_ == 2
    assert lines[0].startswith("recmeta: epoch 1: train loss")
    assert log.level == level and log.handlers == handlers
    monkeypatch.setattr(log, "propagate", True)
    MetaRecommender(max_epochs=2, patience=5, random_state=0, verbose=2).fit(data.X, data.y)
    assert sum("validation loss" in r.getMessage() for r in caplog.records) == 2
    assert "validation loss" not in capsys.readouterr().err
    assert log.level == level and log.handlers == handlers
