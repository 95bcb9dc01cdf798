"""Reading interactions, users and items from the application's own database.

recmeta imposes no schema: you name the tables and map their columns, and recmeta reflects
them through SQLAlchemy 2.x. A named table or column that does not exist fails at once
with a :class:`SchemaError` that says which, and lists what does exist. Table and column
names are identifiers handed to SQLAlchemy, which quotes them; they are never formatted
into SQL text, so a hostile name is just a name that does not exist.

What is read, and how
---------------------
- Users come in batches by keyset (``WHERE user > :last ORDER BY user LIMIT :size``):
  memory stays flat however many users there are, no cursor has to outlive a commit, and
  the last id of a batch is the checkpoint a resumed run starts after.
- The histories of a batch of users, the last ``n`` interactions of each (by the time
  column, newest first; ties broken by item id) are **one query per batch**: a
  ``LATERAL (... ORDER BY ... LIMIT n)`` join on PostgreSQL, a ``row_number()`` window
  elsewhere. Without a time column, "last" follows a single-column primary key (insertion
  order, usually), else the item id.
- Results are streamed (``yield_per``: a server-side cursor where the driver has one).
- Ratings and times are read as the database stores them, whatever their column's declared
  type (Unix times in a SQLite DATETIME column, ISO text in a NUMERIC one): ratings that
  are not numbers read as NaN, and times are put in order by the database itself.
- Ids are read as ints or text: a ``UUID`` id column (``uuid.UUID`` from the driver), a
  ``NUMERIC`` one (``decimal.Decimal``) and the like are read as their text
  (:func:`~.ids.plain_id`), alike by ``train``, ``score`` and ``recommend``; queries
  compare them in the column's own type.

Every frame returned uses recmeta's column names (:mod:`recmeta.columns`): ``user_id``,
``item_id``, ``rating``, ``timestamp`` and the feature columns under their own names.

Examples
--------
>>> import sqlalchemy as sa
>>> engine = sa.create_engine("sqlite://")
>>> with engine.begin() as conn:
...     _ = conn.exec_driver_sql("CREATE TABLE events (uid INT, sku TEXT, stars REAL, ts INT)")
...     _ = conn.exec_driver_sql("INSERT INTO events VALUES (1, 'a', 4, 10), (1, 'b', 2, 20)")
>>> source = SqlSource(Interactions("events", user="uid", item="sku", rating="stars",
...                                 time="ts"))
>>> reader = SqlReader(engine, source)
>>> with engine.connect() as conn:
...     reader.histories(conn, [1], last_n=1)
   user_id item_id  rating  timestamp
0        1       b     2.0         20
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from recmeta import columns as C
from recmeta.exceptions import DataError

from .ids import for_column, plain_id, plain_ids
from .source import Entities, Interactions, SqlSource  # defined there, imported from here

STREAM_ROWS = 20_000  # rows per fetch when streaming a result


class SchemaError(DataError):
    """A named table or column does not exist in the database."""


class SqlReader:
    """Reads a :class:`SqlSource` from one database, its tables reflected once.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    source : SqlSource

    Raises
    ------
    SchemaError
        When a named table or column is missing.
    """

    def __init__(self, engine: sa.Engine, source: SqlSource):
        self.engine, self.source = engine, source
        spec = source.interactions
        self.table = _reflect(engine, spec.table, spec.schema, "interactions")
        names = {"user": spec.user, "item": spec.item, "rating": spec.rating, "time": spec.time}
        cols = {role: _column(self.table, name, role) for role, name in names.items() if name}
        self.user, self.item = cols["user"], cols["item"]
        self.rating, self.time = cols.get("rating"), cols.get("time")
        sides = (("user", source.users), ("item", source.items),
                 ("candidates", source.candidates))
        self.entities = {side: _EntityTable(engine, spec) for side, spec in sides
                         if spec is not None}
        users, items = (self.entities[s].features if s in self.entities else []
                        for s in ("user", "item"))
        for side, table in self.entities.items():
            table.fields = feature_fields(side, table.features, items if side == "user"
                                          else users)

    @property
    def user_features(self) -> list[str]:
        """The user features under the names :meth:`features` gives them, which training
        gives the model's fields (:func:`feature_fields`)."""
        return list(self.entities["user"].fields.values()) if "user" in self.entities else []

    @property
    def item_features(self) -> list[str]:
        """The item features under the names :meth:`features` gives them (see
        :attr:`user_features`)."""
        return list(self.entities["item"].fields.values()) if "item" in self.entities else []

    # ------------------------------------------------------------------ users
    def _user_ids(self) -> sa.ColumnElement:
        """Where the users to score come from: the users table if any, else the interactions."""
        return self.entities["user"].key if "user" in self.entities else self.user

    def count_users(self, conn: sa.Connection) -> int:
        key = self._user_ids()
        distinct = sa.select(key).where(key.is_not(None)).distinct().subquery()
        return int(conn.execute(sa.select(sa.func.count()).select_from(distinct)).scalar_one())

    def count_users_without_row(self, conn: sa.Connection) -> int:
        """Users with interactions but no row in the users table: with a users table, the
        job scores the users it lists, so these are not scored, and the summary counts them
        (a users table that lags behind the events). Ids are compared as text, as the two
        tables may type them differently. 0 without a users table."""
        if "user" not in self.entities:
            return 0
        key = self.entities["user"].key
        listed = sa.select(sa.cast(key, sa.String)).where(key.is_not(None))
        query = sa.select(sa.func.count(sa.distinct(self.user))).where(
            self.user.is_not(None), sa.cast(self.user, sa.String).not_in(listed))
        return int(conn.execute(query).scalar_one())

    def count_rows_without_user(self, conn: sa.Connection) -> int:
        """Interactions whose user id is NULL: they belong to no user, so no batch reads
        them; the summary counts them, over the whole table (``null_user_id``)."""
        query = sa.select(sa.func.count()).select_from(self.table).where(self.user.is_(None))
        return int(conn.execute(query).scalar_one())

    def next_users(self, conn: sa.Connection, after, size: int) -> list:
        """The next ``size`` user ids in id order after ``after`` (None: from the first),
        as :func:`~.ids.plain_id` gives them (a UUID as its text); ``after`` is compared
        in the column's own type, so its order is the column's."""
        key = self._user_ids()
        query = sa.select(key).where(key.is_not(None)).distinct().order_by(key).limit(size)
        if after is not None:
            after = (for_column([after], key) or [after])[0]
            query = query.where(key > sa.bindparam("after", after, type_=key.type))
        return [plain_id(user) for user in conn.execute(query).scalars()]

    def user_batches(self, conn: sa.Connection, size: int, after=None) -> Iterator[list]:
        """Every user id, ``size`` at a time, in id order after ``after``."""
        while batch := self.next_users(conn, after, size):
            yield batch
            after = batch[-1]

    # -------------------------------------------------------------- histories
    def histories(self, conn: sa.Connection, users: Sequence, last_n: int) -> pd.DataFrame:
        """The last ``last_n`` interactions of each of ``users``, in one query.

        Returns
        -------
        DataFrame with columns user_id, item_id, rating, timestamp
            Sorted by user, then oldest first. ``rating`` is 1.0 for implicit feedback and
            NaN where the database holds NULL; ``timestamp`` is absent without a time column.
            User and item ids come back as their columns hold them, ints and text; ids of
            other types (UUID, NUMERIC) as text (:func:`~.ids.plain_id`).
        """
        users = for_column(users, self.user)  # ids from a users table may be typed otherwise
        if not users:
            return self._frame([])
        if conn.dialect.name == "postgresql":
            query = self._lateral_query(users, last_n)
        else:
            query = self._window_query(users, last_n)
        return self._frame(_stream(conn, query))

    def older_items(self, conn: sa.Connection, history: pd.DataFrame, last_n: int
                    ) -> pd.DataFrame:
        """The items of every row of the users whose ``history`` (as :meth:`histories` read
        it) has ``last_n`` rows, so may have left older rows unread: what a user has seen,
        besides the rows it adapts on. Columns user_id, item_id; NULL items left out."""
        counts = history[C.USER].value_counts()
        users = for_column(counts.index[counts >= last_n].tolist(), self.user)
        if not users:
            return _records([], [C.USER, C.ITEM])
        t = self.table
        ids = sa.bindparam("users", users, expanding=True, type_=self.user.type)
        query = (sa.select(t.c[self.user.name].label(C.USER), t.c[self.item.name].label(C.ITEM))
                 .where(t.c[self.user.name].in_(ids), t.c[self.item.name].is_not(None)))
        return _plain(_records(_stream(conn, query), [C.USER, C.ITEM]), [C.USER, C.ITEM])

    def _selected(self, source) -> list:
        """The history columns of ``source`` (a table or subquery), labelled recmeta's way;
        the rating and the time as the driver returns them (:func:`_raw`)."""
        c = source.c
        cols = [c[self.item.name].label(C.ITEM)]
        cols.append(_raw(c[self.rating.name]).label(C.RATING) if self.rating is not None
                    else sa.literal(1.0, sa.Float).label(C.RATING))
        if self.time is not None:
            cols.append(_raw(c[self.time.name]).label(C.TIME))
        return cols

    def _recency(self, source) -> list:
        """Newest first, with a deterministic tie-break (so a resumed run reads the same)."""
        c = source.c
        keys = [c[self.time.name].desc()] if self.time is not None else []
        pk = list(self.table.primary_key.columns)
        if self.time is None and len(pk) == 1:
            keys.append(c[pk[0].name].desc())
        return [*keys, c[self.item.name].desc()]

    def _window_query(self, users: Sequence, last_n: int) -> sa.Select:
        t = self.table
        ids = sa.bindparam("users", list(users), expanding=True, type_=self.user.type)
        position = sa.func.row_number().over(partition_by=t.c[self.user.name],
                                             order_by=self._recency(t))
        inner = (sa.select(t.c[self.user.name].label(C.USER), *self._selected(t),
                           position.label("recmeta_position"))
                 .where(t.c[self.user.name].in_(ids)).subquery("recent"))
        cols = [inner.c[name] for name in self._names()]
        return (sa.select(*cols).where(inner.c.recmeta_position <= last_n)
                .order_by(inner.c[C.USER], inner.c.recmeta_position.desc()))

    def _lateral_query(self, users: Sequence, last_n: int) -> sa.Select:
        t = self.table
        array_type = postgresql.ARRAY(self.user.type)
        array = sa.cast(sa.bindparam("users", list(users), type_=array_type), array_type)
        batch = sa.func.unnest(array).table_valued("uid").render_derived("batch")
        recency = self._recency(t)
        position = sa.func.row_number().over(order_by=recency).label("recmeta_position")
        recent = (sa.select(*self._selected(t), position)
                  .where(t.c[self.user.name] == batch.c.uid)
                  .order_by(*recency).limit(last_n).lateral("recent"))
        return (sa.select(batch.c.uid.label(C.USER), *[recent.c[n] for n in self._names()[1:]])
                .select_from(batch.join(recent, sa.true()))
                .order_by(batch.c.uid, recent.c.recmeta_position.desc()))

    def _names(self) -> list[str]:
        return [C.USER, C.ITEM, C.RATING, *([C.TIME] if self.time is not None else [])]

    def _frame(self, rows) -> pd.DataFrame:
        frame = _plain(_records(rows, self._names()), [C.USER, C.ITEM])
        frame[C.RATING] = pd.to_numeric(frame[C.RATING], errors="coerce").astype("float64")
        return frame

    def history_queries(self, conn: sa.Connection, users: Sequence,
                        last_n: int) -> pd.DataFrame:
        """The same as :meth:`histories`, one query per user: the slow reference."""
        t = self.table
        parts = []
        for user in users:
            query = (sa.select(sa.literal(user, self.user.type).label(C.USER), *self._selected(t))
                     .where(t.c[self.user.name] == sa.bindparam("u", user, type_=self.user.type))
                     .order_by(*self._recency(t)).limit(last_n))
            parts.extend(reversed(conn.execute(query).all()))
        return self._frame(parts)

    def rating_sample(self, conn: sa.Connection, size: int = 1000) -> pd.Series | None:
        """Up to ``size`` raw values of the rating column that are not NULL (None without a
        rating column): what the mapping check reads before a job starts."""
        if self.rating is None:
            return None
        column = self.table.c[self.rating.name]
        query = sa.select(_raw(column)).where(column.is_not(None)).limit(size)
        return pd.Series(conn.execute(query).scalars().all(), dtype=object)

    # ---------------------------------------------------------- bulk reading
    def interactions(self, conn: sa.Connection) -> Iterator[pd.DataFrame]:
        """Every interaction, streamed as frames of up to ``STREAM_ROWS`` rows."""
        t = self.table
        query = sa.select(t.c[self.user.name].label(C.USER), *self._selected(t))
        result = conn.execute(query, execution_options={"yield_per": STREAM_ROWS})
        for part in result.partitions():
            yield self._frame(part)

    def features(self, conn: sa.Connection, side: str, ids: Sequence | None = None
                 ) -> pd.DataFrame | None:
        """The table of ``side`` ("user", "item" or "candidates"), of ``ids`` or of all, with
        its key named ``user_id`` or ``item_id`` and its features named as
        :func:`feature_fields` names them; None when the source has no such table.
        Rows sharing a key come in :meth:`tie_break` order: :func:`last_per_key` keeps the
        one to use."""
        if side not in self.entities:
            return None
        return self.entities[side].read(conn, ids, C.USER if side == "user" else C.ITEM)

    def duplicate_keys(self, conn: sa.Connection, first: int = 5) -> dict[str, tuple[int, list]]:
        """Per feature table (``"user"``, ``"item"``, ``"candidates"``), how many keys are on
        more than one row, and the ``first`` of them in key order. Of the rows sharing a key,
        the job and training use the one read last (:func:`last_per_key`)."""
        return {side: table.duplicate_keys(conn, first) for side, table in self.entities.items()}

    def null_keys(self, conn: sa.Connection) -> dict[str, int]:
        """Per feature table, how many rows have a NULL key: they describe no user or item,
        and are never read."""
        return {side: table.null_keys(conn) for side, table in self.entities.items()}

    def tie_break(self, side: str) -> str | None:
        """The column that orders the rows sharing a key in the table of ``side``: its
        primary key, when that is one column other than the key; else None, and which of
        them is read last is the database's choice."""
        column = self.entities[side].tie_break
        return None if column is None else column.name


