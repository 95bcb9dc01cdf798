"""Serving's compact scoring (``MetaLearner.compact``) against the full first layer."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

from recmeta import MetaRecommender, make_synthetic, meta
from recmeta.episodes import recent
from recmeta.meta import COMPACT, EMBEDDED

FAST = dict(max_epochs=2, random_state=0, verbose=0, embedding_dim=8, hidden=(16, 16))


@pytest.fixture(scope="module")
def data():
    # "length" is a numeric item field; with ratings, every item also gets its ALS factors
    return make_synthetic(n_users=120, n_items=60, ratings_per_user=(8, 30), random_state=3)


@pytest.mark.parametrize("steps", [10, 0])
def test_compact_scores_equal_the_full_layer_user_by_user(data, steps, monkeypatch):
    """Scores of every item for adapted users (and, with no steps, the initialisation's
    per-user first-layer offset only) through the compact first layer, against a per-user
    ``functional_call`` of the network on the full item vectors: the slow, obvious way."""
    model = MetaRecommender(**FAST, inner_steps=steps, mf_blend=0).fit(data.X, data.y)
    learner, device = model.learner_, model.device_  # the GPU where there is one
    items = learner.serving_items(model.items_.tensors(device))
    full, compact = items[EMBEDDED], items[COMPACT]
    n_blocks = 1 + 9  # "length", and 8 ALS factors and a bias
    assert compact.shape == (len(full), full.shape[1] - n_blocks * (8 - 1))
    monkeypatch.setattr(meta, "COMPACT_MIN_ITEMS", 7)  # the catalogue here is 60 items
    calls = []
    real = type(learner).compact
    monkeypatch.setattr(type(learner), "compact",
                        lambda self, fast: calls.append(1) or real(self, fast))
    users = model.users_.tensors(device)
    batch = recent(model.histories_, np.arange(12), 100).to(device)
    with torch.no_grad():
        fast = learner.adapt(users, items, batch, model._loop("squared"))
        got = learner.score(users, items, fast, batch.users,
                            torch.arange(len(full), device=device))
        for k in range(12):
            mine = {name: p[k] for name, p in fast.items()}
            expected = functional_call(learner.adapted, mine, (full,))
            torch.testing.assert_close(got[k], expected, rtol=1e-5, atol=1e-5)
        # the per-row path ([B, L] items, as predict asks) reads the same
        rows = torch.randint(0, len(full), (12, 7), device=device)
        per_row = learner.score(users, items, fast, batch.users, rows)
        torch.testing.assert_close(per_row, torch.gather(got, 1, rows), rtol=1e-5, atol=1e-5)
        assert len(calls) == 2  # both read the compact table
        learner.score(users, items, fast, batch.users, rows[:, :6])  # fewer: the full layer
        assert len(calls) == 2


def test_no_compact_table_where_nothing_is_affine_or_everything_adapts(data):
    plain = data.X.drop(columns=["length"])
    model = MetaRecommender(**FAST, mf_features=0, mf_blend=0).fit(plain, data.y)
    items = model.learner_.serving_items(model.items_.tensors(model.device_))
    assert COMPACT not in items and model.learner_.scorer.item.affine_layout() is None
    model = MetaRecommender(**FAST, adapted="all").fit(data.X, data.y)
    assert COMPACT not in model.learner_.serving_items(model.items_.tensors(model.device_))


def test_the_fast_path_reads_the_compact_table_alike(data, monkeypatch):
    """With every catalogue long enough to read it, the one-user fast path still gives what
    ``adapt().recommend()`` gives (both compact), and what it gives on the full vectors."""
    import pandas as pd

    from recmeta.fastpath import NewUserRecommender

    model = MetaRecommender(**FAST, mf_blend=0.5).fit(data.X, data.y)
    items = model.items_.ids.to_numpy()[[3, 1, 4, 15, 9]]
    ratings = np.array([5.0, 1.0, 4.0, 2.0, 5.0])
    new = {"gender": "F", "age": "25-34", "occupation": "artist"}
    history = data.items.set_index("item_id").loc[items].reset_index().assign(user_id="new",
                                                                              **new)
    full = pd.DataFrame(NewUserRecommender(model).recommend(items, ratings, new, n=7))
    monkeypatch.setattr(meta, "COMPACT_MIN_ITEMS", 1)
    calls = []
    real = type(model.learner_).compact
    monkeypatch.setattr(type(model.learner_), "compact",
                        lambda self, fast: calls.append(1) or real(self, fast))
    fast = pd.DataFrame(NewUserRecommender(model).recommend(items, ratings, new, n=7))
    public = model.adapt(history, ratings).recommend(n=7)
    assert len(calls) == 2
    np.testing.assert_allclose(fast.score, public.score, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.score, full.score, rtol=1e-5, atol=1e-6)
    assert list(fast.item_id) == list(full.item_id)
