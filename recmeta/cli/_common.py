"""What the job commands share: the database option, the table mapping, errors and output.

Exit codes of every command: 0 success; 1 the job failed (a scoring run is marked failed
and can be resumed with ``--resume RUN_ID``; this includes a database that cannot be
reached, or that refuses a statement, such as for want of a right); 2 bad usage or input
(a missing table or column, a bad option; nothing written).
"""

from __future__ import annotations

import ast
import functools
import json
import sys
from collections.abc import Callable

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(click.ClickException):
    """Bad input: printed as ``Error: ...`` on stderr, exit code 2."""

    exit_code = EXIT_USAGE


class JobError(click.ClickException):
    """The job failed: printed as ``Error: ...`` on stderr, exit code 1."""

    exit_code = EXIT_FAILED


def db_option(func: Callable) -> Callable:
    return click.option(
        "--db", "db_url", required=True, envvar="RECMETA_DB", metavar="URL",
        help="SQLAlchemy URL of the database, e.g. sqlite:///app.db or "
             "postgresql://user:pass@host/db (env RECMETA_DB).")(func)


def _none_if_empty(ctx, param, value):
    return value or None


def _names(ctx, param, value):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


SOURCE_OPTIONS = [
    click.option("--interactions", default="recmeta_interactions", show_default=True,
                 help="Table of interactions."),
    click.option("--user-col", default="user_id", show_default=True,
                 help="Its user id column."),
    click.option("--item-col", default="item_id", show_default=True,
                 help="Its item id column."),
    click.option("--rating-col", default="rating", show_default=True,
                 callback=_none_if_empty,
                 help="Its rating column; '' for implicit feedback (every row is a 1)."),
    click.option("--time-col", default="timestamp", show_default=True,
                 callback=_none_if_empty, help="Its time column; '' when there is none."),
    click.option("--schema", default=None, help="Database schema of every table (PostgreSQL)."),
    click.option("--users", "users_table", default=None,
                 help="Table of user features (optional)."),
    click.option("--user-key", default="user_id", show_default=True,
                 help="Its user id column."),
    click.option("--user-features", default=None, callback=_names,
                 help="Its feature columns, comma-separated [default: all but the key and "
                      "the table's primary key: a per-row id is no feature]. One named as "
                      "an item feature too is the model's user.NAME."),
    click.option("--items", "items_table", default=None,
                 help="Table of item features: the catalogue (optional)."),
    click.option("--item-key", default="item_id", show_default=True,
                 help="Its item id column."),
    click.option("--item-features", default=None, callback=_names,
                 help="Its feature columns, comma-separated [default: all but the key and "
                      "the table's primary key: a per-row id is no feature]. One named as "
                      "a user feature too is the model's item.NAME."),
]

CANDIDATE_OPTIONS = [
    click.option("--candidates", "candidates_table", default=None,
                 help="Table of the items to rank [default: the --items table, else every "
                      "item the model knows]."),
    click.option("--candidate-key", default="item_id", show_default=True,
                 help="Its item id column."),
]


def options(decorators: list) -> Callable:
    """Apply a list of click options, in the order listed."""
    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


def source_from(kw: dict):
    """The :class:`SqlSource` that the source options describe (pops them from ``kw``)."""
    from recmeta.adapters.sql import Entities, Interactions, SqlSource

    schema = kw.pop("schema")
    interactions = Interactions(kw.pop("interactions"), kw.pop("user_col"), kw.pop("item_col"),
                                kw.pop("rating_col"), kw.pop("time_col"), schema)

    def entities(table, key, features=None):
        return None if table is None else Entities(table, key, features, schema)

    users = entities(kw.pop("users_table"), kw.pop("user_key"), kw.pop("user_features"))
    items = entities(kw.pop("items_table"), kw.pop("item_key"), kw.pop("item_features"))
    candidates = None
    if "candidates_table" in kw:
        candidates = entities(kw.pop("candidates_table"), kw.pop("candidate_key"))
    return SqlSource(interactions, users, items, candidates)


