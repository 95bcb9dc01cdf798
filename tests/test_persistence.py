"""save / load (safetensors + JSON, never pickle) and pickling."""

import json
import pickle

import joblib
import numpy as np
import pytest
import torch

from recmeta import MetaRecommender, ModelFormatError, make_synthetic
from recmeta.persistence import DATA, META, WEIGHTS

FAST = dict(max_epochs=2, random_state=0, verbose=0, embedding_dim=8, hidden=(16,))


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=60, n_items=40, random_state=4)


@pytest.fixture(scope="module")
def model(data):
    # with the dot-product term and item factors, so their parameters, buffers and settings
    # round-trip too
    return MetaRecommender(method="metasgd", factors=4, mf_features=3, mf_blend=0.5,
                           **FAST).fit(data.X, data.y)


def _same(a, b, data):
    if a.device_.type == b.device_.type:  # the same computation: the same numbers
        np.testing.assert_array_equal(a.predict(data.X), b.predict(data.X))
        assert a.recommend(users=[0, 5], n=3).equals(b.recommend(users=[0, 5], n=3))
        return
    # a model on a GPU and its pickled copy, which comes back on the CPU: the same up to
    # float rounding, as the two devices sum in other orders
    np.testing.assert_allclose(a.predict(data.X), b.predict(data.X), rtol=1e-5, atol=1e-5)
    ra, rb = a.recommend(users=[0, 5], n=3), b.recommend(users=[0, 5], n=3)
    assert ra[["user_id", "rank"]].equals(rb[["user_id", "rank"]])
    np.testing.assert_allclose(ra.score, rb.score, rtol=1e-5, atol=1e-5)


def test_save_load_round_trip(model, data, tmp_path):
    model.save(tmp_path / "m")
    loaded = MetaRecommender.load(tmp_path / "m")
    assert loaded.get_params() == model.get_params()
    vectors = model.learner_.scorer.item.vectors  # the item factors of mf_features
    assert vectors.abs().sum() > 0
    torch.testing.assert_close(loaded.learner_.scorer.item.vectors, vectors, rtol=0, atol=0)
    blend = model.learner_.blend  # the ALS of mf_blend
    assert blend.known.any() and loaded.blend_weight_ == 0.5
    for name, value in blend.state_dict().items():
        torch.testing.assert_close(loaded.learner_.blend.state_dict()[name], value, rtol=0,
                                   atol=0)
    _same(model, loaded, data)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([META, WEIGHTS, DATA])


def test_string_ids_and_binary_objective_survive(tmp_path):
    clicks = make_synthetic(n_users=40, n_items=30, implicit=True, random_state=1)
    X = clicks.X.assign(user_id="u" + clicks.X.user_id.astype(str))
    model = MetaRecommender(mf_blend=0.5, **FAST).fit(X, clicks.y)
    model.save(tmp_path / "m")
    loaded = MetaRecommender.load(tmp_path / "m")
    assert loaded.objective_ == "binary"
    blend = model.learner_.blend  # the implicit ALS, calibrated
    assert blend.known.any() and float(blend.scales[1]) != 1.0
    for name, value in blend.state_dict().items():
        torch.testing.assert_close(loaded.learner_.blend.state_dict()[name], value, rtol=0,
                                   atol=0)
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    hist = X[X.user_id == "u1"]
    np.testing.assert_array_equal(model.predict(X, hist, np.ones(len(hist))),
                                  loaded.predict(X, hist, np.ones(len(hist))))


def test_a_refused_save_writes_nothing(model, data, tmp_path):
    """Ids save() cannot write (UUIDs) were refused after both tensor files were written:
    a new directory was left half-written (no model.json), and an existing model's tensor
    files were replaced while its model.json still described the old ones."""
    import copy
    import uuid

    import pandas as pd

    from recmeta.catalog import EntityTable

    odd = copy.deepcopy(model)
    odd.users_ = EntityTable(pd.Index([uuid.UUID(int=k) for k in range(len(model.users_))]),
                             model.users_.encoded)
    with pytest.raises(ModelFormatError, match="Only int or str user and item ids"):
        odd.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    model.save(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    with pytest.raises(ModelFormatError):
        odd.save(tmp_path / "m")
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before
    _same(model, MetaRecommender.load(tmp_path / "m"), data)


def test_a_binary_model_saved_before_its_blend_loads_without_it(tmp_path):
    """0/1 feedback had no blend before: its "auto" made none, and its weights have none."""
    clicks = make_synthetic(n_users=40, n_items=30, implicit=True, random_state=1)
    model = MetaRecommender(mf_blend=0, **FAST).fit(clicks.X, clicks.y)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / META).read_text())
    meta["params"]["mf_blend"] = "auto"  # as such a model was saved
    (tmp_path / "m" / META).write_text(json.dumps(meta))
    loaded = MetaRecommender.load(tmp_path / "m")
    assert loaded.learner_.blend is None and loaded.mf_blend == "auto"
    hist = clicks.X[clicks.X.user_id == 1]
    np.testing.assert_array_equal(model.predict(clicks.X, hist, np.ones(len(hist))),
                                  loaded.predict(clicks.X, hist, np.ones(len(hist))))


