"""The blend of the adapted network with the ALS: its fold-in against BiasedMF's, its weight,
and that every serving path scores with it."""

import numpy as np
import pandas as pd
import pytest
import torch

from recmeta import InvalidParameterError, MetaRecommender, make_synthetic
from recmeta.baselines import BiasedMF
from recmeta.blend import MFBlend
from recmeta.frames import ITEM_ID_FIELD
from recmeta.hybrid import GRID, blend_losses

FAST = dict(max_epochs=3, random_state=0, verbose=0, embedding_dim=8, hidden=(16, 16))


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=120, n_items=60, ratings_per_user=(8, 30), random_state=0)


def test_fold_in_and_scores_are_biased_mfs(data):
    """Batched, padded, on the network's scale: the same as ``BiasedMF.predict`` with a
    support set, user by user, unknown items included."""
    r = data.interactions[["user_id", "item_id", "rating"]]
    train, new = r[r.user_id < 90], r[r.user_id >= 90]
    train = train[train.item_id < 50]  # items 50.. are unknown to the ALS
    mf = BiasedMF(n_factors=4, random_state=0).fit(train)
    codes = np.arange(60) + 2  # item id -> code, as a vocabulary with PAD and UNKNOWN
    blend = MFBlend(64, 4, "item_id")
    mean, scale = 3.4, 1.2  # the network's target scale
    blend.fill(torch.as_tensor(codes[mf.items_.to_numpy()]), torch.as_tensor(mf.item_factors_),
               torch.as_tensor(mf.item_bias_), torch.as_tensor(mf._penalty(np.zeros(0, int), 0)),
               mf.mean_, mean, scale)
    users = sorted(new.user_id.unique())
    support = new.groupby("user_id").head(6)
    query = new.drop(support.index)
    width = support.groupby("user_id").size().max()
    s_codes = torch.zeros(len(users), width, dtype=torch.long)
    s_target, s_mask = torch.zeros(len(users), width), torch.zeros(len(users), width)
    for k, u in enumerate(users):
        rows = support[support.user_id == u]
        s_codes[k, : len(rows)] = torch.as_tensor(codes[rows.item_id.to_numpy()])
        s_target[k, : len(rows)] = torch.tensor(((rows.rating - mean) / scale).to_numpy())
        s_mask[k, : len(rows)] = 1.0
    als_user = blend.fold_in(s_codes, s_target, s_mask)
    want = mf.predict(query, support)
    got = np.concatenate([
        blend.predict(als_user[k : k + 1], torch.as_tensor(
            codes[query.item_id[query.user_id == u].to_numpy()])[None]).numpy()[0]
        for k, u in enumerate(users)]) * scale + mean
    order = np.concatenate([np.flatnonzero(query.user_id.to_numpy() == u) for u in users])
    assert (query.item_id >= 50).any() and (support.item_id >= 50).any()
    np.testing.assert_allclose(got, want[order], rtol=1e-4, atol=1e-4)
    # one candidate list for every user: the same scores
    every = torch.as_tensor(codes)
    np.testing.assert_allclose(blend.predict(als_user, every).numpy(),
                               torch.stack([blend.predict(als_user[k : k + 1], every[None])[0]
                                            for k in range(len(users))]).numpy(), rtol=1e-5)


def test_mix_blends_known_items_only():
    blend = MFBlend(5, 2, "item_id")
    blend.fill(torch.tensor([2, 3]), torch.zeros(2, 2), torch.zeros(2), torch.ones(3),
               0.0, 0.0, 1.0)
    blend.weight.fill_(0.25)
    net, als = torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[5.0, 5.0, 5.0]])
    mixed = blend.mix(net, als, torch.tensor([[2, 3, 4]]))
    torch.testing.assert_close(mixed, torch.tensor([[2.0, 2.0, 1.0]]))


@pytest.mark.parametrize("meta_loss", ["auto", "squared"])
def test_auto_weight_is_the_least_validation_loss(data, monkeypatch, meta_loss):
    """The weight is the one of :data:`GRID` with the least meta-loss of the users held out
    for early stopping, on early stopping's own episodes."""
    import recmeta._fitting as fitting

    scored_by = []

    def spy(*args):
        scored_by.append(args[-1])
        return blend_losses(*args)

    monkeypatch.setattr(fitting, "blend_losses", spy)
    model = MetaRecommender(meta_loss=meta_loss, **FAST).fit(data.X, data.y)
    assert scored_by == ["absolute" if meta_loss == "auto" else "squared"]
    losses = model.blend_losses_
    assert len(losses) == len(GRID)
    assert model.blend_weight_ == GRID[int(np.argmin(losses))]
    assert float(model.learner_.blend.weight) == pytest.approx(model.blend_weight_)
    # at weight 0 the network alone, on early stopping's episodes: its validation loss
    assert losses[0] == pytest.approx(model.validation_loss_curve_[model.best_epoch_], rel=1e-5)
    assert len(set(np.round(losses, 6))) > 1  # the weight changes the loss


