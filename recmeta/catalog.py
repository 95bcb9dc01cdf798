"""Entity tables: an explicit map from outside ids to contiguous rows, with encoded features.

A model knows the users and items it was fitted on; a request may bring new ones, encoded
from the request's own feature columns and appended after the known rows, so one index
space covers both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import FeatureSpace
from .frames import ITEM_ID_FIELD, side_table
from .meta import as_table


@dataclass
class EntityTable:
    """Users or items: ``ids[k]`` is row ``k`` of every array in ``encoded``."""

    ids: pd.Index
    encoded: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, key, columns: list, space: FeatureSpace,
                   side: str) -> EntityTable:
        """Encode the distinct ``key`` values of ``frame`` (the last row of each)."""
        table = raw_side(frame, key, columns, side)
        return cls(pd.Index(table.index), space.encode(side, table))

    def tensors(self, device) -> dict:
        """The encoded columns as tensors on ``device``, with the row numbers."""
        return as_table(self.encoded, len(self), device)

    def positions(self, ids) -> np.ndarray:
        """Row of each id, ``-1`` where it is not in the table."""
        return self.ids.get_indexer(pd.Index(ids))

    def take(self, rows: np.ndarray) -> EntityTable:
        return EntityTable(self.ids[rows], {k: v[rows] for k, v in self.encoded.items()})

    def extend(self, other: EntityTable) -> EntityTable:
        """This table followed by the rows of ``other`` whose ids it does not have."""
        new = np.flatnonzero(self.positions(other.ids) < 0)
        if not len(new):
            return self
        extra = other.take(new)
        return EntityTable(
            self.ids.append(extra.ids),
            {k: np.concatenate([v, extra.encoded[k]]) for k, v in self.encoded.items()},
        )


def raw_side(frame: pd.DataFrame, key, columns: list, side: str) -> pd.DataFrame:
    """One row per distinct ``key`` with its field columns; items also carry their id field."""
    table = side_table(frame, key, columns)
    if side == "item":
        table[ITEM_ID_FIELD] = table.index.to_numpy()
    return table
