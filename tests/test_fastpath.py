"""The new-user fast path agrees with the public adapt().recommend() path."""

import warnings

import numpy as np
import pandas as pd
import pytest

from recmeta import DataError, MetaRecommender, make_synthetic
from recmeta.episodes import serving_negatives
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
        np.r_[items[[1, 0]], items], np.r_[(1 if implicit else 6) - ratings[[1, 0]], ratings],
        user, n=7)
    pd.testing.assert_frame_equal(pd.DataFrame(twice), fast)


@pytest.mark.parametrize("implicit", [False, True])
def test_fast_path_adapts_on_the_latest_max_history_items_as_adapt_does(implicit):
    """It adapted on every item given, adapt() on the latest max_history: two answers for
    one history longer than that. Now both adapt on the latest, and leave out all."""
    data = make_synthetic(n_users=80, n_items=60, implicit=implicit, random_state=5)
    model = MetaRecommender(max_history=4, **FAST).fit(data.X, data.y)
    items = model.items_.ids.to_numpy()[[3, 1, 4, 15, 9, 26, 5, 35]]
    ratings = np.ones(8) if implicit else np.array([5.0, 1.0, 4.0, 2.0, 5.0, 3.0, 1.0, 4.0])
    user = {"gender": "F", "age": "25-34", "occupation": "artist"}
    fast = pd.DataFrame(NewUserRecommender(model).recommend(items, ratings, user, n=60))
    public = model.adapt(_history(data, items, user), ratings).recommend(n=60)
    assert fast.item_id.tolist() == public.item_id.tolist()
    np.testing.assert_allclose(fast.score, public.score, rtol=1e-5, atol=1e-6)
    assert len(fast) == 60 - 8 and not set(items) & set(fast.item_id)
    # the four oldest make no difference to the scores, only to what is left out
    latest = pd.DataFrame(NewUserRecommender(model).recommend(items[4:], ratings[4:], user,
                                                              n=60))
    latest = latest[~latest.item_id.isin(items)]
    np.testing.assert_allclose(latest.score.to_numpy(), fast.score.to_numpy(), rtol=1e-6)


