"""What to read from the application's database: the tables, and the names of their columns.

recmeta imposes no schema: these frozen dataclasses name your tables and map their columns,
and :class:`~recmeta.adapters.sql.SqlReader` reads them. They hold names only, nothing of a
database; import them from :mod:`recmeta.adapters.sql`, beside the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from recmeta import columns as C


@dataclass(frozen=True)
class Interactions:
    """Where the interactions are: a table and the names of its columns.

    Parameters
    ----------
    table : str, default="recmeta_interactions"
        recmeta's default table (``recmeta db upgrade`` creates it), or your own.
    user, item : str
        Columns of the user and item ids.
    rating : str or None, default="rating"
        Column of the rating; None for implicit feedback (every row counts as a 1).
    time : str or None, default="timestamp"
        Column ordering each history; None when there is none.
    schema : str or None
        Database schema of the table (PostgreSQL), None for the default one.
    """

    table: str = "recmeta_interactions"
    user: str = C.USER
    item: str = C.ITEM
    rating: str | None = C.RATING
    time: str | None = C.TIME
    schema: str | None = None


@dataclass(frozen=True)
class Entities:
    """A table of user or item features, one row per id.

    Parameters
    ----------
    table : str
    key : str
        The id column (matching the interactions' user or item ids).
    features : tuple of str or None, default=None
        Feature columns; None takes every column but the key and the table's primary key
        (a surrogate ``id``, one value per row, describes no one). A name the other side's
        table has too is read and trained on as ``user.<name>`` / ``item.<name>``
        (:func:`~recmeta.adapters.sql.feature_fields`).
    schema : str or None
    """

    table: str
    key: str
    features: tuple[str, ...] | None = None
    schema: str | None = None


@dataclass(frozen=True)
class SqlSource:
    """Interactions, and optionally user and item feature tables and a candidate table.

    ``items`` describes the catalogue (new items are encoded from its features);
    ``candidates`` narrows what is ranked (an item id column, and features for new items).
    """

    interactions: Interactions = Interactions()
    users: Entities | None = None
    items: Entities | None = None
    candidates: Entities | None = None
