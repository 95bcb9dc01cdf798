"""The nightly job in process: top-N written, imperfect data counted, failures resumable."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recmeta import DataError, MetaRecommender
from recmeta import columns as C
from recmeta.adapters import migrate, registry, runs, training
from recmeta.adapters.batch import BatchScorer, check_feedback, check_ratings
from recmeta.adapters.migrate import MigrationError
from recmeta.adapters.recommend import recommend_one
from recmeta.adapters.scoring import JobFailed, NightlyJob, ScoreSettings
from recmeta.adapters.sql import Entities, Interactions, SqlReader, SqlSource
from recmeta.adapters.tables import models

SOURCE = SqlSource(users=Entities("app_users", C.USER), items=Entities("app_items", C.ITEM))


def score(engine, model_dir, source=SOURCE, **settings):
    settings = {"n": 5, "batch_size": 7, **settings}
    job = NightlyJob.start(engine, source, str(model_dir), ScoreSettings(**settings))
    return job.run(progress=False)


def rows_of(engine, run_id) -> pd.DataFrame:
    return runs.read(engine, run_id)


def fail_checkpoint(monkeypatch, at: int):
    """``runs.advance`` fails at its ``at``-th call, as a lost connection would: that batch's
    rows are inserted, its checkpoint is not. Returns the real one, to put back."""
    real, calls = runs.advance, []

    def flaky(conn, *args):
        calls.append(1)
        if len(calls) == at:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("connection lost"))
        return real(conn, *args)

    monkeypatch.setattr(runs, "advance", flaky)
    return real


def test_writes_top_n_for_every_user(filled_engine, sql_model_dir, sql_data):
    summary = score(filled_engine, sql_model_dir)
    rows = rows_of(filled_engine, summary["run_id"])
    n_users = sql_data.users.shape[0]
    assert summary["status"] == "finished"
    assert summary["users"]["seen"] == summary["users"]["scored"] == n_users
    assert summary["recommendations_written"] == len(rows) == 5 * n_users
    assert summary["history_rows"]["read"] == len(sql_data.interactions)
    assert rows.groupby(C.USER)[C.RANK].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    seen = set(zip(sql_data.interactions[C.USER].astype(str),
                   sql_data.interactions[C.ITEM].astype(str), strict=True))
    assert not any((u, i) in seen for u, i in zip(rows[C.USER], rows[C.ITEM], strict=True))
    scores = rows.groupby(C.USER)[C.SCORE].apply(lambda s: s.is_monotonic_decreasing)
    assert scores.all()


def test_no_item_of_rows_older_than_those_read_is_recommended(filled_engine, sql_model_dir,
                                                              sql_data):
    """The job reads each user's latest rows to adapt on (here 3); the items of the older
    rows were recommended back (a trial on ML-100K: 920 of 6,100 rows written already
    rated). Every item of a user's rows is left out, in the job and in recommend_one."""
    n_items = len(sql_data.items)
    summary = score(filled_engine, sql_model_dir, n=n_items, history=3)
    rows = rows_of(filled_engine, summary["run_id"])
    frame = sql_data.interactions.astype({C.USER: str, C.ITEM: str})
    seen = frame.groupby(C.USER)[C.ITEM].apply(set)
    assert (seen.map(len) > 3).sum() >= 20  # most users have older rows than those read
    assert summary["history_rows"]["read"] < len(frame)
    written = rows.groupby(C.USER)[C.ITEM].apply(set)
    assert set(written.index) == set(seen.index)
    for user, items in written.items():  # the slow, obvious check
        assert not items & seen[user] and len(items) == n_items - len(seen[user])
    user = seen.map(len).idxmax()
    one = recommend_one(filled_engine, SOURCE, str(sql_model_dir), user, n=n_items, history=3)
    assert {str(r["item_id"]) for r in one["recommendations"]} == written[user]
    # with seen items allowed, the older ones come back
    summary = score(filled_engine, sql_model_dir, n=n_items, history=3, exclude_seen=False)
    assert len(rows_of(filled_engine, summary["run_id"])) == n_items * len(seen)


