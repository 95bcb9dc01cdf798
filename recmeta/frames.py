"""Reading the caller's frames: checks, column roles, and the split into user and item tables.

The estimator takes one long frame, a row per interaction: the user id, the item id, and
side-feature columns. A feature column whose value never changes within a user is a user
field; one that never changes within an item is an item field (``"auto"``); or the caller
names them. This is the only module besides the estimator that knows pandas' ways.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .exceptions import DataError
from .features import KINDS, infer_kind

# the last sentence of fit's warning of duplicate rows, which the command line, whose
# users have no X, says in its own words
DUPLICATES_ADVICE = "Deduplicate X to silence this."

ITEM_ID_FIELD = "__item_id__"
ROW_ITEM = "__row_item__"  # item_col=None: every row is its own item, known by its features


@dataclass
class Schema:
    """The role of every column: ids, time, and which fields describe users and items."""

    user_col: object
    item_col: object
    time_col: object = None
    user_fields: list = field(default_factory=list)
    item_fields: list = field(default_factory=list)
    kinds: dict = field(default_factory=dict)  # field name (str) -> (side, kind)

    @property
    def feature_columns(self) -> list:
        return [*self.user_fields, *self.item_fields]


def to_frame(X, what: str = "X") -> pd.DataFrame:
    """A DataFrame view of ``X`` (arrays get integer column labels ``0..p-1``)."""
    if hasattr(X, "tocsr") or (hasattr(X, "sparse") and not isinstance(X, pd.DataFrame)):
        raise DataError(f"Sparse input is not supported: {what} must be a dense DataFrame with "
                        f"a row per interaction. Convert it with .toarray() or build a frame.")
    if isinstance(X, pd.DataFrame):
        frame = X
    elif hasattr(X, "__array__") or isinstance(X, list | tuple):
        array = np.asarray(X) if hasattr(X, "__array__") else np.asarray(X, dtype=object)
        if array.ndim != 2:
            raise DataError(
                f"{what} must be 2-dimensional (a frame with a row per interaction); got an array "
                f"of shape {array.shape}. Reshape your data with array.reshape(-1, 1) if it "
                f"has a single feature or array.reshape(1, -1) if it contains a single sample."
            )
        # lists: let pandas infer each column's type (numbers stay numbers)
        frame = pd.DataFrame(array if hasattr(X, "__array__") else list(X)).infer_objects()
    else:
        raise DataError(
            f"{what} must be a pandas DataFrame or a 2-d array; got {type(X).__name__}.")
    if any(pd.api.types.is_complex_dtype(t) for t in frame.dtypes):
        raise DataError(f"Complex data not supported: {what} must hold real numbers, ids or "
                        f"categories.")
    if len(frame) == 0:
        raise DataError(f"{what} is empty (0 rows): it needs at least one interaction "
                        f"(a minimum of 1 sample is required).")
    if frame.shape[1] == 0:
        raise DataError(f"{what} has 0 feature(s) (shape={frame.shape}) while a minimum of 1 is "
                        f"required: it needs at least the user id column.")
    return frame


def with_row_items(frame: pd.DataFrame, start: int) -> pd.DataFrame:
    """For ``item_col=None``: number every row as an item of its own, from ``start``."""
    return frame.assign(**{ROW_ITEM: np.arange(start, start + len(frame))})


def check_columns(frame: pd.DataFrame, columns: list, what: str = "X", hint: str = "") -> None:
    """Fail clearly, listing what exists, if any of ``columns`` is missing from ``frame``."""
    missing = [c for c in columns if c is not None and c not in frame.columns]
    if missing:
        have = ", ".join(repr(c) for c in list(frame.columns)[:30])
        raise DataError(
            f"{what} has no column {', '.join(repr(c) for c in missing)}. Its columns are: "
            f"{have}. {hint}".strip()
        )


def drop_rows_without_ids(frame: pd.DataFrame, target: np.ndarray, columns: list,
                          what: str = "X", fitting: bool = True
                          ) -> tuple[pd.DataFrame, np.ndarray]:
    """``frame`` and ``target`` without the rows that lack an id of ``columns`` (those of
    them that ``frame`` has): such rows would all read as one user or one item. They are
    left out with a warning; if no row is left, a clear error."""
    missing = np.zeros(len(frame), dtype=bool)
    for column in columns:
        if column in frame.columns:
            missing |= frame[column].isna().to_numpy()
    if not missing.any():
        return integer_ids(frame, columns, what, fitting), target
    named = ", ".join(repr(c) for c in columns if c in frame.columns)
    if missing.all():
        raise DataError(f"Every row of {what} lacks an id ({named}): each interaction needs "
                        f"a user id and an item id. Fill them in.")
    first = frame.index[np.flatnonzero(missing)[0]]  # its label: X.loc[first] shows it
    warnings.warn(f"{int(missing.sum())} row(s) of {what} have no id in {named} (the first "
                  f"at index {first}): they are left out. Drop them or fill in their ids to "
                  f"silence this.", UserWarning, stacklevel=4)
    return integer_ids(frame[~missing], columns, what, fitting), target[~missing]


def integer_ids(frame: pd.DataFrame, columns: list, what: str = "X",
                fitting: bool = True) -> pd.DataFrame:
    """``frame`` with its id ``columns`` of whole floats as integers (a copy if any is
    changed): pandas stores integer ids as floats once one is missing, and a CSV may hold
    them as 3.0; either way 3.0 means 3. Ids of numbers that are not whole (1.5) are warned
    of when ``fitting``, before a whole fit that ``save`` then cannot write."""
    changed = None
    for column in columns:
        if column not in frame.columns or not pd.api.types.is_float_dtype(frame[column]):
            continue
        values = frame[column]
        whole = (values == values.round()).to_numpy()
        if not whole.all():
            if not fitting:
                continue
            first = int(np.flatnonzero(~whole)[0])
            warnings.warn(
                f"The id column {column!r} of {what} holds numbers that are not whole "
                f"({float(values.iloc[first]):g} at index {values.index[first]!r}): each value "
                f"is fitted as an id, but save() cannot write float ids. If they are ids, "
                f"check how the column was read, or convert it with .astype(str).",
                UserWarning, stacklevel=5)
            continue
        changed = frame.copy() if changed is None else changed
        changed[column] = values.astype("int64")
    return frame if changed is None else changed


def as_id_list(ids):
    """One id (a string, a number) as a list of one; a list, array or frame as given, and
    None as None. Without this, ``users="42"`` would read as the users "4" and "2"."""
    if ids is None or isinstance(ids, pd.DataFrame) or pd.api.types.is_list_like(ids):
        return ids
    return [ids]


def id_type_hint(given: pd.Index, known: pd.Index) -> str:
    """A sentence naming a type mismatch between ids given and the model's (ids of a JSON
    request as strings against a model of integer ids, say); empty when the types agree."""
    if not len(given) or not len(known) or given.inferred_type == known.inferred_type:
        return ""

    def example(ids):  # a plain Python value, not numpy's repr (np.int64(29))
        value = ids[0]
        return repr(value.item() if isinstance(value, np.generic) else value)

    return (f" Their ids are {given.inferred_type} (e.g. {example(given)}) but the model's "
            f"are {known.inferred_type} (e.g. {example(known)}): convert them.")


def warn_if_none_known(given: pd.Index, known: pd.Index, what: str, served: str,
                       stacklevel: int) -> None:
    """Ids none of which the model knows, of another type than its own (strings against
    integer ids, say): almost surely a conversion the caller missed, so say so. ``what``
    names the ids ("user id(s)"), ``served`` what becomes of them."""
    hint = id_type_hint(given, known)
    if hint and not given.isin(known).any():
        warnings.warn(f"None of the {len(given)} {what} is known to the model, so {served}."
                      f"{hint}", UserWarning, stacklevel=stacklevel + 1)


def check_target(y, n_rows: int, what: str = "y", rows_of: str = "X") -> np.ndarray:
    """``y`` as a finite float vector of ``n_rows`` values (the rows of ``rows_of``), or a
    clear error."""
    if y is None:
        raise DataError(f"{what} is required: pass the ratings (or 0/1 feedback), one per row "
                        f"(the estimator requires y to be passed, but the target y is None).")
    values = y.to_numpy() if isinstance(y, pd.Series | pd.DataFrame) else np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning

        warnings.warn(f"A column-vector {what} was passed when a 1d array was expected; "
                      f"use y.ravel().", DataConversionWarning, stacklevel=3)
        values = values.ravel()
    if values.ndim != 1:
        raise DataError(f"{what} must be 1-dimensional (one rating per row); got shape "
                        f"{values.shape}. Pass a single column, e.g. y.ravel().")
    if np.iscomplexobj(values):
        raise DataError(f"Complex data not supported: {what} must hold real numbers.")
    if len(values) != n_rows:
        raise DataError(f"{what} has {len(values)} values but {rows_of} has {n_rows} rows: "
                        f"they must match, one rating per interaction.")
    try:
        numbers = pd.to_numeric(pd.Series(values), errors="raise").to_numpy(
            dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError):
        bad = next(v for v in values if not _is_number(v))
        raise DataError(f"{what} must be numeric (ratings or 0/1); found {bad!r}. "
                        f"Convert it with pd.to_numeric, or map labels to numbers.") from None
    finite = np.isfinite(numbers)
    if not finite.all():
        where = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{what} has {int((~finite).sum())} NaN or infinite value(s), the "
                        f"first at row {where}. Drop those rows (from {rows_of} too) or fill "
                        f"them in.")
    return numbers


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _hashable(values: pd.Series) -> pd.Series:
    if values.dtype == object:
        return values.map(lambda v: tuple(v) if isinstance(v, list | np.ndarray | set) else v)
    return values


def _constant_within(frame: pd.DataFrame, key, column) -> bool:
    """One value per ``key``, missing values aside (a user whose gender is missing on some
    rows still has one gender)."""
    values = _hashable(frame[column])
    return bool((values.groupby(frame[key], sort=False).nunique() <= 1).all())


def resolve_schema(frame: pd.DataFrame, user_col, item_col, time_col, user_features,
                   item_features, use_item_ids: bool, kinds: dict | None = None) -> Schema:
    """Decide the role of every column of a training frame."""
    check_columns(frame, [user_col, item_col],
                  hint="Name the id columns with user_col= and item_col=.")
    check_columns(frame, [time_col], hint="Name the time column with time_col=, or pass None.")
    if item_col is None:
        item_col, use_item_ids = ROW_ITEM, False
    ids = {user_col, item_col, time_col}
    rest = [c for c in frame.columns if c not in ids]
    users = _named(frame, user_features, "user_features")
    items = _named(frame, item_features, "item_features")
    if users is None or items is None:
        taken = set(users or []) | set(items or [])
        auto_users, auto_items = _auto_sides([c for c in rest if c not in taken], frame,
                                             user_col, item_col)
        users = auto_users if users is None else users
        items = auto_items if items is None else items
    overlap = set(users) & set(items)
    if overlap:
        raise DataError(f"Column(s) {sorted(map(str, overlap))} are named as both user and item "
                        f"features; each column describes one side.")
    schema = Schema(user_col, item_col, time_col, users, items)
    given = kinds or {}
    stray = [k for k in given if k not in set(users) | set(items)]
    if stray:
        raise DataError(f"feature_kinds names {stray[0]!r}, which is not a feature column; the "
                        f"features are {sorted(map(str, [*users, *items]))} (ids, the time "
                        f"column and a column with a single value are not features). Fix the "
                        f"key, or drop it.")
    for side, columns in (("user", users), ("item", items)):
        for column in columns:
            kind = given.get(column) or infer_kind(frame[column])
            if kind not in KINDS:
                raise DataError(f"feature_kinds[{column!r}] must be one of {KINDS}; got {kind!r}.")
            schema.kinds[str(column)] = (side, kind)
    if use_item_ids:
        schema.kinds[ITEM_ID_FIELD] = ("item", "cat")
    return schema


def _named(frame: pd.DataFrame, columns, parameter: str) -> list | None:
    if isinstance(columns, str) and columns == "auto":
        return None
    columns = [] if columns is None else list(columns)
    check_columns(frame, columns, hint=f"Fix {parameter}= to name existing columns.")
    return columns


def _auto_sides(columns: list, frame: pd.DataFrame, user_col, item_col) -> tuple[list, list]:
    users, items = [], []
    for column in columns:
        if _hashable(frame[column]).nunique(dropna=False) <= 1 and len(frame) > 1:
            warnings.warn(f"Column {column!r} has a single value; it is not used as a feature.",
                          UserWarning, stacklevel=4)
        elif _constant_within(frame, item_col, column):
            items.append(column)
        elif _constant_within(frame, user_col, column):
            users.append(column)
        else:
            when = (f" If it is when each interaction happened, pass time_col={column!r}."
                    if _looks_like_time(frame[column], column) else "")
            raise DataError(
                f"Column {column!r} changes within a user and within an item, so it describes "
                f"neither: recmeta takes user features and item features.{when} Drop it, or "
                f"name the feature columns with user_features=[...] and item_features=[...]."
            )
    return users, items


TIME_NAMES = ("time", "timestamp", "ts", "date", "datetime", "created_at", "event_time")


def _looks_like_time(values: pd.Series, column) -> bool:
    """A datetime column, or one named like a time (``ts``, ``timestamp``, ...)."""
    return pd.api.types.is_datetime64_any_dtype(values) \
        or str(column).lower() in TIME_NAMES


def side_table(frame: pd.DataFrame, key, columns: list) -> pd.DataFrame:
    """One row per distinct ``key``, in the order of each key's last row, columns renamed
    to their field names: each column's last value that is not missing (missing only where
    every row of the key misses it)."""
    table = frame.drop_duplicates(subset=[key], keep="last")
    if columns and frame[columns].isna().to_numpy().any():
        table = frame.groupby(key, sort=False)[columns].last().reindex(
            table[key].to_numpy()).rename_axis(key).reset_index()
    out = pd.DataFrame({str(c): table[c].to_numpy() for c in columns},
                       index=pd.Index(table[key].to_numpy(), name="id"))
    return out


def _warn_if_text_is_not_iso(when: pd.Series, column) -> None:
    """Text times are put in order as text, which is the order in time for ISO 8601 text
    (2024-03-01T10:00) only: say so when some of it is not ('03/01/2024', say)."""
    if not (pd.api.types.is_object_dtype(when) or pd.api.types.is_string_dtype(when)):
        return
    text = when[when.map(lambda v: isinstance(v, str))]
    if text.empty:
        return
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    if parsed.isna().any():
        example = text[parsed.isna()].iloc[0]
        warnings.warn(f"Column {column!r} (time_col) holds text that is not an ISO 8601 time "
                      f"(e.g. {example!r}): it is put in order as text, which may not be the "
                      f"order in time. Convert it first, e.g. pd.to_datetime(X[{column!r}], "
                      f"format=...).", UserWarning, stacklevel=5)


def drop_duplicates(frame: pd.DataFrame, y: np.ndarray, schema: Schema) -> tuple:
    """Keep the last row of each (user, item) pair (the latest, if there is a time column)."""
    if schema.time_col is not None:
        when = frame[schema.time_col].to_numpy()
        try:
            order = np.argsort(when, kind="stable")
        except TypeError:  # say numbers and text, not "'<' not supported between ..."
            kinds = sorted({type(v).__name__ for v in when})
            raise DataError(
                f"Column {schema.time_col!r} (time_col) holds values of types "
                f"{', '.join(kinds)}, which cannot be put in order together. Give it one "
                f"type (numbers, datetimes or ISO 8601 text), or pass time_col=None."
            ) from None
        _warn_if_text_is_not_iso(frame[schema.time_col], schema.time_col)
        frame, y = frame.iloc[order], y[order]
    dup = frame.duplicated(subset=[schema.user_col, schema.item_col], keep="last").to_numpy()
    if dup.any():
        warnings.warn(
            f"{int(dup.sum())} duplicate (user, item) row(s): recmeta keeps the last one of "
            f"each pair (the latest by time_col when given). {DUPLICATES_ADVICE}",
            UserWarning, stacklevel=4)
        frame, y = frame.loc[~dup], y[~dup]
    return frame, y


def not_utf8(path, exc: UnicodeDecodeError) -> str:
    """What to do with a text file that is not UTF-8 (a spreadsheet's Latin-1 export, say)."""
    return (f"{path} is not UTF-8 text (it holds byte {exc.object[exc.start]:#04x} where "
            f"UTF-8 allows none): save it as UTF-8 (in a spreadsheet, 'CSV UTF-8'), or "
            f"convert it, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv.")
