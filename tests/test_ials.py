"""ImplicitALS (iALS) held equal to the dense textbook solve over every (user, item) pair."""

import itertools

import numpy as np
import pandas as pd
import pytest

from recmeta import baselines as B
from recmeta.evaluate import methods
from recmeta.ials import ImplicitALS


@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(3)
    rows = {(u, i) for u, i in zip(rng.integers(0, 20, 150), rng.integers(0, 15, 150),
                                   strict=True)}
    users, items = np.array(sorted(rows)).T
    return pd.DataFrame({"user_id": users + 1, "item_id": items + 50,
                         "rating": rng.integers(1, 6, size=len(users)).astype(float)})


def dense_step(other: np.ndarray, prefs: np.ndarray, alpha: float, reg: float) -> np.ndarray:
    """Row ``g`` of ``prefs`` (0/1 over every pair): ``(O^T C_g O + reg I)^-1 O^T C_g p_g``
    with ``C_g = diag(1 + alpha p_g)``, written out over every pair."""
    out = []
    for p in prefs:
        c = np.diag(1.0 + alpha * p)
        gram = other.T @ c @ other + reg * np.eye(other.shape[1])
        out.append(np.linalg.solve(gram, other.T @ c @ p))
    return np.array(out)


def preferences(model: ImplicitALS, frame: pd.DataFrame) -> np.ndarray:
    prefs = np.zeros((len(model.users_), len(model.items_)))
    prefs[model.users_.get_indexer(frame.user_id), model.items_.get_indexer(frame.item_id)] = 1
    return prefs


def objective(model: ImplicitALS, prefs: np.ndarray) -> float:
    x, y = model.user_factors_, model.item_factors_
    conf = 1.0 + model.alpha * prefs
    return float((conf * (prefs - x @ y.T) ** 2).sum()
                 + model.reg * ((x ** 2).sum() + (y ** 2).sum()))


@pytest.mark.parametrize("alpha", [0.0, 4.0])
def test_fit_matches_dense_alternation(train, alpha):
    model = ImplicitALS(n_factors=3, reg=0.5, alpha=alpha, n_iter=4, random_state=1).fit(train)
    prefs = preferences(model, train)
    y = np.random.default_rng(1).normal(scale=0.01, size=(len(model.items_), 3))
    for _ in range(4):
        x = dense_step(y, prefs, alpha, 0.5)
        y = dense_step(x, prefs.T, alpha, 0.5)
    assert np.allclose(model.user_factors_, x, atol=1e-10)
    assert np.allclose(model.item_factors_, y, atol=1e-10)


def test_each_alternation_lowers_the_objective(train):
    prefs, values = None, []
    for n_iter in (1, 2, 3, 6):
        model = ImplicitALS(n_factors=4, reg=0.3, alpha=10.0, n_iter=n_iter).fit(train)
        prefs = preferences(model, train) if prefs is None else prefs
        values.append(objective(model, prefs))
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(values))
    assert values[-1] < values[0]


def test_fold_in_is_the_user_half_step(train):
    model = ImplicitALS(n_factors=3, reg=0.5, alpha=4.0, n_iter=3).fit(train)
    support = pd.DataFrame({"user_id": [900, 900, 900, 901, 902],
                            "item_id": [50, 53, 999, 60, 999],  # 999: unknown, skipped
                            "rating": [5.0, 1.0, 3.0, 2.0, 4.0]})
    query = pd.DataFrame({"user_id": [900] * 3 + [901, 902, 903],
                          "item_id": [51, 52, 999, 50, 50, 50]})
    got = model.predict(query, support)
    prefs = np.zeros((3, len(model.items_)))
    prefs[0, model.items_.get_indexer([50, 53])] = 1
    prefs[1, model.items_.get_indexer([60])] = 1
    x = dense_step(model.item_factors_, prefs, 4.0, 0.5)
    y = model.item_factors_[model.items_.get_indexer([51, 52, 50, 50])]
    expected = [x[0] @ y[0], x[0] @ y[1], 0.0, x[1] @ y[2], 0.0, 0.0]
    assert np.allclose(got, expected, atol=1e-12)
    # ratings play no part: only who rated what
    same = model.predict(query, support.assign(rating=1.0))
    assert np.array_equal(got, same)


def test_ranks_the_items_a_users_neighbours_rated():
    # two tastes: users 0-9 rate items 0-4, users 10-19 items 5-9
    rows = [(u, i) for u in range(20) for i in (range(5) if u < 10 else range(5, 10))]
    train = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(rating=4.0)
    model = ImplicitALS(n_factors=4, reg=0.1, alpha=10.0).fit(train)
    support = pd.DataFrame({"user_id": [99, 99], "item_id": [6, 7], "rating": [5.0, 3.0]})
    ranked = model.rank(pd.DataFrame({"user_id": 99, "item_id": range(10)}), support)
    assert set(ranked.item_id[:5]) == set(range(5, 10))


def test_is_an_evaluation_baseline():
    built = methods.build(("ials",), None, 0)["ials"]
    assert isinstance(built.model, ImplicitALS) and not built.predicts_ratings
    assert "ials" in methods.CLASSIC and issubclass(ImplicitALS, B.Baseline)


@pytest.mark.parametrize("bad", [{"reg": 0.0}, {"alpha": -1.0}, {"n_factors": 0}])
def test_bad_settings_are_refused(train, bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"{name}={bad[name]}"):
        ImplicitALS(**bad).fit(train)


def test_a_pair_rated_twice_counts_once(train):
    once = ImplicitALS(n_factors=3, reg=0.5, alpha=4.0, n_iter=3).fit(train)
    twice = ImplicitALS(n_factors=3, reg=0.5, alpha=4.0, n_iter=3).fit(
        pd.concat([train, train.iloc[::3]], ignore_index=True))
    assert np.allclose(once.item_factors_, twice.item_factors_, atol=1e-12)
    query = pd.DataFrame({"user_id": [900, 900], "item_id": [51, 52]})
    support = pd.DataFrame({"user_id": [900] * 3, "item_id": [50, 53, 50], "rating": 4.0})
    assert np.allclose(once.predict(query, support), once.predict(query, support.iloc[:2]))
