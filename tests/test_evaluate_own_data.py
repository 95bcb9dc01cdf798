"""``recmeta evaluate --ratings`` and :mod:`recmeta.evaluate` on a user's own data: 0/1
feedback, another rating scale, a few users, malformed frames and other delimiters.

Small synthetic data and a tiny network, as in ``test_evaluate.py``.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recmeta import DataError, make_synthetic
from recmeta import datasets as D
from recmeta.cli import main
from recmeta.evaluate import Results, markdown, new_users, support_curves, support_query
from recmeta.evaluate.runner import own_data

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


def relevance_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "relevant_from" in str(w.message)]



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
    assert "holds 0/1 feedback" not in markdown(results)


# ------------------------------------------------------------------ relevance threshold
def test_another_scale_warns_that_relevance_is_movielens(synthetic, tmp_path):
    """On a 2-to-10 scale nDCG@10 and Recall@10 silently counted 4 or more as relevant
    (MovieLens' 4 of 5): most of the scale. Unset, that is now said in one line naming
    relevant_from (--relevant-from); set, or on a 1-to-5 scale, nothing is said, and
    MovieLens' threshold is unchanged."""
    ten = synthetic.subset(synthetic.ratings.assign(rating=synthetic.ratings.rating * 2))
    run = dict(seeds=(0,), ks=(0, 3), n_unrated=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        default = support_curves(ten, ["bias"], **run)
    said = relevance_warnings(caught)
    assert len(said) == 1 and "\n" not in said[0]
    assert said[0].startswith("The ratings of 'synthetic' run from 2 to 10, not 1 to 5, "
                              "yet nDCG@10 and Recall@10 count one of 4 or more as relevant")
    assert "relevant_from (--relevant-from on the command line)" in said[0]
    assert caught[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        four = support_curves(ten, ["bias"], relevant_from=4, **run)
        eight = support_curves(ten, ["bias"], relevant_from=8, **run)
        movielens = support_curves(synthetic, ["bias"], **run)
    assert relevance_warnings(caught) == []
    pd.testing.assert_frame_equal(default.metrics, four.metrics)  # the default is still 4
    assert not np.allclose(eight.metrics.value, four.metrics.value)
    split = new_users(synthetic.ratings, np.random.default_rng(0), 0.2, 3, 10, 100)
    assert movielens.counts.ranked_users.tolist() == [
        split.candidates.groupby("user_id").relevant.any().sum()]  # 4 or more, as before
    # the command line says it once, as one line of its own, and runs on
    ten.ratings.to_csv(tmp_path / "synthetic.csv", index=False)
    result = evaluate(tmp_path / "synthetic.csv", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "--relevant-from" in line]
    assert lines == [f"recmeta: warning: {said[0]}"]
    result = evaluate(tmp_path / "synthetic.csv", tmp_path / "out", "--relevant-from", "8")
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_01_feedback_counts_a_1_as_relevant(synthetic, tmp_path):
    """0/1 feedback has no rating of 4: the run was refused unless --relevant-from was
    set. A 1 is now what is relevant there, unless it is set."""
    ones = synthetic.ratings.assign(rating=1)
    ones.to_csv(tmp_path / "ones.csv", index=False)
    result = evaluate(tmp_path / "ones.csv", tmp_path / "out")
    assert result.exit_code == 0, result.output
    counts = pd.read_csv(tmp_path / "out" / "counts.csv")
    assert counts.ranked_users.tolist() == counts.users.tolist()  # each query item is a 1
    assert "warning" not in result.output


# --------------------------------------------------------------------------- few users
def judged(users: int) -> Results:
    """Results of one data set where metasgd beats the baselines, scored on ``users``."""
    values = {("popularity", "nDCG@10"): 0.40, ("bias", "nDCG@10"): 0.30,
              ("bias", "MAE"): 0.80, ("metasgd", "nDCG@10"): 0.45, ("metasgd", "MAE"): 0.79}
    metrics = pd.DataFrame([("curves", "mine", 3, method, 0, metric, value)
                            for (method, metric), value in values.items()],
                           columns=["protocol", "dataset", "setting", "method", "seed",
                                    "metric", "value"])
    counts = pd.DataFrame([("curves", "mine", "every k", 0, users, 10 * users, users)],
                          columns=["protocol", "dataset", "setting", "seed", "users",
                                   "query_ratings", "ranked_users"])
    return Results(metrics, counts=counts)


def test_few_users_get_margins_not_verdicts(synthetic, tmp_path):
    """A file of a few users got "yes" / "NO" verdicts on differences well within the
    noise of a mean over so few. Under 100 users the report (which the command prints)
    shows the margins without a verdict, and says why."""
    many, few = markdown(judged(100)), markdown(judged(99))
    assert "| metasgd MAE | yes +0.0100 (bias) |" in many
    assert "not meaningful" not in many
    assert "| metasgd MAE | +0.0100 (bias) |" in few
    assert "yes +" not in few and "NO " not in few
    assert ("Only 99 users were evaluated in (b) mine: differences between methods are not "
            "meaningful at that size") in few
    # a ranked count under 100 is what counts for nDCG@10, however many users were scored
    ranked = judged(500)
    ranked.counts["ranked_users"] = 40
    assert "Only 40 users were evaluated in (b) mine" in markdown(ranked)
    assert "Only 1 user was evaluated in (b) mine" in markdown(judged(1))
    # and end to end: 24 new users of 120
    synthetic.ratings.to_csv(tmp_path / "mine.csv", index=False)
    result = evaluate(tmp_path / "mine.csv", tmp_path / "out",
                      methods="bias,popularity,fomaml", params=TINY)
    assert result.exit_code == 0, result.output
    assert "users were evaluated in (b) mine: differences between methods are not " \
           "meaningful at that size" in result.output
    targets = result.output.split("## Targets")[1]
    assert "| yes " not in targets and "| NO " not in targets


# ---------------------------------------------------------------------- checked input
BAD = {
    "no rating column": (lambda r: r.drop(columns="rating"),
                         r"has no column \['rating'\] \(its columns are \['user_id', "
                         r"'item_id'\]\); it needs user_id, item_id and rating"),
    "text ratings": (lambda r: r.assign(rating=r.rating.map({1: "awful", 2: "poor", 3: "ok",
                                                              4: "good", 5: "great"})),
                     r"ratings that are not numbers \('\w+', '\w+', '\w+', \.\.\.\); convert"),
    "missing ratings": (lambda r: r.assign(rating=r.rating.where(r.index % 7 != 3)),
                        r"has 454 missing \(NaN\) or infinite rating\(s\).*drop or fill"),
    "missing ids": (lambda r: r.assign(item_id=r.item_id.where(r.index != 5)),
                    r"has 1 row\(s\) without a user_id or item_id.*drop them"),
    "no rows": (lambda r: r.iloc[:0], r"has no rows; give it a row per rating"),
}


@pytest.mark.parametrize("bad", list(BAD))
def test_own_data_is_checked(synthetic, bad):
    """A frame of one's own with a column missing, ratings that are not numbers or are
    missing, or no row at all, gave a KeyError or a TypeError from deep in pandas (or, for
    the empty frame, an error about ratings running "from nan to nan"); now a DataError
    says what is wrong and what to do, from each function that takes such a frame."""
    change, message = BAD[bad]
    ratings = change(synthetic.ratings)
    with pytest.raises(DataError, match=message):
        support_curves(synthetic.subset(ratings), ["bias"], seeds=(0,), ks=(0, 3))
    with pytest.raises(DataError, match=message):
        new_users(ratings, np.random.default_rng(0))
    with pytest.raises(DataError, match=message):
        support_query(ratings, np.random.default_rng(0))


def test_a_frame_of_ratings_alone_runs_and_a_csv_is_checked_as_read(synthetic, tmp_path):
    """support_curves takes a frame of ratings alone (no features) as well as RatingData;
    anything else is refused in a sentence. A CSV's ratings are checked as it is read."""
    results = support_curves(synthetic.ratings, ["bias"], seeds=(0,), ks=(0, 3),
                             n_unrated=10)
    assert set(results.metrics.dataset) == {"ratings"}
    assert results.metrics.value.notna().all()
    with pytest.raises(DataError, match=r"takes a RatingData or a DataFrame of ratings "
                                        r"\(user_id, item_id, rating\), not list"):
        support_curves([(1, 2, 3.0)], ["bias"])
    (tmp_path / "r.csv").write_text("user_id,item_id,rating\n1,2,4\n1,3,five\n")
    with pytest.raises(DataError, match=r"r.csv has ratings that are not numbers \('five'\)"):
        own_data(tmp_path / "r.csv")
    result = evaluate(tmp_path / "r.csv", tmp_path / "out")
    assert result.exit_code == 2 and "not numbers ('five')" in result.output


# -------------------------------------------------------------------------- delimiters
@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_separated_files_are_read(synthetic, tmp_path, sep):
    """A file separated by semicolons (as spreadsheets write CSV in many locales) or tabs
    was read as one column, and refused as having no user_id; it is read as the comma-
    separated file would be, feature files too."""
    items = synthetic.items.assign(genres=synthetic.items.genres.str.replace("|", ","))
    synthetic.ratings.to_csv(tmp_path / "comma.csv", index=False)
    items.to_csv(tmp_path / "comma_items.csv", index=False)
    synthetic.ratings.to_csv(tmp_path / "other.csv", sep=sep, index=False)
    items.to_csv(tmp_path / "other_items.csv", sep=sep, index=False)
    comma = own_data(tmp_path / "comma.csv", items=tmp_path / "comma_items.csv")
    other = own_data(tmp_path / "other.csv", items=tmp_path / "other_items.csv")
    pd.testing.assert_frame_equal(other.ratings, comma.ratings)
    pd.testing.assert_frame_equal(other.items, comma.items)
    result = evaluate(tmp_path / "other.csv", tmp_path / "out", "--items",
                      str(tmp_path / "other_items.csv"))
    assert result.exit_code == 0, result.output


def test_a_file_of_another_delimiter_or_empty_is_refused_in_a_sentence(tmp_path):
    """Other delimiters are refused, with the columns as read, which show it; an empty
    file is a DataError too (a pandas EmptyDataError traceback)."""
    (tmp_path / "pipes.csv").write_text("user_id|item_id|rating\n1|2|4\n")
    with pytest.raises(DataError, match=r"pipes.csv has no column \['user_id', 'item_id', "
                                        r"'rating'\] \(its columns are \['user_id\|item_id"
                                        r"\|rating'\]\).*separated by commas, semicolons or "
                                        r"tabs"):
        own_data(tmp_path / "pipes.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty.csv is empty; give it a header line"):
        own_data(tmp_path / "empty.csv")


def test_a_file_that_is_not_utf8_says_how_to_convert_it(tmp_path):
    """A spreadsheet's Latin-1 export (here an é in a user id) was a UnicodeDecodeError
    traceback, from evaluate --ratings as from train --file."""
    from click.testing import CliRunner

    from recmeta.cli import main

    path = tmp_path / "latin.csv"
    path.write_bytes("user_id,item_id,rating\nren\xe9,1,4\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv is not UTF-8 text \(it holds byte 0xe9 "
                                        r"where UTF-8 allows none\): save it as UTF-8"):
        own_data(path)
    result = CliRunner().invoke(main, ["train", "--file", str(path), "--time-col", "",
                                       "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "is not UTF-8 text" in result.output
    assert "Traceback" not in result.output


def test_ratings_with_a_decimal_comma_are_numbers(tmp_path):
    """A semicolon file from a spreadsheet in many locales writes 4,5 for 4.5: it was
    refused as ratings that are not numbers ('4,5'). Text that is not a number still is."""
    (tmp_path / "eu.csv").write_text("user_id;item_id;rating\n1;2;4,5\n1;3;3\n2;2;2,0\n")
    assert own_data(tmp_path / "eu.csv").ratings.rating.tolist() == [4.5, 3.0, 2.0]
    (tmp_path / "words.csv").write_text("user_id;item_id;rating\n1;2;4,5\n1;3;good\n")
    with pytest.raises(DataError, match=r"ratings that are not numbers \('4,5', 'good'\)"):
        own_data(tmp_path / "words.csv")