class _EntityTable:
    """A reflected feature table: its key column and feature columns (``fields``: the name
    each is read under, set by :class:`SqlReader`, which sees the other tables)."""

    def __init__(self, engine: sa.Engine, spec: Entities):
        self.table = _reflect(engine, spec.table, spec.schema, "features")
        self.key = _column(self.table, spec.key, "key")
        primary = list(self.table.primary_key.columns)
        names = spec.features
        if names is None:
            # a surrogate primary key (``id``) is one value per row: it describes no user or
            # item, so only naming it makes it a feature
            left_out = {spec.key, *(c.name for c in primary)}
            names = tuple(c.name for c in self.table.columns if c.name not in left_out)
        self.features = [_column(self.table, n, "feature").name for n in names]
        self.fields = {name: name for name in self.features}
        self.tie_break = (primary[0] if len(primary) == 1 and primary[0].name != spec.key
                          else None)

    def read(self, conn: sa.Connection, ids: Sequence | None, key_name: str) -> pd.DataFrame:
        names = [key_name, *self.fields.values()]
        cols = [self.key.label(key_name),
                *[self.table.c[n].label(field) for n, field in self.fields.items()]]
        query = sa.select(*cols).where(self.key.is_not(None))  # a row without a key: no one's
        if ids is not None:
            ids = for_column(ids, self.key)
            if not ids:
                return pd.DataFrame(columns=names)
            query = query.where(self.key.in_(
                sa.bindparam("ids", ids, expanding=True, type_=self.key.type)))
        # rows sharing a key (there should be none) in a stable order: a resumed run reads
        # the same, and the one used (the last) is the one with the greatest tie_break
        order = [self.key] if self.tie_break is None else [self.key, self.tie_break]
        try:
            frame = _plain(_records(_stream(conn, query.order_by(*order)), names), [key_name])
        except (TypeError, ValueError) as exc:  # a converter of a declared type, not SQL
            raise self._unreadable(conn, exc) from None
        for name, field in self.fields.items():
            if isinstance(self.table.c[name].type, sa.Integer):
                frame[field] = _nullable_integers(frame[field])
        return frame

    def _unreadable(self, conn: sa.Connection, exc: Exception) -> DataError:
        """The error for feature columns SQLAlchemy cannot convert by their declared type:
        SQLite keeps any value in any column, and a DATETIME of Unix times raised "fromisoformat:
        argument must be str" as a traceback. Features are read through those converters
        (unlike ratings and times, read raw) because their values are the keys a model was
        trained on; so the column is named, found by reading each one alone."""
        bad = []
        for name in [self.key.name, *self.features]:
            column = self.table.c[name]
            try:
                conn.execute(sa.select(column)).all()
            except (TypeError, ValueError):
                bad.append(f"{name!r} (declared {column.type})")
        which = ", ".join(bad) or "a column"
        return DataError(
            f"Table {self.table.name!r}: {which} holds values its declared type cannot be read "
            f"as ({exc}), e.g. Unix times in a DATETIME column. Leave it out of the features "
            f"(--user-features / --item-features name the ones to use), or store values of "
            f"its declared type.")

    def null_keys(self, conn: sa.Connection) -> int:
        """How many rows have a NULL key (they describe no one, and are not read)."""
        query = sa.select(sa.func.count()).select_from(self.table).where(self.key.is_(None))
        return int(conn.execute(query).scalar_one())

    def duplicate_keys(self, conn: sa.Connection, first: int) -> tuple[int, list]:
        """How many keys are on more than one row, and the ``first`` of them: one query."""
        shared = (sa.select(self.key.label("key")).where(self.key.is_not(None))
                  .group_by(self.key).having(sa.func.count() > 1).subquery())
        query = (sa.select(shared.c.key, sa.func.count().over())
                 .order_by(shared.c.key).limit(first))
        rows = conn.execute(query).all()
        return (int(rows[0][1]) if rows else 0), [plain_id(row[0]) for row in rows]


