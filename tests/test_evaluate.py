"""Evaluation: the splits, a small quick sample of both protocols, the report and the command.

The full runs are benchmarks (``benchmarks/evaluate.py``). Tests marked ``data`` read the
MovieLens files from ``RECMETA_DATA`` (default ``../shared/data``) and skip when absent.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recmeta import datasets as D
from recmeta import make_synthetic
from recmeta.cli import main
from recmeta.evaluate import markdown, melu_states, support_curves, targets, write_report
from recmeta.evaluate.report import summarise, timing_table
from recmeta.evaluate.splits import new_users, support_query
from recmeta.hybrid import GRID

DATA = Path(os.environ.get("RECMETA_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TINY = {"max_epochs": 1, "embedding_dim": 4, "hidden": [8], "inner_steps": 2, "batch_size": 16}


def data_dir(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"needs the MovieLens files at {path} (set RECMETA_DATA)")
    return path


@pytest.fixture(scope="module")
def synthetic() -> D.RatingData:
    data = make_synthetic(n_users=120, n_items=80, ratings_per_user=(12, 50), random_state=0)
    ratings = data.interactions[["user_id", "item_id", "rating"]]
    return D.RatingData(ratings, data.users, data.items, "synthetic")


@pytest.fixture(scope="module")
def fake_melu(synthetic) -> D.MeluData:
    """Four 'states' cut from synthetic data: users split in two, items split in two."""
    r = synthetic.ratings
    old_user, old_item = r.user_id < 80, r.item_id < 60
    states = {"warm_state": r[old_user & old_item], "user_cold_state": r[~old_user & old_item],
              "item_cold_state": r[old_user & ~old_item],
              "user_and_item_cold_state": r[~old_user & ~old_item]}
    return D.MeluData({k: v.reset_index(drop=True) for k, v in states.items()},
                      synthetic.users, synthetic.items)


# ---------------------------------------------------------------------------- splits
def test_support_query_is_melus_split(synthetic):
    split = support_query(synthetic.ratings, np.random.default_rng(0), n_query=10,
                          min_ratings=13, max_ratings=40)
    sizes = synthetic.ratings.groupby("user_id").size()
    eligible = set(sizes[(sizes >= 13) & (sizes <= 40)].index)
    assert set(split.query.user_id) == set(split.support.user_id) == eligible
    assert (split.query.groupby("user_id").size() == 10).all()
    both = pd.concat([split.support, split.query])
    assert not both.duplicated(["user_id", "item_id"]).any()
    assert len(both) == sizes[list(eligible)].sum()
    again = support_query(synthetic.ratings, np.random.default_rng(0), 10, 13, 40)
    pd.testing.assert_frame_equal(split.query, again.query)


def test_new_users_split(synthetic):
    split = new_users(synthetic.ratings, np.random.default_rng(1), test_fraction=0.25,
                      max_k=5, n_query=4, n_unrated=7)
    test_users = set(split.query.user_id)
    assert not test_users & set(split.train.user_id)
    assert (split.pool.groupby("user_id").size() == 5).all()
    assert set(split.support(3).item_id) <= set(split.support(5).item_id)
    assert split.support(0).empty
    rated = synthetic.ratings.groupby("user_id").item_id.agg(set)
    for user, rows in split.candidates.groupby("user_id"):
        query = set(split.query.item_id[split.query.user_id == user])
        unrated = set(rows.item_id) - query
        assert query <= set(rows.item_id) and len(unrated) == 7
        assert not unrated & rated[user] and unrated <= set(split.train.item_id)
        assert (rows.relevant == (rows.rating >= 4)).all()


def string_ids(frame: pd.DataFrame, dtype="str") -> pd.DataFrame:
    """``frame`` with ids as a CSV of yours may hold them: users "user-0007", items
    "SKU00042". Zero-padded, so they sort as the integers did."""
    out = frame.copy()
    for column, prefix, width in (("user_id", "user-", 4), ("item_id", "SKU", 5)):
        if column in out:
            out[column] = (prefix + out[column].astype(str).str.zfill(width)).astype(dtype)
    return out


@pytest.mark.parametrize("dtype", ["str", "string", "object"])
def test_new_users_split_takes_string_ids(synthetic, dtype):
    """Strings of any dtype (pandas' ``str``, ``string``, plain objects) split as the
    integers they stand for: the same users, pools and candidates, drawn alike."""
    ints = new_users(synthetic.ratings, np.random.default_rng(1), 0.25, 5, 4, 7)
    strings = new_users(string_ids(synthetic.ratings, dtype), np.random.default_rng(1),
                        0.25, 5, 4, 7)
    for part in ("train", "pool", "query", "candidates"):
        expected = string_ids(getattr(ints, part), dtype)
        got = getattr(strings, part)
        pd.testing.assert_frame_equal(got.astype({"user_id": object, "item_id": object}),
                                      expected.astype({"user_id": object, "item_id": object}))
    assert strings.candidates.item_id.dtype == string_ids(synthetic.ratings, dtype).item_id.dtype
    split = support_query(string_ids(synthetic.ratings, dtype), np.random.default_rng(0),
                          10, 13, 40)
    again = support_query(synthetic.ratings, np.random.default_rng(0), 10, 13, 40)
    assert split.query.item_id.tolist() == string_ids(again.query).item_id.tolist()


def test_splits_and_curves_take_mixed_ids(synthetic):
    """Ids numpy cannot sort (integers and strings in one column) split, and are scored."""
    mixed = synthetic.ratings.astype({"user_id": object, "item_id": object})
    mixed.loc[mixed.user_id % 2 == 1, "user_id"] = "u" + mixed.user_id.astype(str)
    mixed.loc[mixed.item_id % 2 == 1, "item_id"] = "i" + mixed.item_id.astype(str)
    split = new_users(mixed, np.random.default_rng(1), 0.25, 5, 4, 7)
    rated = mixed.groupby("user_id").item_id.agg(set)
    for user, rows in split.candidates.groupby("user_id"):
        unrated = set(rows.item_id) - set(split.query.item_id[split.query.user_id == user])
        assert len(unrated) == 7 and not unrated & rated[user]
    assert len(support_query(mixed, np.random.default_rng(0), 10, 13, 40).query)
    data = D.RatingData(mixed, pd.DataFrame({"user_id": mixed.user_id.unique()}),
                        pd.DataFrame({"item_id": mixed.item_id.unique()}), "mixed")
    results = support_curves(data, ["bias", "popularity"], seeds=(0,), ks=(0, 3), n_unrated=10)
    assert results.metrics.value.notna().all()


# ------------------------------------------------------------------------- protocols
def test_melu_protocol_quick_sample(fake_melu):
    results = melu_states(fake_melu, ["global", "popularity", "bias", "metasgd",
                                      "supervised", "supervised-ft"], seeds=(0, 1),
                          n_query=5, neural_params=TINY)
    m = results.metrics
    assert set(m.setting) == set(D.MELU_STATES) and set(m.seed) == {0, 1}
    assert set(m.metric) == {"MAE", "RMSE", "nDCG@1", "nDCG@3"}
    assert "MAE" not in set(m.metric[m.method == "popularity"])
    assert m.value.between(0, 5).all()
    # the supervised network is fitted once and scored unadapted and fine-tuned
    t = results.timings.set_index(["method", "seed"])
    assert t.loc[("supervised", 0), "seconds"] == t.loc[("supervised-ft", 0), "seconds"]
    assert t.loc[("metasgd", 0), "n_epochs"] == 1
    # the blend's weight each fit chose is recorded; the baselines and the network that is
    # not adapted (no blend) have none
    assert t.loc[("metasgd", 0), "blend_weight"] in GRID
    assert t.loc[[("bias", 0), ("supervised", 0)], "blend_weight"].isna().all()
    table = timing_table(results.timings).set_index("method")
    weights = t.loc["metasgd", "blend_weight"].to_numpy()
    assert table.loc["metasgd", "blend_weights"] == f"{weights[0]:g} / {weights[1]:g}"
    old = timing_table(results.timings.drop(columns="blend_weight"))  # written before it was
    assert (old.blend_weights == "").all()
    notadapted = m[(m.method == "supervised") & (m.metric == "MAE")].value.to_numpy()
    finetuned = m[(m.method == "supervised-ft") & (m.metric == "MAE")].value.to_numpy()
    assert not np.allclose(notadapted, finetuned)



def test_errors_are_of_the_clipped_predictions_and_ndcg_of_the_order_before_clipping():
    """MAE and RMSE score what ``predict`` returns, clipped to the scale; nDCG ranks by the
    scores before clipping, so two items predicted past the top keep their order."""
    from recmeta.evaluate.protocols import _melu_metrics

    query = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [7, 8, 9],
                          "rating": [5.0, 4.0, 1.0]})
    scores = np.array([5.2, 5.6, 2.0])  # item 8 (rated 4) above item 7 (rated 5)
    values = _melu_metrics(query, np.clip(scores, 1, 5), scores)
    assert values["MAE"] == pytest.approx((0 + 1 + 1) / 3)
    assert values["nDCG@1"] == pytest.approx(15 / 31)  # tied at 5, item 7 would come first
    assert "MAE" not in _melu_metrics(query, None, scores)

def test_support_curves_quick_sample(synthetic):
    results = support_curves(synthetic, ["item", "popularity", "bias", "als", "ials", "fomaml"],
                             seeds=(0,), ks=(0, 3, 5), n_unrated=20, neural_params=TINY)
    m = results.metrics
    assert set(m.setting) == {0, 3, 5}
    assert {"MAE", "RMSE", "nDCG@10", "Recall@10"} == set(m.metric)
    assert set(m.metric[m.method == "ials"]) == {"nDCG@10", "Recall@10"}  # ranks, no rating
    ials = m[(m.method == "ials") & (m.metric == "nDCG@10")].set_index("setting").value
    assert ials[5] > ials[0]  # no history: every item alike; 5 items folded in rank better
    bias = m[(m.method == "bias") & (m.metric == "MAE")].set_index("setting").value
    assert bias[5] < bias[0]  # the user bias folded in from 5 ratings helps
    item = m[(m.method == "item") & (m.metric == "MAE")].value
    assert item.nunique() == 1  # no personal part: flat in k


def test_report_and_verdicts(fake_melu, synthetic, tmp_path):
    results = melu_states(fake_melu, ["bias", "als", "fomaml"], seeds=(0, 1), n_query=5,
                          neural_params=TINY)
    results += support_curves(synthetic, ["bias", "fomaml"], seeds=(0,), ks=(0, 3),
                              n_unrated=10, neural_params=TINY)
    summary = summarise(results.metrics)
    assert (summary.seeds[summary.protocol == "melu"] == 2).all()
    found = targets(summary)
    assert set(found.rival[found.protocol == "melu"]) >= {"MeLU-5 (paper)"}
    assert set(found.rival[found.protocol == "melu"]) - {"MeLU-5 (paper)"} <= {"bias", "als"}
    assert set(found.setting[found.protocol == "curves"]) == {3}
    row = found[(found.metric == "MAE") & (found.rival != "MeLU-5 (paper)")].iloc[0]
    assert row.margin == pytest.approx(row.rival_value - row.value)
    text = markdown(results)
    assert "MeLU-5 (paper)" in text and "## (b) New users" in text and "± " in text
    assert "| fomaml MAE vs MeLU-5 |" in text
    path = write_report(results, tmp_path / "report")
    assert {p.name for p in path.parent.iterdir()} >= {
        "report.md", "metrics.csv", "timings.csv", "melu_states.png", "curves_synthetic.png"}


def test_meta_learned_methods_are_judged_against_baselines_only():
    values = {("popularity", "nDCG@10"): 0.40, ("bias", "nDCG@10"): 0.30,
              ("bias", "MAE"): 0.80, ("metasgd", "nDCG@10"): 0.35, ("metasgd", "MAE"): 0.79,
              ("metasgd-implicit", "nDCG@10"): 0.45}
    metrics = pd.DataFrame([("curves", "d", 3, method, 0, metric, value)
                            for (method, metric), value in values.items()],
                           columns=["protocol", "dataset", "setting", "method", "seed",
                                    "metric", "value"])
    found = targets(summarise(metrics)).set_index(["method", "metric"])
    # metasgd-implicit ranks better than metasgd, but it is not a baseline: not a rival
    assert found.loc[("metasgd", "nDCG@10"), "rival"] == "popularity"
    assert found.loc[("metasgd", "nDCG@10"), "margin"] == pytest.approx(-0.05)
    assert found.loc[("metasgd-implicit", "nDCG@10"), "margin"] == pytest.approx(0.05)
    assert found.loc[("metasgd", "MAE"), "margin"] == pytest.approx(0.01)
    assert ("metasgd-implicit", "MAE") not in found.index  # it predicts no rating
    # a baseline without a figure (nDCG with no user ranked: NaN) is no rival; every one
    # without one raised "Encountered all NA values" and lost the report
    nan = metrics.assign(value=np.where(metrics.method == "popularity", np.nan, metrics.value))
    found = targets(summarise(nan)).set_index(["method", "metric"])
    assert found.loc[("metasgd", "nDCG@10"), "rival"] == "bias"
    nan = metrics.assign(value=np.where(metrics.metric == "nDCG@10", np.nan, metrics.value))
    found = targets(summarise(nan)).set_index(["method", "metric"])
    assert set(found.index) == {("metasgd", "MAE")}


def test_cli_on_your_own_csv(synthetic, tmp_path):
    synthetic.ratings.to_csv(tmp_path / "ratings.csv", index=False)
    synthetic.items.to_csv(tmp_path / "items.csv", index=False)
    out = tmp_path / "out"
    args = ["evaluate", "--ratings", str(tmp_path / "ratings.csv"), "--items",
            str(tmp_path / "items.csv"), "--methods", "bias,popularity,fomaml", "--ks", "0,3",
            "--seeds", "0", "--no-plots", "--out", str(out)]
    for key, value in TINY.items():
        args += ["--param", f"{key}={value}".replace(" ", "")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "## (b) New users" in result.output and (out / "report.md").is_file()


def test_cli_on_your_own_csv_with_string_ids(synthetic, tmp_path):
    """Ids such as "user-0001" and "SKU00042" (read as pandas' string dtype) run the whole
    --ratings path, with feature files and without; --quick, tiny network."""
    string_ids(synthetic.ratings).to_csv(tmp_path / "ratings.csv", index=False)
    string_ids(synthetic.items).to_csv(tmp_path / "items.csv", index=False)
    string_ids(synthetic.users).to_csv(tmp_path / "users.csv", index=False)
    base = ["evaluate", "--ratings", str(tmp_path / "ratings.csv"), "--quick",
            "--methods", "bias,als,popularity,fomaml", "--ks", "0,3", "--no-plots"]
    for key, value in TINY.items():
        base += ["--param", f"{key}={value}".replace(" ", "")]
    features = ["--items", str(tmp_path / "items.csv"), "--users", str(tmp_path / "users.csv")]
    for extra, out in (([], "plain"), (features, "features")):
        result = CliRunner().invoke(main, [*base, *extra, "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
        metrics = pd.read_csv(tmp_path / out / "metrics.csv")
        assert set(metrics.method) == {"bias", "als", "popularity", "fomaml"}
        assert metrics.value.notna().all()


def test_your_own_scale_sets_what_is_relevant(synthetic, tmp_path):
    """On a 1-3 scale no rating was 4 or more: the run went to its end, then crashed writing
    the report (exit 1). Now it says so before running, and --relevant-from sets the
    threshold, which decides the users ranked as the split's relevant column does."""
    ratings = synthetic.ratings.assign(rating=np.ceil(synthetic.ratings.rating * 3 / 5))
    ratings.to_csv(tmp_path / "scale3.csv", index=False)
    base = ["evaluate", "--ratings", str(tmp_path / "scale3.csv"), "--methods",
            "bias,popularity", "--ks", "0,3", "--seeds", "0", "--no-plots"]
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a")])
    assert result.exit_code == 2, result.output
    assert "No rating of 'scale3' is 4 or more (they run from 1 to 3)" in result.output
    assert "--relevant-from" in result.output and not (tmp_path / "a").exists()
    result = CliRunner().invoke(main, [*base, "--relevant-from", "3", "--out",
                                       str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    split = new_users(ratings, np.random.default_rng(0), 0.2, 3, 10, 100, relevant_from=3)
    ranked = split.candidates.groupby("user_id").relevant.any().sum()
    assert ranked > 0
    counts = pd.read_csv(tmp_path / "b" / "counts.csv")
    assert counts.ranked_users.tolist() == [ranked]
    assert pd.read_csv(tmp_path / "b" / "metrics.csv").value.notna().all()


def test_report_of_your_own_csv_names_what_ran_and_how_many_users(synthetic, tmp_path):
    """A --ratings run's report names the curves on that file (not the default protocols
    and MovieLens sets, which did not run), and says how many users and query ratings each
    seed scored, which is what says how noisy its figures are."""
    synthetic.ratings.to_csv(tmp_path / "mine.csv", index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["evaluate", "--ratings", str(tmp_path / "mine.csv"),
                                       "--methods", "bias,popularity", "--ks", "0,3",
                                       "--seeds", "0,1", "--no-plots", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    header = report.split("## ")[0]
    assert "- `protocols`: ('curves',)" in header and "- `datasets`: ('mine',)" in header
    assert "melu" not in header and "ml-1m" not in header and "ml-100k" not in header
    assert "train_users" not in header  # MeLU's protocol's setting: it did not run
    users, queries, ranked = [], [], []
    for seed in (0, 1):
        split = new_users(synthetic.ratings, np.random.default_rng(seed), 0.2, 3, 10, 100)
        users.append(split.query.user_id.nunique())
        queries.append(len(split.query))
        ranked.append(split.candidates.groupby("user_id").relevant.any().sum())
    counts = pd.read_csv(out / "counts.csv")
    assert counts.users.tolist() == users and counts.query_ratings.tolist() == queries
    assert counts.ranked_users.tolist() == ranked
    cells = [f"{min(v)}" if min(v) == max(v) else f"{min(v)}–{max(v)}"
             for v in (users, queries, ranked)]  # one figure, or the seeds' range
    assert f"| curves | mine | every k | 2 | {' | '.join(cells)} |" in report


def test_melu_report_counts_each_states_users(fake_melu):
    """Protocol (a) counts each state's scored users and query ratings (capped ones too)."""
    results = melu_states(fake_melu, ["bias"], seeds=(0,), n_query=5, max_users=6)
    counts = results.counts.set_index("setting")
    for state in D.MELU_STATES:
        sizes = fake_melu.states[state].groupby("user_id").size()
        eligible = int(((sizes >= 13) & (sizes <= 100)).sum())
        assert counts.loc[state, "users"] == min(eligible, 6)
        assert counts.loc[state, "query_ratings"] == 5 * min(eligible, 6)
    assert "| melu | ml-1m | user cold | 1 |" in markdown(results)


def test_cli_bad_input_exits_2(tmp_path):
    (tmp_path / "bad.csv").write_text("user,item\n1,2\n")
    result = CliRunner().invoke(main, ["evaluate", "--ratings", str(tmp_path / "bad.csv")])
    assert result.exit_code == 2 and "user_id, item_id and rating" in result.output
    result = CliRunner().invoke(main, ["evaluate", "--methods", "magic"])
    assert result.exit_code == 2 and "unknown ['magic']" in result.output
    result = CliRunner(env={"RECMETA_DATA": None}).invoke(main, ["evaluate"])
    assert result.exit_code == 2 and "--data-dir" in result.output
    # with --ratings, MovieLens' protocols and data sets would be ignored: said, not ignored
    (tmp_path / "ok.csv").write_text("user_id,item_id,rating\n1,2,3\n")
    result = CliRunner().invoke(main, ["evaluate", "--ratings", str(tmp_path / "ok.csv"),
                                       "--protocol", "melu"])
    assert result.exit_code == 2 and "--protocol choose among MovieLens'" in result.output
    result = CliRunner().invoke(main, ["evaluate", "--items", str(tmp_path / "ok.csv")])
    assert result.exit_code == 2 and "give --ratings too" in result.output


def test_cli_params_read_as_train_reads_them():
    from recmeta.cli.evaluate import _params

    assert _params(None, None, ("hidden=(8,8)", "random_state=None", "lr=1e-3")) == {
        "hidden": (8, 8), "random_state": None, "lr": 0.001}

# ------------------------------------------------------------------------ real data
@pytest.mark.data
def test_melu_classic_baselines_reproduce_the_reference_figures():
    """On MeLU's splits the bias baseline reaches MAE about 0.73 / 0.74 / 0.88 / 0.88."""
    melu = D.load_melu(data_dir("ml-1m", "melu"))
    results = melu_states(melu, ["bias", "als"], seeds=(0,))
    mae = results.metrics[results.metrics.metric == "MAE"].pivot(
        index="method", columns="setting", values="value")
    expected = {"warm_state": 0.73, "user_cold_state": 0.74, "item_cold_state": 0.88,
                "user_and_item_cold_state": 0.88}
    for state, value in expected.items():
        assert mae.loc["bias", state] == pytest.approx(value, abs=0.02), state
    assert mae.loc["als", "warm_state"] < mae.loc["bias", "warm_state"]


@pytest.mark.data
@pytest.mark.slow
def test_quick_sample_on_movielens():
    melu = D.load_melu(data_dir("ml-1m", "melu"))
    results = melu_states(melu, ["bias", "metasgd"], seeds=(0,), max_users=150,
                          neural_params={"max_epochs": 1})
    assert len(results.metrics) == 2 * 4 * 4
    ml100k = D.load_movielens_100k(data_dir("ml-100k"))
    curves = support_curves(ml100k, ["popularity", "bias", "fomaml"], seeds=(0,), ks=(0, 5),
                            max_test_users=60, max_train_users=300,
                            neural_params={"max_epochs": 1})
    assert set(curves.metrics.dataset) == {"ml-100k"}
    assert curves.metrics.value.notna().all()


def test_parts_run_apart_merge_into_the_report_of_the_whole(fake_melu, synthetic, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "evaluate_bench", Path(__file__).resolve().parents[1] / "benchmarks" / "evaluate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    melu = melu_states(fake_melu, ["bias", "als"], seeds=(0,), n_query=5)
    curves = support_curves(synthetic, ["bias", "popularity"], seeds=(0,), ks=(0, 3, 10),
                            n_unrated=10)
    write_report(melu, tmp_path / "a", plots=False)
    write_report(curves, tmp_path / "b", plots=False)
    out = tmp_path / "merged"
    assert bench.main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"),
                       "--out", str(out)]) == 0
    whole = write_report(melu + curves, tmp_path / "whole").read_text()
    merged = (out / "report.md").read_text()
    assert merged.split("## ")[1:] == whole.split("## ")[1:]  # every table, notes aside
    # a merged folder merges again into the same report: its metrics.csv mixes states and
    # k in one column, which reads back as text, and k = 10 came before k = 3
    assert bench.main(["--merge", str(out), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "report.md").read_text()
    assert again.split("## ")[1:] == whole.split("## ")[1:]
    assert "| k=0 | k=3 | k=10 |" in again
    with pytest.raises(SystemExit, match="more than one folder"):
        bench.main(["--merge", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(out)])


def test_your_own_csv_ids_are_text_repeated_pairs_kept_once_and_feature_keys_checked(
        tmp_path):
    """Ids 007 and 7 are two users (read_csv made both 7); a repeated (user, item) pair
    keeps its last row, with a warning; a feature file without its key column is a
    DataError before anything runs (a KeyError traceback after the baselines ran)."""
    from recmeta import DataError
    from recmeta.evaluate.runner import own_data

    (tmp_path / "r.csv").write_text("user_id,item_id,rating\n007,1,4\n7,1,2\n7,2,5\n"
                                    "7,2,3\n")
    with pytest.warns(UserWarning, match=r"1 repeated \(user_id, item_id\) row\(s\): the "
                                         r"last of each pair is kept"):
        data = own_data(tmp_path / "r.csv")
    assert sorted(data.ratings.user_id.unique()) == ["007", "7"]
    assert data.ratings.rating.tolist() == [4, 2, 3]
    (tmp_path / "u.csv").write_text("uid,age\n007,30\n7,40\n")
    with pytest.raises(DataError, match=r"u.csv has no column 'user_id'; a feature table "
                                        r"needs its key column"), \
            pytest.warns(UserWarning, match="repeated"):  # the ratings are read first
        own_data(tmp_path / "r.csv", users=tmp_path / "u.csv")
    result = CliRunner().invoke(main, ["evaluate", "--ratings", str(tmp_path / "r.csv"),
                                       "--users", str(tmp_path / "u.csv"), "--no-plots",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "has no column 'user_id'" in result.output
    assert not (tmp_path / "out").exists()


def test_the_public_submodules_are_attributes_of_a_bare_import_recmeta():
    """``import recmeta; help(recmeta.evaluate)`` raised AttributeError."""
    import subprocess
    import sys

    code = ("import recmeta; print(recmeta.evaluate.support_curves.__name__, "
            "recmeta.datasets.load_movielens_100k.__name__, 'fastpath' in dir(recmeta))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["support_curves", "load_movielens_100k", "True"]
