"""The blend of the adapted network with the ALS: its fold-in against BiasedMF's (ratings) and
ImplicitALS's (0/1 feedback), the implicit ALS's calibration, its weight, and that every
serving path scores with it."""

import numpy as np
import pandas as pd
import pytest
import torch

from recmeta import InvalidParameterError, MetaRecommender, hybrid, make_synthetic
from recmeta.baselines import BiasedMF
from recmeta.blend import ImplicitBlend, MFBlend
from recmeta.frames import ITEM_ID_FIELD
from recmeta.hybrid import GRID, IMPLICIT_GRID, blend_losses, logistic_fit
from recmeta.ials import ImplicitALS

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


@pytest.mark.parametrize("meta_loss", ["auto", "squared", "huber"])
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
    assert scored_by == ["huber" if meta_loss == "auto" else meta_loss]
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


def test_blend_needs_item_ids():
    clicks = make_synthetic(n_users=40, n_items=30, implicit=True, random_state=1)
    model = MetaRecommender(**FAST).fit(clicks.X, clicks.y)  # 0/1 feedback: implicit ALS
    assert isinstance(model.learner_.blend, ImplicitBlend)
    assert pd.api.types.is_float(model.blend_weight_)
    assert MetaRecommender(mf_blend=0, **FAST).fit(clicks.X, clicks.y).blend_weight_ is None
    ratings = make_synthetic(n_users=40, n_items=30, random_state=1)
    assert isinstance(MetaRecommender(**FAST).fit(ratings.X, ratings.y).learner_.blend,
                      MFBlend)
    with pytest.raises(InvalidParameterError, match="item ids are not used"):
        MetaRecommender(mf_blend=0.5, use_item_ids=False, mf_features=0,
                        **FAST).fit(ratings.X, ratings.y)
    assert MetaRecommender(use_item_ids=False, mf_features=0, **FAST).fit(
        ratings.X, ratings.y).blend_weight_ is None  # "auto": none without ids
    with pytest.raises(InvalidParameterError, match="mf_blend"):
        MetaRecommender(mf_blend=1.5, **FAST).fit(ratings.X, ratings.y)
    # a weight for 0/1 feedback needs held-out users to calibrate on
    with pytest.raises(InvalidParameterError, match=r"calibrates.*held out.*mf_blend='auto'"):
        MetaRecommender(mf_blend=0.5, validation_fraction=0.0, **FAST).fit(clicks.X, clicks.y)
    alone = MetaRecommender(validation_fraction=0.0, **FAST).fit(clicks.X, clicks.y)
    assert alone.blend_weight_ == 0.0 and alone.blend_losses_ is None


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


# ---------------------------------------------------------------- 0/1 feedback: implicit ALS
@pytest.fixture(scope="module")
def clicks():
    return make_synthetic(n_users=120, n_items=60, ratings_per_user=(8, 30), implicit=True,
                          random_state=3)


