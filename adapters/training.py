"""Training from the database (or a file): a long frame for ``fit``, a model directory, a
registry row.

The frame has recmeta's column names: ``user_id``, ``item_id``, ``timestamp`` when there is
a time column, and the feature columns of the user and item tables, joined on the ids, each
under the name the model will know it by (:func:`~recmeta.adapters.sql.feature_fields`: a
column's own name, or ``user.lang`` and ``item.lang`` for a ``lang`` of both tables, which
the nightly job reads under the same names).
Rows without a user or an item id, and rows whose rating is NULL, NaN or not a number, are
dropped and counted. Feature tables are
read as the nightly job reads them: rows whose key is NULL are not joined, and of rows
sharing a key only the one the job uses is (:func:`~recmeta.adapters.sql.last_per_key`),
so every interaction is one training row; both are counted per table (``feature_tables``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recmeta import columns as C
from recmeta.exceptions import DataError, InvalidParameterError
from recmeta.frames import integer_ids, not_utf8

from . import registry
from .batch import check_ratings, shown
from .ids import align_ids, plain_ids
from .sql import SqlReader, last_per_key
from .summary import feature_table_counts

if TYPE_CHECKING:
    from recmeta import MetaRecommender


def frame_from_sql(reader: SqlReader) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Every interaction with its user and item features: ``(X, y, counts)``. A rating
    column without a number in it is refused first, as ``recmeta score`` refuses it."""
    with reader.engine.connect() as conn:
        check_ratings(reader.source.interactions.rating, reader.rating_sample(conn))
        parts = list(reader.interactions(conn))
        users = reader.features(conn, "user")
        items = reader.features(conn, "item")
        tables = feature_table_counts(reader, conn)
    if not parts:
        raise DataError(f"The interactions table {reader.table.name!r} is empty: load some "
                        f"interactions into it before training.")
    frame, dropped = _without_null_ids(pd.concat(parts, ignore_index=True))
    for side, key, table in (("user", C.USER, users), ("item", C.ITEM, items)):
        if table is not None and getattr(reader.source, f"{side}s").features is None:
            named = {field: column for column, field in reader.entities[side].fields.items()}
            numbered = row_numbers(table.drop(columns=key))
            if numbered:
                tables[f"{side}s"]["row_number_columns"] = [named.get(f, f) for f in numbered]
        if table is not None:
            table[key] = align_ids(table[key], pd.Index(frame[key]))
            frame = frame.merge(last_per_key(table, key), on=key, how="left")
    X, y, counts = _split_target(frame, reader.source.interactions.time)
    return X, y, {**dropped, **counts, "feature_tables": tables}


ROW_NUMBER_NAMES = ("index", "level_0", "id", "rowid", "row_id")  # and "Unnamed: 0" ...


def row_numbers(table: pd.DataFrame) -> list[str]:
    """The columns of a feature table named as row numbers are (pandas' ``to_sql`` writes its
    index as ``index`` unless told ``index=False``; a CSV's saved index reads back as
    ``Unnamed: 0``) that number its rows, 0 (or 1) to n - 1 (or n), each value once. Read as
    a feature, such a column describes no user or item. A numbered column of another name
    (a rank, say) may mean something, and is left alone."""
    n, found = len(table), []
    for name in table.columns:
        text = str(name).lower()
        if n < 2 or not (text in ROW_NUMBER_NAMES or text.startswith("unnamed")):
            continue
        values = pd.to_numeric(table[name], errors="coerce")
        if values.isna().any() or not (values == values.round()).all():
            continue
        low = values.min()
        if low in (0, 1) and values.max() == low + n - 1 and values.is_unique:
            found.append(name)
    return found


def frame_from_file(path, mapping: dict[str, str | None]) -> tuple[pd.DataFrame, np.ndarray,
                                                                  dict]:
    """A long frame from a CSV or Parquet file; ``mapping`` names its user, item, rating and
    time columns (rating None: implicit feedback). Other columns are features."""
    path = Path(path)
    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".json": pd.read_json}
    if path.suffix.lower() not in readers:
        raise DataError(f"Cannot read {str(path)!r}: give a .csv, .parquet or .json file.")
    if not path.is_file():
        raise DataError(f"No file {str(path)!r}. Give the path of your interactions file.")
    try:
        frame = readers[path.suffix.lower()](path)
    except UnicodeDecodeError as exc:
        raise DataError(not_utf8(str(path), exc)) from None
    except ImportError as exc:  # pandas reads Parquet through pyarrow, an optional extra
        raise DataError(f"Reading {str(path)!r} needs pyarrow, which is not installed: "
                        f"pip install 'recmeta[parquet]' (or pyarrow), or give a .csv "
                        f"file. ({str(exc).splitlines()[0]})") from None
    rename = {mapping[k]: v for k, v in (("user", C.USER), ("item", C.ITEM),
                                         ("rating", C.RATING), ("time", C.TIME)) if mapping[k]}
    missing = [name for name in rename if name not in frame.columns]
    if missing:
        raise DataError(f"{str(path)!r} has no column {', '.join(map(repr, missing))}. Its "
                        f"columns are: {', '.join(map(repr, frame.columns))}. Map them with "
                        f"--user-col, --item-col, --rating-col and --time-col (--time-col '' "
                        f"when there is no time column, --rating-col '' for implicit "
                        f"feedback).")
    frame = frame.rename(columns=rename)
    for key in (C.USER, C.ITEM):  # a Parquet UUID or DECIMAL column: its text, as from SQL
        frame[key] = plain_ids(frame[key])
    frame, dropped = _without_null_ids(frame)
    if C.RATING not in frame.columns:
        frame[C.RATING] = 1.0
    else:
        given = frame[C.RATING].dropna()
        check_ratings(mapping["rating"], given.iloc[:1000].astype(object))
    X, y, counts = _split_target(frame, mapping["time"])
    return X, y, {**dropped, **counts}


