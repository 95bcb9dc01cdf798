"""recmeta.adapters.sql: reflection, clear errors, hostile names, one query per batch."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recmeta import columns as C
from recmeta.adapters import ids, migrate, scoring, sql
from recmeta.adapters.sql import Entities, Interactions, SchemaError, SqlReader, SqlSource


def events(n_users: int = 30, n_rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Random events with ties in time and some NULL ratings."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "uid": rng.integers(0, n_users, n_rows),
        "sku": [f"i{k}" for k in rng.integers(0, 50, n_rows)],
        "stars": rng.integers(1, 6, n_rows).astype(float),
        "ts": rng.integers(0, 40, n_rows),  # few distinct times: many ties
    })
    frame.loc[rng.random(n_rows) < 0.05, "stars"] = np.nan
    return frame.drop_duplicates(["uid", "sku"]).reset_index(drop=True)


def reference(frame: pd.DataFrame, users, last_n: int, time: bool) -> pd.DataFrame:
    """The last ``last_n`` rows per user, by (ts, sku) descending, oldest first: pandas."""
    keys = ["ts", "sku"] if time else ["sku"]
    rows = frame[frame.uid.isin(users)].sort_values(["uid", *keys])
    rows = rows.groupby("uid").tail(last_n)
    out = pd.DataFrame({C.USER: rows.uid, C.ITEM: rows.sku, C.RATING: rows.stars})
    if time:
        out[C.TIME] = rows.ts
    return out.reset_index(drop=True)


@pytest.fixture
def event_engine(engine):
    frame = events()
    frame.to_sql("events", engine, index=False)
    return engine, frame


def source(time: bool = True, **kw) -> SqlSource:
    return SqlSource(Interactions("events", "uid", "sku", "stars", "ts" if time else None),
                     **kw)


def count_statements(engine: sa.Engine) -> list:
    seen = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *rest: seen.append(statement))
    return seen


@pytest.mark.parametrize("time", [True, False], ids=["by-time", "no-time"])
def test_histories_are_one_query_and_match_reference(event_engine, time):
    engine, frame = event_engine
    reader = SqlReader(engine, source(time))
    users = [0, 3, 4, 7, 8, 29, 1000]  # 1000 has no rows
    statements = count_statements(engine)
    with engine.connect() as conn:
        got = reader.histories(conn, users, last_n=4)
    assert len(statements) == 1
    expected = reference(frame, users, 4, time)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    with engine.connect() as conn:
        slow = reader.history_queries(conn, users, last_n=4)
    pd.testing.assert_frame_equal(got, slow, check_dtype=False)


def test_dialect_specific_query(event_engine):
    engine, _ = event_engine
    reader = SqlReader(engine, source())
    if engine.dialect.name == "postgresql":
        query = reader._lateral_query([1, 2], 5)
    else:
        query = reader._window_query([1, 2], 5)
    text = str(query.compile(dialect=engine.dialect))
    assert ("LATERAL" in text) == (engine.dialect.name == "postgresql")
    assert "row_number() OVER" in text


def test_null_ratings_come_back_as_nan_and_implicit_as_one(event_engine):
    engine, frame = event_engine
    with engine.connect() as conn:
        got = SqlReader(engine, source()).histories(conn, list(range(30)), last_n=100)
        implicit = SqlReader(engine, SqlSource(Interactions("events", "uid", "sku", None, "ts")))
        ones = implicit.histories(conn, [0, 1], last_n=100)
    assert got[C.RATING].isna().sum() == frame.stars.isna().sum()
    assert (ones[C.RATING] == 1.0).all()


def _iso(ts) -> str:
    return f"2024-03-01 10:00:{int(ts):02d}"


@pytest.mark.parametrize("stars, rated_at, when, as_declared", [
    ("REAL", "DATETIME", int, ("REAL", "INTEGER")),   # Unix times in a DATETIME column
    ("REAL", "NUMERIC", _iso, ("REAL", "TEXT")),      # ISO text: CREATE TABLE AS of a DATETIME
    ("DECIMAL(2,1)", "INTEGER", int, ("REAL", "INTEGER")),  # an 'n/a' among DECIMAL ratings
], ids=["epoch-in-DATETIME", "iso-in-NUMERIC", "text-in-DECIMAL"])
def test_ratings_and_times_are_read_as_the_database_holds_them(sqlite_url, stars, rated_at,
                                                                when, as_declared):
    """SQLAlchemy converts SQLite values by the column's declared type, and its converters
    raised on what such a column may hold ("fromisoformat: argument must be str", "must be
    real number, not str"), failing the job. Read as stored, every read equals the read of
    the same values in columns declared REAL, INTEGER or TEXT, in the same SQL order."""
    engine = sa.create_engine(sqlite_url)
    frame = events(n_users=12, n_rows=200)
    rows = [(int(u), s, None if np.isnan(r) else float(r), when(t))
            for u, s, r, t in frame.itertuples(index=False)]
    rows.append((3, "i99", "n/a", when(39)))
    with engine.begin() as conn:
        for table, (rating, time) in (("typed", (stars, rated_at)), ("plain", as_declared)):
            conn.exec_driver_sql(f"CREATE TABLE {table} (uid INTEGER, sku TEXT, "
                                 f"stars {rating}, rated_at {time})")
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", rows)
    typed, plain = (SqlReader(engine, SqlSource(Interactions(t, "uid", "sku", "stars",
                                                             "rated_at")))
                    for t in ("typed", "plain"))
    users = list(range(12))
    with engine.connect() as conn:
        for read in (lambda r: r.histories(conn, users, last_n=5),
                     lambda r: r.older_items(conn, r.histories(conn, users, 5), 5),
                     lambda r: r.history_queries(conn, users, last_n=5),
                     lambda r: pd.concat(list(r.interactions(conn)), ignore_index=True)):
            pd.testing.assert_frame_equal(read(typed), read(plain))
        sample = typed.rating_sample(conn, size=10_000)
        assert sample.tolist() == plain.rating_sample(conn, size=10_000).tolist()
        got = typed.histories(conn, [3], last_n=100)
    assert "n/a" in sample.tolist()  # as stored: the mapping check coerces it itself
    assert got[C.RATING].isna().sum() == 1 + frame.stars[frame.uid == 3].isna().sum()
    assert got[C.TIME].tolist()[-1] == when(39)  # read as stored, not converted
    engine.dispose()


def test_user_batches_cover_every_user_once_in_order(event_engine):
    engine, frame = event_engine
    reader = SqlReader(engine, source())
    with engine.connect() as conn:
        batches = list(reader.user_batches(conn, size=7))
        after = list(reader.user_batches(conn, size=7, after=batches[1][-1]))
        assert reader.count_users(conn) == frame.uid.nunique()
    flat = [u for b in batches for u in b]
    assert flat == sorted(frame.uid.unique().tolist())
    assert after == batches[2:]
    assert all(len(b) == 7 for b in batches[:-1])


def test_interactions_stream_in_partitions(event_engine, monkeypatch):
    engine, frame = event_engine
    monkeypatch.setattr(sql, "STREAM_ROWS", 100)
    with engine.connect() as conn:
        parts = list(SqlReader(engine, source()).interactions(conn))
    assert len(parts) == -(-len(frame) // 100)
    assert sum(len(p) for p in parts) == len(frame)


def test_feature_tables_match_ids_by_value(event_engine):
    engine, _ = event_engine
    pd.DataFrame({"id": [1, 2, 3], "job": ["a", "b", "c"], "age": [10, 20, 30]}).to_sql(
        "people", engine, index=False)
    reader = SqlReader(engine, source(users=Entities("people", "id", ("job",))))
    with engine.connect() as conn:
        got = reader.features(conn, "user", ["2", "3", "x"])  # text ids, an impossible one
    assert got.columns.tolist() == [C.USER, "job"]
    assert got[C.USER].tolist() == [2, 3] and got["job"].tolist() == ["b", "c"]
    assert reader.user_features == ["job"]


def test_feature_tables_leave_out_their_primary_key_and_share_names_apart(engine):
    """Both tables' surrogate key ``id`` was a default feature (a per-row id describes no
    one), and a ``lang`` of both came out of training's join as lang_x and lang_y. Now a
    primary key other than the key is no default feature, and a name both tables use, or
    one of recmeta's own columns, is read as user.NAME and item.NAME."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE members (id INTEGER PRIMARY KEY, uuid TEXT, "
                             "lang TEXT, rating REAL, gender TEXT)"))
        conn.execute(sa.text("CREATE TABLE films (id INTEGER PRIMARY KEY, code TEXT, "
                             "lang TEXT, genres TEXT)"))
        conn.execute(sa.text("INSERT INTO members VALUES (1, 'm1', 'en', 4.5, 'F')"))
        conn.execute(sa.text("INSERT INTO films VALUES (7, 'f1', 'fr', 'noir')"))
    pd.DataFrame({"uuid": ["m1"], "code": ["f1"], "stars": [4.0]}).to_sql("ev", engine,
                                                                       index=False)
    spec = SqlSource(Interactions("ev", "uuid", "code", "stars", None),
                     Entities("members", "uuid"), Entities("films", "code"))
    reader = SqlReader(engine, spec)
    assert reader.user_features == ["user.lang", "user.rating", "gender"]
    assert reader.item_features == ["item.lang", "genres"]
    with engine.connect() as conn:
        users, items = reader.features(conn, "user"), reader.features(conn, "item")
    assert users.to_dict("records") == [{C.USER: "m1", "user.lang": "en", "user.rating": 4.5,
                                         "gender": "F"}]
    assert items.to_dict("records") == [{C.ITEM: "f1", "item.lang": "fr", "genres": "noir"}]
    # named, the primary key is a feature like any other column
    named = SqlReader(engine, SqlSource(spec.interactions, Entities("members", "uuid",
                                                                    ("id", "lang"))))
    assert named.user_features == ["id", "lang"]  # no items table: lang is the users' own
    # the model's field, found in a table read beside other tables, or alone
    assert sql.feature_column("item", "item.lang", ["item_id", "lang"]) == "lang"
    assert sql.feature_column("item", "lang", ["item_id", "item.lang"]) == "item.lang"
    assert sql.feature_column("item", "genres", ["item_id", "genres"]) == "genres"
    assert sql.feature_column("user", "user.user_id", ["user_id"]) is None  # the key is none
    assert sql.feature_column("user", "age", ["user_id", "gender"]) is None