def test_meta_training_does_not_see_the_blend(data):
    # on the CPU, where two fits of one seed are bit for bit the same (on a GPU they agree
    # to float rounding only, blend or not)
    with_blend = MetaRecommender(mf_blend=0.5, device="cpu", **FAST).fit(data.X, data.y)
    without = MetaRecommender(mf_blend=0, device="cpu", **FAST).fit(data.X, data.y)
    assert without.learner_.blend is None and without.blend_weight_ is None
    for (name, a), (_, b) in zip(with_blend.learner_.scorer.state_dict().items(),
                                 without.learner_.scorer.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert with_blend.validation_loss_curve_ == without.validation_loss_curve_


def test_every_serving_path_blends(data):
    """predict, adapt().predict and recommend give ``(1 - w) net + w ALS`` on known items,
    ``net`` on new ones, with the ALS folded in from the same history."""
    model = MetaRecommender(mf_blend=0.3, **FAST).fit(data.X, data.y)
    blend = model.learner_.blend
    first = (data.X.user_id < 10).to_numpy()
    hist, y_hist = data.X[first], data.y[first]
    X = data.X[data.X.user_id < 10].assign(item_id=lambda f: f.item_id.where(
        f.index % 3 > 0, 999))  # every third row a new item (features only)
    blended = model.predict(X, hist, y_hist)
    np.testing.assert_allclose(model.adapt(hist, y_hist).predict(X), blended, rtol=1e-5)
    model.set_params(mf_blend=0.0)
    net = model.predict(X, hist, y_hist)
    model.set_params(mf_blend=1.0)
    als = model.predict(X, hist, y_hist)
    model.set_params(mf_blend=0.3)
    known = X.item_id.isin(model.items_.ids).to_numpy()
    assert (~known).any() and known.any()
    np.testing.assert_allclose(blended[known], 0.7 * net[known] + 0.3 * als[known], rtol=1e-5)
    np.testing.assert_array_equal(blended[~known], net[~known])
    np.testing.assert_array_equal(als[~known], net[~known])
    # the ALS part: BiasedMF's fold-in from the tables, user by user (slow reference)
    q, b = blend.factors.cpu().numpy(), blend.bias.cpu().numpy()
    mu, t_mean, t_scale = blend.scales.cpu().numpy()
    code = model.items_.encoded[ITEM_ID_FIELD]
    for user in (0, 4):
        h = hist.user_id.to_numpy() == user
        rows = code[model.items_.positions(hist.item_id[h])]
        design = np.c_[q[rows], np.ones(h.sum())]
        x = np.linalg.solve(design.T @ design + np.diag(blend.penalty.cpu().numpy()),
                            design.T @ (y_hist[h] - mu - b[rows]))
        mine = (X.user_id.to_numpy() == user) & known
        c = code[model.items_.positions(X.item_id[mine])]
        np.testing.assert_allclose(als[mine], mu + b[c] + q[c] @ x[:-1] + x[-1], rtol=1e-4)
    assert t_scale > 0 and np.isfinite(t_mean)
    # recommend ranks by the blended scores
    top = model.adapt(hist, y_hist).recommend(n=5, exclude_seen=False)
    first = top[top.user_id == 0]
    features = hist[hist.user_id == 0].iloc[0][["gender", "age", "occupation"]]
    X0 = data.items.set_index("item_id").loc[first.item_id].reset_index().assign(
        user_id=0, **features)
    np.testing.assert_allclose(first.score, model.predict(X0, hist, y_hist), rtol=1e-5)


def test_blend_needs_ratings_and_item_ids():
    clicks = make_synthetic(n_users=40, n_items=30, implicit=True, random_state=1)
    assert MetaRecommender(**FAST).fit(clicks.X, clicks.y).blend_weight_ is None
    with pytest.raises(InvalidParameterError, match=r"0/1 feedback.*mf_blend=0 or 'auto'"):
        MetaRecommender(mf_blend=0.5, **FAST).fit(clicks.X, clicks.y)
    ratings = make_synthetic(n_users=40, n_items=30, random_state=1)
    with pytest.raises(InvalidParameterError, match="item ids are not used"):
        MetaRecommender(mf_blend=0.5, use_item_ids=False, mf_features=0,
                        **FAST).fit(ratings.X, ratings.y)
    with pytest.raises(InvalidParameterError, match="mf_blend"):
        MetaRecommender(mf_blend=1.5, **FAST).fit(ratings.X, ratings.y)
    assert pd.api.types.is_float(MetaRecommender(**FAST).fit(ratings.X, ratings.y).blend_weight_)


def test_the_weight_can_be_changed_after_fit(data):
    model = MetaRecommender(mf_blend=0.3, **FAST).fit(data.X, data.y)
    first = (data.X.user_id < 10).to_numpy()
    hist, y_hist = data.X[first], data.y[first]
    blended = model.predict(hist, hist, y_hist)
    model.set_params(mf_blend=0.0)
    net = model.predict(hist, hist, y_hist)
    assert np.abs(net - blended).max() > 1e-3
    # the network alone: as a fit without the blend (meta-training never sees it)
    alone = MetaRecommender(mf_blend=0, **FAST).fit(data.X, data.y)
    np.testing.assert_allclose(net, alone.predict(hist, hist, y_hist), rtol=1e-6)
    model.set_params(mf_blend=0.3)
    np.testing.assert_array_equal(model.predict(hist, hist, y_hist), blended)
    model.set_params(mf_blend="auto")  # the fitted weight, 0.3
    np.testing.assert_array_equal(model.predict(hist, hist, y_hist), blended)
