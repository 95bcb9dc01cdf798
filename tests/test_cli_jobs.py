"""``recmeta train | score | recommend | demo``: outputs, exit codes, and SIGKILL + resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import torch
from click.testing import CliRunner

from recmeta import MetaRecommender, make_synthetic
from recmeta.adapters import migrate, runs, training
from recmeta.adapters.batch import BatchScorer
from recmeta.adapters.scoring import NightlyJob, ScoreSettings
from recmeta.adapters.sql import Entities, Interactions, SqlReader, SqlSource
from recmeta.cli import main
from recmeta.cli._common import parse_params

TABLES = ["--users", "app_users", "--items", "app_items"]


def invoke(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def stdout_json(result) -> dict:
    return json.loads(result.stdout)


def test_train_from_the_database_registers_the_model(filled_engine, db_url, tmp_path):
    out = tmp_path / "m"
    result = invoke("train", "--db", db_url, *TABLES, "--out", out, "--name", "nightly",
                    "--param", "max_epochs=1", "--param", "hidden=[8]",
                    "--param", "embedding_dim=4", "--param", "random_state=0")
    summary = stdout_json(result)
    assert summary["model_id"] == 1 and summary["metrics"]["n_users"] == 40
    model = MetaRecommender.load(out)
    assert model.hidden == (8,) and model.schema_.user_fields == ["gender", "age", "occupation"]
    with filled_engine.connect() as conn:
        row = conn.execute(sa.text("SELECT name, artifact FROM recmeta_models")).one()
    assert row == ("nightly", str(out.resolve()))


def test_train_warns_of_a_feature_column_that_numbers_the_rows(filled_engine, db_url,
                                                              sql_data, tmp_path):
    """pandas' to_sql writes its index as a column ``index`` unless told index=False: train
    read it as a user feature without a word. It still reads it (the features were not
    named), and says so; named features, or tables without one, say nothing."""
    sql_data.users.sample(frac=1.0, random_state=0).reset_index(drop=True).to_sql(
        "pandas_users", filled_engine)  # index=True, the default: 0 to 39, one per row
    small = ["--param", "max_epochs=1", "--param", "hidden=[8]", "--out", tmp_path / "m"]
    result = invoke("train", "--db", db_url, "--users", "pandas_users", *small)
    said = [w for w in stdout_json(result)["warnings"] if "numbers its rows" in w]
    assert said == ["The column 'index' of the users table 'pandas_users' numbers its rows "
                    "(each of 0 or 1 to the number of rows once; pandas' to_sql writes its "
                    "index so unless given index=False): it was read as a feature, which "
                    "describes no user. Drop it, or name the features to read with "
                    "--user-features."]
    assert "index" in MetaRecommender.load(tmp_path / "m").schema_.user_fields
    for args in (["--users", "pandas_users", "--user-features", "gender,age"], TABLES):
        result = invoke("train", "--db", db_url, *args, *small[:-2], "--out", tmp_path / "n")
        assert "numbers its rows" not in result.output


def test_an_id_whose_directory_was_trained_into_again_is_refused(filled_engine, db_url,
                                                                 tmp_path):
    """Trained twice into one --out, the directory is registered as models 1 and 2; score
    --model 1 loaded model 2's weights, and its run recorded model 1, whose row describes
    the parameters and metrics of the first training. Now model 1 is refused, and the
    message says which id holds what the directory holds now."""
    out = tmp_path / "m2"
    args = ["train", "--db", db_url, *TABLES, "--out", out, "--param", "max_epochs=1",
            "--param", "embedding_dim=4", "--param", "random_state=0"]
    first = stdout_json(invoke(*args, "--param", "hidden=[8]"))
    assert first["model_id"] == 1 and not any("replaced" in w for w in first["warnings"])
    second = invoke(*args, "--param", "hidden=[4]")
    assert stdout_json(second)["model_id"] == 2
    told = f"{out} held model 1 of the registry, which this model replaced"
    assert told in " ".join(second.output.split())  # on stderr as it trains
    assert any(w.startswith(told) for w in stdout_json(second)["warnings"])
    for command in (["score"], ["recommend", "--user", 3]):
        result = invoke(*command, "--db", db_url, *TABLES, "--model", 1, ok=False)
        assert result.exit_code == 2, result.output
        # its row is still in recmeta_models: it said "Model 1 of the registry no longer
        # exists"
        assert (f"Model 1 of the registry is no longer what its directory {out.resolve()} "
                f"holds: a later `recmeta train --out` trained into it (registered as model "
                f"2), so its weights are not those that model 1's row in recmeta_models (its "
                f"parameters and metrics) describes.") in " ".join(result.output.split())
        assert "Use --model 2, the model it holds now." in result.output
    with filled_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM recmeta_runs")).scalar() == 0
    summary = stdout_json(invoke("score", "--db", db_url, *TABLES, "--model", 2, "-n", 3))
    assert summary["model_id"] == 2 and summary["status"] == "finished"
    # named by its directory, the model is the row registered with what it holds: 2
    summary = stdout_json(invoke("score", "--db", db_url, *TABLES, "--model", out, "-n", 3))
    assert summary["model_id"] == 2


def test_train_says_what_fit_warns_of_in_its_own_words(tmp_path, sql_data):
    """fit's warnings (here two duplicate rows) came out as Python's "path:line: UserWarning"
    lines, unlike every other warning of the command line."""
    frame = sql_data.X.assign(stars=sql_data.y).rename(columns={"user_id": "uid"})
    pd.concat([frame, frame.head(2)]).to_csv(tmp_path / "ratings.csv", index=False)
    result = invoke("train", "--file", tmp_path / "ratings.csv", "--user-col", "uid",
                    "--rating-col", "stars", "--time-col", "", "--out", tmp_path / "m",
                    "--param", "max_epochs=1")
    assert "recmeta: warning: 2 duplicate (user, item) row(s): recmeta keeps the last" in (
        result.stderr)
    assert "UserWarning" not in result.stderr and ".py:" not in result.stderr
    # not the Python API's "Deduplicate X to silence this.": the command line has no X
    assert "Deduplicate X" not in result.stderr
    assert (f"Keep one row per user and item in {str(tmp_path / 'ratings.csv')!r} to silence "
            f"this.") in " ".join(result.stderr.split())
    [said] = stdout_json(result)["warnings"]  # in the summary too, as score's are
    assert said.startswith("2 duplicate (user, item) row(s)")


def test_train_from_a_file(tmp_path, sql_data):
    path = tmp_path / "ratings.csv"
    frame = sql_data.X.assign(stars=sql_data.y).rename(columns={"user_id": "uid"})
    frame.to_csv(path, index=False)
    result = invoke("train", "--file", path, "--user-col", "uid", "--rating-col", "stars",
                    "--time-col", "", "--out", tmp_path / "m", "--param", "max_epochs=1")
    assert stdout_json(result)["model_id"] is None
    assert MetaRecommender.load(tmp_path / "m").schema_.item_fields == ["genres", "decade",
                                                                         "length"]
    # a file without the default time column: the error says how to do without one
    result = invoke("train", "--file", path, "--user-col", "uid", "--rating-col", "stars",
                    "--out", tmp_path / "m2", ok=False)
    assert result.exit_code == 2 and "no column 'timestamp'" in result.output
    assert "--time-col '' when there is no time column" in result.output


def test_train_from_a_parquet_file_of_uuid_and_decimal_ids(tmp_path, sql_data,
                                                          monkeypatch):
    """A Parquet file's UUID and DECIMAL id columns read as uuid.UUID and Decimal: train
    fitted the whole model, then save() refused the ids. They are their text now, as train
    reads them from the database. Without pyarrow, pandas' ImportError was a traceback."""
    pytest.importorskip("pyarrow")
    import decimal
    import uuid
    frame = sql_data.X.assign(rating=sql_data.y)
    frame["user_id"] = [decimal.Decimal(f"{u}.00") for u in frame["user_id"]]
    frame["item_id"] = [uuid.UUID(int=int(i)) for i in frame["item_id"]]
    path = tmp_path / "ratings.parquet"
    frame.to_parquet(path, index=False)
    assert isinstance(pd.read_parquet(path)["item_id"].iloc[0], uuid.UUID)
    invoke("train", "--file", path, "--time-col", "", "--out", tmp_path / "m",
           "--param", "max_epochs=1")
    model = MetaRecommender.load(tmp_path / "m")
    first = sql_data.X["item_id"].iloc[0]
    assert str(uuid.UUID(int=int(first))) in set(model.items_.ids)
    assert set(model.users_.ids) == {str(u) for u in sql_data.X["user_id"]}
    monkeypatch.setattr(pd, "read_parquet", lambda path: (_ for _ in ()).throw(
        ImportError("Unable to find a usable engine")))
    result = invoke("train", "--file", path, "--time-col", "", "--out", tmp_path / "m2",
                    ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "needs pyarrow, which is not installed: pip install 'recmeta[parquet]'" in (
        " ".join(result.output.split()))


@pytest.mark.parametrize("args, message", [
    (["--param", "max_epochs=-1"], "max_epochs"),
    (["--param", "no_such_param=1"], "no_such_param"),
    (["--param", "oops"], "KEY=VALUE"),
    (["--interactions", "nope"], "'nope' does not exist"),
    (["--user-col", "uid"], "no column 'uid'"),
])
def test_train_bad_input_exits_2(filled_engine, db_url, tmp_path, args, message):
    result = invoke("train", "--db", db_url, "--out", tmp_path / "m", *args, ok=False)
    assert result.exit_code == 2 and message in result.output


def test_train_refuses_a_rating_column_without_numbers_as_score_does(sqlite_url, sql_data,
                                                                     tmp_path):
    """Ratings written as words: score said "The rating column 'stars' holds no numbers",
    train dropped every row and said only fit's "X is empty (0 rows)"."""
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    rows = sql_data.interactions.assign(stars=sql_data.interactions["rating"].map(words))
    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE ratings (uid INTEGER, sku INTEGER, stars TEXT, "
                             "ts INTEGER)")
        conn.exec_driver_sql("INSERT INTO ratings VALUES (?, ?, ?, ?)", [
            tuple(r) for r in rows[["user_id", "item_id", "stars", "timestamp"]]
            .itertuples(index=False)])
    engine.dispose()
    rows[["user_id", "item_id", "stars"]].to_csv(tmp_path / "ratings.csv", index=False)
    said = ("The rating column 'stars' holds no numbers (e.g. '{}'). Map the column of "
            "ratings, or pass --rating-col '' (every row counts as a 1) for a model of 0/1 "
            "feedback.")
    for where in (["--db", sqlite_url, "--interactions", "ratings", "--user-col", "uid",
                   "--item-col", "sku", "--time-col", "ts"],
                  ["--file", tmp_path / "ratings.csv", "--time-col", ""]):
        result = invoke("train", *where, "--rating-col", "stars", "--out", tmp_path / "m",
                        ok=False)
        assert result.exit_code == 2, result.output
        assert said.format(rows["stars"].iloc[0]) in " ".join(result.output.split())
        assert not (tmp_path / "m").exists()


def test_train_says_so_when_every_rating_is_null(sqlite_url, sql_data, tmp_path):
    """A rating column NULL in every row: train said only fit's "X is empty (0 rows)"."""
    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE ratings (uid INTEGER, sku INTEGER, stars REAL)")
        conn.exec_driver_sql("INSERT INTO ratings VALUES (?, ?, NULL)", [
            tuple(r) for r in sql_data.interactions[["user_id", "item_id"]].head(50)
            .itertuples(index=False)])
    engine.dispose()
    result = invoke("train", "--db", sqlite_url, "--interactions", "ratings", "--user-col",
                    "uid", "--item-col", "sku", "--rating-col", "stars", "--time-col", "",
                    "--out", tmp_path / "m", ok=False)
    assert result.exit_code == 2, result.output
    assert "None of the 50 interactions has a rating (each is NULL, NaN or not a number)" in \
        " ".join(result.output.split())
    assert not (tmp_path / "m").exists()


def test_train_names_the_mapped_time_column_when_its_kinds_are_mixed(sqlite_url, sql_data,
                                                                     tmp_path):
    """Unix times and ISO text in one column: train said fit's "Column 'timestamp'
    (time_col) ... pass time_col=None", names the command line user never gave."""
    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    rows = sql_data.interactions.head(60)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE ratings (uid INTEGER, sku INTEGER, stars REAL, "
                             "rated_at DATETIME)")
        conn.exec_driver_sql("INSERT INTO ratings VALUES (?, ?, ?, ?)", [
            (int(u), int(i), float(r), int(t) if k % 2 else "2024-03-01 10:00:00")
            for k, (u, i, r, t) in enumerate(rows[["user_id", "item_id", "rating",
                                                   "timestamp"]].itertuples(index=False))])
    engine.dispose()
    result = invoke("train", "--db", sqlite_url, "--interactions", "ratings", "--user-col",
                    "uid", "--item-col", "sku", "--rating-col", "stars", "--time-col",
                    "rated_at", "--out", tmp_path / "m", ok=False)
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "The time column 'rated_at' holds numbers (" in said and "and text ('2024" in said
    assert "--time-col ''" in said and "time_col" not in said.replace("--time-col", "")
    assert not (tmp_path / "m").exists()


def test_a_rating_that_is_not_a_number_is_dropped_and_said_to_be(sqlite_url, sql_data,
                                                                  sql_model_dir, tmp_path):
    """An 'n/a' in a REAL rating column is dropped and counted under null_rating (train:
    rows_dropped_null_rating), keys kept as they are (an interface); the help and the README
    said the count was of NULL/NaN ratings only."""
    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    rows = sql_data.interactions[["user_id", "item_id", "rating", "timestamp"]]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE ratings (uid INTEGER, sku INTEGER, stars REAL, "
                             "ts INTEGER)")
        conn.exec_driver_sql("INSERT INTO ratings VALUES (?, ?, ?, ?)",
                             [tuple(map(int, r)) for r in rows.itertuples(index=False)])
        conn.exec_driver_sql("INSERT INTO ratings VALUES (1, 0, 'n/a', 2000000000), "
                             "(2, 0, NULL, 2000000000)")
    engine.dispose()
    mapping = ["--db", sqlite_url, "--interactions", "ratings", "--user-col", "uid",
               "--item-col", "sku", "--rating-col", "stars", "--time-col", "ts"]
    scored = stdout_json(invoke("score", *mapping, "--model", sql_model_dir, "-n", 3))
    assert scored["history_rows"]["dropped"]["null_rating"] == 2
    honest = "NULL, NaN or not a number"
    for command in ("score", "train"):
        assert honest in " ".join(invoke(command, "--help").output.split())
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert f"a rating that is {honest} (`'n/a'`, say; all counted as `null_rating`" in readme
    assert "NULL/NaN" not in readme


@pytest.mark.parametrize("value, parsed", [
    ("(16,16)", (16, 16)), ("16,16", (16, 16)), ("[16, 16]", (16, 16)), ("(16,)", (16,)),
    ("None", None), ("null", None), ("True", True), ("3", 3), ("1e-3", 0.001),
    ("adam", "adam"), ("cuda:0", "cuda:0"), ('"3"', "3"), ("", ""),
])
def test_param_values_are_json_or_python_literals(value, parsed):
    assert parse_params((f"key={value}",)) == {"key": parsed}


def test_train_takes_the_tuples_and_none_its_messages_name(filled_engine, db_url, tmp_path):
    # the message names a tuple, such as (64, 64): written so, or as 8,8, it is taken
    result = invoke("train", "--db", db_url, *TABLES, "--out", tmp_path / "bad",
                    "--param", "hidden=16", ok=False)
    assert result.exit_code == 2 and "such as (64, 64)" in result.output
    invoke("train", "--db", db_url, *TABLES, "--out", tmp_path / "m", "--param", "max_epochs=1",
           "--param", "hidden=(8,4)", "--param", "embedding_dim=4",
           "--param", "random_state=None")
    assert MetaRecommender.load(tmp_path / "m").hidden == (8, 4)
    invoke("train", "--db", db_url, *TABLES, "--out", tmp_path / "m2", "--param",
           "max_epochs=1", "--param", "hidden=8,4", "--param", "embedding_dim=4")
    assert MetaRecommender.load(tmp_path / "m2").hidden == (8, 4)


def test_train_joins_the_feature_row_score_uses_and_warns_of_shared_or_null_keys(
        filled_engine, db_url, tmp_path, sql_data):
    """A key on two rows of a feature table doubled every interaction with it (each row
    joined once); now of rows sharing a key the one score uses is joined, and both a shared
    key and a NULL one are counted and warned about, as score does."""
    catalog = sa.Table("catalog", sa.MetaData(),
                       sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=False),
                       sa.Column("item_id", sa.Integer), sa.Column("genres", sa.String(100)),
                       sa.Column("decade", sa.String(10)), sa.Column("length", sa.Float))
    catalog.create(filled_engine)
    item5 = {"item_id": 5, "decade": "1930s", "length": 60.0}
    with filled_engine.begin() as conn:
        conn.execute(catalog.insert(), sql_data.items.assign(
            row_id=sql_data.items["item_id"] + 10).to_dict("records"))
        # item 5 on two more rows: the greatest row_id is used, not the last inserted
        conn.execute(catalog.insert(), [{"row_id": 1000, "genres": "western", **item5},
                                        {"row_id": 1, "genres": "noir", **item5},
                                        {"row_id": 2, "genres": "x", **item5, "item_id": None}])
        conn.execute(sa.text("INSERT INTO app_users SELECT * FROM app_users "
                             "WHERE user_id BETWEEN 1 AND 3"))
    reader = SqlReader(filled_engine, SqlSource(users=Entities("app_users", "user_id"),
                                                items=Entities("catalog", "item_id")))
    X, y, counts = training.frame_from_sql(reader)
    assert len(X) == len(y) == len(sql_data.interactions)
    assert (X["item_id"] == "5").any() and set(X.loc[X["item_id"] == "5", "genres"]) == {
        "western"}
    assert counts["feature_tables"] == {
        "users": {"null_keys": 0, "duplicate_keys": 3, "first_duplicates": [1, 2, 3]},
        "items": {"null_keys": 1, "duplicate_keys": 1, "first_duplicates": [5]}}

    result = invoke("train", "--db", db_url, "--users", "app_users", "--items", "catalog",
                    "--item-features", "genres,decade,length", "--out", tmp_path / "m",
                    "--param", "max_epochs=1", "--param", "hidden=[8]",
                    "--param", "embedding_dim=4")
    summary = stdout_json(result)
    assert summary["metrics"]["n_interactions"] == len(sql_data.interactions)
    assert summary["feature_tables"] == counts["feature_tables"]
    for warning in [
            "3 key(s) of the users table 'app_users' are on more than one row (user_id 1, 2, "
            "3): one row of each is used, and which one is not defined (no single-column "
            "primary key orders them). Make 'user_id' unique there.",
            "1 row(s) of the items table 'catalog' have a NULL key ('item_id'): they were "
            "not read.",
            "1 key(s) of the items table 'catalog' are on more than one row (item_id 5): one "
            "row of each is used, the one with the greatest 'row_id' (the table's primary "
            "key). Make 'item_id' unique there."]:
        assert f"recmeta: warning: {warning}\n" in result.stderr


