"""Dataset loaders: parsing on tiny made-up files in the official formats, then the real files
(``RECMETA_DATA``, default ``../shared/data``; skipped when absent)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from recmeta import MetaRecommender
from recmeta import datasets as D
from recmeta.exceptions import DataError

DATA = Path(os.environ.get("RECMETA_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def data_dir(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"needs the MovieLens files at {path} (set RECMETA_DATA)")
    return path


# ------------------------------------------------------------ made-up official files
@pytest.fixture
def ml100k(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t4\t881250949\n2\t10\t2\t881250950\n1\t11\t5\t8\n")
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
    flags = ["0"] * 19
    action = flags.copy()
    action[1] = action[4] = "1"
    (tmp_path / "u.item").write_bytes(
        ("10|Caf\xe9 (1995)|01-Jan-1995||http://x|" + "|".join(action) + "\n"
         "11|Odd (1996)|||http://y|" + "|".join(flags) + "\n").encode("latin-1"))
    return tmp_path


@pytest.fixture
def ml1m(tmp_path):
    root = tmp_path / "ml-1m"
    (root / "melu").mkdir(parents=True)
    (root / "ratings.dat").write_text("1::10::5\n1::11::3\n2::10::4\n")
    (root / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072-1234\n")
    (root / "movies.dat").write_bytes("10::Caf\xe9 (1995)::Animation|Comedy\n11::B (1999)::Drama\n"
                                      .encode("latin-1"))
    melu = root / "melu"
    (melu / "movies_extrainfos.dat").write_text(
        "10::A::1995::PG::x::Comedy, Drama::Ann Lee (co-director), Bo Ma::w::Cy D, Ed F::p::u\n"
        "11::B::1999::N/A::x::N/A::N/A::w::Gil H::p::u\n", encoding="utf-8")
    for state in D.MELU_STATES:
        (melu / f"{state}.json").write_text(json.dumps({"1": ["10", "11", "10"], "2": ["11"]}))
        (melu / f"{state}_y.json").write_text(json.dumps({"1": [5, 3, 4], "2": [2]}))
    (melu / "m_rate.txt").write_text("PG\nR")
    return root


def test_movielens_100k_format(ml100k):
    data = D.load_movielens_100k(ml100k)
    assert data.ratings.columns.tolist() == ["user_id", "item_id", "rating", "timestamp"]
    assert data.items.genres.tolist() == ["Action|Children's", ""]
    assert data.items.year.iloc[0] == 1995 and np.isnan(data.items.year.iloc[1])
    assert data.users.zip.tolist() == ["85711", "T8H1N"]
    assert data.X.columns.tolist() == ["user_id", "item_id", "age", "gender", "occupation",
                                       "zip", "genres", "year"]
    assert data.X.gender.tolist() == ["M", "F", "M"]
    assert data.y.tolist() == [4.0, 2.0, 5.0]


def test_movielens_1m_format_with_and_without_timestamps(ml1m):
    data = D.load_movielens_1m(ml1m)
    assert data.ratings.columns.tolist() == ["user_id", "item_id", "rating"]
    assert data.items.year.tolist() == [1995.0, 1999.0]
    assert data.users.age.tolist() == ["1", "56"]
    (ml1m / "ratings.dat").write_text("1::10::5::978300760\n")
    assert "timestamp" in D.load_movielens_1m(ml1m).ratings


def test_melu_format(ml1m):
    melu = D.load_melu(ml1m / "melu")
    warm = melu.states["warm_state"]
    # user 1 rated movie 10 twice: the last rating is kept
    assert sorted(zip(warm.user_id, warm.item_id, warm.rating, strict=True)) == [
        (1, 10, 4.0), (1, 11, 3.0), (2, 11, 2.0)]
    assert melu.users.zip.tolist() == ["48067", "70072"]
    first, second = melu.items.iloc[0], melu.items.iloc[1]
    assert first.directors == "Ann Lee|Bo Ma"  # parenthesised notes dropped, as MeLU
    assert first.genres == "Comedy|Drama" and first.actors == "Cy D|Ed F"
    assert second[["rate", "genres", "directors"]].isna().all() and second.actors == "Gil H"
    assert melu.vocabularies["rate"] == ["PG", "R"]
    state = melu.state("item_cold_state")
    assert state.X.columns.tolist() == ["user_id", "item_id", *D.MELU_USER_FIELDS,
                                        *D.MELU_ITEM_FIELDS]


def test_loader_errors_say_what_to_do(ml1m, tmp_path):
    with pytest.raises(DataError, match="ml-100k folder"):
        D.load_movielens_100k(tmp_path)
    with pytest.raises(DataError, match="Unknown MeLU state"):
        D.load_melu(ml1m / "melu", states=("cold",))
    (ml1m / "melu" / "warm_state_y.json").write_text(json.dumps({"1": [5], "2": [2]}))
    with pytest.raises(DataError, match="one rating per movie"):
        D.load_melu(ml1m / "melu")
    with pytest.raises(DataError, match="Unknown MeLU state"):
        D.load_melu(ml1m / "melu", states=("user_cold_state",)).state("warm_state")


def test_features_keep_row_order_and_fill_unknown_ids(ml100k):
    data = D.load_movielens_100k(ml100k)
    rows = data.ratings.iloc[[2, 0]].assign(extra=1)
    joined = data.features(rows)
    assert joined.item_id.tolist() == [11, 10] and "extra" not in joined
    unknown = data.features(rows.assign(user_id=99))
    assert unknown.gender.isna().all()


# ------------------------------------------------------------------------ real files
@pytest.mark.data
def test_real_movielens_100k():
    data = D.load_movielens_100k(data_dir("ml-100k"))
    assert data.ratings.shape == (100_000, 4)
    assert data.users.shape[0] == 943 and data.items.shape[0] == 1682
    assert data.ratings.rating.between(1, 5).all()


@pytest.mark.data
@pytest.mark.slow
def test_real_movielens_1m():
    data = D.load_movielens_1m(data_dir("ml-1m"))
    assert len(data.ratings) == 1_000_209
    assert data.ratings.user_id.nunique() == 6040 and data.ratings.item_id.nunique() == 3706
    assert data.ratings.groupby("user_id").size().min() >= 20


@pytest.mark.data
def test_real_melu_splits_match_the_data_readme():
    melu = D.load_melu(data_dir("ml-1m", "melu"))
    expected = {"warm_state": (4832, 640_448 - 4, 2653),  # 4 repeated ratings dropped
                "user_cold_state": (1208, 163_702, 668),
                "item_cold_state": (4769, 157_456, 2863),
                "user_and_item_cold_state": (1197, 38_603, 723)}
    for state, (n_users, n_rows, n_eligible) in expected.items():
        frame = melu.states[state]
        sizes = frame.groupby("user_id").size()
        assert (frame.user_id.nunique(), len(frame), sizes.between(13, 100).sum()) == (
            n_users, n_rows, n_eligible)
        assert set(frame.item_id) <= set(melu.items.item_id)
    # every feature value is in MeLU's own vocabulary files
    for name in D.MELU_ITEM_FIELDS:
        values = {v for row in melu.items[name].dropna() for v in row.split("|")}
        assert values <= {v.strip() for v in melu.vocabularies[name]}, name
    for name in D.MELU_USER_FIELDS:
        assert set(melu.users[name]) <= set(melu.vocabularies[name]), name


@pytest.mark.data
def test_real_data_fits_the_estimator():
    data = D.load_movielens_100k(data_dir("ml-100k"))
    users = data.ratings.user_id.unique()[:40]
    sample = data.subset(data.ratings[data.ratings.user_id.isin(users)])
    model = MetaRecommender(max_epochs=1, random_state=0, verbose=0).fit(sample.X, sample.y)
    assert model.schema_.user_fields == data.user_features
    assert set(model.schema_.item_fields) == set(data.item_features)