def test_a_model_saved_before_mf_features_and_mf_blend_loads_without_them(data, tmp_path):
    model = MetaRecommender(mf_features=0, mf_blend=0, **FAST).fit(data.X, data.y)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / META).read_text())
    del meta["params"]["mf_features"], meta["params"]["mf_blend"]
    del meta["fitted"]["blend_weight"], meta["fitted"]["blend_losses"]
    (tmp_path / "m" / META).write_text(json.dumps(meta))
    loaded = MetaRecommender.load(tmp_path / "m")
    assert loaded.mf_features == 0 and loaded.mf_blend == 0 and loaded.blend_weight_ is None
    _same(model, loaded, data)



def test_the_rating_range_round_trips_and_a_model_saved_before_it_loads_unclipped(
        model, data, tmp_path):
    model.save(tmp_path / "m")
    span = (float(data.y.min()), float(data.y.max()))
    assert model.target_range_ == span == MetaRecommender.load(tmp_path / "m").target_range_
    meta = json.loads((tmp_path / "m" / META).read_text())
    del meta["fitted"]["target_range"]  # as such a model was saved
    (tmp_path / "m" / META).write_text(json.dumps(meta))
    loaded = MetaRecommender.load(tmp_path / "m")
    assert loaded.target_range_ is None
    np.testing.assert_array_equal(np.clip(loaded.predict(data.X), *span), model.predict(data.X))

def test_other_format_version_is_refused(model, tmp_path):
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / META).read_text())
    meta["format_version"] = 999
    (tmp_path / "m" / META).write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match=r"format version 999.*reads version 1"):
        MetaRecommender.load(tmp_path / "m")


@pytest.mark.parametrize("name", [WEIGHTS, DATA])
def test_truncated_or_tampered_tensors_are_refused(model, tmp_path, name):
    model.save(tmp_path / "m")
    path = tmp_path / "m" / name
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFormatError, match=r"truncated or was modified"):
        MetaRecommender.load(tmp_path / "m")
    tampered = bytearray(blob)
    tampered[-5] ^= 0xFF
    path.write_bytes(bytes(tampered))
    with pytest.raises(ModelFormatError, match=r"truncated or was modified"):
        MetaRecommender.load(tmp_path / "m")


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelFormatError, match=r"no model\.json"):
        MetaRecommender.load(tmp_path)
    (tmp_path / META).write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        MetaRecommender.load(tmp_path)


def test_loading_never_unpickles(model, tmp_path, monkeypatch):
    model.save(tmp_path / "m")

    def forbidden(*args, **kwargs):
        raise AssertionError("load() must not unpickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    MetaRecommender.load(tmp_path / "m")


def test_pickle_and_joblib(model, data, tmp_path):
    _same(model, pickle.loads(pickle.dumps(model)), data)
    joblib.dump(model, tmp_path / "m.joblib")
    again = joblib.load(tmp_path / "m.joblib")
    _same(model, again, data)
    assert next(again.learner_.parameters()).device.type == "cpu"


def test_a_model_pickled_before_the_rating_range_existed_predicts_unclipped(model, data):
    # two pickled copies: both come back on the CPU, so they compute the same numbers even
    # when the model was fitted on a GPU
    new, old = pickle.loads(pickle.dumps(model)), pickle.loads(pickle.dumps(model))
    del old.target_range_  # as such a pickle comes back
    unclipped = old.predict(data.X)
    new.target_range_ = None  # as a model saved without a range loads: not clipped
    np.testing.assert_array_equal(unclipped, new.predict(data.X))
    # a range that some of these predictions leave, so that clipping shows
    new.target_range_ = tuple(float(q) for q in np.quantile(unclipped, [0.1, 0.9]))
    clipped = new.predict(data.X)
    assert (clipped != unclipped).any()
    np.testing.assert_array_equal(np.clip(unclipped, *new.target_range_), clipped)
