"""``recmeta evaluate --ratings`` and :mod:`recmeta.evaluate` on a user's own data: 0/1
feedback, another rating scale, a few users, malformed frames and other delimiters.

Small synthetic data and a tiny network, as in ``test_evaluate.py``.
"""

import pandas as pd
import pytest
from click.testing import CliRunner

from recmeta import datasets as D
from recmeta import make_synthetic
from recmeta.cli import main
from recmeta.evaluate import markdown, support_curves

TINY = {"max_epochs": 1, "embedding_dim": 4, "hidden": [8], "inner_steps": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def synthetic() -> D.RatingData:
    data = make_synthetic(n_users=120, n_items=80, ratings_per_user=(12, 50), random_state=0)
    ratings = data.interactions[["user_id", "item_id", "rating"]]
    return D.RatingData(ratings, data.users, data.items, "synthetic")


def evaluate(path, out, *extra, methods="bias,popularity", params=None):
    """``recmeta evaluate --ratings path`` with one seed, k = 0 and 3, no plots."""
    args = ["evaluate", "--ratings", str(path), "--methods", methods, "--ks", "0,3",
            "--seeds", "0", "--no-plots", "--out", str(out), *extra]
    for key, value in (params or {}).items():
        args += ["--param", f"{key}={value}".replace(" ", "")]
    return CliRunner().invoke(main, args)



# ------------------------------------------------------------------------ 0/1 feedback
@pytest.mark.parametrize("feedback", ["likes", "ones"])
def test_01_feedback_is_compared_on_ranking_alone(synthetic, tmp_path, feedback):
    """On 0/1 feedback the neural methods fit the probability of an interaction (logistic
    loss with sampled negatives) and the rating baselines the mean of the 0s and 1s, yet
    the report set their MAE and RMSE side by side as ratings' (on all ones the global and
    bias baselines predict 1, MAE 0, and every meta-learned method got a NO). Now the
    curves rank alone on such data, and the report says why."""
    ratings = synthetic.ratings
    rating = (ratings.rating >= 4).astype(int) if feedback == "likes" else 1
    ratings.assign(rating=rating).to_csv(tmp_path / f"{feedback}.csv", index=False)
    out = tmp_path / "out"
    result = evaluate(tmp_path / f"{feedback}.csv", out, "--relevant-from", "1",
                      methods="bias,popularity,fomaml", params=TINY)
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.metric) == {"nDCG@10", "Recall@10"}
    assert set(metrics.method) == {"bias", "popularity", "fomaml"}
    report = (out / "report.md").read_text()
    assert "### MAE" not in report and "fomaml MAE" not in report
    assert "fomaml nDCG@10" in report  # ranking is still judged
    assert (f"`{feedback}` holds 0/1 feedback (every rating 0 or 1): the methods are "
            f"compared on ranking alone") in report
    assert "0/1 feedback" in result.output  # the report is what the command prints


def test_ratings_keep_their_errors(synthetic):
    """Ratings that are not all 0 or 1 (here 0 to 4, with zeros) keep MAE and RMSE."""
    ratings = synthetic.ratings.assign(rating=synthetic.ratings.rating - 1)
    results = support_curves(synthetic.subset(ratings), ["bias"], seeds=(0,), ks=(0, 3),
                             n_unrated=10, relevant_from=3)
    assert {"MAE", "RMSE"} <= set(results.metrics.metric)
    assert "0/1 feedback" not in markdown(results)