def make_engine(url: str):
    """An engine for ``url``; ``postgresql://`` uses psycopg 3 (``recmeta[postgres]``)."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed)
    except sa.exc.ArgumentError as exc:
        raise UsageError(f"--db {url!r} is not a database URL ({exc}). Write it as "
                         f"sqlite:///path/to/file.db or postgresql://user:pass@host/db.") from None
    except ModuleNotFoundError as exc:
        raise UsageError(f"The driver for {url.split(':')[0]} is not installed ({exc}). For "
                         f"PostgreSQL: pip install 'recmeta[postgres]'.") from None


def handle_errors(func: Callable) -> Callable:
    """Turn recmeta's and the database's exceptions into messages and exit codes."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import sqlalchemy as sa
        from alembic.util import CommandError

        from recmeta.adapters.migrate import MigrationError
        from recmeta.exceptions import DataError, InvalidParameterError, ModelFormatError

        try:
            return func(*args, **kwargs)
        except (DataError, InvalidParameterError, ModelFormatError, MigrationError,
                CommandError) as exc:
            raise UsageError(str(exc)) from None
        except sa.exc.OperationalError as exc:
            raise JobError(f"The database could not be used: {exc.orig}. Check --db and "
                           f"that the server is up.") from None
        except sa.exc.DBAPIError as exc:  # refused by the database: a right, a constraint
            raise JobError(database_error(exc)) from None
    return wrapper


RIGHTS = ("recmeta needs to read the tables it is given (--interactions, --users, --items, "
          "--candidates) and to read and write its own recmeta_* tables: have an admin run "
          "`recmeta db upgrade --db URL` once, then grant the role of --db SELECT on those "
          "tables and on recmeta_alembic_version, SELECT, INSERT and UPDATE on "
          "recmeta_models, recmeta_runs and recmeta_recommendations, and USAGE on their "
          "sequences (or let it create them: CREATE on the schema).")


def refused_right(said: str) -> str:
    """The line for a right the database refuses recmeta: what was refused, then the rights
    recmeta needs."""
    return f"The database refused recmeta a right: {said}. {RIGHTS}"


def database_error(exc) -> str:
    """One line for a statement the database refused (a SQLAlchemy ``DBAPIError``): what
    the driver said, which is what an admin, or a bug report, needs; and for a missing
    right (SQLSTATE 42501, PostgreSQL's ``permission denied``), the rights recmeta needs.
    The exit code is the job's failure, 1: the input is not at fault, and the command
    works once the database lets it."""
    orig = exc.orig if exc.orig is not None else exc
    said = (str(orig).strip().splitlines() or [""])[0].rstrip(".")
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code == "42501" or "permission denied" in said.lower():
        return refused_right(said)
    kind = f"{type(orig).__module__}.{type(orig).__qualname__}"
    if code:
        kind += f", SQLSTATE {code}"
    return (f"The database refused a statement of recmeta ({kind}): {said}. Check that --db "
            f"names the database that holds recmeta's tables and yours; if it does, report "
            f"this line as a bug of recmeta.")


def print_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def note(message: str) -> None:
    """A line for people, on stderr (stdout stays machine-readable)."""
    click.echo(f"recmeta: {message}", err=True)


def parse_params(pairs: tuple[str, ...]) -> dict:
    """``("max_epochs=3", "hidden=(32,32)")`` -> ``{"max_epochs": 3, "hidden": (32, 32)}``.

    A value is read as JSON, else as a Python literal (``(32, 32)``, ``32,32``, ``None``,
    ``True``), else kept as the string; a list becomes a tuple."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param takes KEY=VALUE (e.g. --param max_epochs=10); got "
                             f"{pair!r}.")
        params[key.strip()] = parse_value(value)
    return params


def parse_value(text: str):
    """One ``--param`` value: JSON, else a Python literal, else the string itself."""
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(text.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        return tuple(parsed) if isinstance(parsed, list) else parsed
    return text


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()