MEMBERS = ["--interactions", "films_watched", "--user-col", "member_uuid", "--item-col",
           "film_code", "--users", "app_members", "--user-key", "member_uuid", "--items",
           "app_films", "--item-key", "film_code"]


@pytest.fixture
def members_engine(filled_engine, sql_data):
    """An application's own tables: members and films keyed by text codes, each with a
    surrogate primary key ``id`` and a ``lang``; two members, the same but for their lang,
    have no interactions (scored on their features)."""
    users = sql_data.users.assign(member_uuid="m" + sql_data.users["user_id"].astype(str),
                                  lang=["en", "fr", "de", "en"] * 10)
    users.loc[len(users)] = {"member_uuid": "new-en", "gender": "F", "lang": "en"}
    users.loc[len(users)] = {"member_uuid": "new-fr", "gender": "F", "lang": "fr"}
    films = sql_data.items.assign(film_code="f" + sql_data.items["item_id"].astype(str),
                                  lang=["fr", "en", "en"] * 10)
    meta = sa.MetaData()  # an autoincrementing id on SQLite and PostgreSQL alike
    for table, key, other in (("app_members", "member_uuid", "gender"),
                              ("app_films", "film_code", "genres")):
        sa.Table(table, meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                 *(sa.Column(name, sa.Text) for name in (key, other, "lang")))
    meta.create_all(filled_engine)
    users[["member_uuid", "gender", "lang"]].to_sql("app_members", filled_engine,
                                                    if_exists="append", index=False)
    films[["film_code", "genres", "lang"]].to_sql("app_films", filled_engine,
                                                  if_exists="append", index=False)
    sql_data.interactions.assign(
        member_uuid="m" + sql_data.interactions["user_id"].astype(str),
        film_code="f" + sql_data.interactions["item_id"].astype(str),
    )[["member_uuid", "film_code", "rating", "timestamp"]].to_sql(
        "films_watched", filled_engine, index=False)
    return filled_engine, users, films