def test_writing_a_batch_twice_changes_nothing(filled_engine, sql_model_dir):
    summary = score(filled_engine, sql_model_dir)
    before = rows_of(filled_engine, summary["run_id"])
    with filled_engine.begin() as conn:
        runs.write(conn, summary["run_id"], before)
    pd.testing.assert_frame_equal(rows_of(filled_engine, summary["run_id"]), before)


def test_failed_batch_rolls_back_and_resume_matches(filled_engine, sql_model_dir,
                                                    monkeypatch):
    clean = rows_of(filled_engine, score(filled_engine, sql_model_dir)["run_id"])
    real = fail_checkpoint(monkeypatch, 3)
    job = NightlyJob.start(filled_engine, SOURCE, str(sql_model_dir), ScoreSettings(5, 7))
    with pytest.raises(JobFailed, match=f"--resume {job.run_id}") as failure:
        job.run(progress=False)
    state = runs.load(filled_engine, job.run_id)
    assert state.status == "failed" and "connection lost" in state.error
    assert state.batches_done == 2 and failure.value.summary["status"] == "failed"
    assert failure.value.summary["users"]["seen"] == 14  # the committed batches only
    assert len(rows_of(filled_engine, job.run_id)) == 2 * 7 * 5  # batch 3 rolled back whole
    monkeypatch.setattr(runs, "advance", real)
    resumed = NightlyJob.resume(filled_engine, job.run_id).run(progress=False)
    assert resumed["status"] == "finished" and resumed["resumed"]
    assert resumed["users"]["scored"] == clean[C.USER].nunique()
    pd.testing.assert_frame_equal(rows_of(filled_engine, job.run_id), clean)


def test_a_database_gone_for_good_leaves_the_run_running_and_says_so(
        filled_engine, sql_model_dir, monkeypatch, caplog):
    """The database goes away at batch 3 and does not come back to mark the run failed: the
    job logged that with a whole traceback and then raised the database's own error. Now it
    says so in one line and raises JobFailed, whose summary holds the two committed batches;
    the run stays marked running, and resumes."""
    clean = rows_of(filled_engine, score(filled_engine, sql_model_dir)["run_id"])
    real_advance, real_status = fail_checkpoint(monkeypatch, 3), runs.set_status

    def gone(engine, run_id, status, **kwargs):
        if status == runs.FAILED:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("server closed the "
                                                                  "connection\nunexpectedly"))
        return real_status(engine, run_id, status, **kwargs)

    monkeypatch.setattr(runs, "set_status", gone)
    job = NightlyJob.start(filled_engine, SOURCE, str(sql_model_dir), ScoreSettings(5, 7))
    with caplog.at_level("WARNING", logger="recmeta"), \
            pytest.raises(JobFailed, match="stays marked running") as failure:
        job.run(progress=False)
    assert f"resume it with --resume {job.run_id}" in str(failure.value)
    assert [r.exc_info for r in caplog.records] == [None]  # one line, no traceback
    assert "could not mark run" in caplog.text and "server closed" in caplog.text
    summary = failure.value.summary
    assert summary["status"] == "running" and summary["users"]["seen"] == 14
    assert runs.load(filled_engine, job.run_id).status == "running"
    monkeypatch.setattr(runs, "advance", real_advance)
    monkeypatch.setattr(runs, "set_status", real_status)
    resumed = NightlyJob.resume(filled_engine, job.run_id).run(progress=False)
    assert resumed["status"] == "finished"
    pd.testing.assert_frame_equal(rows_of(filled_engine, job.run_id), clean)


def test_resuming_a_finished_run_does_nothing(filled_engine, sql_model_dir):
    first = score(filled_engine, sql_model_dir)
    again = NightlyJob.resume(filled_engine, first["run_id"]).run(progress=False)
    assert again["recommendations_written"] == first["recommendations_written"]
    assert again["status"] == "finished"


def test_two_processes_cannot_commit_the_same_batch(filled_engine, sql_model_dir):
    summary = score(filled_engine, sql_model_dir)
    with pytest.raises(runs.RunConflict), filled_engine.begin() as conn:
        runs.advance(conn, summary["run_id"], 0, {})