RECMETA_COLUMNS = (C.USER, C.ITEM, C.RATING, C.TIME)


def feature_fields(side: str, columns: Sequence[str], other: Sequence[str]) -> dict[str, str]:
    """The name each feature column of a table of ``side`` is read, trained and known to the
    model under: its own, or ``user.<column>`` (``item.<column>`` for the items and the
    candidates) when the other side's table has a feature of that name too, or when it is
    one of recmeta's own columns (user_id, item_id, rating, timestamp).

    Training joins both tables to the interactions in one frame, whose columns need one name
    each: ``lang`` of the users and ``lang`` of the items are two features, ``user.lang`` and
    ``item.lang``. Scoring reads the tables under the same names; :func:`feature_column`
    finds a model's field in a table read with other tables beside it."""
    prefix = "user" if side == "user" else "item"
    shared = {*RECMETA_COLUMNS, *other}
    return {c: f"{prefix}.{c}" if c in shared else c for c in columns}


def feature_column(side: str, field: str, columns) -> str | None:
    """The column of a feature table read by :meth:`SqlReader.features` (``columns``) that
    holds the model's field ``field`` of ``side`` ("user" or "item"): the one of its name,
    else the same column under the other name :func:`feature_fields` may give it (the model
    trained beside a users table that scoring is not given, or the other way round); None
    when there is none. recmeta's own columns (the key among them) are never a feature's."""
    columns, prefix = set(columns) - set(RECMETA_COLUMNS), f"{side}."
    for name in (field, field[len(prefix):] if field.startswith(prefix) else prefix + field):
        if name in columns:
            return name
    return None


