"""scikit-learn compatibility: its estimator checks, clone, pipelines and grouped search."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from recmeta import MetaRecommender, make_synthetic

FAST = dict(max_epochs=2, random_state=0, verbose=0, embedding_dim=8, hidden=(16,))


# scikit-learn's checks feed plain numeric arrays with no id columns: column 0 serves as the
# user id and item_col=None makes every row an item described by its features. Every user
# then has a single row, so shrinkage=0 lets that row adapt its user fully. No check is
# expected to fail.
@parametrize_with_checks([MetaRecommender(user_col=0, item_col=None, shrinkage=0.0, **FAST)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=90, n_items=50, ratings_per_user=(6, 20), random_state=3)


def test_clone_and_params_round_trip(data):
    model = MetaRecommender(method="fomaml", **{**FAST, "hidden": (32, 16)})
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    copy.set_params(inner_steps=2, method="maml")
    assert (copy.inner_steps, copy.method, model.method) == (2, "maml", "fomaml")
    fitted = model.fit(data.X, data.y)
    assert not hasattr(clone(fitted), "learner_")


def test_inside_a_pipeline_after_a_transformer(data):
    # a user's own preprocessing step: shorten the length feature to hours
    hours = ColumnTransformer([("hours", FunctionTransformer(lambda x: x / 60.0), ["length"])],
                              remainder="passthrough", verbose_feature_names_out=False)
    hours.set_output(transform="pandas")
    pipe = Pipeline([("prep", hours), ("model", MetaRecommender(**FAST))])
    pipe.fit(data.X, data.y)
    assert pipe.predict(data.X.head(7)).shape == (7,)
    assert np.isfinite(pipe.score(data.X, data.y))


def test_grid_search_with_user_grouped_folds(data):
    search = GridSearchCV(MetaRecommender(**FAST), {"inner_steps": [0, 3]},
                          cv=GroupKFold(n_splits=3), scoring="neg_root_mean_squared_error")
    search.fit(data.X, data.y, groups=data.X.user_id)
    assert search.best_params_["inner_steps"] in (0, 3)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    scores = cross_val_score(MetaRecommender(**FAST), data.X, data.y,
                             groups=data.X.user_id, cv=GroupKFold(n_splits=2))
    assert scores.shape == (2,)
