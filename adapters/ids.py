"""Matching ids across tables and models by value: ``"42"`` in one place is ``42`` in another.

Applications store ids as integers in one table and as text in another (recmeta's own
tables hold text); a model remembers the ids it was fitted on with their type. These
helpers convert one side to the other's type wherever the value is the same id.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa


def align_ids(values: pd.Series, known: pd.Index) -> pd.Series:
    """``values`` in the dtype of ``known`` where they mean the same id.

    Examples
    --------
    >>> align_ids(pd.Series(["1", "x"]), pd.Index([1, 2])).tolist()
    [1, 'x']
    >>> align_ids(pd.Series([1, 2]), pd.Index(["1", "2"])).tolist()
    ['1', '2']
    """
    if values.empty:
        return values
    if pd.api.types.is_integer_dtype(known.dtype) and not pd.api.types.is_integer_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        whole = numbers.notna() & (numbers == numbers.round())
        if whole.all():
            return numbers.astype("int64")
        mixed = [int(n) if w else v for v, n, w in zip(values, numbers, whole, strict=True)]
        return pd.Series(mixed, index=values.index, dtype=object)
    if not pd.api.types.is_integer_dtype(known.dtype) and pd.api.types.is_integer_dtype(values):
        return values.astype(str)
    return values


def for_column(values: Iterable, column: sa.ColumnElement) -> list:
    """``values`` converted to the Python type of ``column``; those that cannot be are left
    out (they cannot match any row)."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return list(values)
    out = []
    for value in values:
        if isinstance(value, kind):
            out.append(value)
            continue
        try:
            out.append(kind(value))
        except (TypeError, ValueError):
            continue
    return out
