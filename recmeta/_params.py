"""The allowed values of every estimator parameter, declared once and checked once in ``fit``."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .exceptions import InvalidParameterError


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple

    def accepts(self, value) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Interval:
    """A number of a type in ``[low, high]`` (``open_low`` excludes ``low``)."""

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def accepts(self, value) -> bool:
        want = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, want):
            return False
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        name = "an int" if self.kind is int else "a float"
        low = "" if self.low is None else (f" > {self.low}" if self.open_low else f" >= {self.low}")
        high = "" if self.high is None else f" <= {self.high}"
        return name + (low + ("," if low and high else "") + high if low or high else "")


@dataclass(frozen=True)
class Columns:
    """``"auto"``, ``None`` or a list of column names."""

    def accepts(self, value) -> bool:
        return value is None or value == "auto" or (
            isinstance(value, list | tuple) and not isinstance(value, str))

    def __str__(self) -> str:
        return "'auto', None or a list of column names"


@dataclass(frozen=True)
class Widths:
    """A non-empty tuple of positive ints."""

    def accepts(self, value) -> bool:
        return (isinstance(value, list | tuple) and len(value) > 0
                and all(Interval(int, 1).accepts(v) for v in value))

    def __str__(self) -> str:
        return "a non-empty tuple of positive ints, such as (64, 64)"


@dataclass(frozen=True)
class AnyOf:
    """Any of several constraints."""

    constraints: tuple

    def accepts(self, value) -> bool:
        return any(c.accepts(value) for c in self.constraints)

    def __str__(self) -> str:
        return " or ".join(str(c) for c in self.constraints)


@dataclass(frozen=True)
class Label:
    """A column label: a string or an int position label."""

    optional: bool = False

    def accepts(self, value) -> bool:
        if value is None:
            return self.optional
        return isinstance(value, str | numbers.Integral) and not isinstance(value, bool)

    def __str__(self) -> str:
        return "a column name" + (" or None" if self.optional else "")


def validate(params: dict, table: dict, owner: str) -> None:
    """Raise a ``ValueError`` naming the first parameter whose value ``table`` does not allow."""
    for name, constraint in table.items():
        value = params[name]
        if not constraint.accepts(value):
            raise InvalidParameterError(f"The {name!r} parameter of {owner} must be {constraint}. "
                            f"Got {value!r} instead.")


@dataclass(frozen=True)
class Mapping:
    """A dict."""

    def accepts(self, value) -> bool:
        return isinstance(value, dict)

    def __str__(self) -> str:
        return "a dict"


@dataclass(frozen=True)
class Device:
    """``"auto"`` or anything ``torch.device`` understands."""

    def accepts(self, value) -> bool:
        if not isinstance(value, str):
            return False
        if value == "auto":
            return True
        import torch

        try:
            torch.device(value)
        except (RuntimeError, ValueError):
            return False
        return True

    def __str__(self) -> str:
        return "'auto', 'cpu', 'cuda' or another torch device string"


@dataclass(frozen=True)
class Seed:
    """None, an int, or a numpy ``RandomState``."""

    def accepts(self, value) -> bool:
        import numpy as np

        return value is None or isinstance(value, np.random.RandomState) or (
            isinstance(value, numbers.Integral) and not isinstance(value, bool))

    def __str__(self) -> str:
        return "None, an int or a numpy RandomState"
