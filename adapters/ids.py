"""Matching ids across tables and models by value: ``"42"`` in one place is ``42`` in another.

Applications store ids as integers in one table and as text in another (recmeta's own
tables hold text); a model remembers the ids it was fitted on with their type. These
helpers convert one side to the other's type wherever the value is the same id.

Ids of other types (a PostgreSQL ``UUID`` column reads as ``uuid.UUID``, a ``NUMERIC``
one as ``decimal.Decimal``) are read as text (:func:`plain_id`): a model can be saved with
them, and a model trained on the same ids through a text view knows them.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable

import numpy as np
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


def plain_id(value):
    """An id as recmeta keeps it: an int or a str. Integers and text are kept; ``None``
    stays None (no id); a UUID is its text (``str(uuid)``, lowercase and hyphenated, as
    PostgreSQL's ``uuid::text`` writes it); a number of another type is its plain text,
    whole numbers without decimals (``Decimal('42.00')`` and ``42.0`` are ``"42"``); bytes
    are their hex digits; anything else is its ``str``.

    Examples
    --------
    >>> import uuid
    >>> plain_id(uuid.UUID(int=1))
    '00000000-0000-0000-0000-000000000001'
    >>> plain_id(decimal.Decimal("42.00")), plain_id(decimal.Decimal("0.50")), plain_id(7)
    ('42', '0.5', 7)
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating | decimal.Decimal):
        if value != value:  # NaN: no id, as NULL is
            return None
        number = decimal.Decimal(str(value)) if not isinstance(value, decimal.Decimal) else value
        if number == number.to_integral_value():
            return str(int(number))
        return format(number.normalize(), "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def plain_ids(values: pd.Series) -> pd.Series:
    """``values`` with every id :func:`plain_id`: unchanged (the same object) when all are
    already ints or text, as they are but for UUID, NUMERIC and the like."""
    if values.dtype != object or pd.api.types.infer_dtype(values, skipna=True) in (
            "string", "empty"):  # text ids, the common case, checked in C: every batch reads
        return values
    if all(v is None or isinstance(v, int | str) for v in values):
        return values
    return values.map(plain_id).astype(object)