def _without_null_ids(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Drop and count the rows without a user id, then those without an item id (as the
    nightly job counts them: a row lacking both is one without a user id). An id column of
    integers that NULLs made floats (pandas has no NULL integer there) is integers again, so
    item 28 stays 28 and does not become 28.0."""
    no_user = frame[C.USER].isna().to_numpy()
    no_item = frame[C.ITEM].isna().to_numpy() & ~no_user
    counts = {"rows_dropped_null_user_id": int(no_user.sum()),
              "rows_dropped_null_item_id": int(no_item.sum())}
    if not (no_user.any() or no_item.any()):
        return frame, counts
    frame = integer_ids(frame.loc[~(no_user | no_item)].reset_index(drop=True),
                        [C.USER, C.ITEM])
    if frame.empty:
        raise DataError(f"Every interaction lacks a user or an item id "
                        f"({counts['rows_dropped_null_user_id']} rows without a user id, "
                        f"{counts['rows_dropped_null_item_id']} without an item id): there is "
                        f"nothing to train on. Check the mapping of --user-col and --item-col.")
    return frame, counts


def _split_target(frame: pd.DataFrame, time_name: str | None = None
                  ) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """Drop unusable ratings, order each user's rows by time, and split off ``y``;
    ``time_name``: the time column as the mapping names it (for the messages)."""
    if frame.empty:
        raise DataError("There are no interactions to train on. Load some into the "
                        "interactions table (or file) first.")
    rating = pd.to_numeric(frame[C.RATING], errors="coerce")
    usable = np.isfinite(rating.to_numpy(np.float64, na_value=np.nan))
    if not usable.any():  # fit would say only "X is empty (0 rows)"
        raise DataError(f"None of the {len(frame):,} interactions has a rating (each is NULL, "
                        f"NaN or not a number): there is nothing to train on. Map the column "
                        f"of ratings (--rating-col), or pass --rating-col '' to train on 0/1 "
                        f"feedback (every row counts as a 1).")
    frame = frame.assign(**{C.RATING: rating}).loc[usable]
    if C.TIME in frame.columns:
        _check_one_time_type(frame[C.TIME], time_name or C.TIME)
        frame = frame.sort_values([C.USER, C.TIME], kind="stable")
    frame = frame.reset_index(drop=True)
    y = frame.pop(C.RATING).to_numpy(np.float64)
    # NULL, NaN or not a number: the key's name is older than the reading, and kept
    return frame, y, {"rows_dropped_null_rating": int((~usable).sum())}


def _check_one_time_type(when: pd.Series, name: str) -> None:
    """Times of one kind, or a DataError in the command line's words: numbers and text (a
    DATETIME column of Unix times and ISO text, say) cannot be put in order together, and
    fit said so naming its own column ('timestamp') and its parameter (time_col=None)."""
    def kind(value) -> str:
        if isinstance(value, str):
            return "text"
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return "numbers"
        return type(value).__name__

    if not pd.api.types.is_object_dtype(when):  # one dtype: one kind
        return
    values = when.dropna()
    kinds = values.map(kind)
    if kinds.nunique() > 1:
        first = values.groupby(kinds.to_numpy(), sort=True).first()
        examples = " and ".join(f"{k} ({shown(v)})" for k, v in first.items())
        raise DataError(f"The time column {name!r} holds {examples}, which cannot be put in "
                        f"order together. Store one kind (numbers, or ISO 8601 text), or pass "
                        f"--time-col '' to train without times.")


def fit_and_save(X: pd.DataFrame, y: np.ndarray, params: dict, out
                 ) -> tuple[MetaRecommender, dict]:
    """Fit a MetaRecommender on ``(X, y)`` with ``params`` and save it to ``out``."""
    from recmeta import MetaRecommender

    defaults = {"user_col": C.USER, "item_col": C.ITEM,
                "time_col": C.TIME if C.TIME in X.columns else None}
    try:
        model = MetaRecommender(**{**defaults, **params})
    except TypeError as exc:  # an unknown parameter name
        raise InvalidParameterError(f"{exc}; see help(recmeta.MetaRecommender) for the "
                                    f"parameters.") from None
    started = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - started
    model.save(out)
    metrics = {**registry.model_metrics(model), "n_interactions": len(X),
               "fit_seconds": round(seconds, 3)}
    return model, metrics


def register(engine: sa.Engine | None, out, model: MetaRecommender, metrics: dict,
             name: str | None) -> int | None:
    """Register the saved model when there is a database; returns its id."""
    if engine is None:
        return None
    return registry.register(engine, out, model.get_params(deep=False), metrics, name=name)