def test_missing_table_names_it_and_lists_what_exists(event_engine):
    engine, _ = event_engine
    with pytest.raises(SchemaError, match=r"'evnts' does not exist.*Tables there: .*'events'"):
        SqlReader(engine, SqlSource(Interactions("evnts", "uid", "sku", "stars", "ts")))
    with pytest.raises(SchemaError, match="recmeta db upgrade"):
        SqlReader(engine, SqlSource())


def test_missing_column_names_it_and_lists_columns(event_engine):
    engine, _ = event_engine
    with pytest.raises(SchemaError, match=r"no column 'user'.*'uid', 'sku', 'stars', 'ts'"):
        SqlReader(engine, SqlSource(Interactions("events", "user", "sku", "stars", "ts")))
    with pytest.raises(SchemaError, match="no column 'genre'"):
        SqlReader(engine, source(items=Entities("events", "sku", ("genre",))))
    # a table of 0/1 feedback has no rating column: the default 'rating' says how to map none
    with pytest.raises(SchemaError, match=r"no column 'rating' \(the rating column\).*pass "
                                          r"--rating-col '' \(rating=None in Python\)"):
        SqlReader(engine, SqlSource(Interactions("events", "uid", "sku", "rating", "ts")))


HOSTILE = ['events"; DROP TABLE victim; --', "events'; DELETE FROM victim; --",
           "victim; DROP TABLE victim", 'x" OR 1=1 --', "events`", "[events]"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_names_that_do_not_exist(event_engine, name):
    engine, _ = event_engine
    pd.DataFrame({"a": [1, 2]}).to_sql("victim", engine, index=False)
    with pytest.raises(SchemaError, match="does not exist"):
        SqlReader(engine, SqlSource(Interactions(name, "uid", "sku", "stars", "ts")))
    with pytest.raises(SchemaError, match="no column"):
        SqlReader(engine, SqlSource(Interactions("events", name, "sku", "stars", "ts")))
    with pytest.raises(SchemaError, match="does not exist"):
        SqlReader(engine, source(users=Entities(name, "uid")))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM victim")).scalar() == 2


def test_strange_real_names_are_quoted_not_formatted(engine):
    name, user, item = 'we"ird; table', "us'er id", 'it"em;'
    table = sa.Table(name, sa.MetaData(), sa.Column(user, sa.Integer),
                     sa.Column(item, sa.String(20)), sa.Column("select", sa.Float))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{user: 1, item: "a", "select": 4.0},
                                      {user: 1, item: "b", "select": 2.0}])
    reader = SqlReader(engine, SqlSource(Interactions(name, user, item, "select", None)))
    with engine.connect() as conn:
        got = reader.histories(conn, [1], last_n=5)
    assert sorted(got[C.ITEM]) == ["a", "b"] and sorted(got[C.RATING]) == [2.0, 4.0]


def test_align_ids_matches_by_value():
    known = pd.Index([1, 2, 3])
    assert ids.align_ids(pd.Series(["1", "3", "x"]), known).tolist() == [1, 3, "x"]
    assert ids.align_ids(pd.Series([1, 2]), pd.Index(["1", "2"])).tolist() == ["1", "2"]
    assert ids.for_column(["7", "x", 8], sa.Column("c", sa.Integer)) == [7, 8]


@pytest.mark.parametrize("module", [sql, ids, migrate, scoring])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
