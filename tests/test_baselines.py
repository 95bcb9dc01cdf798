"""Baselines: each held equal to a slow, obvious reference written with loops and lstsq."""

import numpy as np
import pandas as pd
import pytest

from recmeta import baselines as B
from recmeta.exceptions import DataError, NotFittedError


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(0)
    rows = {(u, i) for u, i in zip(rng.integers(0, 30, 400), rng.integers(0, 25, 400),
                                   strict=True)}
    users, items = np.array(sorted(rows)).T
    return pd.DataFrame({"user_id": users * 10 + 1, "item_id": items + 100,
                         "rating": rng.integers(1, 6, size=len(users)).astype(float)})


@pytest.fixture(scope="module")
def support():
    """New users (and one known one) with ragged histories, one unknown item among them."""
    return pd.DataFrame({"user_id": [900, 900, 900, 901, 11, 11],
                         "item_id": [100, 101, 999, 105, 100, 110],
                         "rating": [5.0, 4.0, 1.0, 2.0, 3.0, 4.0]})


@pytest.fixture(scope="module")
def query():
    return pd.DataFrame({"user_id": [900, 901, 901, 11, 902, 900],
                         "item_id": [102, 100, 998, 104, 103, 100]})


def groups(frame, key):
    return {k: g for k, g in frame.groupby(key)}


# ------------------------------------------------------------------ slow references
def ref_bias(train, support, query, reg_item, reg_user, n_iter):
    mu = train.rating.mean()
    b_u = dict.fromkeys(train.user_id, 0.0)
    for _ in range(n_iter):
        b_i = {i: sum(r.rating - mu - b_u[r.user_id] for r in g.itertuples()) / (reg_item + len(g))
               for i, g in groups(train, "item_id").items()}
        b_u = {u: sum(r.rating - mu - b_i[r.item_id] for r in g.itertuples()) / (reg_user + len(g))
               for u, g in groups(train, "user_id").items()}
    folded = {u: sum(r.rating - mu - b_i.get(r.item_id, 0.0) for r in g.itertuples())
              / (reg_user + len(g)) for u, g in groups(support, "user_id").items()}
    return np.array([mu + b_i.get(r.item_id, 0.0) + folded.get(r.user_id, 0.0)
                     for r in query.itertuples()])


def ref_ridge(features, targets, penalty):
    """argmin |F x - t|^2 + sum penalty_j x_j^2, as least squares on a stacked system."""
    stacked = np.vstack([features, np.diag(np.sqrt(penalty))])
    return np.linalg.lstsq(stacked, np.r_[targets, np.zeros(len(penalty))], rcond=None)[0]


def ref_als(train, n_factors, reg, reg_bias, n_iter, seed):
    """ALS one entity at a time, each half-step a stacked least-squares solve."""
    items = list(pd.unique(train.item_id))
    users = list(pd.unique(train.user_id))
    mu = train.rating.mean()
    rng = np.random.default_rng(seed)
    q = rng.normal(scale=0.1, size=(len(items), n_factors))
    b_i = np.zeros(len(items))
    pen = np.r_[np.full(n_factors, reg), reg_bias]
    for _ in range(n_iter):
        p, b_u = np.zeros((len(users), n_factors)), np.zeros(len(users))
        for u, g in groups(train, "user_id").items():
            rows = [items.index(i) for i in g.item_id]
            x = ref_ridge(np.c_[q[rows], np.ones(len(rows))],
                          g.rating.to_numpy() - mu - b_i[rows], pen)
            p[users.index(u)], b_u[users.index(u)] = x[:-1], x[-1]
        for i, g in groups(train, "item_id").items():
            rows = [users.index(u) for u in g.user_id]
            x = ref_ridge(np.c_[p[rows], np.ones(len(rows))],
                          g.rating.to_numpy() - mu - b_u[rows], pen)
            q[items.index(i)], b_i[items.index(i)] = x[:-1], x[-1]
    return items, q, b_i


# ------------------------------------------------------------------------- tests
def test_global_and_item_mean(train, query):
    mu = train.rating.mean()
    assert np.allclose(B.GlobalMean().fit(train).predict(query), mu)
    shrink = 3.0
    means = {i: (g.rating.sum() + shrink * mu) / (len(g) + shrink)
             for i, g in groups(train, "item_id").items()}
    expected = [means.get(i, mu) for i in query.item_id]
    assert np.allclose(B.ItemMean(shrink).fit(train).predict(query), expected)


def test_popularity_counts_and_ranks(train):
    counts = train.item_id.value_counts()
    model = B.Popularity().fit(train)
    assert not model.predicts_ratings
    candidates = pd.DataFrame({"user_id": 1, "item_id": [100, 101, 102, 7777]})
    expected = [counts.get(i, 0) for i in candidates.item_id]
    assert np.allclose(model.predict(candidates), expected)
    ranked = model.rank(candidates)
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    assert ranked.item_id.tolist() == list(candidates.item_id.iloc[np.argsort(
        [-c for c in expected], kind="stable")])


@pytest.mark.parametrize("n_iter", [1, 3])
def test_bias_baseline_matches_reference(train, support, query, n_iter):
    model = B.BiasBaseline(reg_item=2.0, reg_user=5.0, n_iter=n_iter).fit(train)
    expected = ref_bias(train, support, query, 2.0, 5.0, n_iter)
    assert np.allclose(model.predict(query, support), expected, atol=1e-12)