@pytest.mark.parametrize("features", [[], ["--user-features", "gender,lang",
                                           "--item-features", "genres,lang"]],
                         ids=["default", "named"])
def test_feature_tables_sharing_a_column_name_train_score_and_recommend(
        members_engine, db_url, tmp_path, features):
    """Both tables' ``id`` came out of training's join as id_x and id_y, and train exited 2
    with "has no column 'id' ... Fix user_features=", an argument the command line never
    took; so did a ``lang`` of both. A table's primary key is no default feature now, and
    ``lang`` is two features, user.lang and item.lang, which score and recommend read from
    the tables as training did."""
    engine, users, films = members_engine
    out = tmp_path / "m"
    result = invoke("train", "--db", db_url, *MEMBERS, *features, "--out", out,
                    "--param", "max_epochs=1", "--param", "hidden=[8]",
                    "--param", "embedding_dim=4", "--param", "random_state=0")
    assert stdout_json(result)["metrics"]["n_users"] == 40
    model = MetaRecommender.load(out)
    assert model.schema_.user_fields == ["gender", "user.lang"]
    assert model.schema_.item_fields == ["genres", "item.lang"]

    summary = stdout_json(invoke("score", "--db", db_url, *MEMBERS, "--model", out, "-n", 3))
    assert summary["users"]["scored"] == 42 and summary["users"]["cold_start"] == 2
    rows = runs.read(engine, summary["run_id"])
    # the two new members differ by their lang alone: read, it tells them apart
    by_user = rows.groupby("user_id")["score"].apply(list)
    assert by_user["new-en"] != by_user["new-fr"]
    # what the job scores with: every film's lang, as the table holds it
    reader = SqlReader(engine, source_from_options(MEMBERS))
    with engine.connect() as conn:
        items, members = reader.features(conn, "item"), reader.features(conn, "user")
    scorer = BatchScorer(model, 3, True, False, items, items)
    for table, key, rows_of_db in ((scorer.item_table, "item_id", films),
                                   (scorer._user_features(members), "user_id", users)):
        side = key.split("_")[0]
        code = "film_code" if side == "item" else "member_uuid"
        assert dict(zip(table[key], table[f"{side}.lang"], strict=True)) == dict(
            zip(rows_of_db[code], rows_of_db["lang"], strict=True))
    one = stdout_json(invoke("recommend", "--db", db_url, *MEMBERS, "--model", out,
                             "--user", "new-fr", "-n", 3, "--json"))
    assert [r["item_id"] for r in one["recommendations"]] == rows.loc[
        rows["user_id"] == "new-fr", "item_id"].tolist()


def source_from_options(args: list[str]) -> SqlSource:
    """The SqlSource of the command line's mapping options (``--users x`` and so on)."""
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    return SqlSource(
        Interactions(pairs["--interactions"], pairs["--user-col"], pairs["--item-col"]),
        Entities(pairs["--users"], pairs["--user-key"]),
        Entities(pairs["--items"], pairs["--item-key"]))


