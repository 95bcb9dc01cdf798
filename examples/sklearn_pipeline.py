"""recmeta in a scikit-learn workflow: a Pipeline, a grid search, new users.

Run: python examples/sklearn_pipeline.py
"""

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from recmeta import MetaRecommender, make_synthetic


def main(n_users: int = 400, max_epochs: int = 5) -> dict:
    data = make_synthetic(n_users=n_users, n_items=200, random_state=0)
    X, y = data.X, data.y

    # Hold out 20% of users as "new users" who arrive after training.
    rng = np.random.default_rng(0)
    new_users = rng.choice(X.user_id.unique(), size=n_users // 5, replace=False)
    is_new = X.user_id.isin(new_users).to_numpy()

    # Any preprocessing step works before the model, as long as the id columns pass through.
    prep = ColumnTransformer(
        [("hours", FunctionTransformer(lambda v: v / 60.0), ["length"])],
        remainder="passthrough", verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = Pipeline([("prep", prep),
                     ("model", MetaRecommender(max_epochs=max_epochs, random_state=0,
                                               verbose=0))])

    # Grid search over rows: a validation row's user is in the training fold, and predict
    # adapts the user on the rows fit remembers of it, as it serves known users. (Folds
    # grouped by user, GroupKFold, give predict no history for the validation users: that
    # scores users with no history at all, the initialisation, not adaptation.)
    search = GridSearchCV(pipe, {"model__inner_steps": [1, 5]},
                          cv=KFold(n_splits=3, shuffle=True, random_state=0),
                          scoring="neg_root_mean_squared_error")
    search.fit(X[~is_new], y[~is_new])
    model = search.best_estimator_

    # New users: adapt on half of each user's ratings, predict the other half.
    new = X[is_new].assign(rating=y[is_new])
    first_half = new.groupby("user_id").cumcount() < new.groupby("user_id").user_id.transform(
        "size") // 2
    history, query = new[first_half], new[~first_half]
    features = list(X.columns)
    prepared = model.named_steps["prep"]
    recommender = model.named_steps["model"]
    pred = recommender.predict(prepared.transform(query[features]),
                               prepared.transform(history[features]), history.rating)
    rmse = float(np.sqrt(np.mean((pred - query.rating) ** 2)))

    adapted = recommender.adapt(prepared.transform(history[features]), history.rating)
    top = adapted.recommend(n=5)
    return {"best_params": search.best_params_, "new_user_rmse": rmse, "top": top}


if __name__ == "__main__":
    result = main()
    print("best parameters:", result["best_params"])
    print(f"RMSE on new users' held-out ratings: {result['new_user_rmse']:.3f}")
    print(result["top"].head(10).to_string(index=False))