def test_users_without_support_have_no_personal_part(train, query):
    bias = B.BiasBaseline().fit(train)
    mf = B.BiasedMF(n_factors=4, n_iter=3).fit(train)
    item_only = bias.predict(query, None)
    assert np.allclose(item_only, bias.predict(query, query.assign(rating=3.0).iloc[:0]))
    # no support: mu + b_i, and the user vector folds in to zero
    assert np.allclose(mf.fold_in(B.Support.of(mf, pd.Index([1, 2]), None)), 0.0)


def test_als_matches_reference(train):
    model = B.BiasedMF(n_factors=3, reg=2.0, reg_bias=1.0, n_iter=4, random_state=5).fit(train)
    items, q, b_i = ref_als(train, 3, 2.0, 1.0, 4, 5)
    assert list(model.items_) == items
    assert np.allclose(model.item_factors_, q, atol=1e-8)
    assert np.allclose(model.item_bias_, b_i, atol=1e-8)


def test_fold_in_is_the_closed_form_least_squares(train, support, query):
    model = B.BiasedMF(n_factors=4, reg=3.0, reg_bias=2.0, n_iter=3).fit(train)
    pen = np.r_[np.full(4, 3.0), 2.0]
    pos = {i: k for k, i in enumerate(model.items_)}
    expected = []
    for r in query.itertuples():
        rows = support[support.user_id == r.user_id]
        q = np.array([model.item_factors_[pos[i]] if i in pos else np.zeros(4)
                      for i in rows.item_id]).reshape(-1, 4)
        b = np.array([model.item_bias_[pos[i]] if i in pos else 0.0 for i in rows.item_id])
        x = (ref_ridge(np.c_[q, np.ones(len(rows))], rows.rating.to_numpy() - model.mean_ - b,
                       pen) if len(rows) else np.zeros(5))
        qi = model.item_factors_[pos[r.item_id]] if r.item_id in pos else np.zeros(4)
        bi = model.item_bias_[pos[r.item_id]] if r.item_id in pos else 0.0
        expected.append(model.mean_ + x[-1] + bi + x[:-1] @ qi)
    assert np.allclose(model.predict(query, support), expected, atol=1e-10)


def test_weighted_penalty_scales_with_counts(train):
    model = B.BiasedMF(n_factors=2, reg=0.5, reg_bias=0.5, weighted=True, n_iter=2).fit(train)
    counts = np.bincount([0, 0, 0, 1], minlength=3)
    pen = model._penalty(np.array([0, 0, 0, 1]), 3)
    assert np.allclose(pen, np.maximum(counts, 1)[:, None] * 0.5)


def test_ridge_by_group_matches_lstsq():
    rng = np.random.default_rng(1)
    group = rng.integers(0, 6, size=50)
    group[group == 4] = 5  # group 4 has no rows: its solution is 0
    features, targets = rng.normal(size=(50, 3)), rng.normal(size=50)
    pen = np.array([0.5, 1.0, 2.0])
    got = B.ridge_by_group(group, 6, features, targets, pen)
    for g in range(6):
        rows = group == g
        expected = ref_ridge(features[rows], targets[rows], pen) if rows.any() else 0.0
        assert np.allclose(got[g], expected)


def test_rank_orders_each_user(train, support):
    model = B.BiasBaseline().fit(train)
    candidates = pd.DataFrame({"user_id": [901, 900, 901, 900],
                               "item_id": [100, 101, 102, 100]})
    ranked = model.rank(candidates, support)
    assert ranked.columns.tolist() == ["user_id", "item_id", "score", "rank"]
    for _, g in ranked.groupby("user_id"):
        assert g["rank"].tolist() == [1, 2]
        assert g.score.is_monotonic_decreasing


def test_contract_errors(train):
    with pytest.raises(NotFittedError, match="fit"):
        B.BiasBaseline().predict(pd.DataFrame({"user_id": [1], "item_id": [1]}))
    with pytest.raises(DataError, match="rating"):
        B.GlobalMean().fit(train.drop(columns="rating"))
    with pytest.raises(DataError, match="empty"):
        B.GlobalMean().fit(train.iloc[:0])
    with pytest.raises(DataError, match="NaN"):
        B.GlobalMean().fit(train.assign(rating=np.nan))
    assert "reg_item=2.0" in repr(B.BiasBaseline())


@pytest.mark.parametrize("make", [lambda: B.BiasBaseline(reg_item=0.1, reg_user=0.1),
                                  lambda: B.BiasedMF(n_factors=2, reg=0.1, reg_bias=0.1)])
def test_predictions_are_clipped_to_the_scale_and_ranked_before_clipping(train, make):
    """A user who rated the best items 5 is predicted past 5 on others: ``predict`` clips to
    the range of the training ratings (never further from the truth), ``scores`` does not,
    and ``rank`` orders by the scores, so items past the top do not tie."""
    model = make().fit(train)
    best = train.groupby("item_id").rating.mean().sort_values().index[-8:]
    support = pd.DataFrame({"user_id": 7, "item_id": best[:4], "rating": 5.0})
    query = pd.DataFrame({"user_id": 7, "item_id": best[4:]})
    raw = model.scores(query, support)
    assert (raw > 5).sum() >= 2 and len(np.unique(raw)) == len(raw)  # past the top, apart
    np.testing.assert_array_equal(model.predict(query, support), np.clip(raw, 1.0, 5.0))
    ranked = model.rank(query, support)
    assert ranked.item_id.tolist() == query.item_id.to_numpy()[np.argsort(-raw)].tolist()
    assert ranked.score.tolist() == sorted(raw, reverse=True)
    assert (model.predict(query) <= 5).all() and (model.predict(query) >= 1).all()