def test_train_drops_and_counts_rows_without_an_id_and_keeps_integer_ids(
        null_id_engine, db_url, tmp_path, sql_data):
    """Integer id columns with NULLs came back as floats: merging the users table on them
    failed with pandas' "merge on float64 and str columns", and without a users table the
    model's ids would have been 3.0 for user 3. Now rows without a user or item id are
    dropped, counted and warned about, and the ids stay integers."""
    with null_id_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ev (uid INTEGER, sku INTEGER, stars FLOAT, "
                             "ts BIGINT)"))
        conn.execute(sa.text('INSERT INTO ev SELECT CAST(user_id AS INTEGER), CAST(item_id '
                             'AS INTEGER), rating, "timestamp" FROM events'))
    mapping = ["--interactions", "ev", "--user-col", "uid", "--item-col", "sku",
               "--rating-col", "stars", "--time-col", "ts"]
    result = invoke("train", "--db", db_url, *mapping, "--users", "app_users", "--out",
                    tmp_path / "m", "--param", "max_epochs=1", "--param", "hidden=[8]",
                    "--param", "embedding_dim=4")
    summary = stdout_json(result)
    # events: three rows without a user id (one lacks the item too), two without an item id
    # (one of them without a rating: counted once, as a row without an item id)
    assert (summary["rows_dropped_null_user_id"], summary["rows_dropped_null_item_id"],
            summary["rows_dropped_null_rating"]) == (3, 2, 0)
    assert summary["metrics"]["n_interactions"] == len(sql_data.interactions)
    for side, count, column in (("user", 3, "uid"), ("item", 2, "sku")):
        assert (f"recmeta: warning: {count} row(s) of table 'ev' have a NULL {side} id "
                f"(column {column!r}): they were not trained on.\n") in result.stderr
    model = MetaRecommender.load(tmp_path / "m")
    assert model.users_.ids.dtype == "int64" and model.items_.ids.dtype == "int64"
    assert set(model.users_.ids) == set(sql_data.interactions["user_id"])
    assert "gender" in model.schema_.user_fields  # the users table was joined

    # the same from a file, where pandas reads such columns as floats too
    path = tmp_path / "ev.csv"
    with null_id_engine.connect() as conn:
        pd.read_sql_table("ev", conn).to_csv(path, index=False)
    result = invoke("train", "--file", path, *mapping[2:], "--out", tmp_path / "f",
                    "--param", "max_epochs=1")
    summary = stdout_json(result)
    assert (summary["rows_dropped_null_user_id"], summary["rows_dropped_null_item_id"]) == (3, 2)
    assert f"row(s) of {str(path)!r} have a NULL user id" in result.stderr
    assert MetaRecommender.load(tmp_path / "f").users_.ids.dtype == "int64"

    # nothing left: a clear error, not an empty fit
    with null_id_engine.begin() as conn:
        conn.execute(sa.text("UPDATE ev SET uid = NULL"))
    result = invoke("train", "--db", db_url, *mapping, "--out", tmp_path / "e", ok=False)
    assert result.exit_code == 2 and "Every interaction lacks a user or an item id" in (
        result.output)


@pytest.mark.parametrize("rated_at, when", [
    ("DATETIME", int),  # Unix times, as an application may store them in a DATETIME column
    ("NUMERIC", lambda t: pd.Timestamp(t, unit="s").isoformat(sep=" ")),  # CREATE TABLE AS
], ids=["epoch-in-DATETIME", "iso-in-NUMERIC"])
def test_train_score_and_recommend_read_the_values_sqlite_columns_hold(
        sqlite_url, sql_data, sql_model_dir, tmp_path, rated_at, when):
    """SQLAlchemy's converters for the declared type raised on these (score: "TypeError:
    fromisoformat: argument must be str", a failed run to resume; train and recommend: a
    traceback, exit 1), and a DECIMAL rating column with an 'n/a' in it did the same. They
    are read as stored: the times put in order, the 'n/a' dropped and counted."""
    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    rows = [(int(u), int(i), float(r), when(int(t))) for u, i, r, t
            in sql_data.interactions[["user_id", "item_id", "rating", "timestamp"]]
            .itertuples(index=False)]
    rows.append((1, 0, "n/a", when(int(sql_data.interactions["timestamp"].max()) + 1)))
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE ratings (uid INTEGER, sku INTEGER, "
                             f"stars DECIMAL(2,1), rated_at {rated_at})")
        conn.exec_driver_sql("INSERT INTO ratings VALUES (?, ?, ?, ?)", rows)
    engine.dispose()
    mapping = ["--db", sqlite_url, "--interactions", "ratings", "--user-col", "uid",
               "--item-col", "sku", "--rating-col", "stars", "--time-col", "rated_at"]
    trained = stdout_json(invoke("train", *mapping, "--out", tmp_path / "m", "--param",
                                 "max_epochs=1", "--param", "hidden=[8]", "--param",
                                 "embedding_dim=4"))
    assert trained["metrics"]["n_interactions"] == len(sql_data.interactions)
    assert trained["rows_dropped_null_rating"] == 1
    scored = stdout_json(invoke("score", *mapping, "--model", sql_model_dir, "-n", 3))
    assert scored["status"] == "finished" and scored["users"]["scored"] == 40
    assert scored["history_rows"]["dropped"]["null_rating"] == 1
    shown = stdout_json(invoke("recommend", *mapping, "--model", sql_model_dir, "--user", 1,
                               "--json"))
    assert shown["counts"]["dropped_null_rating"] == 1 and shown["recommendations"]


def test_ids_of_a_uuid_or_numeric_column_are_read_as_text(engine, db_url, sql_data,
                                                          tmp_path):
    """A PostgreSQL UUID user id column (a NUMERIC one on SQLite, read as Decimal): train
    ran the whole fit, then exited 2 with save()'s "Only int or str user and item ids can
    be saved; convert the id columns with .astype(str)", no JSON, and --out half-written;
    and score counted every user of a model trained on the same ids through a text view
    as new (UUID objects never equal the model's strings). Ids of such columns are read as
    their text by train, score and recommend alike, and written so to
    recmeta_recommendations, where the app joins them on its column's text."""
    import uuid

    postgres = engine.dialect.name == "postgresql"
    kind, as_text = ("UUID", "CAST(uid AS TEXT)") if postgres else ("NUMERIC", "uid")
    migrate.upgrade(engine)
    uid = ((lambda u: str(uuid.uuid5(uuid.NAMESPACE_OID, str(u)))) if postgres
           else (lambda u: int(u)))
    rows = [(uid(u), int(i), float(r), int(t)) for u, i, r, t in sql_data.interactions[
        ["user_id", "item_id", "rating", "timestamp"]].itertuples(index=False)]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE ev (uid {kind}, sku INTEGER, stars FLOAT, "
                             f"ts BIGINT)")
        conn.execute(sa.text("INSERT INTO ev VALUES (:u, :i, :r, :t)"),
                     [dict(zip("uirt", row, strict=True)) for row in rows])
        conn.exec_driver_sql(f"CREATE VIEW ev_txt AS SELECT {as_text} AS uid, sku, stars, ts "
                             f"FROM ev")
    texts = {str(uid(u)) for u in sql_data.interactions["user_id"]}
    small = ["--param", "max_epochs=1", "--param", "hidden=[8]", "--param", "embedding_dim=4"]
    mapping = ["--user-col", "uid", "--item-col", "sku", "--rating-col", "stars",
               "--time-col", "ts"]
    trained = stdout_json(invoke("train", "--db", db_url, "--interactions", "ev", *mapping,
                                 "--out", tmp_path / "m", *small))
    assert trained["metrics"]["n_users"] == 40
    assert set(MetaRecommender.load(tmp_path / "m").users_.ids) == texts
    invoke("train", "--db", db_url, "--interactions", "ev_txt", *mapping, "--out",
           tmp_path / "t", *small)
    for model in ("m", "t"):  # trained on the column, or on its text through a view
        summary = stdout_json(invoke("score", "--db", db_url, "--interactions", "ev",
                                     *mapping, "--model", tmp_path / model, "-n", 3,
                                     "--batch-size", 7))
        assert summary["users"]["scored"] == 40 and summary["users"]["new"] == 0, model
        written = runs.read(engine, summary["run_id"])
        assert set(written["user_id"]) == texts
        with engine.connect() as conn:  # the app's join, on the column's text
            joined = conn.execute(sa.text(
                f"SELECT COUNT(*) FROM recmeta_recommendations r JOIN (SELECT DISTINCT uid "
                f"FROM ev) e ON {as_text.replace('uid', 'e.uid')} = r.user_id WHERE r.run_id "
                f"= :run"), {"run": summary["run_id"]}).scalar_one()
        assert joined == len(written) == 120
        one = sorted(texts)[0]
        shown = stdout_json(invoke("recommend", "--db", db_url, "--interactions", "ev",
                                   *mapping, "--model", tmp_path / model, "--user", one,
                                   "-n", 3, "--json"))
        assert "known to the model" in shown["explanation"], shown
        assert [str(r["item_id"]) for r in shown["recommendations"]] == written.loc[
            written["user_id"] == one, "item_id"].tolist()