def test_implicit_fold_in_is_implicit_als(clicks):
    """Batched and padded: the user half-step of ``ImplicitALS.fold_in``, user by user, over
    the rows with target 1 (rows with 0, as sampled negatives, and unknown items add
    nothing); scores ``slope * x_u . y_i + intercept``."""
    r = clicks.interactions[["user_id", "item_id"]].assign(rating=1.0)
    train, new = r[r.user_id < 90], r[r.user_id >= 90]
    train = train[train.item_id < 50]  # items 50.. are unknown to the ALS
    ials = ImplicitALS(n_factors=4, reg=2.0, alpha=3.0, random_state=0).fit(train)
    codes = np.arange(60) + 2  # item id -> code
    blend = ImplicitBlend(64, 4, "item_id")
    blend.fill(torch.as_tensor(codes[ials.items_.to_numpy()]),
               torch.as_tensor(ials.item_factors_), ials.reg, ials.alpha)
    blend.calibrate(2.0, -0.5)
    users = sorted(new.user_id.unique())
    support = new.groupby("user_id").head(6)
    rng = np.random.default_rng(0)
    width = support.groupby("user_id").size().max() + 3
    s_codes = torch.zeros(len(users), width, dtype=torch.long)
    s_target, s_mask = torch.zeros(len(users), width), torch.zeros(len(users), width)
    for k, u in enumerate(users):
        items = support.item_id[support.user_id == u].to_numpy()
        negatives = rng.integers(0, 60, 3)  # target 0: no interaction
        s_codes[k, : len(items) + 3] = torch.as_tensor(codes[np.r_[items, negatives]])
        s_target[k, : len(items)] = 1.0
        s_mask[k, : len(items) + 3] = 1.0
    user_x = blend.fold_in(s_codes, s_target, s_mask)
    candidates = np.arange(50)
    query = pd.DataFrame({"user_id": np.repeat(users, 50), "item_id": np.tile(candidates,
                                                                               len(users))})
    want = ials.predict(query, support).reshape(len(users), 50)
    got = blend.predict(user_x, torch.as_tensor(codes[candidates])).numpy()
    assert (support.item_id >= 50).any()
    np.testing.assert_allclose(got, 2.0 * want - 0.5, rtol=1e-4, atol=1e-5)
    # per-user item lists: the same scores
    per_user = torch.as_tensor(codes[candidates]).expand(len(users), -1)
    np.testing.assert_allclose(blend.predict(user_x, per_user).numpy(), got, rtol=1e-5,
                               atol=1e-6)
    assert blend.known[codes[:50]].all() and not blend.known[codes[50:]].any()


def test_logistic_fit_is_the_unpenalised_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=2000) * 3
    y = (rng.random(2000) < 1 / (1 + np.exp(-(0.8 * x - 1.0)))).astype(float)
    slope, intercept = logistic_fit(x, y)
    ref = LogisticRegression(C=1e12, tol=1e-10, max_iter=1000).fit(x[:, None], y)
    assert slope == pytest.approx(ref.coef_[0, 0], rel=1e-4)
    assert intercept == pytest.approx(ref.intercept_[0], rel=1e-4)
    assert logistic_fit(np.zeros(0), np.zeros(0)) == (0.0, 0.0)
    # separable: finite
    assert np.isfinite(logistic_fit(np.r_[-1.0, -2.0, 1.0, 2.0], np.r_[0.0, 0, 1, 1])).all()


def test_implicit_calibration_is_a_logistic_fit_on_held_out_users(clicks, monkeypatch):
    """The calibration is the logistic fit of the held-out users' query labels on the ALS's
    raw scores (an ALS of the training users), each user folded in from its support set by
    iALS's half-step."""
    import recmeta._fitting as fitting

    seen = {}
    calibrate = fitting.calibrate_blend

    def spy(learner, users, items, episodes, loop):
        seen.update(episodes=episodes, codes=items[learner.blend.field],
                    tables={k: v.clone() for k, v in learner.blend.state_dict().items()})
        return calibrate(learner, users, items, episodes, loop)

    monkeypatch.setattr(fitting, "calibrate_blend", spy)
    # on the CPU, where the reference below builds its tensors
    model = MetaRecommender(**FAST, device="cpu").fit(clicks.X, clicks.y)
    slope, intercept = model.learner_.blend.scales[1:].tolist()
    assert slope > 0  # a higher ALS score, likelier an interaction
    # the reference: user by user, from the tables of the training users' ALS
    t, code = seen["tables"], seen["codes"]
    q, gram, alpha = t["factors"].double(), t["gram"].double(), float(t["scales"][0])
    xs, ys = [], []
    for support, query in seen["episodes"]:
        for b in range(len(support.users)):
            rated = (support.mask[b] > 0) & (support.target[b] > 0.5)
            y = q[code[support.items[b][rated]]]
            x = torch.linalg.solve(gram + alpha * y.T @ y, (1 + alpha) * y.sum(0))
            rows = code[query.items[b][query.mask[b] > 0]]
            known = t["known"][rows]
            xs.append((q[rows[known]] @ x).numpy())
            ys.append(query.target[b][query.mask[b] > 0][known].double().numpy())
    assert 0 < np.concatenate(ys).mean() < 1  # interactions and sampled negatives
    np.testing.assert_allclose([slope, intercept],
                               logistic_fit(np.concatenate(xs), np.concatenate(ys)),
                               rtol=1e-3, atol=1e-4)
    assert len(set(np.round(model.blend_losses_, 6))) > 1