def test_imperfect_rows_and_users_are_counted(filled_engine, sql_model_dir, sql_data):
    rated = sql_data.interactions
    fresh = next(i for i in sql_data.items[C.ITEM] if i not in set(rated[rated[C.USER] == 2][
        C.ITEM]))  # an item user 2 has not rated: its two new rows are one duplicate
    extra = pd.DataFrame({
        C.USER: ["0", "1", "2", "2", "5000", "5001"],
        C.ITEM: ["1", "no-such-item", str(fresh), str(fresh), "2", "4"],
        C.RATING: [None, 4.0, 5.0, 5.0, 4.0, float("nan")],
        C.TIME: [2e9, 2e9, 2e9, 2e9 + 1, 2e9, 2e9],
    })
    extra.to_sql("recmeta_interactions", filled_engine, if_exists="append", index=False)
    pd.DataFrame({C.USER: [6000], "gender": ["F"], "age": ["25-34"],
                  "occupation": ["artist"]}).to_sql("app_users", filled_engine,
                                                    if_exists="append", index=False)
    summary = score(filled_engine, sql_model_dir)
    users, dropped = summary["users"], summary["history_rows"]["dropped"]
    assert dropped == {"null_user_id": 0, "null_item_id": 0, "null_rating": 1,
                       "off_scale": 0, "unknown_item": 1, "duplicate": 1}
    # the users table drives the users: 5000 and 5001 are not in it (counted); 6000 has no
    # history
    assert users["seen"] == users["scored"] == len(sql_data.users) + 1
    assert users["not_in_users_table"] == 2
    assert users["cold_start"] == 1 and users["new"] == 1
    skipping = score(filled_engine, sql_model_dir, skip_cold=True)
    assert skipping["users"]["skipped"]["no_history"] == 1
    by_interactions = score(filled_engine, sql_model_dir, source=SqlSource())
    assert by_interactions["users"]["not_in_users_table"] == 0  # no users table: all scored
    assert by_interactions["users"]["new"] == 2  # 5000 (one usable row) and 5001 (none)
    assert by_interactions["users"]["cold_start"] == 1
    assert by_interactions["history_rows"]["dropped"]["null_rating"] == 2


def test_a_rating_off_the_models_scale_is_dropped_and_counted(filled_engine, sql_model_dir,
                                                              sql_data):
    """adapt refuses a history off the fitted scale; the job drops such a row (a typo of
    50 for 5, say) and counts it, and the run goes on: the user is scored from its other
    rows, and the item is seen all the same."""
    rated = sql_data.interactions
    mine = set(rated[rated[C.USER] == 3][C.ITEM])
    fresh = next(i for i in sql_data.items[C.ITEM] if i not in mine)
    pd.DataFrame({C.USER: ["3"], C.ITEM: [str(fresh)], C.RATING: [50.0], C.TIME: [2e9]}).to_sql(
        "recmeta_interactions", filled_engine, if_exists="append", index=False)
    n_items = len(sql_data.items)
    summary = score(filled_engine, sql_model_dir, n=n_items)
    assert summary["status"] == "finished"
    assert summary["history_rows"]["dropped"]["off_scale"] == 1
    rows = rows_of(filled_engine, summary["run_id"])
    mine_now = rows[rows[C.USER] == "3"]
    assert len(mine_now) == n_items - len(mine) - 1 and str(fresh) not in set(mine_now[C.ITEM])
    assert np.isfinite(mine_now[C.SCORE].to_numpy(dtype=float)).all()


