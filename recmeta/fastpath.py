"""The fast path for one brand-new user in an app: a few clicks in, a ranked list out, now.

:class:`NewUserRecommender` prepares once what does not depend on the user (the candidate
items' encoded features and, when only the MLP adapts, their embeddings), then answers each
request with the same inner loop the rest of recmeta uses, on a batch of one user, with no
pandas on the request path.

>>> from recmeta import MetaRecommender, make_synthetic
>>> from recmeta.fastpath import NewUserRecommender
>>> data = make_synthetic(n_users=50, n_items=40, random_state=0)
>>> model = MetaRecommender(max_epochs=1, random_state=0, verbose=0).fit(data.X, data.y)
>>> fast = NewUserRecommender(model)
>>> top = fast.recommend(items=[1, 2, 3], ratings=[5, 1, 4], user={"gender": "F"}, n=3)
>>> len(top), sorted(top[0])
(3, ['item_id', 'score'])
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call

from .adaptation import InnerLoop, adapt, adapt_one, score
from .episodes import serving_negatives
from .exceptions import DataError
from .frames import id_type_hint
from .meta import COMPACT, EMBEDDED, rows

__all__ = ["NewUserRecommender"]


class NewUserRecommender:
    """Recommend for one new user from a handful of interactions, in milliseconds.

    Parameters
    ----------
    model : MetaRecommender
        A fitted model.
    candidates : list of ids, default=None
        Items that may be recommended (known to the model); all known items by default.
    """

    def __init__(self, model, candidates=None):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(model)
        self.model, self.learner = model, model.learner_
        self.device = model.device_
        self.loop: InnerLoop = model._serving_loop()
        items = model.items_
        self._item_ids = items.ids
        self._items = items.tensors(self.device)
        cand = np.arange(len(items)) if candidates is None else items.positions(candidates)
        if (cand < 0).any():
            raise DataError("Every candidate must be an item known to the model; "
                            f"{list(pd.Index(candidates)[cand < 0])[:5]} are not.")
        self._candidates = torch.as_tensor(cand, device=self.device)
        self._positions = pd.Series(np.arange(len(items)), index=items.ids)
        # what does not depend on the user: every item's vector (or encoded row)
        self._all_items = self.learner.serving_items(self._items)
        self._cand_items = _take(self._all_items, self._candidates)

    def _warn_unknown(self, items) -> None:
        """None of a user's items is known: say so, and name a type mismatch."""
        given = pd.Index(items)
        hint = id_type_hint(given, self._positions.index)
        warnings.warn(f"None of the user's {len(given)} item(s) is known to the model, so it "
                      f"is served as a user with no history.{hint}", UserWarning, stacklevel=3)

    def _user_rows(self, user: dict | None) -> dict:
        space, model = self.model.feature_space_, self.model
        if user:
            self._warn_unknown_features(user)
        frame = pd.DataFrame({f.name: [(user or {}).get(_column(model, f.name))]
                              for f in space.side("user")})
        encoded = space.encode("user", frame)
        rows = {k: torch.as_tensor(v, device=self.device) for k, v in encoded.items()}
        rows["_row"] = torch.zeros(1, dtype=torch.long, device=self.device)
        return rows

    def _warn_unknown_features(self, user: dict) -> None:
        """Keys of ``user`` that name no user feature of the model would be ignored without
        a word (a typo reads the user as unknown there): say so."""
        known = {str(c) for c in self.model.schema_.user_fields}
        extra = [k for k in user if str(k) not in known
                 and str(k) != str(self.model.schema_.user_col)]
        if extra:
            named = ", ".join(map(repr, sorted(known))) or "none"
            warnings.warn(f"user has {', '.join(map(repr, extra))}, which the model has no "
                          f"user feature of: ignored. Its user features are {named}.",
                          UserWarning, stacklevel=4)

    def recommend(self, items, ratings, user: dict | None = None, n: int = 10,
                  exclude_seen: bool = True) -> list[dict]:
        """Adapt on ``(items, ratings)`` and return the top ``n`` candidates.

        Parameters
        ----------
        items : sequence of ids
            Items the user interacted with, oldest first (unknown ids are ignored; an item
            given more than once counts once, with its last rating). The user adapts on the
            latest ``max_history`` of them, as ``adapt`` does; none of them is recommended.
        ratings : sequence of float
            The user's ratings (or 1 for a click), one per item.
        user : dict, default=None
            The user's features by column name, e.g. ``{"gender": "F"}``; missing ones are
            unknown.
        n : int, default=10
        exclude_seen : bool, default=True

        Returns
        -------
        list of dict
            ``{"item_id": ..., "score": ...}``, best first.
        """
        if not (pd.api.types.is_list_like(items) and pd.api.types.is_list_like(ratings)):
            raise DataError(f"items and ratings must be lists, one rating per item; got "
                            f"{type(items).__name__} and {type(ratings).__name__} (for one "
                            f"item, pass [item] and [rating]).")
        if len(items) != len(ratings):
            raise DataError(f"items and ratings must have the same length; got {len(items)} "
                            f"and {len(ratings)}.")
        if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
            raise DataError(f"n must be a positive int; got {n!r}.")
        values = _numbers(ratings)
        self.model._check_scale(values, "ratings")
        pos = self._positions.reindex(pd.Index(items)).to_numpy()
        if len(pos) and np.isnan(pos).all():
            self._warn_unknown(items)
        # unknown ids are ignored; an item given twice counts once, with its last rating
        # (as ``adapt`` and ``predict`` read a history)
        known = ~np.isnan(pos) & ~pd.Series(pos).duplicated(keep="last").to_numpy()
        seen = pos[known].astype(np.int64)
        last = self.model.max_history  # what adapt() adapts on: the latest rows
        support, target = seen[-last:], self.model._scale(values[known])[-last:]
        if self.model.objective_ == "binary":  # as in training: sampled negatives beside
            seen_items, target = serving_negatives(support, target, self.model.negatives,
                                                   len(self._item_ids))
        else:
            seen_items = support
        scores = self._scores(self._user_rows(user),
                              torch.as_tensor(seen_items, device=self.device),
                              torch.as_tensor(target, device=self.device))
        if exclude_seen and len(seen):
            scores[torch.isin(self._candidates, torch.as_tensor(seen, device=self.device))] = \
                -torch.inf
        best, at = torch.topk(scores, min(n, len(scores)))
        keep = torch.isfinite(best)
        ids = self._item_ids[self._candidates[at[keep]].cpu().numpy()]
        values = self.model._output(best[keep].cpu().numpy().astype(np.float64))
        return [{"item_id": i, "score": float(s)} for i, s in zip(ids, values, strict=True)]

    def _scores(self, user_rows: dict, support: torch.Tensor, target: torch.Tensor):
        learner = self.learner
        mask = torch.ones(len(support), device=self.device)
        with torch.no_grad():
            # one user: the inner loop itself, without vmap's batching overhead
            if learner.adapt_all:
                u = _first(user_rows)
                fast = adapt_one(learner.scorer, self.loop, learner.reference_params(),
                                 learner.reference_lrs(), (u, _take(self._all_items, support)),
                                 target.float(), mask)
                net = functional_call(learner.scorer, fast, (u, self._cand_items))[None]
            else:  # a batch of one user: the default scorer's hand-written inner loop
                params, lrs, dims = learner.start(learner.scorer.user(user_rows))
                items = self._all_items[EMBEDDED]
                fast = adapt(learner.adapted, params, lrs, (items[support][None],),
                             target.float()[None], mask[None], self.loop, param_dims=dims)
                if learner.reads_compact(self._cand_items, len(self._candidates)):
                    fast, cand = learner.compact(fast), self._cand_items[COMPACT]
                else:
                    cand = self._cand_items[EMBEDDED]
                net = score(learner.adapted, fast, (cand,), in_dims=(None,))
            blend = learner.blend
            if blend is None:
                return net[0]
            codes = self._items[blend.field]  # the ALS's fold-in from the same history
            als_user = blend.fold_in(codes[support][None], target.float()[None], mask[None])
            cand = codes[self._candidates]
            return blend.mix(net, blend.predict(als_user, cand), cand)[0]


def _numbers(ratings) -> np.ndarray:
    """The ratings as floats; a missing or non-numeric one is an error, as in a history."""
    try:
        values = np.asarray(ratings, dtype=float)  # None reads as nan
    except (TypeError, ValueError):  # text that is not a number, say
        values = pd.to_numeric(pd.Series(list(ratings), dtype=object), errors="coerce")
        values = values.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        value = list(ratings)[at]
        value = value.item() if isinstance(value, np.generic) else value
        raise DataError(f"ratings must be finite numbers; got {value!r} at "
                        f"position {at} ({int(bad.sum())} such). Leave out the items without "
                        f"a rating, or give clicks as 1.")
    return values


def _take(items, index: torch.Tensor):
    """Rows ``index`` of item vectors, or of every column of an encoded item table."""
    return rows(items, index) if isinstance(items, dict) else items[index]


def _first(rows):
    if isinstance(rows, dict):
        return {k: v[0] for k, v in rows.items()}
    return rows[0]


def _column(model, field: str):
    for column in model.schema_.user_fields:
        if str(column) == field:
            return column
    return field
