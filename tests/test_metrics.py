"""Metrics: the fast, vectorised versions held equal to slow, obvious per-user loops."""

import math

import numpy as np
import pytest

from recmeta import metrics as M
from recmeta.exceptions import DataError


# ------------------------------------------------------------------ slow references
def by_user(users, *columns):
    """{user: (column arrays restricted to that user, in the given order)}."""
    out = {}
    for u in dict.fromkeys(users.tolist()):
        rows = np.flatnonzero(users == u)
        out[u] = tuple(np.asarray(c)[rows] for c in columns)
    return out


def ranked_order(scores):
    """Indices by descending score, ties in the given order (a stable sort)."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def ref_mae(users, y, p):
    return np.mean([np.mean(np.abs(a - b)) for a, b in by_user(users, y, p).values()])


def ref_rmse(users, y, p):
    return np.mean([math.sqrt(np.mean((a - b) ** 2)) for a, b in by_user(users, y, p).values()])


def ref_melu_ndcg(users, y, p, k):
    values = []
    for true, pred in by_user(users, y, p).values():
        order = ranked_order(pred)[:k]
        dcg = sum((2 ** true[i] - 1) / math.log2(1 + r) for r, i in enumerate(order, start=1))
        best = sorted(true, reverse=True)[:k]
        idcg = sum((2 ** g - 1) / math.log2(1 + r) for r, g in enumerate(best, start=1))
        values.append(dcg / idcg if idcg > 0 else 0.0)
    return np.mean(values)


def ref_ndcg(users, rel, s, k):
    values = []
    for r_, s_ in by_user(users, rel, s).values():
        if not r_.any():
            continue
        order = ranked_order(s_)[:k]
        dcg = sum(float(r_[i]) / math.log2(1 + r) for r, i in enumerate(order, start=1))
        idcg = sum(1 / math.log2(1 + r) for r in range(1, min(k, int(r_.sum())) + 1))
        values.append(dcg / idcg)
    return np.mean(values)


def ref_recall(users, rel, s, k):
    values = []
    for r_, s_ in by_user(users, rel, s).values():
        if r_.any():
            top = ranked_order(s_)[:k]
            values.append(sum(bool(r_[i]) for i in top) / r_.sum())
    return np.mean(values)


@pytest.fixture
def ragged():
    rng = np.random.default_rng(0)
    users = rng.choice([3, 11, 7, 42, 5], size=200)  # users interleaved, ragged lengths
    y = rng.integers(1, 6, size=200).astype(float)
    pred = np.round(rng.normal(3.5, 1.0, size=200), 1)  # rounded: plenty of ties
    return users, y, pred


def test_rating_errors_match_reference(ragged):
    users, y, p = ragged
    assert M.mae(users, y, p) == pytest.approx(ref_mae(users, y, p), abs=1e-12)
    assert M.rmse(users, y, p) == pytest.approx(ref_rmse(users, y, p), abs=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10, 100])
def test_ranking_metrics_match_reference(ragged, k):
    users, y, p = ragged
    relevant = y >= 4
    assert M.melu_ndcg(users, y, p, k) == pytest.approx(ref_melu_ndcg(users, y, p, k), abs=1e-12)
    assert M.ndcg_at_k(users, relevant, p, k) == pytest.approx(ref_ndcg(users, relevant, p, k),
                                                               abs=1e-12)
    assert M.recall_at_k(users, relevant, p, k) == pytest.approx(
        ref_recall(users, relevant, p, k), abs=1e-12)


def test_errors_are_averaged_per_user_not_pooled():
    users = np.array([1, 1, 1, 1, 2])
    y = np.zeros(5)
    p = np.array([1.0, 1.0, 1.0, 1.0, 3.0])
    assert M.mae(users, y, p) == 2.0  # (1 + 3) / 2, where pooling would give 7 / 5


def test_melu_ndcg_by_hand():
    # user 1 ranks 5 above 1: perfect. User 2 ranks 3 (gain 7) above 4 (gain 15).
    users = np.array([1, 1, 2, 2])
    y = np.array([5.0, 1.0, 3.0, 4.0])
    p = np.array([0.9, 0.1, 0.8, 0.2])
    assert M.melu_ndcg(users, y, p, 1) == pytest.approx((1 + 7 / 15) / 2)
    dcg2 = 7 + 15 / math.log2(3)
    idcg2 = 15 + 7 / math.log2(3)
    assert M.melu_ndcg(users, y, p, 3) == pytest.approx((1 + dcg2 / idcg2) / 2)


def test_ties_keep_the_given_order():
    users = np.array([1, 1, 1])
    relevant = np.array([False, True, False])
    constant = np.zeros(3)
    assert M.recall_at_k(users, relevant, constant, 1) == 0.0
    assert M.recall_at_k(users, relevant, constant, 2) == 1.0
    assert M.ndcg_at_k(users, relevant, constant, 2) == pytest.approx(1 / math.log2(3))


def test_users_without_relevant_items_are_left_out():
    users = np.array([1, 1, 2, 2])
    relevant = np.array([True, False, False, False])
    scores = np.array([1.0, 0.0, 1.0, 0.0])
    assert M.ndcg_at_k(users, relevant, scores, 1) == 1.0
    assert M.recall_at_k(users, relevant, scores, 1) == 1.0
    assert math.isnan(M.ndcg_at_k(users[2:], relevant[2:], scores[2:], 1))


def test_string_user_ids():
    users = np.array(["b", "a", "b"], dtype=object)
    assert M.mae(users, [1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == 0.25


@pytest.mark.parametrize("bad", [
    (np.array([1, 2]), np.array([1.0]), np.array([1.0, 2.0])),
    (np.array([]), np.array([]), np.array([])),
    (np.array([1]), np.array([np.nan]), np.array([1.0])),
])
def test_bad_input_is_a_clear_error(bad):
    with pytest.raises(DataError):
        M.mae(*bad)