def test_rows_without_a_user_or_item_id_are_counted_and_kept_across_resume(
        null_id_engine, sql_model_dir, sql_data, monkeypatch):
    source = SqlSource(Interactions("events"), items=Entities("app_items", C.ITEM))
    real = fail_checkpoint(monkeypatch, 2)
    job = NightlyJob.start(null_id_engine, source, str(sql_model_dir), ScoreSettings(5, 7))
    with pytest.raises(JobFailed) as failure:
        job.run(progress=False)
    assert failure.value.summary["history_rows"]["dropped"]["null_user_id"] == 3
    monkeypatch.setattr(runs, "advance", real)
    summary = NightlyJob.resume(null_id_engine, job.run_id).run(progress=False)
    # a NULL user id is no user; users 3 and 4 keep their other rows
    assert summary["users"]["seen"] == summary["users"]["scored"] == len(sql_data.users)
    assert summary["history_rows"]["read"] == len(sql_data.interactions) + 2
    assert summary["history_rows"]["dropped"] == {
        "null_user_id": 3, "null_item_id": 2, "null_rating": 0, "off_scale": 0,
        "unknown_item": 0, "duplicate": 0}
    assert summary["history_rows"]["used"] == len(sql_data.interactions)
    again = NightlyJob.resume(null_id_engine, job.run_id).run(progress=False)
    assert again["history_rows"]["dropped"] == summary["history_rows"]["dropped"]


def test_feature_table_rows_without_a_key_are_counted_not_read(null_id_engine,
                                                               sql_model_dir, sql_data):
    """A NULL item key made every item id float (written '28.0'), a NaN item a candidate,
    and a history row without an item id that item."""
    with null_id_engine.begin() as conn:
        for table, key in (("app_users", C.USER), ("app_items", C.ITEM)):
            conn.execute(sa.text(f"INSERT INTO {table} ({key}) VALUES (NULL)"))
    source = SqlSource(Interactions("events"), SOURCE.users, SOURCE.items)
    summary = score(null_id_engine, sql_model_dir, source=source, n=len(sql_data.items))
    written = rows_of(null_id_engine, summary["run_id"])[C.ITEM]
    assert set(written) <= set(sql_data.items[C.ITEM].astype(str))
    assert summary["candidates"]["items"] == len(sql_data.items)
    assert summary["history_rows"]["dropped"]["null_item_id"] == 2
    assert summary["feature_tables"] == {
        "users": {"null_keys": 1, "duplicate_keys": 0, "first_duplicates": []},
        "items": {"null_keys": 1, "duplicate_keys": 0, "first_duplicates": []}}


def test_of_rows_sharing_a_key_the_one_with_the_greatest_primary_key_is_used(
        filled_engine, sql_model_dir, sql_data):
    """Read in key order, then primary key order, so the row the scorer keeps (the last) is
    the same in every run and every resume."""
    catalog = sa.Table("catalog", sa.MetaData(),
                       sa.Column("row_id", sa.String(8), primary_key=True),
                       sa.Column(C.ITEM, sa.Integer), sa.Column("genres", sa.String(100)),
                       sa.Column("decade", sa.String(10)), sa.Column("length", sa.Float))
    catalog.create(filled_engine)
    rows = sql_data.items.assign(row_id="r" + sql_data.items[C.ITEM].astype(str))
    with filled_engine.begin() as conn:
        conn.execute(catalog.insert(), rows.to_dict("records"))
        # inserted last, but 'a1' < 'r1': read first, so item 1 keeps its row 'r1'
        conn.execute(catalog.insert(), [{"row_id": "a1", C.ITEM: 1, "genres": "western",
                                         "decade": "1930s", "length": 60.0}])
    source = SqlSource(items=Entities("catalog", C.ITEM, ("genres", "decade", "length")))
    reader = SqlReader(filled_engine, source)
    with filled_engine.connect() as conn:
        items = reader.features(conn, "item")
    scorer = BatchScorer(MetaRecommender.load(sql_model_dir), 5, True, False, items, items)
    kept = scorer.item_table.set_index(C.ITEM).loc[1]
    assert kept["genres"] == sql_data.items.set_index(C.ITEM).loc[1, "genres"]
    assert reader.tie_break("item") == "row_id"
    summary = score(filled_engine, sql_model_dir, source=source)
    assert summary["feature_tables"] == {
        "items": {"null_keys": 0, "duplicate_keys": 1, "first_duplicates": [1]}}
    assert summary["candidates"]["items"] == len(sql_data.items)