def test_implicit_auto_weight_ranks_query_interactions_among_every_item(clicks, monkeypatch):
    """0/1 feedback: "auto" takes the weight with the least ``1 - nDCG@10`` of the held-out
    users' query interactions ranked among every item they have no row with, of 0, 0.1, ...,
    0.9 (never 1, where a user with no interaction would get every known item tied);
    checked user by user against a plain sort."""
    import recmeta._fitting as fitting

    seen = {}
    rank = fitting.ranking_losses

    def spy(learner, users, items, episodes, loop, histories):
        out = rank(learner, users, items, episodes, loop, histories)
        seen.update(args=(learner, users, items, episodes, loop, histories), out=out,
                    tables={k: v.clone() for k, v in learner.blend.state_dict().items()})
        return out

    monkeypatch.setattr(fitting, "ranking_losses", spy)
    # on the CPU, where the reference below builds its tensors
    model = MetaRecommender(**FAST, device="cpu").fit(clicks.X, clicks.y)
    np.testing.assert_allclose(model.blend_losses_, seen["out"], rtol=1e-6)
    assert len(seen["out"]) == len(IMPLICIT_GRID) == 10 and IMPLICIT_GRID[-1] == 0.9
    assert model.blend_weight_ == IMPLICIT_GRID[int(np.argmin(seen["out"]))]
    learner, users, items, episodes, loop, histories = seen["args"]
    # the reference, at two weights, with the tables ``ranking_losses`` saw (the ALS of the
    # training users, calibrated)
    blend = learner.blend
    blend.load_state_dict(seen["tables"])
    codes = items[blend.field]
    for k in (0, 7):
        gains = []
        for support, query in episodes:
            with torch.no_grad():
                fast = learner.adapt(users, items, support, loop)
            user_x = fast.pop("_blend")
            for b, user in enumerate(query.users.tolist()):
                n_items = len(codes)
                net = learner.score(users, items, {n: v[b : b + 1] for n, v in fast.items()},
                                    query.users[b : b + 1], torch.arange(n_items))[0]
                als = blend.predict(user_x[b : b + 1], codes)[0]
                score = torch.where(blend.known[codes], (1 - GRID[k]) * net + GRID[k] * als,
                                    net).detach().numpy()
                rows = query.mask[b] > 0
                liked = set(query.items[b][rows & (query.target[b] > 0.5)].tolist())
                if not liked:
                    continue
                history = set(histories.of(user)[0].tolist())
                candidates = [i for i in range(n_items) if i not in history or i in liked]
                top = sorted(candidates, key=lambda i: -score[i])[:10]
                dcg = sum(1 / np.log2(r + 2) for r, i in enumerate(top) if i in liked)
                ideal = sum(1 / np.log2(r + 2) for r in range(min(len(liked), 10)))
                gains.append(dcg / ideal)
        assert seen["out"][k] == pytest.approx(1 - np.mean(gains), abs=1e-5)


