"""Alembic environment of recmeta's own tables.

Run through :mod:`recmeta.adapters.migrate`, which hands over an open connection in
``config.attributes["connection"]``; a URL in ``sqlalchemy.url`` works too, and so does
offline mode (``--sql``) for DBAs who review the SQL first. Only recmeta's tables are ever
compared or touched: the host application's tables are filtered out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from recmeta.adapters.tables import VERSION_TABLE, metadata

config = context.config


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate looks at recmeta's tables only, never at the host application's."""
    if type_ == "table":
        return name in metadata.tables
    table = getattr(obj, "table", None)
    return table is None or table.name in metadata.tables


def _configure(**kwargs) -> None:
    context.configure(target_metadata=metadata, version_table=VERSION_TABLE,
                      include_object=include_object, compare_type=True, **kwargs)


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"),
                              poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()


def _run(connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