def test_candidate_table_narrows_the_ranking(filled_engine, sql_model_dir):
    pd.DataFrame({C.ITEM: [1, 2, 3, 4, 5, 999]}).to_sql("tonight", filled_engine, index=False)
    source = SqlSource(candidates=Entities("tonight", C.ITEM))
    summary = score(filled_engine, sql_model_dir, source=source, n=3)
    rows = rows_of(filled_engine, summary["run_id"])
    assert set(rows[C.ITEM]) <= {"1", "2", "3", "4", "5"}
    assert summary["candidates"] == {"items": 5, "dropped_unknown": 1}


def test_scoring_needs_migrated_tables(engine, sql_model_dir):
    with pytest.raises(MigrationError, match="recmeta db upgrade"):
        NightlyJob.start(engine, SqlSource(), str(sql_model_dir), ScoreSettings())
    migrate.upgrade(engine)
    with pytest.raises(Exception, match="'app_users' does not exist"):
        NightlyJob.start(engine, SOURCE, str(sql_model_dir), ScoreSettings())
    with engine.connect() as conn:  # nothing was started
        assert conn.execute(sa.select(sa.func.count()).select_from(runs.runs)).scalar() == 0


def test_recommend_one_is_what_the_job_writes(filled_engine, sql_model_dir):
    summary = score(filled_engine, sql_model_dir, batch_size=1000)
    stored = rows_of(filled_engine, summary["run_id"])
    one = recommend_one(filled_engine, SOURCE, str(sql_model_dir), "3", n=5)
    assert [r["item_id"] for r in one["recommendations"]] == \
        stored[stored[C.USER] == "3"][C.ITEM].astype(int).tolist()
    assert "known to the model" in one["explanation"]
    nobody = recommend_one(filled_engine, SOURCE, str(sql_model_dir), "no-such-user", n=5)
    assert "initialisation" in nobody["explanation"] and len(nobody["recommendations"]) == 5
    assert "unknown: not in the model, the interactions nor the users table" in \
        nobody["explanation"]
    assert "unknown" not in one["explanation"]


def test_a_known_user_without_rows_is_not_served_from_training(filled_engine, sql_model_dir,
                                                                 sql_data):
    """The database is the source of truth: a fitted user whose rows were deleted is scored
    by the initialisation on its features, as a new user with those features would be, not
    adapted on the history the model remembers from training (nor are its old items left
    out)."""
    from recmeta import MetaRecommender

    before = recommend_one(filled_engine, SOURCE, str(sql_model_dir), "3", n=5)
    with filled_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM recmeta_interactions WHERE user_id = '3'"))
    after = recommend_one(filled_engine, SOURCE, str(sql_model_dir), "3", n=5)
    assert after["counts"]["users_cold"] == 1 and "initialisation" in after["explanation"]
    model = MetaRecommender.load(sql_model_dir)
    features = sql_data.users[sql_data.users[C.USER] == 3].assign(**{C.USER: 10**6})
    reference = model.adapt(users=features).recommend(n=5)
    assert [r["item_id"] for r in after["recommendations"]] == reference[C.ITEM].tolist()
    assert [r["score"] for r in after["recommendations"]] == pytest.approx(
        reference[C.SCORE].tolist(), rel=1e-5)
    assert after["recommendations"] != before["recommendations"]
    summary = score(filled_engine, sql_model_dir, batch_size=1000)
    assert summary["users"]["cold_start"] == 1
    stored = rows_of(filled_engine, summary["run_id"])
    assert stored[stored[C.USER] == "3"][C.ITEM].astype(int).tolist() == \
        reference[C.ITEM].tolist()


def test_a_mapping_that_contradicts_the_model_is_refused(filled_engine, sql_model_dir,
                                                         sql_data):
    """Bad input, before anything is written or registered: a model of ratings read without
    a rating column (every row a 1), or from a column without numbers (every row dropped)."""
    def counts():
        with filled_engine.connect() as conn:
            return [conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                    for t in (runs.runs, models)]

    before = counts()
    with pytest.raises(DataError, match="fitted on ratings, but no rating column is mapped"):
        score(filled_engine, sql_model_dir, source=SqlSource(Interactions(rating=None)))
    sql_data.interactions.assign(stars="five").to_sql("events", filled_engine, index=False)
    worded = SqlSource(Interactions("events", rating="stars"))
    with pytest.raises(DataError, match=r"'stars' holds no numbers \(e.g. 'five'\)"):
        score(filled_engine, sql_model_dir, source=worded)
    with pytest.raises(DataError, match="holds no numbers"):
        recommend_one(filled_engine, worded, str(sql_model_dir), "3")
    assert counts() == before


