import numpy as np
import pytest

from recmeta import make_synthetic


def test_deterministic_by_seed():
    a, b = make_synthetic(50, 40, random_state=3), make_synthetic(50, 40, random_state=3)
    c = make_synthetic(50, 40, random_state=4)
    assert a.X.equals(b.X) and np.array_equal(a.y, b.y)
    assert not a.X.equals(c.X)


def test_structure_users_items_and_popularity():
    data = make_synthetic(400, 200, ratings_per_user=(10, 40), random_state=0)
    counts = data.interactions.groupby("user_id").size()
    assert counts.min() >= 10 and counts.max() <= 40
    assert not data.interactions.duplicated(["user_id", "item_id"]).any()
    # power-law popularity: the top 10% of items take a large share of ratings
    per_item = data.interactions.item_id.value_counts()
    assert per_item.head(20).sum() > 0.3 * len(data.interactions)
    # genres are multi-valued "a|b" strings; ratings are 1..5 and not all the same
    assert data.items.genres.str.contains("|", regex=False).any()
    assert set(np.unique(data.y)) <= {1.0, 2.0, 3.0, 4.0, 5.0} and data.y.std() > 0.5


def test_users_differ_in_taste_beyond_the_mean():
    data = make_synthetic(300, 100, ratings_per_user=(30, 60), random_state=0)
    frame = data.interactions
    # user means differ (user bias) ...
    assert frame.groupby("user_id").rating.mean().std() > 0.3
    # ... and much variation is left after user and item means: the taste-by-genre term
    resid = (frame.rating - frame.groupby("user_id").rating.transform("mean")
             - frame.groupby("item_id").rating.transform("mean") + frame.rating.mean())
    assert resid.std() > 0.4


def test_implicit_keeps_positives_only():
    data = make_synthetic(60, 40, implicit=True, random_state=0)
    assert set(np.unique(data.y)) == {1.0}
    assert "clicked" in data.interactions.columns


def test_bad_arguments():
    with pytest.raises(ValueError, match="ratings_per_user"):
        make_synthetic(10, 10, ratings_per_user=(5, 2))
