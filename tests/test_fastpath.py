"""The new-user fast path agrees with the public adapt().recommend() path."""

import numpy as np
import pandas as pd
import pytest

from recmeta import DataError, MetaRecommender, make_synthetic
from recmeta.fastpath import NewUserRecommender

FAST = dict(max_epochs=2, random_state=0, verbose=0, embedding_dim=8, hidden=(16, 16))


def _history(data, items, user):
    rows = data.items.set_index("item_id").loc[items].reset_index()
    return rows.assign(user_id="new", **user)


@pytest.mark.parametrize("implicit,adapted,factors,blend", [
    (False, "mlp", 0, 0.0), (False, "all", 0, 0.0), (True, "mlp", 0, "auto"),
    (False, "mlp", 4, 0.0), (False, "mlp", 0, 0.4), (False, "all", 0, 0.4)])
def test_fast_path_equals_public_path(implicit, adapted, factors, blend):
    data = make_synthetic(n_users=80, n_items=60, implicit=implicit, random_state=5)
    model = MetaRecommender(adapted=adapted, factors=factors, mf_blend=blend,
                            **FAST).fit(data.X, data.y)
    known = model.items_.ids.to_numpy()
    items = known[[3, 1, 4, 15, 9]]
    ratings = np.ones(5) if implicit else np.array([5.0, 1.0, 4.0, 2.0, 5.0])
    user = {"gender": "F", "age": "25-34", "occupation": "artist"}
    fast = pd.DataFrame(NewUserRecommender(model).recommend(items, ratings, user, n=7))
    public = model.adapt(_history(data, items, user), ratings).recommend(n=7)
    assert fast.item_id.tolist() == public.item_id.tolist()
    np.testing.assert_allclose(fast.score, public.score, rtol=1e-5, atol=1e-6)
    assert not set(items) & set(fast.item_id)
    # an item given twice counts once, with its last rating, as adapt() reads a history
    twice = NewUserRecommender(model).recommend(
        np.r_[items[[1, 0]], items], np.r_[6 - ratings[[1, 0]], ratings], user, n=7)
    pd.testing.assert_frame_equal(pd.DataFrame(twice), fast)


def test_fast_path_candidates_unknown_items_and_cold_user():
    data = make_synthetic(n_users=60, n_items=40, random_state=6)
    model = MetaRecommender(**FAST).fit(data.X, data.y)
    known = model.items_.ids.to_numpy()
    app = NewUserRecommender(model, candidates=known[:5])
    top = app.recommend([known[0], "never-seen"], [5, 1], n=10)
    assert {row["item_id"] for row in top} == set(known[1:5])
    cold = NewUserRecommender(model).recommend([], [], None, n=3)
    assert len(cold) == 3
    with pytest.raises(DataError, match="same length"):
        app.recommend([known[0]], [1, 2])
    with pytest.raises(DataError, match="known to the model"):
        NewUserRecommender(model, candidates=["nope"])