def test_feature_kinds_follow_declared_types_and_older_models_keep_theirs(engine, db_url,
                                                                         sql_data, tmp_path):
    """An INTEGER feature column was categorical, but numeric as soon as one row was NULL
    (pandas made it floats), and a NUMERIC one (read as Decimal) was a vocabulary of
    categories. A new model takes an INTEGER column as categorical, NULLs or not, and a
    NUMERIC one as numeric; a model trained before keeps its kinds, and scoring encodes
    the columns as it encoded them in training."""
    migrate.upgrade(engine)
    sql_data.interactions.astype({"user_id": str, "item_id": str}).to_sql(
        "recmeta_interactions", engine, if_exists="append", index=False)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE films (item_id INTEGER, year INTEGER, "
                             "price NUMERIC(6, 2))")
        conn.execute(sa.text("INSERT INTO films VALUES (:i, :y, :p)"), [
            {"i": int(i), "y": None if i % 5 == 0 else 1930 + int(i) % 7,
             "p": int(i) % 4 + 0.99} for i in sql_data.items["item_id"]])
    mapping = ["--items", "films", "--item-key", "item_id"]
    small = ["--param", "max_epochs=1", "--param", "hidden=[8]", "--param", "embedding_dim=4"]
    invoke("train", "--db", db_url, *mapping, "--out", tmp_path / "new", *small)
    kinds = MetaRecommender.load(tmp_path / "new").schema_.kinds
    assert (kinds["year"], kinds["price"]) == (("item", "cat"), ("item", "num"))

    # a model trained before: the column of integers read as floats (it has a NULL), so
    # numeric, and the NUMERIC column's Decimals as categories
    reader = SqlReader(engine, SqlSource(Interactions(), None, Entities("films", "item_id")))
    X, y, _ = training.frame_from_sql(reader)
    X["year"] = X["year"].astype("float64")
    older = MetaRecommender(user_features=[], item_features=["year", "price"],
                            feature_kinds={"price": "cat"}, embedding_dim=4, hidden=(8,),
                            max_epochs=1, random_state=0, verbose=0).fit(X, y)
    assert older.schema_.kinds["year"] == ("item", "num")
    older.save(tmp_path / "older")
    older = MetaRecommender.load(tmp_path / "older")
    with engine.connect() as conn:
        items = reader.features(conn, "item")
    assert str(items["year"].dtype) == "Int64" and items["year"].isna().any()
    table = BatchScorer(older, 3, True, False, items, items).item_table
    rows = older.items_.positions(table["item_id"])
    known = table.loc[rows >= 0]  # the items of the interactions
    assert len(known) >= 25 and known["year"].isna().any()
    for field in older.feature_space_.side("item"):
        if field.name in ("year", "price"):
            np.testing.assert_array_equal(field.encode(known[field.name]),
                                          older.items_.encoded[field.name][rows[rows >= 0]])
    summary = stdout_json(invoke("score", "--db", db_url, *mapping, "--model",
                                 tmp_path / "older", "-n", 3))
    assert summary["status"] == "finished" and summary["users"]["scored"] == 40


