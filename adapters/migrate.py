"""Migrations of recmeta's own tables, from Python: upgrade, downgrade, current.

The Alembic scripts are found next to :mod:`recmeta.migrations`' own ``__file__``, so this
works the same from a source checkout and from an installed wheel. Recmeta's history has
its own version table (``recmeta_alembic_version``) and never touches the host
application's tables or its ``alembic_version``.

Examples
--------
>>> from recmeta.adapters.migrate import head
>>> head()
'0002'
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError

from recmeta.migrations import SCRIPT_LOCATION

from .tables import VERSION_TABLE, metadata

logger = logging.getLogger("recmeta")


class MigrationError(RuntimeError):
    """The database's recmeta tables are missing or not at the revision this code needs."""


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config for recmeta's history, bound to ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this installation of recmeta knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: sa.Engine, revision: str = "head") -> str | None:
    """Upgrade recmeta's tables to ``revision``; returns the revision reached."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
    return current(engine)


def downgrade(engine: sa.Engine, revision: str) -> str | None:
    """Downgrade recmeta's tables to ``revision`` (``"-1"``, ``"base"``, an id)."""
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)
    return current(engine)


def rows_dropped(engine: sa.Engine, revision: str) -> dict[str, int]:
    """The tables a downgrade to ``revision`` would drop that hold rows, with their counts.

    Each migration names the tables its ``downgrade()`` drops (``drops_on_downgrade``).
    Empty when nothing with rows would be dropped, and when ``revision`` is no downgrade
    target from here (:func:`downgrade` then says why).
    """
    at = current(engine)
    if at is None:
        return {}
    script = ScriptDirectory.from_config(alembic_config())
    try:
        steps = list(script.iterate_revisions(at, revision, select_for_downgrade=True))
    except RevisionError:
        return {}
    names = [name for step in steps for name in getattr(step.module, "drops_on_downgrade", ())]
    existing = set(sa.inspect(engine).get_table_names())
    counts = {}
    with engine.connect() as connection:
        for name in names:
            if name in existing:
                table = metadata.tables.get(name, sa.table(name))
                rows = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                if rows:
                    counts[name] = rows
    return counts


def current(engine: sa.Engine) -> str | None:
    """The revision of recmeta's tables in this database, or None before the first upgrade."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        heads = context.get_current_heads()
    return heads[0] if heads else None


def require_head(engine: sa.Engine) -> None:
    """Fail with what to run when recmeta's tables are missing or out of date."""
    at, want = current(engine), head()
    if at != want:
        state = "has no recmeta tables" if at is None else f"has recmeta tables at {at}"
        raise MigrationError(
            f"The database {engine.url.render_as_string(hide_password=True)} {state}; this "
            f"recmeta needs revision {want}. Run: recmeta db upgrade --db URL")