def test_implicit_blend_serves_mixed_logits_and_not_meta_training(clicks):
    """predict gives ``sigmoid((1 - w) logit_net + w logit_ALS)`` on known items, the network
    on new ones, the ALS folded in from the history's interactions; meta-training is the same
    with and without the blend. (The fast path and ``adapt().recommend`` agree with it in
    ``test_fastpath.py``.)"""
    model = MetaRecommender(mf_blend=0.3, device="cpu", **FAST).fit(clicks.X, clicks.y)
    without = MetaRecommender(mf_blend=0, device="cpu", **FAST).fit(clicks.X, clicks.y)
    for (name, a), (_, b) in zip(model.learner_.scorer.state_dict().items(),
                                 without.learner_.scorer.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    first = (clicks.X.user_id < 10).to_numpy()
    hist, y_hist = clicks.X[first], clicks.y[first]
    X = clicks.X[clicks.X.user_id >= 100].assign(user_id=lambda f: f.user_id % 10)
    X = X[X.user_id.isin(hist.user_id)]  # other users' rows, for users with a history
    X = X.assign(item_id=X.item_id.where(np.arange(len(X)) % 3 > 0, 999))  # new items

    def logit(p):
        return np.log(p) - np.log1p(-p)

    blended = logit(model.predict(X, hist, y_hist))
    model.set_params(mf_blend=0.0)
    net = logit(model.predict(X, hist, y_hist))
    np.testing.assert_allclose(net, logit(without.predict(X, hist, y_hist)), rtol=1e-5,
                               atol=1e-6)
    model.set_params(mf_blend=1.0)
    als = logit(model.predict(X, hist, y_hist))
    model.set_params(mf_blend="auto")  # the fitted weight, 0.3
    known = X.item_id.isin(model.items_.ids).to_numpy()
    assert (~known).any() and known.any()
    np.testing.assert_allclose(blended[known], 0.7 * net[known] + 0.3 * als[known],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(blended[~known], net[~known], rtol=1e-5, atol=1e-6)
    # the ALS part from the tables, user by user: iALS's fold-in, calibrated
    blend = model.learner_.blend
    q, gram = blend.factors.double().numpy(), blend.gram.double().numpy()
    alpha, slope, intercept = blend.scales.tolist()
    code = model.items_.encoded[ITEM_ID_FIELD]
    for user in (1, 4):
        rows = code[model.items_.positions(hist.item_id[hist.user_id == user])]
        x = np.linalg.solve(gram + alpha * q[rows].T @ q[rows], (1 + alpha) * q[rows].sum(0))
        mine = (X.user_id.to_numpy() == user) & known
        c = code[model.items_.positions(X.item_id[mine])]
        np.testing.assert_allclose(als[mine], slope * q[c] @ x + intercept, rtol=1e-3,
                                   atol=1e-4)


def test_an_implicit_als_that_does_not_rank_is_not_blended_in(monkeypatch):
    """A calibration slope <= 0 (the ALS's scores fall as interactions rise) warns; "auto"
    then serves the network alone, a number is kept as asked."""
    clicks = make_synthetic(n_users=40, n_items=30, implicit=True, random_state=1)
    monkeypatch.setattr(hybrid, "logistic_fit", lambda x, y: (-0.5, 0.1))
    with pytest.warns(UserWarning, match=r"slope -0\.5.*'auto' serves the network alone"):
        model = MetaRecommender(**FAST).fit(clicks.X, clicks.y)
    assert model.blend_weight_ == 0.0 and model.blend_losses_ is None
    assert float(model.learner_.blend.weight) == 0.0
    with pytest.warns(UserWarning, match=r"mf_blend=0.4 mixes it in all the same"):
        model = MetaRecommender(mf_blend=0.4, **FAST).fit(clicks.X, clicks.y)
    assert model.blend_weight_ == 0.4
    assert model.learner_.blend.scales[1:].tolist() == pytest.approx([-0.5, 0.1])


def test_items_with_only_zeros_are_blended_as_every_item_of_fit_is():
    """0/1 feedback with explicit 0s (rated, not liked): implicit ALS learns from the 1s, so
    an item that only ever got 0s has no factors; it scores as an item nobody chose (zero
    factors, blended like every item of fit), not by the network alone on another scale,
    which put such items at the top of a new user's list."""
    data = make_synthetic(n_users=150, n_items=60, ratings_per_user=(8, 30), random_state=3)
    y = (data.y >= 4).astype(float)
    disliked = np.arange(10)  # items no one likes
    y[data.X.item_id.isin(disliked).to_numpy()] = 0.0
    model = MetaRecommender(**{**FAST, "max_epochs": 2}, mf_blend=0.9).fit(data.X, y)
    blend, codes = model.learner_.blend, model.items_.encoded[ITEM_ID_FIELD]
    assert bool(blend.known[torch.as_tensor(codes)].all())
    rows = model.items_.positions(pd.Index(disliked))
    assert not blend.factors[torch.as_tensor(codes[rows])].any()
    cold = model.recommend(users=[10**9], n=10)  # a new user, no history yet
    assert cold.item_id.isin(disliked).sum() <= 3
