"""Feature space: per-field vocabularies and the encoding of user and item tables.

A *field* is one column of side information about a user or an item. Three kinds:

- ``"cat"``: one categorical value per row (an id, an occupation, a zip code);
- ``"multi"``: several categorical values per row (genres, actors), given as lists or as
  strings joined with ``|``;
- ``"num"``: a number, standardised with the mean and deviation seen in ``fit``.

Categorical indices reserve ``0`` for padding and ``1`` for *unknown*: a value never seen
in training (or a missing one) maps to ``1``, so a brand-new user or item still gets a
representation from its other fields. Encoded tables are plain ``dict[str, numpy.ndarray]``
so the torch side never sees pandas.
"""

from __future__ import annotations

import decimal
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .exceptions import DataError

PAD = 0
UNKNOWN = 1
N_RESERVED = 2
MULTI_SEPARATOR = "|"
MAX_MULTI_VALUES = 32
KINDS = ("cat", "multi", "num")
SIDES = ("user", "item")

EncodedTable = dict[str, np.ndarray]


@dataclass
class Field:
    """One field of side information, and what ``fit`` learned about it."""

    name: str
    side: str
    kind: str
    vocabulary: list[str] = field(default_factory=list)
    max_values: int = 1
    mean: float = 0.0
    std: float = 1.0

    @property
    def cardinality(self) -> int:
        """Number of embedding rows, reserved indices included."""
        return len(self.vocabulary) + N_RESERVED

    def fit(self, values: pd.Series, min_frequency: int = 1) -> Field:
        """Learn the vocabulary (values seen fewer than ``min_frequency`` times stay unknown,
        so the unknown embedding is trained on rare values) or the numeric scaling."""
        if self.kind == "num":
            numbers = _as_numbers(values, self.name)
            finite = numbers[np.isfinite(numbers)]
            self.mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size else 1.0
            self.std = std if std > 0 else 1.0
            return self
        lists = _as_key_lists(values) if self.kind == "multi" else None
        keys = [k for row in lists for k in row] if lists is not None else _as_keys(values)
        counts = pd.Series([k for k in keys if k is not None], dtype=object).value_counts()
        self.vocabulary = sorted(counts.index[counts >= min_frequency])
        if lists is not None:
            longest = max((len(row) for row in lists), default=1)
            self.max_values = max(1, min(longest, MAX_MULTI_VALUES))
        return self

    def encode(self, values: pd.Series) -> np.ndarray:
        if self.kind == "num":
            numbers = _as_numbers(values, self.name)
            scaled = (numbers - self.mean) / self.std
            return np.where(np.isfinite(scaled), scaled, 0.0).astype(np.float32)
        index = pd.Index(self.vocabulary, dtype=object)
        if self.kind == "cat":
            codes = index.get_indexer(pd.Index(_as_keys(values), dtype=object))
            return np.where(codes < 0, UNKNOWN, codes + N_RESERVED).astype(np.int64)
        out = np.full((len(values), self.max_values), PAD, dtype=np.int64)
        for row, keys in enumerate(_as_key_lists(values)):
            keys = keys[: self.max_values]
            if keys:
                codes = index.get_indexer(pd.Index(keys, dtype=object))
                out[row, : len(keys)] = np.where(codes < 0, UNKNOWN, codes + N_RESERVED)
            else:
                out[row, 0] = UNKNOWN
        return out


@dataclass
class FeatureSpace:
    """The user and item fields of a model, with their learned vocabularies."""

    fields: list[Field]

    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def side(self, side: str) -> list[Field]:
        return [f for f in self.fields if f.side == side]

    @classmethod
    def fit(
        cls, users: pd.DataFrame, items: pd.DataFrame, kinds: dict[str, tuple[str, str]],
        min_frequency: dict[str, int] | None = None,
    ) -> FeatureSpace:
        """Learn every field from the user and item tables.

        Parameters
        ----------
        users, items : DataFrame
            One row per user (per item), the field columns among their columns.
        kinds : dict of str to (side, kind)
            The fields to learn, in order.
        min_frequency : dict of str to int, default=None
            Per field, how many users (items) must share a value for it to get its own
            embedding; 1 where not given.
        """
        fields = []
        for name, (side, kind) in kinds.items():
            table = users if side == "user" else items
            least = (min_frequency or {}).get(name, 1)
            fields.append(Field(name=name, side=side, kind=kind).fit(table[name], least))
        return cls(fields)

    def encode(self, side: str, table: pd.DataFrame) -> EncodedTable:
        """Encode a user or item table (one row per user or item) into arrays."""
        return {f.name: f.encode(table[f.name]) for f in self.side(side)}

    def to_dict(self) -> dict:
        return {"fields": [asdict(f) for f in self.fields]}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpace:
        return cls([Field(**f) for f in data["fields"]])


def infer_kind(values: pd.Series) -> str:
    """Guess a field's kind: lists or ``a|b`` strings are multi, floats numeric (and
    decimals: a SQL ``NUMERIC`` column reads as ``decimal.Decimal``), the rest cat.

    Only a new fit guesses: a model keeps the kinds it was fitted with, so one fitted when
    decimals were categorical still reads them as the keys it learned."""
    sample = values.dropna()
    sample = sample.iloc[: min(len(sample), 1000)]
    if any(isinstance(v, list | tuple | set | np.ndarray) for v in sample):
        return "multi"
    if pd.api.types.is_float_dtype(values.dtype):
        return "num"
    if len(sample) and all(isinstance(v, decimal.Decimal | float | np.floating)
                           for v in sample) and any(isinstance(v, decimal.Decimal)
                                                    for v in sample):
        return "num"
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype):
        return "cat"
    if any(isinstance(v, str) and MULTI_SEPARATOR in v for v in sample):
        return "multi"
    return "cat"


def _key(value) -> str | None:
    """A canonical string key: ``25``, ``25.0`` and ``"25"`` are the same value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _as_keys(values: pd.Series) -> list[str | None]:
    return [_key(v) for v in values.tolist()]


def _as_key_lists(values: pd.Series) -> list[list[str]]:
    rows = []
    for v in values.tolist():
        if isinstance(v, str):
            parts = [p.strip() for p in v.split(MULTI_SEPARATOR)]
        elif isinstance(v, list | tuple | set | np.ndarray):
            parts = list(v)
        else:
            parts = [v]
        rows.append([k for k in (_key(p) for p in parts) if k])
    return rows


def _as_numbers(values: pd.Series, name: str) -> np.ndarray:
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"Numeric field {name!r} has a value that is not a number ({exc}). "
            f"Clean the column, or declare it categorical."
        ) from None