def last_per_key(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """One row per ``key`` of a feature table as :meth:`SqlReader.features` reads it: of the
    rows sharing a key, the last read, i.e. the one with the greatest
    :meth:`SqlReader.tie_break` column (the row the nightly job and training both use)."""
    return table.drop_duplicates(key, keep="last")


def _raw(column: sa.ColumnElement) -> sa.ColumnElement:
    """``column`` as the driver returns it, not converted by SQLAlchemy for its declared type.

    SQLite stores any value in any column, and SQLAlchemy's result processors for its types
    assume the declared one: a DATETIME column of Unix times failed with "fromisoformat:
    argument must be str", a NUMERIC or DECIMAL one with ISO text or an 'n/a' in it with
    "must be real number, not str", and the whole job with them. recmeta reads ratings with
    ``pd.to_numeric(errors="coerce")`` and puts times in order as numbers or ISO text, so
    it needs no conversion: what the data holds is read, and what it cannot use is dropped
    and counted (a rating) or refused with a DataError (times of mixed types). Only the
    type SQLAlchemy sees changes, not the SQL (no CAST): the time ordering done in SQL is
    the column's own; PostgreSQL's driver returns numbers and datetimes itself.
    """
    return sa.type_coerce(column, sa.types.NullType())


def _nullable_integers(values: pd.Series) -> pd.Series:
    """A feature column declared an integer as pandas' nullable ``Int64``, NULLs as
    ``pd.NA``: as int64 it turned into floats as soon as one row was NULL (or a left join
    in training missed a key), and a new model then learned it as numeric, where without a
    NULL it is categorical. Its kind follows the declared type now, not the data. A model
    that learned it as numeric reads these as numbers all the same (``pd.NA`` as missing).
    Values that are not integers (SQLite stores any value in any column) stay as read."""
    try:
        return values.astype("Int64")
    except (TypeError, ValueError):
        return values


def _plain(frame: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """``frame`` with its id columns ``ids`` as :func:`~.ids.plain_id` gives them: ints
    and text as read, a UUID or a NUMERIC's Decimal as text, so training can save a model
    of them and scoring matches them to a model trained on them (or on their text)."""
    for name in ids:
        frame[name] = plain_ids(frame[name])
    return frame


def _records(rows, columns: list[str]) -> pd.DataFrame:
    """A frame from result rows (as plain tuples: much faster than from Row objects)."""
    return pd.DataFrame.from_records([tuple(row) for row in rows], columns=columns)


def _stream(conn: sa.Connection, query) -> Iterator[tuple]:
    """Rows of ``query``, fetched ``STREAM_ROWS`` at a time (a server-side cursor where the
    driver has one); the option is set on this execution only, never on ``conn``."""
    result = conn.execute(query, execution_options={"yield_per": STREAM_ROWS})
    for part in result.partitions():
        yield from part


def _reflect(engine: sa.Engine, name: str, schema: str | None, role: str) -> sa.Table:
    inspector = sa.inspect(engine)
    if not isinstance(name, str) or not inspector.has_table(name, schema=schema):
        have = sorted(inspector.get_table_names(schema=schema))
        where = f"schema {schema!r}" if schema else "the default schema"
        shown = ", ".join(repr(t) for t in have[:50]) or "none"
        hint = (" Run `recmeta db upgrade --db URL` to create recmeta's default table."
                if name == Interactions.table else "")
        raise SchemaError(
            f"The {role} table {name!r} does not exist in {where} of "
            f"{engine.url.render_as_string(hide_password=True)}. Tables there: {shown}. "
            f"Name an existing table.{hint}")
    return sa.Table(name, sa.MetaData(), autoload_with=engine, schema=schema)


def _column(table: sa.Table, name: str, role: str) -> sa.Column:
    if not isinstance(name, str) or name not in table.c:
        have = ", ".join(repr(c.name) for c in table.columns)
        hint = (" Without one, pass --rating-col '' (rating=None in Python): every row then "
                "counts as a 1, for a model of 0/1 feedback." if role == "rating" else "")
        raise SchemaError(
            f"Table {table.name!r} has no column {name!r} (the {role} column). Its columns "
            f"are: {have}. Map the {role} to one of them.{hint}")
    return table.c[name]
