"""Serving's chunks: users of mixed support lengths, in chunks ordered by length, come back
in the caller's order with what each user gets adapted alone."""

import numpy as np
import pytest
import torch

from recmeta import MetaRecommender, make_synthetic, serving


@pytest.fixture(scope="module")
def fitted():
    data = make_synthetic(n_users=60, n_items=40, ratings_per_user=(5, 30), random_state=0)
    return MetaRecommender(max_epochs=1, random_state=0, verbose=0, device="cpu",
                           embedding_dim=8, hidden=(16, 16)).fit(data.X, data.y)


def _case(model, n_users=11):
    rng = np.random.default_rng(0)
    rows = rng.choice(len(model.users_), n_users, replace=False)
    sizes = [7, 0, 25, 1, 13, 25, 2, 9, 0, 18, 4][:n_users]  # shuffled, two empty
    supports = [(rng.choice(len(model.items_), k, replace=False),
                 rng.normal(size=k).astype(np.float32)) for k in sizes]
    lists = [rng.choice(len(model.items_), int(rng.integers(1, 9)), replace=False)
             for _ in rows]
    return rows, supports, lists


def test_chunks_by_length_give_each_user_what_it_gets_alone(fitted, monkeypatch):
    model = fitted
    learner, loop = model.learner_, model._serving_loop()
    users, items = model.users_.tensors("cpu"), model.items_.tensors("cpu")
    rows, supports, lists = _case(model)
    monkeypatch.setattr(serving, "CHUNK", 3)  # several chunks, each of mixed users
    fast = serving.adapt_users(learner, users, items, rows, supports, loop)
    scores = serving.adapt_and_score(learner, users, items, rows, supports, lists, loop)
    for k, (support, listed) in enumerate(zip(supports, lists, strict=True)):
        alone = serving.adapt_users(learner, users, items, rows[k : k + 1], [support], loop)
        for name, value in alone.items():
            torch.testing.assert_close(fast[name][k : k + 1], value, rtol=1e-5, atol=1e-6)
        (own,) = serving.adapt_and_score(learner, users, items, rows[k : k + 1], [support],
                                         [listed], loop)
        assert len(scores[k]) == len(listed)
        np.testing.assert_allclose(scores[k], own, rtol=1e-5, atol=1e-6)


def test_by_length_orders_users_by_support_length_stably():
    order = serving.by_length([np.zeros(n) for n in (3, 0, 3, 1)])
    assert order.tolist() == [1, 3, 0, 2]
