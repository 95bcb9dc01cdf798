"""``MetaRecommender``: the scikit-learn face of recmeta."""

from __future__ import annotations

import copy
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _params as P
from ._fitting import FitSteps, resolve_device
from .adaptation import META_LOSSES
from .adapted import AdaptedUsers, Request
from .frames import as_id_list, warn_if_none_known
from .meta import ADAPT, METHODS


class MetaRecommender(FitSteps, RegressorMixin, BaseEstimator):
    """A scorer meta-trained across users so that a few gradient steps personalise it.

    Every user in ``X`` is a learning task. An embedding per feature field, concatenated,
    feeds an MLP (MeLU's shape); meta-training finds an initialisation from which
    ``inner_steps`` gradient steps on one user's history fit that user. ``predict`` and
    ``recommend`` run those steps for many users at once.

    Parameters
    ----------
    user_col, item_col : str or int, default="user_id", "item_id"
        Columns of ``X`` holding the user and item ids (labels; ints for arrays).
        ``item_col=None`` makes every row an item of its own, known only by its features
        (tabular data without item ids).
    time_col : str or int, default=None
        Optional column ordering each history; the latest ``max_history`` rows are used.
    user_features, item_features : "auto", None or list of str, default="auto"
        Side-feature columns. ``"auto"``: a column constant within each item is an item
        feature, else one constant within each user is a user feature.
    feature_kinds : dict of str to {"cat", "multi", "num"}, default=None
        Override the inferred kind of a field (floats and decimals are "num", lists or
        ``"a|b"`` strings "multi", the rest "cat").
    use_item_ids : bool, default=True
        Give each item id its own embedding (new items fall back to their other fields).
    id_dropout : float or "auto", default="auto"
        In meta-training, the share of item rows whose id is hidden (read as "unknown",
        and with it the item's ``mf_features`` vector), so the model learns to score new
        items from their other fields. ``"auto"``: 0.1, or 0.25 with ``mf_features``,
        whose factors say so much of a known item that new items need more rows without
        them (on MeLU's validation users a first try at 0.1 raised new items' MAE).
    min_frequency : int, default=2
        A categorical value shared by fewer users (items) than this gets no embedding of its
        own: it reads as "unknown", which is how the unknown embedding gets trained.
    method : {"maml", "fomaml", "metasgd", "supervised"}, default="metasgd"
        Second-order MAML, first-order MAML, Meta-SGD (learned per-parameter inner learning
        rates), or no meta-learning (the same network trained on pooled rows).
    adapted : {"mlp", "all"}, default="mlp"
        What each user adapts: the MLP (as MeLU) or every parameter.
    inner_steps : int, default=10
        Gradient steps on each user's history. 10 was chosen on validation users carved from
        MeLU's warm state (lower MAE and higher nDCG@3 than 5 in two seeds); fewer steps fit
        and serve faster.
    inner_lr : float, default=0.1
        Inner learning rate (Meta-SGD's starting value).
    shrinkage : float, default=10.0
        Pseudo-count ``c`` of the support loss ``sum(loss) / (n + c)`` over a user's ``n``
        rows: 0 is the plain mean (MAML's usual loss); with ``c > 0`` a user with a few rows
        moves less than one with a long history, by ``n / (n + c)``, as a Bayesian estimate
        would. 10 was chosen on validation users carved from MeLU's warm state.
    objective : {"auto", "squared", "binary"}, default="auto"
        Squared error on ratings, or logistic loss on 0/1 feedback with sampled negatives.
        "auto" picks "binary" when ``y`` holds only 0 and 1, and warns when ``y`` looks
        like counts (whole numbers past 10, most often the least), which it fits as ratings:
        to rank what a user will interact with, fit ``y = 1`` for every row.
    meta_loss : {"auto", "absolute", "squared", "huber"}, default="auto"
        What meta-training scores each user's held-out ratings by, after adapting on the
        rest, and what early stopping watches; the inner steps always descend squared error.
        "absolute" trains for mean absolute error (MAE): adapted predictions move toward
        the median of what a user would rate an item rather than the mean, which lowers MAE
        and raises RMSE; "squared" trains for RMSE; "huber" is Huber's loss, between the
        two: squared error within one standard deviation of ``y`` of the truth (about one
        point on MovieLens' 1-to-5 scale), absolute error past it.
        "auto" is "huber" for ratings: on validation users carved from MeLU's warm state
        (``benchmarks/tune_validation.py``, 3 seeds; docs/evaluation.md gives the figures)
        it ranked each user's items better than "absolute" (nDCG@3 0.7839 against 0.7777)
        and had a lower RMSE, for an MAE 0.0028 higher, and 0.0005 to 0.008 higher on new
        users with 0 to 20 ratings. Except on the rows whose item id ``id_dropout`` hides,
        which teach how a new item is scored from its features alone: "auto" scores them by
        the absolute error, which lowered the MAE of new items on that validation in each of
        4 seeds (by 0.0045 on average). A loss named is every row's. Pass "absolute" when
        MAE is what counts. With 0/1 feedback meta-training uses the logistic loss and only
        "auto" is accepted.
    rank_weight : float, default=0.0
        Weight of a listwise term in meta-training's loss: ListNet's cross-entropy between
        the softmax of each user's held-out ratings and that of the adapted predictions,
        which rewards ordering a user's items as the user would (nDCG) beside getting each
        rating right. 0: none. The meta-learning methods only (``"supervised"`` trains on
        pooled rows, which have no per-user order to score). On the held-out users of
        ``benchmarks/tune_validation.py``, with the absolute meta-loss, 1.0 raised nDCG@3
        by 0.0065 and 0.0006 in two seeds, and MAE by 0.0054 and 0.0094.
    init_weight : float, default=0.0
        Weight of the initialisation's own loss in meta-training: the error of its
        unadapted predictions on each training user's sampled rows (support and query), as
        the non-meta network is trained. A user with no history is served by the
        initialisation itself, which pure meta-training optimises for adapting, not for
        serving as it is. 0: none. Early stopping still watches adapted users only. The
        meta-learning methods only. On validation new users (``benchmarks/tune_curves.py``),
        0.3 lowered MAE at 0 to 3 ratings on ML-100K and ML-1M (on ML-100K up to 20, in the
        mean of three seeds); on MeLU's validation users it lowered nDCG@3 by 0.004 and
        0.010 in two seeds, so it is off by default (docs/evaluation.md gives the figures).
    negatives : int, default=4
        Random unseen items per positive, with target 0, for the binary objective: in
        meta-training, and when a user is adapted to serve it, where they are drawn from a
        generator seeded by the user's own history (the same history, the same scores,
        whatever users are served beside it).
    embedding_dim : int, default=32
    hidden : tuple of int, default=(64, 64)
    factors : int, default=0
        Width of a dot-product term beside the MLP, ``p_user . (Q item)``, whose user factor
        adapts with the MLP (0: the MLP alone, as MeLU).
    factor_ridge : float, default=1.0
        With ``factors``, adaptation ends with the exact ridge solve of the user's factor
        (as ALS folds in a new user), this being the penalty on its change; 0 leaves the
        factor to the gradient steps. Squared error with ``adapted="mlp"`` only.
    mf_features : int or "auto", default="auto"
        Factors of a matrix factorisation given to the network as item features: ``fit``
        first fits a biased ALS (:class:`~recmeta.baselines.BiasedMF`) with this many
        factors on the training users' ratings (not those held out for early stopping),
        and each item id's factors and bias, standardised, become numeric item fields:
        the collaborative signal ALS ranks with. New items get zeros, as id dropout
        trains for. Meta-training reads each user's item vectors re-solved without that
        user's fold of the training users, so it never scores a user on vectors fitted
        to the user's own ratings (given those, it learnt to trust them more than a new
        user's deserve, and was worse on ML-100K's validation new users). ``"auto"``: 8
        for ratings, none for 0/1 feedback (all ones, nothing to factorise); 0: none.
        Needs item ids (``use_item_ids=True``). With 8, on MeLU's validation users
        (``benchmarks/tune_validation.py``) MAE fell on existing and new items and nDCG@3
        rose, in two seeds, and on ML-100K's validation new users
        (``benchmarks/tune_curves.py``) MAE fell at every k from 0 to 20; meta-training
        takes about twice as long per epoch.
    mf_blend : float or "auto", default="auto"
        Weight ``w`` of a biased ALS (:class:`~recmeta.baselines.BiasedMF`, fitted on
        every user's ratings after meta-training) in the scores: whenever a user is
        adapted, the same history folds the user into the ALS (its closed-form solve), and
        an item the ALS knows scores ``(1 - w) * network + w * ALS``; new items, the
        network alone. For 0/1 feedback the ALS is implicit ALS
        (:class:`~recmeta.ials.ImplicitALS`, fitted on the rows with 1), its scores mapped
        to logits by a logistic fit on the users held out for early stopping, and the mix
        is of logits. ``"auto"``: with item ids, the weight of 0, 0.1, ..., 1 with the
        least meta-loss on the users held out for early stopping (for 0/1 feedback, of 0,
        0.1, ..., 0.9 the best nDCG@10 of their query interactions among every item they
        have no row with: at 1 a user with no interaction would get every known item
        tied; 0 when none are held out), folded into an ALS of the other users; 0: none.
        Needs item ids, and for 0/1 feedback users held out. After a fit with the blend,
        ``set_params(mf_blend=w)`` changes its weight for the next ``predict`` or
        ``adapt`` (0: the network alone; "auto": the fitted weight).
    max_history : int, default=100
        Largest support set: a user adapts on the latest rows of its history. Every item of
        the history, older ones included, is still left out of ``recommend``.
    query_size : int, default=10
        Query rows per user in meta-training.
    batch_size : int, default=64
        Users per meta-training step (as fast per user as any size on a CPU, and as good
        as 32 on validation users).
    outer_lr : float, default=1e-3
        Adam's learning rate for the initialisation (and Meta-SGD's rates).
    max_epochs : int, default=30
    patience : int, default=3
        Epochs without improvement of the validation users' loss before stopping.
    validation_fraction : float, default=0.1
        Share of users held out for early stopping (none when fewer than 20 users).
    device : str, default="auto"
        "auto" takes a GPU when there is one. Results always come back on the CPU.
    random_state : int or None, default=None
        Seed for initialisation, sampling and splits; fix it for reproducible fits on the
        CPU (on a GPU, two fits of one seed agree to float rounding, not bit for bit).
    verbose : int, default=1
        0 silent; 1 a progress bar on an interactive stderr; 2 also logs every epoch.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
    objective_ : str
    target_range_ : tuple of float or None
        The least and greatest rating in ``y``: predicted ratings are clipped to it (as
        scores are ranked before, ``recommend``'s order is that of the unclipped scores).
        None for 0/1 feedback.
    n_epochs_ : int
    best_epoch_ : int
    loss_curve_, validation_loss_curve_ : list of float
    blend_weight_ : float or None
        The ALS's weight in the scores (``mf_blend``); None without the blend.
    blend_losses_ : list of float or None
        With ``mf_blend="auto"``, the held-out users' meta-loss at each weight tried (for
        0/1 feedback ``1 - nDCG@10``).

    Examples
    --------
    >>> from recmeta import MetaRecommender, make_synthetic
    >>> data = make_synthetic(n_users=60, n_items=40, random_state=0)
    >>> model = MetaRecommender(max_epochs=2, random_state=0, verbose=0)
    >>> model = model.fit(data.X, data.y)
    >>> model.predict(data.X.head(3)).shape
    (3,)
    >>> model.recommend(users=[0], n=2).columns.tolist()
    ['user_id', 'item_id', 'score', 'rank']
    """

    _parameter_constraints: ClassVar[dict] = {
        "user_col": P.Label(), "item_col": P.Label(optional=True),
        "time_col": P.Label(optional=True),
        "user_features": P.Columns(), "item_features": P.Columns(),
        "feature_kinds": P.AnyOf((P.Options((None,)), P.Mapping())),
        "use_item_ids": P.Options((True, False)),
        "id_dropout": P.AnyOf((P.Options(("auto",)), P.Interval(float, 0.0, 1.0))),
        "min_frequency": P.Interval(int, 1),
        "method": P.Options(METHODS), "adapted": P.Options(ADAPT),
        "inner_steps": P.Interval(int, 0), "inner_lr": P.Interval(float, 0.0),
        "shrinkage": P.Interval(float, 0.0),
        "objective": P.Options(("auto", "squared", "binary")),
        "meta_loss": P.Options(("auto", *META_LOSSES)),
        "rank_weight": P.Interval(float, 0.0), "init_weight": P.Interval(float, 0.0),
        "negatives": P.Interval(int, 0), "embedding_dim": P.Interval(int, 1),
        "hidden": P.Widths(), "factors": P.Interval(int, 0),
        "factor_ridge": P.Interval(float, 0.0),
        "mf_features": P.AnyOf((P.Options(("auto",)), P.Interval(int, 0))),
        "mf_blend": P.AnyOf((P.Options(("auto",)), P.Interval(float, 0.0, 1.0))),
        "max_history": P.Interval(int, 1),
        "query_size": P.Interval(int, 1), "batch_size": P.Interval(int, 1),
        "outer_lr": P.Interval(float, 0.0, open_low=True), "max_epochs": P.Interval(int, 1),
        "patience": P.Interval(int, 1), "validation_fraction": P.Interval(float, 0.0, 0.5),
        "device": P.Device(), "random_state": P.Seed(), "verbose": P.Interval(int, 0),
    }

    def __init__(self, *, user_col="user_id", item_col="item_id", time_col=None,
                 user_features="auto", item_features="auto", feature_kinds=None,
                 use_item_ids=True, id_dropout="auto", min_frequency=2, method="metasgd",
                 adapted="mlp", inner_steps=10,
                 inner_lr=0.1, shrinkage=10.0, objective="auto", meta_loss="auto", rank_weight=0.0,
                 init_weight=0.0, negatives=4,
                 embedding_dim=32,
                 hidden=(64, 64), factors=0, factor_ridge=1.0, mf_features="auto",
                 mf_blend="auto", max_history=100, query_size=10,
                 batch_size=64,
                 outer_lr=1e-3, max_epochs=30, patience=3, validation_fraction=0.1,
                 device="auto", random_state=None, verbose=1):
        self.user_col = user_col
        self.item_col = item_col
        self.time_col = time_col
        self.user_features = user_features
        self.item_features = item_features
        self.feature_kinds = feature_kinds
        self.use_item_ids = use_item_ids
        self.id_dropout = id_dropout
        self.min_frequency = min_frequency
        self.method = method
        self.adapted = adapted
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.shrinkage = shrinkage
        self.objective = objective
        self.meta_loss = meta_loss
        self.rank_weight = rank_weight
        self.init_weight = init_weight
        self.negatives = negatives
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.factors = factors
        self.factor_ridge = factor_ridge
        self.mf_features = mf_features
        self.mf_blend = mf_blend
        self.max_history = max_history
        self.query_size = query_size
        self.batch_size = batch_size
        self.outer_lr = outer_lr
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Meta-train on every user in ``X``.

        Parameters
        ----------
        X : DataFrame of shape (n_interactions, n_columns)
            A row per interaction: ``user_col``, ``item_col`` and side-feature columns.
            Duplicate (user, item) rows keep the last (latest by ``time_col``), with a warning.
        y : array-like of shape (n_interactions,)
            Ratings, or 0/1 feedback.

        Returns
        -------
        self : MetaRecommender
        """
        P.validate(self.get_params(deep=False), self._parameter_constraints, type(self).__name__)
        data = self._read(X, y)
        space, users, items, histories = self._encode(data)
        device = resolve_device(self.device)
        seeds = check_random_state(self.random_state).randint(0, 2**31 - 1, size=2)
        rng = np.random.default_rng(int(seeds[1]))
        train, validation = self._split(histories, rng)
        self._check_blend(data.objective, validation)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seeds[0]))
            learner = self._build_learner(space, data.objective)
        folds = self._fill_item_vectors(learner, items, histories, train, data, int(seeds[0]))
        try:
            result = self._train(learner.to(device), users, items, histories, data.objective,
                                 device, rng, train, validation, folds)
        finally:
            if folds is not None:  # serving and saving read the full fit only
                learner.scorer.item.folds = None
        blend_weight, blend_losses = self._fit_blend(
            learner, users, items, histories, data, train, result, int(seeds[0]), device)
        # every fitted attribute is set here, after training succeeded
        self.schema_, self.feature_space_, self.objective_ = data.schema, space, data.objective
        self.target_mean_, self.target_scale_ = data.mean, data.scale
        self.target_range_ = data.span
        self.users_, self.items_, self.histories_ = users, items, histories
        self.learner_, self.device_ = learner.eval(), device
        self.loss_curve_, self.validation_loss_curve_ = result.train_loss, result.validation_loss
        self.n_epochs_, self.best_epoch_ = result.n_epochs, result.best_epoch
        self.blend_weight_, self.blend_losses_ = blend_weight, blend_losses
        self.n_features_in_ = len(data.columns)
        if all(isinstance(c, str) for c in data.columns):
            self.feature_names_in_ = np.asarray(data.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    # -------------------------------------------------------------- serving
    def adapt(self, history_X=None, history_y=None, *, users=None) -> AdaptedUsers:
        """Adapt users on their histories and return them, ready to predict and recommend.

        Parameters
        ----------
        history_X : DataFrame, default=None
            Interactions to adapt on (user, item and feature columns as in ``fit``). When
            None, the histories remembered from ``fit`` are used.
        history_y : array-like of shape (len(history_X),), default=None
        users : id, list of ids or DataFrame, default=None
            Which users to adapt: one id (a string included) is one user; a frame also
            gives new users' features. With a history, each must have rows in it. Without,
            users unknown to ``fit`` fall back to the meta-learned initialisation on their
            features.

        Returns
        -------
        AdaptedUsers
        """
        check_is_fitted(self)
        return Request(self).adapted(history_X, history_y, as_id_list(users))

    def predict(self, X, history_X=None, history_y=None) -> np.ndarray:
        """Adapt each user of ``X`` on its history and score the rows of ``X``.

        A user's history is taken from ``history_X`` / ``history_y`` when given there, else
        remembered from ``fit``; a user with neither is scored by the initialisation.

        Returns
        -------
        ndarray of shape (n_rows,)
            Predicted ratings (clipped to the range of ``y`` in ``fit``), or probabilities
            for the binary objective.
        """
        check_is_fitted(self)
        request = Request(self)
        frame = request.frame(X, "X")
        if history_X is None:  # with a history, users new to the model are expected
            self._warn_if_no_user_known(frame[self.schema_.user_col])
        return request.scores(frame, history_X, history_y)

    def recommend(self, users=None, n: int = 10, candidates=None,
                  exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``n`` items for users remembered from ``fit`` (all of them by default; one id
        is one user).

        See :meth:`AdaptedUsers.recommend`; for new users, call :meth:`adapt` first.
        """
        check_is_fitted(self)
        if users is None:
            users = list(self.users_.ids)
        else:
            users = as_id_list(users)
            self._warn_if_no_user_known(users)
        return self.adapt(users=users).recommend(n, candidates, exclude_seen)

    def _warn_if_no_user_known(self, users) -> None:
        """Users by id that the model does not know are new users, served the cold-start
        list; when none is known and the ids are of another type than the model's, that is
        almost surely a conversion the caller missed, so say so. (Here, not in ``adapt``:
        the nightly job scores users without history through ``adapt`` and counts them.)"""
        given = pd.Index(pd.unique(np.asarray(list(users), dtype=object)))
        warn_if_none_known(given, self.users_.ids, "user id(s)",
                           "they are served as users with no history", stacklevel=3)

    # ---------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write the fitted model to the directory ``path`` (safetensors + JSON, no pickle)."""
        from .persistence import save

        check_is_fitted(self)
        save(self, path)

    @classmethod
    def load(cls, path, device: str = "auto") -> MetaRecommender:
        """Read a model written by :meth:`save`; never unpickles."""
        from .persistence import load

        return load(cls, path, device)

    def __getstate__(self):
        state = self.__dict__.copy()
        if "learner_" in state:
            state["learner_"] = copy.deepcopy(self.learner_).to("cpu")
            state["device_"] = torch.device("cpu")
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True  # a missing feature value maps to "unknown"
        return tags