def test_fast_path_warns_of_user_keys_it_has_no_feature_of_and_refuses_n_below_one():
    data = make_synthetic(n_users=60, n_items=40, random_state=6)
    model = MetaRecommender(**FAST).fit(data.X, data.y)
    app, known = NewUserRecommender(model), model.items_.ids.to_numpy()
    with pytest.warns(UserWarning, match=r"user has 'sex', which the model has no user "
                                         r"feature of: ignored\. Its user features are 'age', "
                                         r"'gender', 'occupation'"):
        typo = app.recommend([known[0]], [5], {"sex": "F"}, n=3)
    assert typo == app.recommend([known[0]], [5], None, n=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the features and the user's id are no surprise
        app.recommend([known[0]], [5], {"gender": "F", "user_id": 7}, n=3)
    for n in (0, -1, 2.5):
        with pytest.raises(DataError, match="n must be a positive int"):
            app.recommend([known[0]], [5], n=n)


def test_fast_path_candidates_unknown_items_and_cold_user():
    data = make_synthetic(n_users=60, n_items=40, random_state=6)
    model = MetaRecommender(**FAST).fit(data.X, data.y)
    known = model.items_.ids.to_numpy()
    app = NewUserRecommender(model, candidates=known[:5])
    top = app.recommend([known[0], "never-seen"], [5, 1], n=10)
    assert {row["item_id"] for row in top} == set(known[1:5])
    cold = NewUserRecommender(model).recommend([], [], None, n=3)
    assert len(cold) == 3
    # every id unknown, as strings against a model of integer ids: served cold, with a warning
    with pytest.warns(UserWarning, match=r"None of the user's 2 item\(s\).*ids are string "
                                         r"\(e\.g\. '1'\) but the model's are integer"):
        as_text = NewUserRecommender(model).recommend(["1", "2"], [5, 4], None, n=3)
    assert as_text == cold
    with pytest.raises(DataError, match="same length"):
        app.recommend([known[0]], [1, 2])
    with pytest.raises(DataError, match=r"must be lists.*got list and int.*\[rating\]"):
        app.recommend([known[0]], 5)
    # a missing rating is an error (it served an empty list), as in a history
    with pytest.raises(DataError, match="finite numbers; got None at position 1"):
        app.recommend([known[0], known[1]], [4, None])
    with pytest.raises(DataError, match="known to the model"):
        NewUserRecommender(model, candidates=["nope"])


def test_implicit_scores_do_not_depend_on_the_users_served_beside():
    """0/1 feedback: adapting draws a user's negatives from its own history, so the fast
    path, ``adapt`` of many users, ``predict`` with the rows in another order, and each user
    adapted alone all give a user the same scores, in whatever order its history comes; and
    another history of the same length draws other negatives (a fixed seed per user would
    push the same items down for all)."""
    same = serving_negatives(np.array([3, 7]), np.ones(2), 4, 60)
    np.testing.assert_array_equal(same[0], serving_negatives(np.array([3, 7]), np.ones(2), 4,
                                                             60)[0])
    other = serving_negatives(np.array([3, 8]), np.ones(2), 4, 60)
    assert set(same[0][2:]) != set(other[0][2:]) and not set(other[0][2:]) & {3, 8}
    data = make_synthetic(n_users=80, n_items=60, implicit=True, random_state=5)
    model = MetaRecommender(**FAST).fit(data.X, data.y)
    known = model.items_.ids.to_numpy()
    user = {"gender": "F", "age": "25-34", "occupation": "artist"}
    picks = {f"new{u}": known[np.random.default_rng(u).choice(len(known), 4 + u, False)]
             for u in range(5)}
    history = pd.concat([_history(data, items, user).assign(user_id=name)
                         for name, items in picks.items()], ignore_index=True)
    ones = np.ones(len(history))
    together = model.adapt(history, ones).recommend(n=8)
    rows = data.items.assign(**user).merge(pd.DataFrame({"user_id": list(picks)}), how="cross")
    rows = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)  # users interleaved
    scored = model.predict(rows, history, ones)
    app = NewUserRecommender(model)
    for name, items in picks.items():
        mine = history[history.user_id == name]
        alone = model.adapt(mine, np.ones(len(mine))).recommend(n=8)
        pd.testing.assert_frame_equal(together[together.user_id == name].reset_index(drop=True),
                                      alone, rtol=1e-5, atol=1e-6)
        for given in (items, items[::-1]):  # in any order
            fast = pd.DataFrame(app.recommend(given, np.ones(len(given)), user, n=8))
            assert fast.item_id.tolist() == alone.item_id.tolist()
            np.testing.assert_allclose(fast.score, alone.score, rtol=1e-5, atol=1e-6)
        of_user = (rows.user_id == name).to_numpy()
        alone_scores = model.predict(rows[of_user], mine, np.ones(len(mine)))
        np.testing.assert_allclose(scored[of_user], alone_scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implicit", [False, True])
def test_a_history_off_the_fitted_scale_is_refused_by_adapt_and_the_fast_path(implicit):
    """Ratings x100 for a model of 1-to-5 ratings gave NaN scores and an empty list; ratings
    for a model of 0/1 feedback gave plausible, meaningless scores. Both are refused."""
    data = make_synthetic(n_users=60, n_items=40, implicit=implicit, random_state=6)
    model = MetaRecommender(**FAST).fit(data.X, data.y)
    items = model.items_.ids.to_numpy()[[3, 1, 4]]
    user = {"gender": "F", "age": "25-34", "occupation": "artist"}
    if implicit:
        bad, match = np.array([5.0, 3.0, 1.0]), r"ratings holds 3, 5, but the model was " \
                                                r"fitted on 0/1 feedback"
    else:
        low, high = model.target_range_
        bad = np.array([high, low, high]) * 100
        match = rf"ratings holds ratings from {low * 100:g} to {high * 100:g}, outside the " \
                rf"scale the model was fitted on \({low:g} to {high:g}"
    with pytest.raises(DataError, match=match):
        NewUserRecommender(model).recommend(items, bad, user, n=3)
    with pytest.raises(DataError, match="history_y " + match.split(" ", 1)[1]):
        model.adapt(_history(data, items, user), bad)
    good = np.ones(3) if implicit else np.array([high, low, high])
    assert np.isfinite(model.predict(_history(data, items, user), _history(data, items, user),
                                     good)).all()