def test_feedback_check_reads_the_model_and_the_column():
    ratings, clicks = SimpleNamespace(objective_="regression"), SimpleNamespace(
        objective_="binary")
    check_feedback(ratings, "stars", pd.Series([1, 5.0, "4"], dtype=object))
    check_feedback(clicks, None, None)
    check_feedback(clicks, "clicked", pd.Series([0, 1, 1], dtype=object))
    check_feedback(ratings, "stars", pd.Series([], dtype=object))  # an empty table: no verdict
    with pytest.raises(DataError, match=r"0/1 feedback, but the rating column 'stars' holds "
                                        r"other values \(e.g. 5\)"):
        check_feedback(clicks, "stars", pd.Series([1, 5], dtype=object))
    with pytest.raises(DataError, match="no rating column is mapped"):
        check_feedback(ratings, None, None)


def test_a_value_in_a_message_is_shown_plainly():
    """A time column mapped as the rating column (PostgreSQL's TIMESTAMPTZ) was shown as
    "holds no numbers (e.g. datetime.datetime(1997, 12, 4, 15, 55, 49,
    tzinfo=zoneinfo.ZoneInfo(key='Etc/UTC')))", a Python repr."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    when = dt.datetime(1997, 12, 4, 15, 55, 49, tzinfo=ZoneInfo("Etc/UTC"))
    with pytest.raises(DataError) as caught:
        check_ratings("rated_at", pd.Series([when], dtype=object))
    assert str(caught.value).startswith("The rating column 'rated_at' holds no numbers (e.g. "
                                        "1997-12-04 15:55:49+00:00). Map the column")
    with pytest.raises(DataError, match=r"holds datetime \(1997-12-04 15:55:49\+00:00\) and "
                                        r"numbers \(7\), which"):
        training._check_one_time_type(pd.Series([when, 7], dtype=object), "at")


def test_resume_refuses_a_model_changed_since_the_run_started(filled_engine, sql_model_dir,
                                                               tmp_path, monkeypatch):
    """Retrained into the same directory after a crash, the model would write the rest of
    the run: two models' rows in one run. The resume says so instead."""
    model_dir = tmp_path / "model"
    shutil.copytree(sql_model_dir, model_dir)
    real = runs.advance

    def crash(conn, run_id, done, checkpoint):
        if done == 1:
            raise sa.exc.OperationalError("UPDATE", {}, Exception("killed"))
        return real(conn, run_id, done, checkpoint)

    monkeypatch.setattr(runs, "advance", crash)
    job = NightlyJob.start(filled_engine, SOURCE, str(model_dir), ScoreSettings(5, 7))
    with pytest.raises(JobFailed):
        job.run(progress=False)
    monkeypatch.setattr(runs, "advance", real)
    with (model_dir / "model.json").open("a") as handle:
        handle.write("\n")  # any change to the directory's files: a retrain, say
    with pytest.raises(DataError, match=f"changed since run {job.run_id} started"):
        NightlyJob.resume(filled_engine, job.run_id)
    assert runs.load(filled_engine, job.run_id).batches_done == 1


def test_recommend_one_says_how_many_rows_it_adapts_on(filled_engine, sql_model_dir, tmp_path):
    """With --history past the model's max_history, every row read is left out of the list
    but only the latest max_history are adapted on; the sentence said all were used."""
    model = MetaRecommender.load(sql_model_dir).set_params(max_history=2)
    model.save(tmp_path / "m")
    one = recommend_one(filled_engine, SOURCE, str(tmp_path / "m"), "3", n=5, history=50)
    assert one["counts"]["rows_used"] > 2
    assert f"{one['counts']['rows_used']} history row(s) used (adapted on the latest 2, the " \
           "model's max_history)" in one["explanation"]
    short = recommend_one(filled_engine, SOURCE, str(tmp_path / "m"), "3", n=5)
    assert short["counts"]["rows_used"] == 2 and "adapted on the latest" not in \
        short["explanation"]


