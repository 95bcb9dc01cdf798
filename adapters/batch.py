"""One batch of the nightly job: database rows in, top-N frame and counts out.

This module holds the policy for imperfect data, applied the same way to every batch and
counted in the job's summary:

- an interaction whose user id is NULL belongs to no user and is never read: the job
  counts them over the whole table, once per run (``null_user_id``);
- a history row whose item id is NULL is dropped (``null_item_id``);
- a history row whose rating is NULL, NaN or not a number is dropped (``null_rating``);
- a history row whose rating is off the model's scale is dropped (``off_scale``): outside
  the range of ``y`` in ``fit`` for ratings (a 50 on a 1-to-5 scale), not 0/1 for 0/1
  feedback. ``adapt`` refuses such a history; here one typo must not stop the run;
- a history row whose item the model does not know, and that no item table describes, is
  dropped (``unknown_item``); an item the item table describes is new, and is encoded
  from its features;
- of duplicate (user, item) rows the latest is kept (``duplicate``);
- of rows sharing a key in a feature table, the last read is used: the one with the
  greatest primary key when the table has one (:meth:`SqlReader.tie_break`); rows whose
  key is NULL are not read; the job counts both per table, once per run
  (``feature_tables``);
- a user the model does not know is adapted on its database history alone (``new``);
- a user left with no history is scored by the meta-learned initialisation on its
  features (``cold``), or skipped when ``skip_cold`` is set (``no_history``); so is a user
  the model was fitted on: the database is the source of truth, and nothing of the history
  the model remembers from training is used (a user whose rows were deleted is not served
  from them, and a mapping that reads no rows shows as cold users, not as a healthy run);
- a user with no candidate left to recommend (all seen) is skipped (``no_candidates``);
  "seen" is every item of the user's rows, those older than the rows read for adapting
  included (``seen``, which :meth:`SqlReader.older_items` reads), and rows dropped above.

Ids read from the database are matched to the model's ids by value: when the model was
fitted on integer ids and the database holds them as text (recmeta's default tables do),
``"42"`` is user ``42``. Recommendations are written with the database's own user ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recmeta import columns as C
from recmeta.adapted import Request
from recmeta.exceptions import DataError

from .ids import align_ids
from .sql import feature_column, last_per_key

if TYPE_CHECKING:
    from recmeta import MetaRecommender


IMPLICIT = "--rating-col '' (every row counts as a 1)"


def check_ratings(rating_col: str | None, sample: pd.Series | None) -> pd.Series | None:
    """Refuse a rating column without a number in it: every row would be dropped as "not a
    number", so the job would serve every user cold and training would have nothing to fit
    (fit's "X is empty" says nothing of the column). ``sample``: some values of the column
    that are not NULL (:meth:`SqlReader.rating_sample`), None without a rating column; an
    empty one (no rows yet) passes. Returns the sample as numbers (NaN where not one)."""
    if sample is None:
        return None
    values = pd.to_numeric(sample, errors="coerce")
    if len(sample) and values.isna().all():
        raise DataError(f"The rating column {rating_col!r} holds no numbers (e.g. "
                        f"{shown(sample.iloc[0])}). Map the column of ratings, or pass {IMPLICIT} "
                        f"for a model of 0/1 feedback.")
    return values


def check_feedback(model: MetaRecommender, rating_col: str | None,
                   sample: pd.Series | None) -> None:
    """Refuse, before anything is written, a mapping that contradicts what the model was
    fitted on: no rating column for a model of ratings (every row would read as a 1), a
    rating column without a number in it (:func:`check_ratings`), or ratings other than 0/1
    for a model of 0/1 feedback. ``sample``: some values of the rating column
    (:meth:`SqlReader.rating_sample`)."""
    binary = model.objective_ == "binary"
    if sample is None:
        if not binary:
            raise DataError("The model was fitted on ratings, but no rating column is mapped, "
                            "so every row would read as a rating of 1. Map the rating column "
                            "(--rating-col; rating= of Interactions in Python).")
        return
    values = check_ratings(rating_col, sample)
    other = values[values.notna() & ~values.isin([0, 1])]
    if binary and len(other):
        raise DataError(f"The model was fitted on 0/1 feedback, but the rating column "
                        f"{rating_col!r} holds other values (e.g. {other.iloc[0]:g}). Pass "
                        f"{IMPLICIT}, or map a column of 0/1.")


def shown(value) -> str:
    """A value of the database in a message, as a person reads it: text quoted, anything
    else (a number, a datetime) as its ``str``, not a Python repr such as
    ``datetime.datetime(1997, 12, 4, 15, 55, 49, tzinfo=zoneinfo.ZoneInfo(key='Etc/UTC'))``."""
    return repr(value) if isinstance(value, str) else str(value)


@dataclass
class Counts:
    """What happened to users and history rows; added up over batches."""

    users_seen: int = 0
    users_scored: int = 0
    users_cold: int = 0
    users_new: int = 0
    skipped_no_history: int = 0
    skipped_no_candidates: int = 0
    rows_read: int = 0
    rows_used: int = 0
    dropped_null_item: int = 0
    dropped_null_rating: int = 0  # NULL, NaN or not a number
    dropped_off_scale: int = 0
    dropped_unknown_item: int = 0
    dropped_duplicate: int = 0
    recommendations: int = 0

    def __iadd__(self, other: Counts) -> Counts:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Counts:
        return cls(**(data or {}))


class BatchScorer:
    """Scores batches of users for one model, one catalogue and one set of options.

    Parameters
    ----------
    model : MetaRecommender
        Fitted.
    n : int
        Recommendations per user.
    exclude_seen, skip_cold : bool
    item_table : DataFrame or None
        Item features from the database (``item_id`` and feature columns), for new items.
    candidates : DataFrame or None
        Items to rank (``item_id`` and, when new items are allowed, their features);
        None ranks every item the model knows.
    """

    def __init__(self, model: MetaRecommender, n: int, exclude_seen: bool, skip_cold: bool,
                 item_table: pd.DataFrame | None, candidates: pd.DataFrame | None):
        self.model, self.schema = model, model.schema_
        self.n, self.exclude_seen, self.skip_cold = n, exclude_seen, skip_cold
        self.item_table = None if item_table is None else self._items_frame(item_table)
        self.candidates, self.candidates_dropped = self._candidates(candidates)

    # -------------------------------------------------------------- catalogue
    def _items_frame(self, table: pd.DataFrame) -> pd.DataFrame:
        return self._model_frame(table, "item")

    def _model_frame(self, table: pd.DataFrame, side: str) -> pd.DataFrame:
        """A feature table as :meth:`SqlReader.features` reads it, as the model takes it:
        one row per key, the key under the model's id column, and the model's fields of
        ``side``, each from the column :func:`feature_column` finds (None where none)."""
        s = self.schema
        key, ids, fields = ((s.user_col, self.model.users_.ids, s.user_fields) if side == "user"
                            else (s.item_col, self.model.items_.ids, s.item_fields))
        frame = pd.DataFrame({key: align_ids(table[C.USER if side == "user" else C.ITEM],
                                             ids).to_numpy()})
        for name in fields:
            column = feature_column(side, name, table.columns)
            frame[name] = None if column is None else table[column].to_numpy()
        return last_per_key(frame, key)

    def _candidates(self, table: pd.DataFrame | None):
        """Candidates as the estimator takes them, and how many were unusable."""
        if table is None:
            return None, 0
        s = self.schema
        described = all(feature_column("item", name, table.columns) is not None
                        for name in s.item_fields)
        frame = self._items_frame(table)
        if described:
            return frame, 0
        known = self.model.items_.positions(frame[s.item_col]) >= 0
        return frame[s.item_col][known].tolist(), int((~known).sum())

    def n_candidates(self) -> int:
        return len(self.model.items_) if self.candidates is None else len(self.candidates)

    # ------------------------------------------------------------------ batch
    def score(self, users: list, history: pd.DataFrame, user_table: pd.DataFrame | None,
              seen: pd.DataFrame | None = None) -> tuple[pd.DataFrame, Counts]:
        """Top-``n`` of every user in ``users`` from its ``history`` rows.

        Parameters
        ----------
        users : list
            The batch's user ids, as the database holds them.
        history : DataFrame with columns user_id, item_id, rating (, timestamp)
            Oldest first within each user, as :meth:`SqlReader.histories` returns it.
        user_table : DataFrame or None
            ``user_id`` and user feature columns of (some of) these users.
        seen : DataFrame or None
            ``user_id`` and ``item_id`` of rows older than ``history`` holds, never
            recommended (with ``exclude_seen``) as no item of ``history`` is.

        Returns
        -------
        recommendations : DataFrame with columns user_id, item_id, score, rank
        counts : Counts
        """
        counts = Counts(users_seen=len(users), rows_read=len(history))
        known_users = self.model.users_.ids
        aligned = align_ids(pd.Series(users), known_users)
        raw_of = dict(zip(aligned.tolist(), users, strict=True))
        seen_by_user = self._seen_items(history, seen) if self.exclude_seen else None
        history = self._clean(history, counts)
        counts.users_new = int((self.model.users_.positions(aligned) < 0).sum())
        features = self._user_features(user_table)
        warm_ids = pd.unique(history[self.schema.user_col]).tolist()
        warm = set(warm_ids)
        cold_ids = [u for u in aligned.tolist() if u not in warm]
        parts = [self._recommend(history, warm_ids, features, seen_by_user)] if warm_ids else []
        if cold_ids and self.skip_cold:
            counts.skipped_no_history = len(cold_ids)
        elif cold_ids:
            counts.users_cold = len(cold_ids)
            parts.append(self._recommend(None, cold_ids, features, seen_by_user))
        recs = pd.concat(parts, ignore_index=True) if parts else _empty()
        served = set(recs[C.USER].tolist())
        attempted = len(warm_ids) + (0 if self.skip_cold else len(cold_ids))
        counts.skipped_no_candidates = attempted - len(served)
        counts.users_scored = len(served)
        counts.recommendations = len(recs)
        recs[C.USER] = recs[C.USER].map(raw_of)
        return recs, counts

    def _seen_items(self, history: pd.DataFrame, older: pd.DataFrame | None) -> dict:
        """Every item of each user's rows, read or older, dropped rows' included: the
        model's ids of user -> items."""
        rows = history[[C.USER, C.ITEM]]
        if older is not None and len(older):
            rows = pd.concat([rows, older[[C.USER, C.ITEM]]], ignore_index=True)
        rows = rows.dropna()
        if rows.empty:
            return {}
        users = align_ids(rows[C.USER], self.model.users_.ids)
        items = align_ids(rows[C.ITEM], self.model.items_.ids)
        return items.groupby(users.to_numpy(), sort=False).agg(list).to_dict()

    def _clean(self, history: pd.DataFrame, counts: Counts) -> pd.DataFrame:
        """Apply the row policy of the module docstring; rename to the model's columns."""
        s, model = self.schema, self.model
        no_item = history[C.ITEM].isna().to_numpy()
        counts.dropped_null_item = int(no_item.sum())
        frame = history.loc[~no_item].copy()
        frame[C.USER] = align_ids(frame[C.USER], model.users_.ids)
        frame[C.ITEM] = align_ids(frame[C.ITEM], model.items_.ids)
        bad = ~np.isfinite(frame[C.RATING].to_numpy(dtype=np.float64, na_value=np.nan))
        counts.dropped_null_rating = int(bad.sum())
        frame = frame.loc[~bad]
        off = model._off_scale(frame[C.RATING].to_numpy(dtype=np.float64))
        counts.dropped_off_scale = int(off.sum())
        frame = frame.loc[~off]
        known = model.items_.positions(frame[C.ITEM]) >= 0
        if self.item_table is not None:
            known |= frame[C.ITEM].isin(self.item_table[s.item_col]).to_numpy()
        counts.dropped_unknown_item = int((~known).sum())
        frame = frame.loc[known]
        dup = frame.duplicated([C.USER, C.ITEM], keep="last").to_numpy()
        counts.dropped_duplicate = int(dup.sum())
        frame = frame.loc[~dup]
        counts.rows_used = len(frame)
        frame = frame.rename(columns={C.USER: s.user_col, C.ITEM: s.item_col})
        if s.time_col is not None:
            # rows come oldest first: their order is the time the model needs
            frame[s.time_col] = np.arange(len(frame))
        return frame.reset_index(drop=True)

    def _user_features(self, table: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if table is None else self._model_frame(table, "user")

    def _users_arg(self, ids: list, features: pd.DataFrame | None):
        """Users as ``adapt`` takes them: features from the database when it has a users
        table (the source of truth), else ids (known users keep the model's features)."""
        if features is None:
            return ids
        s = self.schema
        frame = pd.DataFrame({s.user_col: ids})
        return frame.merge(features, on=s.user_col, how="left")

    def _recommend(self, history: pd.DataFrame | None, ids: list,
                   features: pd.DataFrame | None, seen: dict | None) -> pd.DataFrame:
        users = self._users_arg(ids, features)
        request = Request(self.model)
        if history is None:  # no history read: none remembered from training either
            adapted = request.adapted(None, None, users, remembered=False, seen=seen)
        else:
            adapted = request.adapted(self._history_X(history), history[C.RATING].to_numpy(),
                                      users, seen=seen)
        return adapted.recommend(self.n, self.candidates, self.exclude_seen)

    def _history_X(self, history: pd.DataFrame) -> pd.DataFrame:
        """The history with the feature columns the model needs (None where unknown)."""
        s = self.schema
        extra = [C.RATING, *([C.TIME] if C.TIME != s.time_col else [])]
        frame = history.drop(columns=[c for c in extra if c in history.columns])
        for name in s.user_fields:
            frame[name] = None
        if self.item_table is not None and s.item_fields:
            frame = frame.merge(self.item_table, on=s.item_col, how="left")
        for name in s.item_fields:
            if name not in frame.columns:
                frame[name] = None
        return frame


def _empty() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in C.RECOMMENDATION_COLUMNS})
