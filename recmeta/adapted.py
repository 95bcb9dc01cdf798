"""Adapted users: the result of adapting users on their histories, and how requests build them."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from . import columns as C
from .catalog import EntityTable
from .episodes import serving_negatives
from .exceptions import DataError
from .frames import (
    ROW_ITEM,
    as_id_list,
    check_columns,
    check_target,
    drop_duplicates,
    drop_rows_without_ids,
    id_type_hint,
    to_frame,
    warn_if_none_known,
    with_row_items,
)
from .serving import adapt_and_score, adapt_users, score_rows, top_n


class AdaptedUsers:
    """Users adapted to their histories: each holds its own copy of the adapted parameters.

    Made by :meth:`MetaRecommender.adapt`; not built directly.
    """

    def __init__(self, model, users: EntityTable, items: EntityTable, fast: dict,
                 seen: list[np.ndarray], seen_ids: list | None = None):
        # seen: each user's whole history (positions in items), not only the latest
        # max_history rows it adapted on; seen_ids: more ids per user (the nightly job's
        # rows past the ones it read), placed when the candidates are known
        self._model, self._users, self._items = model, users, items
        self._fast, self._seen, self._seen_ids = fast, seen, seen_ids

    @property
    def user_ids(self) -> pd.Index:
        """The ids of the adapted users, in order."""
        return self._users.ids

    def __len__(self) -> int:
        return len(self._users)

    def __repr__(self) -> str:
        return f"AdaptedUsers(n_users={len(self)}, n_items={len(self._items)})"

    def predict(self, X) -> np.ndarray:
        """Scores of the rows of ``X`` (user, item and item-feature columns).

        Returns
        -------
        ndarray of shape (n_rows,)
            Predicted ratings (clipped to the range of ``y`` in ``fit``), or probabilities
            for the binary objective.
        """
        request = Request(self._model, self._items)
        frame = request.frame(X, "X", users="id")
        items = request.items
        user_pos = self._users.positions(frame[request.schema.user_col])
        if (user_pos < 0).any():
            missing = frame[request.schema.user_col].to_numpy()[user_pos < 0][0]
            raise DataError(f"User {missing!r} in X was not adapted. Adapt it first: "
                            f"model.adapt(history_X, history_y) with its history.")
        item_pos = items.positions(frame[request.schema.item_col])
        groups, rows = group_rows(user_pos)
        scores = score_rows(self._model.learner_, self._table(self._users), self._table(items),
                            self._fast, rows, rows, [item_pos[g] for g in groups])
        return self._model._output(scatter(groups, scores, len(frame)))

    def recommend(self, n: int = 10, candidates=None, exclude_seen: bool = True) -> pd.DataFrame:
        """The ``n`` best items for every adapted user.

        Parameters
        ----------
        n : int, default=10
        candidates : list of ids or DataFrame, default=None
            Items to rank: the items of ``fit`` by default (not new items that some
            adapted user's history brought: pass those in a frame); ids of known items; or
            a frame with ``item_col`` and the item-feature columns (new items allowed).
        exclude_seen : bool, default=True
            Never recommend an item from the user's history.

        Returns
        -------
        DataFrame with columns user_id, item_id, score, rank
            Sorted by user, then rank (1 is best).
        """
        if not isinstance(n, int | np.integer) or n < 1:
            raise DataError(f"n must be a positive int; got {n!r}.")
        items, cand = self._candidates(candidates)
        rows, scores = top_n(self._model.learner_, self._table(self._users), self._table(items),
                             self._fast, np.arange(len(self)), cand,
                             self._seen_in(items) if exclude_seen else None, int(n))
        keep = rows >= 0
        frame = pd.DataFrame({
            C.USER: np.repeat(self._users.ids.to_numpy(), rows.shape[1])[keep.ravel()],
            C.ITEM: items.ids.to_numpy()[rows[keep]],
            C.SCORE: self._model._output(scores[keep].astype(np.float64)),
            C.RANK: np.tile(np.arange(1, rows.shape[1] + 1), len(rows))[keep.ravel()],
        })
        return frame.reset_index(drop=True)

    def _seen_in(self, items: EntityTable) -> list[np.ndarray]:
        """Each user's seen items as positions in ``items`` (this catalogue, or it extended
        by new candidate items)."""
        if self._seen_ids is None:
            return self._seen
        out = []
        for seen, ids in zip(self._seen, self._seen_ids, strict=True):
            more = items.positions(pd.Index(ids)) if len(ids) else np.zeros(0, np.int64)
            out.append(np.union1d(seen, more[more >= 0]))
        return out

    def _candidates(self, candidates) -> tuple[EntityTable, np.ndarray]:
        if candidates is None:  # the items of fit: not new items some history brought
            return self._items, np.arange(len(self._model.items_))
        if isinstance(candidates, pd.DataFrame):
            request = Request(self._model, self._items)
            frame = request.frame(candidates, "candidates", users="none")
            ids = frame[request.schema.item_col].drop_duplicates()
            return request.items, request.items.positions(ids)
        ids = pd.Index(pd.unique(np.asarray(list(as_id_list(candidates)), dtype=object)))
        pos = self._items.positions(ids)
        if (pos < 0).any():
            hint = id_type_hint(ids, self._items.ids) if (pos < 0).all() else ""
            raise DataError(f"Candidate item {ids[pos < 0][0]!r} is unknown to the model. Pass "
                            f"new items as a DataFrame with their features instead of ids."
                            f"{hint}")
        return self._items, pos

    def _table(self, entities: EntityTable):
        return entities.tensors(self._model.device_)


class Request:
    """One call's users, items and histories, encoded against a fitted model."""

    def __init__(self, model, items: EntityTable | None = None):
        self.model, self.schema = model, model.schema_
        self.items = items if items is not None else model.items_

    def frame(self, X, what: str, users: str = "features") -> pd.DataFrame:
        """Check ``X``'s columns, and add any new items it brings to the catalogue.

        ``users`` says what ``X`` must have of users: ``"features"`` (id and features),
        ``"id"`` or ``"none"`` (a candidate list).
        """
        frame = to_frame(X, what)
        s = self.schema
        expected = self.model.n_features_in_
        if not isinstance(X, pd.DataFrame) and frame.shape[1] != expected:
            raise DataError(f"{what} has {frame.shape[1]} features, but "
                            f"{type(self.model).__name__} is expecting {expected} features "
                            f"as input (the columns of fit, in the same order).")
        if s.item_col == ROW_ITEM:
            frame = with_row_items(frame, len(self.items))
        needed = [s.item_col, *s.item_fields]
        needed += [s.user_col] if users != "none" else []
        needed += s.user_fields if users == "features" else []
        check_columns(frame, needed, what, hint="It needs the id and feature columns of fit.")
        new = ~frame[s.item_col].isin(self.items.ids)
        if new.all() and len(frame) and users != "none" and s.item_col != ROW_ITEM:
            # every item new: a conversion the caller missed? (candidates may all be new)
            warn_if_none_known(pd.Index(pd.unique(frame[s.item_col].to_numpy(dtype=object))),
                               self.items.ids, f"item id(s) of {what}",
                               "they are scored as new items, from their features alone",
                               stacklevel=3)
        if new.any():
            self.items = self.items.extend(EntityTable.from_frame(
                frame.loc[new], s.item_col, s.item_fields, self.model.feature_space_, "item"))
        return frame

    def prepare(self, history_X, history_y, users, require_history: bool = True,
                remembered: bool = True):
        """The users to adapt, and each one's history (item rows, scaled targets), whole:
        a user adapts on the latest ``max_history`` rows of it (:meth:`support`), and none
        of it is recommended back.

        A user without rows in ``history_X`` adapts on the history remembered from ``fit``,
        or, with ``remembered=False`` (a database that is the source of truth), on none."""
        if history_X is None and history_y is not None:
            raise DataError("history_y was given without history_X; pass both, or neither.")
        histories = self._given(history_X, history_y) if history_X is not None else None
        table = self._users(users, history_X)
        whole = []
        for user in table.ids:
            if histories is not None and user in histories:
                whole.append(histories[user])
            elif histories is not None and require_history:
                raise DataError(f"User {user!r} has no rows in history_X. Give its interactions, "
                                f"or leave it out (users not in a history use the remembered or "
                                f"initial model: call adapt(users=[...]) without history_X).")
            elif remembered:
                whole.append(self._remembered(user))
            else:
                whole.append((np.zeros(0, np.int64), np.zeros(0, np.float32)))
        return table, whole

    def adapted(self, history_X, history_y, users, require_history: bool = True,
                remembered: bool = True, seen: dict | None = None):
        """Adapt the users and keep each one's parameters. ``seen``: more item ids per
        user id that ``recommend`` leaves out, beside each user's history."""
        table, histories = self.prepare(history_X, history_y, users, require_history,
                                        remembered)
        model = self.model
        fast = adapt_users(model.learner_, table.tensors(model.device_),
                           self.items.tensors(model.device_), np.arange(len(table)),
                           self._with_negatives([self.support(h) for h in histories]),
                           model._serving_loop())
        extra = None if seen is None else [list(seen.get(u, ())) for u in table.ids]
        return AdaptedUsers(model, table, self.items, fast, [i for i, _ in histories], extra)

    def support(self, history: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
        """What a user adapts on: the latest ``max_history`` rows of its history."""
        items, target = history
        return items[-self.model.max_history :], target[-self.model.max_history :]

    def scores(self, frame: pd.DataFrame, history_X, history_y) -> np.ndarray:
        """Adapt the users of ``frame`` and score its rows, a chunk of users at a time,
        keeping no per-user parameters."""
        table, histories = self.prepare(history_X, history_y, frame, require_history=False)
        supports = [self.support(h) for h in histories]
        model, s = self.model, self.schema
        groups, rows = group_rows(table.positions(frame[s.user_col]))
        item_pos = self.items.positions(frame[s.item_col])
        scores = adapt_and_score(model.learner_, table.tensors(model.device_),
                                 self.items.tensors(model.device_), rows,
                                 self._with_negatives([supports[r] for r in rows]),
                                 [item_pos[g] for g in groups], model._serving_loop())
        return model._output(scatter(groups, scores, len(frame)))

    def _given(self, history_X, history_y) -> dict:
        raw = to_frame(history_X, "history_X")
        target = check_target(history_y, len(raw), "history_y", "history_X")
        self.model._check_scale(target, "history_y")
        kept, target = drop_rows_without_ids(raw, target, [self.schema.user_col,
                                                           self.schema.item_col], "history_X",
                                             fitting=False)
        frame = self.frame(history_X if kept is raw else kept, "history_X")
        frame, target = drop_duplicates(frame, target, self.schema)
        scaled = self.model._scale(target)
        items = self.items.positions(frame[self.schema.item_col])
        groups = frame.groupby(self.schema.user_col, sort=False).indices
        self._history_frame = frame
        return {user: (items[rows], scaled[rows]) for user, rows in groups.items()}

    def _remembered(self, user) -> tuple[np.ndarray, np.ndarray]:
        known = self.model.users_.positions([user])[0]
        if known < 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return self.model.histories_.of(known)

    def _users(self, users, history_X) -> EntityTable:
        s, model = self.schema, self.model
        if isinstance(users, pd.DataFrame):
            check_columns(users, [s.user_col], "users", hint="It needs the user id column.")
            absent = [c for c in s.user_fields if c not in users.columns]
            if absent:  # a partial profile, as the fast path takes one (or a misspelt name)
                warnings.warn(f"users has no column {', '.join(map(repr, absent))}: read as "
                              f"unknown for every user. Its user features are "
                              f"{', '.join(map(repr, s.user_fields))}; add a missing one "
                              f"(None where unknown) to silence this.", UserWarning,
                              stacklevel=5)
                users = users.assign(**{c: None for c in absent})
            return EntityTable.from_frame(users, s.user_col, s.user_fields,
                                          model.feature_space_, "user")
        if users is None and history_X is not None:
            return EntityTable.from_frame(self._history_frame, s.user_col, s.user_fields,
                                          model.feature_space_, "user")
        ids = pd.Index(pd.unique(np.asarray(
            list(model.users_.ids) if users is None else list(users), dtype=object)))
        known = model.users_.positions(ids)
        stub = pd.DataFrame({s.user_col: ids, **{c: [None] * len(ids) for c in s.user_fields}})
        table = EntityTable.from_frame(stub, s.user_col, s.user_fields, model.feature_space_,
                                       "user")
        for name, column in table.encoded.items():
            column[known >= 0] = model.users_.encoded[name][known[known >= 0]]
        return table

    def _with_negatives(self, supports: list) -> list:
        model = self.model
        if model.objective_ != "binary" or not model.negatives:
            return supports
        return [serving_negatives(i, t, model.negatives, len(model.items_))
                for i, t in supports]


def group_rows(user_pos: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Row numbers grouped by user (in user order), and each group's user."""
    order = np.argsort(user_pos, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(user_pos[order])) + 1)
    return groups, np.asarray([user_pos[g[0]] for g in groups], dtype=np.int64)


def scatter(groups: list[np.ndarray], scores: list[np.ndarray], n: int) -> np.ndarray:
    """Put each group's scores back at its rows."""
    out = np.empty(n, dtype=np.float64)
    for g, values in zip(groups, scores, strict=True):
        out[g] = values
    return out