def test_a_directory_registered_on_first_use_has_its_models_parameters_and_metrics(
        filled_engine, sql_model_dir):
    """A model not trained by `recmeta train` against this database was registered by its
    first run with parameters and metrics '{}', though its model.json has them."""
    summary = score(filled_engine, sql_model_dir)
    model = MetaRecommender.load(sql_model_dir)
    with filled_engine.connect() as conn:
        entry = registry.get(conn, summary["model_id"])
    assert entry.name == "model" and entry.artifact == str(sql_model_dir.resolve())
    assert entry.parameters == registry._jsonable(model.get_params(deep=False))
    assert entry.parameters["embedding_dim"] == 4 and entry.parameters["hidden"] == [8]
    assert entry.metrics["n_users"] == 40 and entry.metrics["n_items"] == len(model.items_)
    assert entry.metrics["n_epochs"] == 1 and entry.metrics["best_epoch"] == model.best_epoch_
    assert entry.metrics["train_loss"] == pytest.approx(model.loss_curve_[-1])


def test_a_directory_changed_since_it_was_registered_is_registered_anew(filled_engine,
                                                                        sql_model_dir,
                                                                        tmp_path):
    """Saved over from Python (no `recmeta train`, so no new row), the directory is not
    the model its row describes: its id is refused, and the directory is registered anew.
    Rows registered before fingerprints were kept are taken as they are, unless a later
    row registers the same directory."""
    model_dir = tmp_path / "model"
    shutil.copytree(sql_model_dir, model_dir)
    first = score(filled_engine, model_dir)["model_id"]
    MetaRecommender.load(model_dir).set_params(max_history=3).save(model_dir)
    with filled_engine.connect() as conn:
        with pytest.raises(DataError, match=f"Model {first} of the registry is no longer what "
                           r"its directory .* holds: it changed since it was registered "
                           r"\(retrained or saved over\).*Pass the directory itself"):
            registry.get_unchanged(conn, first)
    summary = score(filled_engine, model_dir)
    assert summary["model_id"] == first + 1
    with filled_engine.connect() as conn:
        entry = registry.get_unchanged(conn, first + 1)
    assert entry.parameters["max_history"] == 3
    assert entry.registered_fingerprint == registry.fingerprint(model_dir)

    # a row of before fingerprints: taken as it is, until a later row has its directory
    legacy = tmp_path / "legacy"
    shutil.copytree(sql_model_dir, legacy)
    with filled_engine.begin() as conn:
        old = conn.execute(models.insert().values(
            name="legacy", created=pd.Timestamp.now(tz="UTC"), parameters={}, metrics={},
            artifact=str(legacy.resolve()))).inserted_primary_key[0]
    assert score(filled_engine, str(old))["model_id"] == old
    assert score(filled_engine, legacy)["model_id"] == old
    new = registry.register(filled_engine, legacy, {}, {})
    with pytest.raises(DataError, match=rf"\(registered as model {new}\).*Use --model {new},"):
        score(filled_engine, str(old))


def test_the_readmes_query_reads_the_latest_finished_run(filled_engine, sql_model_dir,
                                                          monkeypatch):
    """The README tells an app to read the latest finished run's rows; a failed run after it,
    whose first batch was written, is not read."""
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    query = readme.split("```sql\n", 1)[1].split("```", 1)[0]
    score(filled_engine, sql_model_dir)
    latest = score(filled_engine, sql_model_dir, n=3)
    fail_checkpoint(monkeypatch, 2)
    job = NightlyJob.start(filled_engine, SOURCE, str(sql_model_dir), ScoreSettings(4, 7))
    with pytest.raises(JobFailed):
        job.run(progress=False)
    assert len(rows_of(filled_engine, job.run_id))  # the failed run left rows
    with filled_engine.connect() as conn:
        read = pd.DataFrame(conn.execute(sa.text(query)).all(),
                            columns=list(C.RECOMMENDATION_COLUMNS))
    expected = rows_of(filled_engine, latest["run_id"])
    pd.testing.assert_frame_equal(read, expected, check_dtype=False)