def test_a_feature_column_its_declared_type_cannot_read_is_named(sqlite_url, sql_data,
                                                                   sql_model_dir, tmp_path):
    """A users table's DATETIME column of Unix times: train printed SQLAlchemy's traceback
    ("fromisoformat: argument must be str"), exit 1. Features are read by their declared
    types (their values are a model's keys), so the column is named instead, exit 2."""
    engine = sa.create_engine(sqlite_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE members (uid INTEGER, gender TEXT, joined DATETIME)")
        conn.exec_driver_sql("INSERT INTO members VALUES (?, ?, ?)", [
            (int(u), g, 1_700_000_000 + k) for k, (u, g)
            in enumerate(sql_data.users[["user_id", "gender"]].itertuples(index=False))])
    sql_data.interactions.to_sql("recmeta_interactions", engine, if_exists="append",
                                 index=False)
    engine.dispose()
    mapping = ["--db", sqlite_url, "--users", "members", "--user-key", "uid"]
    said = ("Table 'members': 'joined' (declared DATETIME) holds values its declared type "
            "cannot be read as (fromisoformat: argument must be str)")
    result = invoke("train", *mapping, "--out", tmp_path / "m", ok=False)
    assert result.exit_code == 2 and said in " ".join(result.output.split()), result.output
    assert not (tmp_path / "m").exists()
    result = invoke("train", *mapping, "--user-features", "gender", "--out", tmp_path / "m",
                    "--param", "max_epochs=1", "--param", "hidden=[8]", "--param",
                    "embedding_dim=4")  # named without it, the table trains
    assert stdout_json(result)["model_id"] == 1


def test_score_warns_of_candidates_it_cannot_rank(filled_engine, db_url, sql_model_dir):
    """Unknown ids in a candidates table without item features were counted
    (candidates.dropped_unknown) but not said among the warnings."""
    pd.DataFrame({"item_id": [1, 2, 3, 999, 998]}).to_sql("tonight", filled_engine,
                                                          index=False)
    result = invoke("score", "--db", db_url, "--model", sql_model_dir, *TABLES,
                    "--candidates", "tonight", "-n", 2)
    summary = stdout_json(result)
    assert summary["candidates"] == {"items": 3, "dropped_unknown": 2}
    warning = ("2 item(s) of the candidates table 'tonight' are unknown to the model, and the "
               "table lacks the item features that would score new items ('genres', "
               "'decade', 'length'): they were not ranked.")
    assert any(w.startswith(warning) for w in summary["warnings"])
    assert f"recmeta: warning: {warning}" in result.stderr


def test_score_prints_json_and_writes(filled_engine, db_url, sql_model_dir):
    result = invoke("score", "--db", db_url, "--model", sql_model_dir, *TABLES, "-n", 3,
                    "--batch-size", 16, "--progress")
    summary = stdout_json(result)
    assert summary["status"] == "finished" and summary["users"]["scored"] == 40
    assert summary["warnings"] == [] and "warning" not in result.stderr
    assert "run 1 started" in result.stderr and "--resume 1" in result.stderr
    assert "user/s" in result.stderr and "/40 " in result.stderr  # the bar, on stderr only
    assert len(runs.read(filled_engine, summary["run_id"])) == 120
    again = invoke("score", "--db", db_url, "--resume", summary["run_id"])
    assert stdout_json(again)["recommendations_written"] == 120


def test_score_that_reads_no_interactions_says_which_options_map_them(engine, db_url,
                                                                      sql_model_dir,
                                                                      sql_data):
    migrate.upgrade(engine)  # recmeta's own interactions table: there, and empty
    sql_data.users.to_sql("app_users", engine, index=False)
    result = invoke("score", "--db", db_url, "--model", sql_model_dir)
    summary = stdout_json(result)
    assert summary["status"] == "finished" and summary["users"]["seen"] == 0
    [warning] = summary["warnings"]
    assert "no interactions were read from table 'recmeta_interactions'" in warning
    assert "--interactions, --user-col" in warning and warning in result.stderr
    # users from a feature table, scored cold: still no interactions read, still said
    summary = stdout_json(invoke("score", "--db", db_url, "--model", sql_model_dir,
                                 "--users", "app_users"))
    assert summary["users"]["cold_start"] == 40 and len(summary["warnings"]) == 1


@pytest.mark.parametrize("args, message", [
    (["--interactions", 'x"; DROP TABLE app_users; --'], "does not exist"),
    (["--items", "catalog"], "Tables there:"),
    (["--resume", "99"], "no run 99"),
    (["--model", "nowhere"], "neither a registered model id nor a model directory"),
    (["--model", "7"], "No model 7 in the registry"),
])
def test_score_bad_input_exits_2(filled_engine, db_url, sql_model_dir, args, message):
    base = [] if "--model" in args or "--resume" in args else ["--model", sql_model_dir]
    result = invoke("score", "--db", db_url, *base, *args, ok=False)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "app_users" in sa.inspect(filled_engine).get_table_names()


def test_broken_model_fails_before_anything_is_written(filled_engine, db_url, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    result = invoke("score", "--db", db_url, "--model", broken, ok=False)
    assert result.exit_code == 2, result.output
    with filled_engine.connect() as conn:
        for table in ("recmeta_models", "recmeta_runs"):
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0


@pytest.mark.parametrize("signum, where", [
    (signal.SIGTERM, "scoring"), (signal.SIGINT, "scoring"), (signal.SIGTERM, "reading"),
], ids=["SIGTERM", "SIGINT", "SIGTERM-mid-read"])
def test_sigterm_or_sigint_marks_the_run_failed_prints_the_summary_and_resumes(
        filled_engine, db_url, sql_model_dir, monkeypatch, signum, where):
    from sqlalchemy.engine.default import DefaultDialect

    from recmeta.adapters.batch import BatchScorer

    args = ["--model", sql_model_dir, *TABLES, "-n", 3, "--batch-size", 8, "--no-progress"]
    expected = runs.read(filled_engine, stdout_json(invoke("score", "--db", db_url,
                                                          *args))["run_id"])
    score, execute, calls = BatchScorer.score, DefaultDialect.do_execute, []

    def signalled_in_batch_two(self, *a, **kw):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)
        return score(self, *a, **kw)

    def signalled_in_the_user_read_of_batch_two(self, cursor, statement, *a, **kw):
        execute(self, cursor, statement, *a, **kw)
        if statement.startswith("SELECT app_users.user_id AS user_id"):
            calls.append(1)
            if len(calls) == 2:  # its cursor is open: the run is marked failed all the same
                os.kill(os.getpid(), signum)

    # had the command no handler of its own, SIGTERM would end pytest: note it instead
    unhandled = []
    previous = signal.signal(signal.SIGTERM, lambda *_: unhandled.append(1))
    if where == "scoring":
        monkeypatch.setattr(BatchScorer, "score", signalled_in_batch_two)
    else:
        monkeypatch.setattr(DefaultDialect, "do_execute", signalled_in_the_user_read_of_batch_two)
    try:
        result = invoke("score", "--db", db_url, *args, ok=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
        monkeypatch.undo()
    assert not unhandled and result.exit_code == 1, result.output
    summary = stdout_json(result)  # the summary, as a failed batch prints it
    run_id = summary["run_id"]
    assert summary["status"] == "failed" and summary["users"]["seen"] == 8
    assert f"--resume {run_id}" in result.stderr
    assert runs.load(filled_engine, run_id).status == "failed"
    resumed = stdout_json(invoke("score", "--db", db_url, "--resume", run_id))
    assert resumed["status"] == "finished" and resumed["users"]["scored"] == 40
    pd.testing.assert_frame_equal(runs.read(filled_engine, run_id), expected, check_exact=True)


@pytest.mark.parametrize("signum, where", [
    (signal.SIGTERM, "insert"), (signal.SIGTERM, "commit"), (signal.SIGTERM, "before-run"),
    (signal.SIGINT, "before-run"),
], ids=["SIGTERM-in-insert", "SIGTERM-in-commit", "SIGTERM-before-run", "SIGINT-before-run"])
def test_a_signal_as_the_run_is_created_marks_it_failed_or_leaves_none(
        filled_engine, db_url, sql_model_dir, monkeypatch, signum, where):
    """The handler is set before the run row exists: a signal in its insert leaves no run; in
    its commit, or before the run starts, one marked failed, summarised and resumable."""
    from sqlalchemy.engine.default import DefaultDialect

    from recmeta.cli import jobs

    args = ["--model", sql_model_dir, *TABLES, "-n", 3, "--batch-size", 8, "--no-progress"]
    expected = runs.read(filled_engine, stdout_json(invoke("score", "--db", db_url,
                                                          *args))["run_id"])
    execute, commit, note, inserted = (DefaultDialect.do_execute, DefaultDialect.do_commit,
                                       jobs.note, [])

    def signalled_after_the_insert(self, cursor, statement, *a, **kw):
        execute(self, cursor, statement, *a, **kw)
        if statement.startswith("INSERT INTO recmeta_runs"):
            inserted.append(1)
            if where == "insert":  # before its commit: rolled back
                os.kill(os.getpid(), signum)

    def signalled_after_its_commit(self, connection):
        commit(self, connection)
        if where == "commit" and inserted == [1]:
            inserted.append(1)
            os.kill(os.getpid(), signum)

    def signalled_as_it_says_started(message):
        note(message)
        if where == "before-run" and "started" in message:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(DefaultDialect, "do_execute", signalled_after_the_insert)
    monkeypatch.setattr(DefaultDialect, "do_commit", signalled_after_its_commit)
    monkeypatch.setattr(jobs, "note", signalled_as_it_says_started)
    unhandled = []  # had the command no handler yet, SIGTERM would end pytest: note it
    previous = signal.signal(signal.SIGTERM, lambda *_: unhandled.append(1))
    try:
        result = invoke("score", "--db", db_url, *args, ok=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
        monkeypatch.undo()
    name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
    assert not unhandled and result.exit_code == 1, result.output
    with filled_engine.connect() as conn:
        ids = conn.execute(sa.select(runs.runs.c.id).order_by(runs.runs.c.id)).scalars().all()
    if where == "insert":
        assert ids == [1] and result.stdout == ""
        assert f"Stopped by {name} before a run was created: there is nothing to resume." \
            in result.stderr
        return
    assert ids == [1, 2]
    summary = stdout_json(result)
    assert summary["run_id"] == 2 and summary["status"] == "failed"
    assert summary["users"]["seen"] == 0 and summary["error"].startswith(
        "Terminated: SIGTERM" if name == "SIGTERM" else "KeyboardInterrupt")
    assert f"Run 2 stopped by {name}. Resume it with --resume 2." in result.stderr
    assert runs.load(filled_engine, 2).status == "failed"
    if where == "before-run":  # and a resume stopped while it loads the model: as it was
        load = MetaRecommender.load.__func__

        def signalled_loading(cls, path):
            os.kill(os.getpid(), signum)
            return load(cls, path)

        monkeypatch.setattr(MetaRecommender, "load", classmethod(signalled_loading))
        try:
            result = invoke("score", "--db", db_url, "--resume", 2, ok=False)
        finally:
            monkeypatch.undo()
        assert result.exit_code == 1 and stdout_json(result) == {**summary, "resumed": True}
        assert f"Run 2 stopped by {name}. Resume it with --resume 2." in result.stderr
        assert runs.load(filled_engine, 2).status == "failed"
    resumed = stdout_json(invoke("score", "--db", db_url, "--resume", 2))
    assert resumed["status"] == "finished" and resumed["users"]["scored"] == 40
    pd.testing.assert_frame_equal(runs.read(filled_engine, 2), expected, check_exact=True)


def test_a_run_another_process_works_on_prints_its_summary_and_exits_1(
        filled_engine, db_url, sql_model_dir, monkeypatch):
    """The second of two processes on one run (two --resume at once) exited 1 without the
    JSON summary the README promises with exit 1; it prints the run as it stands."""
    real, calls = runs.advance, []

    def taken(conn, run_id, done, checkpoint):
        calls.append(1)
        if len(calls) == 2:  # the other process committed this batch first
            raise runs.RunConflict(f"Run {run_id} moved past batch {done} in another "
                                   f"process; this one stops.")
        return real(conn, run_id, done, checkpoint)

    monkeypatch.setattr(runs, "advance", taken)
    result = invoke("score", "--db", db_url, "--model", sql_model_dir, "-n", 3,
                    "--batch-size", 7, ok=False)
    assert result.exit_code == 1 and "in another process" in result.output
    summary = stdout_json(result)
    assert summary["status"] == "running" and summary["users"]["seen"] == 7  # one batch
    # with exit 1 it said "error": null, and its counts read as this process's
    assert summary["error"] == (
        "Run 1 moved past batch 1 in another process; this one stops. The counts are run "
        "1's as the database holds it, from every process that worked on it; this process "
        "committed 21 of its recommendations.")


def test_resume_says_what_it_resumes_and_that_a_finished_run_is_finished(
        filled_engine, db_url, sql_model_dir):
    """--resume of a finished run exited 0 saying "run 1 resumed with model 1 (resume it
    with --resume 1)"; of a run still running in another process it said "resumed" too,
    and then stopped."""
    source = SqlSource(users=Entities("app_users", "user_id"),
                       items=Entities("app_items", "item_id"))
    job = NightlyJob.start(filled_engine, source, str(sql_model_dir), ScoreSettings(n=3))
    result = invoke("score", "--db", db_url, "--resume", job.run_id)  # marked running
    assert ("recmeta: resuming run 1 with model 1 after its 0 committed batch(es); it is "
            "marked running: it was killed, or another process still works on it") in (
        " ".join(result.stderr.split()))
    result = invoke("score", "--db", db_url, "--resume", job.run_id)
    assert "resum" not in result.stderr.replace("nothing to resume", "")
    assert result.stderr.startswith("recmeta: run 1 is already finished: there is nothing to "
                                    "resume; its summary follows")
    assert stdout_json(result)["status"] == "finished"


def test_resume_takes_the_runs_own_options(filled_engine, db_url):
    result = invoke("score", "--db", db_url, "--resume", 1, "-n", 5, "--users", "u",
                    ok=False)
    assert result.exit_code == 2 and "drop -n/--n, --users." in result.output


@pytest.mark.postgres
def test_plain_postgresql_url_uses_psycopg(pg_url):
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    assert "0002 (head)" in invoke("db", "upgrade", "--db", plain).output


@pytest.mark.postgres
def test_a_role_without_rights_on_recmeta_tables_is_told_which_it_needs(pg_url, sql_data,
                                                                       sql_model_dir,
                                                                       tmp_path):
    """A role without rights on recmeta's tables: score, recommend, train, db upgrade and db
    current exited 1 with a traceback ending in psycopg's InsufficientPrivilege. Now one
    line says what was refused and which rights recmeta needs, exit 1; and the rights the
    README lists are enough. The role here is the tables' owner, who revokes its own rights
    (no other role needs creating)."""
    engine = sa.create_engine(pg_url)
    migrate.upgrade(engine)
    sql_data.interactions.astype({"user_id": str, "item_id": str}).to_sql(
        "recmeta_interactions", engine, if_exists="append", index=False)
    sql_data.users.to_sql("app_users", engine, index=False)
    recmeta_tables = "recmeta_alembic_version, recmeta_models, recmeta_runs, " \
                     "recmeta_recommendations, recmeta_interactions"
    with engine.begin() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        conn.exec_driver_sql(f"REVOKE ALL ON {recmeta_tables} FROM CURRENT_USER")
        conn.exec_driver_sql(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM "
                             f"CURRENT_USER")
    small = ["--param", "max_epochs=1", "--param", "hidden=[8]", "--param", "embedding_dim=4"]
    commands = [["db", "current"], ["db", "upgrade"],
                ["score", "--model", sql_model_dir, "--users", "app_users"],
                ["recommend", "--model", sql_model_dir, "--user", 3],
                ["train", "--out", tmp_path / "m", *small]]
    for command in commands:
        result = invoke(*command, "--db", pg_url, ok=False)
        assert result.exit_code == 1, (command, result.output)
        assert "Traceback" not in result.output and "\n" not in result.stderr.strip()
        assert result.stderr.startswith("Error: The database refused recmeta a right: "
                                        "permission denied for table recmeta_"), result.stderr
        assert ("grant the role of --db SELECT on those tables and on "
                "recmeta_alembic_version, SELECT, INSERT and UPDATE on recmeta_models, "
                "recmeta_runs and recmeta_recommendations, and USAGE on their sequences"
                in " ".join(result.stderr.split()))
    assert not (tmp_path / "m").exists()
    with engine.begin() as conn:  # the rights the message and the README name: enough
        conn.exec_driver_sql("GRANT SELECT ON recmeta_alembic_version, recmeta_interactions "
                             "TO CURRENT_USER")
        conn.exec_driver_sql("GRANT SELECT, INSERT, UPDATE ON recmeta_models, recmeta_runs, "
                             "recmeta_recommendations TO CURRENT_USER")
        conn.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO "
                             f"CURRENT_USER")
    engine.dispose()
    for command in commands[:1] + commands[2:]:
        invoke(*command, "--db", pg_url)
    summary = stdout_json(invoke("score", "--db", pg_url, "--model", tmp_path / "m", "-n", 3))
    assert summary["status"] == "finished" and summary["users"]["scored"] == 40


def test_a_statement_the_database_refuses_is_one_line_with_the_drivers_words(
        filled_engine, db_url, sql_model_dir):
    """A statement refused for another reason than a right (here a trigger of the app's)
    printed SQLAlchemy's traceback; one line keeps what the driver said, and its type,
    for a bug report."""
    if filled_engine.dialect.name != "sqlite":
        pytest.skip("a SQLite trigger")
    with filled_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TRIGGER frozen BEFORE INSERT ON recmeta_runs BEGIN "
                             "SELECT RAISE(ABORT, 'runs are frozen tonight'); END")
    result = invoke("score", "--db", db_url, "--model", sql_model_dir, *TABLES, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: The database refused a statement of recmeta (sqlite3.IntegrityError): runs "
        "are frozen tonight. Check that --db names the database that holds recmeta's tables "
        "and yours; if it does, report this line as a bug of recmeta.")


def test_train_refused_its_registry_row_fits_nothing(filled_engine, db_url, tmp_path,
                                                   monkeypatch):
    """A database that refuses the registry's insert (a missing right on PostgreSQL, a
    trigger on SQLite) refused it only after the whole fit had run and --out was written.
    Now train asks first: refused, it fits nothing, writes nothing and registers nothing;
    and asking takes no id, so the first model registered is still model 1."""
    from recmeta.adapters import training
    postgres = filled_engine.dialect.name == "postgresql"
    with filled_engine.begin() as conn:
        conn.exec_driver_sql(
            "REVOKE INSERT ON recmeta_models FROM CURRENT_USER" if postgres else
            "CREATE TRIGGER frozen BEFORE INSERT ON recmeta_models BEGIN "
            "SELECT RAISE(ABORT, 'models are frozen tonight'); END")
    fits = []
    monkeypatch.setattr(training, "fit_and_save", lambda *a, **k: fits.append(a))
    result = invoke("train", "--db", db_url, *TABLES, "--out", tmp_path / "m", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("the role of --db lacks INSERT on recmeta_models, so the model could not be "
            "registered; nothing was trained or written" if postgres else
            "models are frozen tonight") in " ".join(result.stderr.split())
    assert not fits and not (tmp_path / "m").exists()
    with filled_engine.begin() as conn:
        conn.exec_driver_sql("GRANT INSERT ON recmeta_models TO CURRENT_USER" if postgres
                             else "DROP TRIGGER frozen")
    monkeypatch.undo()
    summary = stdout_json(invoke("train", "--db", db_url, *TABLES, "--out", tmp_path / "m",
                                 "--param", "max_epochs=1", "--param", "hidden=[8]"))
    with filled_engine.connect() as conn:
        ids = conn.exec_driver_sql("SELECT id FROM recmeta_models").scalars().all()
    assert ids == [1] and summary["model_id"] == 1


def test_unmigrated_database_says_what_to_run(sqlite_url, sql_model_dir):
    result = invoke("score", "--db", sqlite_url, "--model", sql_model_dir, ok=False)
    assert result.exit_code == 2 and "recmeta db upgrade --db URL" in result.output


def test_recommend_one_user(filled_engine, db_url, sql_model_dir):
    result = invoke("recommend", "--db", db_url, "--model", sql_model_dir, "--user", 3,
                    *TABLES, "-n", 4)
    lines = result.output.splitlines()
    assert lines[0].startswith("user 3:") and "known to the model" in lines[0]
    assert len(lines) == 2 + 4
    data = stdout_json(invoke("recommend", "--db", db_url, "--model", sql_model_dir,
                              "--user", "nobody", "--json"))
    assert data["counts"]["users_cold"] == 1 and len(data["recommendations"]) == 10


def test_demo_runs_small_and_writes_only_its_directory(tmp_path):
    directory = tmp_path / "demo"
    result = invoke("demo", "--dir", directory, "--users", 60, "--items", 40, "--epochs", 1,
                    "--no-progress")
    assert "popularity" in result.stdout and "recmeta recommend --db" in result.stdout
    assert sorted(p.name for p in directory.iterdir()) == ["demo.db", "model"]
    assert "users scored" in result.stdout


# ----------------------------------------------------------- SIGKILL, then resume

KILLS = 5

# A parent that imports recmeta once and forks a child per command, so that each killed
# process costs a fork rather than a fresh interpreter. Each child runs the real CLI, and
# is killed with SIGKILL from the test; the parent reports its pid, then its exit code.
FORKER = """
import json, os, sys
import recmeta.adapters.scoring
from recmeta.cli import main
from recmeta.cli._common import parse_params
for line in sys.stdin:
    argv, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        try:
            main(argv)
        except SystemExit as exit:
            os._exit(exit.code if isinstance(exit.code, int) else 1)
        os._exit(0)
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class Forker:
    """Runs ``recmeta`` commands in forked children of one warm interpreter."""

    def __init__(self, tmp_path):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen([sys.executable, "-c", FORKER], env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.tmp_path, self.count = tmp_path, 0

    def start(self, *args) -> tuple[int, object]:
        self.count += 1
        log = self.tmp_path / f"child-{self.count}.log"
        self.process.stdin.write(json.dumps([[str(a) for a in args], str(log)]) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline()), log

    def exit_code(self) -> int:
        return int(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def progress_of(engine, run_id: int | None, newer_than: int = 0) -> tuple[int | None, int]:
    """(run ``run_id``, or the newest run after ``newer_than``; its committed batches)."""
    with engine.connect() as conn:
        query = sa.select(runs.runs.c.id, runs.runs.c.batches_done)
        if run_id is not None:
            query = query.where(runs.runs.c.id == run_id)
        else:
            query = query.where(runs.runs.c.id > newer_than)
        row = conn.execute(query.order_by(runs.runs.c.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (None, 0)


def kill_when(engine, forker: Forker, pid: int, run_id, newer_than: int, past: int,
              pause: float) -> int:
    """SIGKILL child ``pid`` ``pause`` seconds after its run commits batch ``past``; returns
    the run's id."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found, done = progress_of(engine, run_id, newer_than)
        if found is not None and done >= past:
            time.sleep(pause)
            os.kill(pid, signal.SIGKILL)
            code = forker.exit_code()
            assert code == -signal.SIGKILL, f"the run ended (exit {code}) before the kill"
            return found
        time.sleep(0.005)
    raise AssertionError("the run made no progress in 120 s")


def uninterrupted(engine, model_dir, **settings) -> pd.DataFrame:
    """The rows of a run never killed, scored here with one thread as the subprocesses are."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        job = NightlyJob.start(engine, SqlSource(), str(model_dir), ScoreSettings(**settings))
        return runs.read(engine, job.run(progress=False)["run_id"])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_gives_the_same_rows(engine, db_url, tmp_path,
                                                                 sql_model_dir):
    data = make_synthetic(n_users=120, n_items=30, ratings_per_user=(3, 10), random_state=1)
    migrate.upgrade(engine)
    data.interactions.astype({"user_id": str, "item_id": str}).to_sql(
        "recmeta_interactions", engine, if_exists="append", index=False)
    expected = uninterrupted(engine, sql_model_dir, n=5, batch_size=3)
    reference_id, batches = 1, 40

    forker, rng, run_id, done = Forker(tmp_path), random.Random(20251126), None, 0
    try:
        for kill in range(KILLS):
            if run_id is None:
                pid, _ = forker.start("score", "--db", db_url, "--model", sql_model_dir,
                                      "-n", 5, "--batch-size", 3, "--no-progress")
            else:
                pid, _ = forker.start("score", "--db", db_url, "--resume", run_id,
                                      "--no-progress")
            target = done + rng.randint(1, batches // KILLS - 2)
            run_id = kill_when(engine, forker, pid, run_id, reference_id, target,
                               rng.uniform(0.0, 0.03))
            done = progress_of(engine, run_id)[1]
            assert runs.load(engine, run_id).status == "running", f"kill {kill}"
        assert done < batches, "every kill must land before the run ends"
        _, log = forker.start("score", "--db", db_url, "--resume", run_id, "--no-progress")
        assert forker.exit_code() == 0, log.read_text()
    finally:
        forker.close()
    said = log.read_text()  # stderr's lines (the note, warnings), then the JSON summary
    summary = json.loads(said[said.index("\n{") + 1:])
    assert summary["status"] == "finished" and summary["users"]["scored"] == 120
    pd.testing.assert_frame_equal(runs.read(engine, run_id), expected, check_exact=True)


def test_score_says_how_many_users_the_users_table_lacks(filled_engine, db_url,
                                                         sql_model_dir):
    with filled_engine.begin() as conn:  # a users table that lags behind the events
        conn.execute(sa.text("DELETE FROM app_users WHERE user_id IN (1, 2)"))
    result = invoke("score", "--db", db_url, "--model", sql_model_dir, *TABLES, "-n", 3)
    summary = stdout_json(result)
    assert summary["users"]["scored"] == 38 and summary["users"]["not_in_users_table"] == 2
    [warning] = summary["warnings"]
    assert warning.startswith("2 user(s) with interactions have no row in the users table "
                              "('app_users')") and warning in result.stderr


def test_score_warns_of_rows_without_a_user_or_item_id(null_id_engine, db_url, sql_model_dir):
    result = invoke("score", "--db", db_url, "--model", sql_model_dir, "--interactions",
                    "events", "-n", 3, "--progress")
    summary = stdout_json(result)
    assert summary["users"]["scored"] == 40 and "/40 " in result.stderr  # NULL is no user
    dropped = summary["history_rows"]["dropped"]
    assert dropped["null_user_id"] == 3 and dropped["null_item_id"] == 2
    assert summary["warnings"] == [
        "3 row(s) of table 'events' have a NULL user id (column 'user_id'): they belong to "
        "no user, and were not read.",
        "2 history row(s) read from table 'events' have a NULL item id (column 'item_id'): "
        "they were dropped."]
    assert all(f"warning: {w}" in result.stderr for w in summary["warnings"])


def test_score_warns_of_feature_table_keys_null_or_on_more_than_one_row(filled_engine, db_url,
                                                                         sql_model_dir):
    with filled_engine.begin() as conn:  # users 1 to 7 twice, item 5 three times
        conn.execute(sa.text("INSERT INTO app_users SELECT * FROM app_users "
                             "WHERE user_id BETWEEN 1 AND 7"))
        for _ in range(2):
            conn.execute(sa.text("INSERT INTO app_items SELECT * FROM app_items "
                                 "WHERE item_id = 5"))
        conn.execute(sa.text("INSERT INTO app_items (item_id) VALUES (NULL)"))
    result = invoke("score", "--db", db_url, "--model", sql_model_dir, *TABLES, "-n", 3)
    summary = stdout_json(result)
    assert summary["users"]["scored"] == 40 and summary["recommendations_written"] == 120
    assert summary["feature_tables"] == {
        "users": {"null_keys": 0, "duplicate_keys": 7, "first_duplicates": [1, 2, 3, 4, 5]},
        "items": {"null_keys": 1, "duplicate_keys": 1, "first_duplicates": [5]}}
    undefined = ("and which one is not defined (no single-column primary key orders them)")
    assert summary["warnings"] == [
        f"7 key(s) of the users table 'app_users' are on more than one row (user_id 1, 2, 3, "
        f"4, 5, ...): one row of each is used, {undefined}. Make 'user_id' unique there.",
        "1 row(s) of the items table 'app_items' have a NULL key ('item_id'): they were not "
        "read.",
        f"1 key(s) of the items table 'app_items' are on more than one row (item_id 5): one "
        f"row of each is used, {undefined}. Make 'item_id' unique there."]
    assert all(f"warning: {w}" in result.stderr for w in summary["warnings"])


def test_score_warns_of_ratings_off_the_models_scale(filled_engine, db_url, sql_model_dir):
    """A 50 among 1-to-5 ratings is dropped and counted (off_scale); the summary says so,
    as it says of rows without an id."""
    pd.DataFrame({"user_id": ["3", "4"], "item_id": ["1", "2"], "rating": [50.0, 0.0],
                  "timestamp": [2e9, 2e9]}).to_sql("recmeta_interactions", filled_engine,
                                                   if_exists="append", index=False)
    result = invoke("score", "--db", db_url, "--model", sql_model_dir, "-n", 3)
    summary = stdout_json(result)
    assert summary["history_rows"]["dropped"]["off_scale"] == 2
    said = ("2 history row(s) read from table 'recmeta_interactions' have a rating (column "
            "'rating') off the scale the model was fitted on (1 to 5): they were dropped.")
    assert any(w.startswith(said) for w in summary["warnings"])
    assert f"warning: {said}" in " ".join(result.stderr.split())


def test_score_warns_of_every_history_row_it_drops(filled_engine, db_url, sql_model_dir,
                                                   sql_data):
    """NULL ratings, unknown items and repeated (user, item) pairs were counted in the
    summary but, unlike the other rows dropped, not warned about on stderr."""
    first = sql_data.interactions.astype({"user_id": str, "item_id": str}).iloc[0]
    pd.DataFrame({"user_id": [first["user_id"], "3", "4", "4"],
                  "item_id": [first["item_id"], "999", "998", "1"],
                  "rating": [first["rating"], 4.0, 2.0, None],
                  "timestamp": [2e9, 2e9, 2e9, 2e9]}).to_sql(
        "recmeta_interactions", filled_engine, if_exists="append", index=False)
    for tables, known in (([], "knows, and no items table (--items) describes"),
                          (TABLES, "nor the items table ('app_items') knows")):
        result = invoke("score", "--db", db_url, "--model", sql_model_dir, *tables, "-n", 3)
        summary = stdout_json(result)
        dropped = summary["history_rows"]["dropped"]
        assert (dropped["null_rating"], dropped["unknown_item"], dropped["duplicate"]) == (
            1, 2, 1)
        for said in [
                "1 history row(s) read from table 'recmeta_interactions' have a rating "
                "(column 'rating') that is NULL, NaN or not a number: they were dropped.",
                f"2 history row(s) read from table 'recmeta_interactions' have an item "
                f"(column 'item_id') that neither the model {known}: they were dropped.",
                "1 history row(s) read from table 'recmeta_interactions' repeat a (user, "
                "item) pair: the latest row of each pair was used, the others dropped."]:
            assert any(w.startswith(said) for w in summary["warnings"]), summary["warnings"]
            assert f"warning: {said}" in " ".join(result.stderr.split())
