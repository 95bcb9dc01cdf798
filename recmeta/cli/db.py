"""``recmeta db``: Alembic migrations of recmeta's own tables.

recmeta's tables (``recmeta_interactions``, ``recmeta_models``, ``recmeta_runs``,
``recmeta_recommendations``) have their own Alembic history and version table
(``recmeta_alembic_version``), so they live beside the application's own migrations.
"""

import click

from ._common import db_option, handle_errors, make_engine


@click.group()
def db() -> None:
    """Create and upgrade recmeta's tables (its own Alembic history)."""


@db.command()
@click.argument("revision", default="head")
@db_option
@handle_errors
def upgrade(revision: str, db_url: str) -> None:
    """Upgrade recmeta's tables to REVISION (default: head, the newest)."""
    from recmeta.adapters import migrate

    reached = migrate.upgrade(make_engine(db_url), revision)
    click.echo(f"recmeta tables at revision {reached or 'none'}{_head(reached)}")


@db.command()
@click.argument("revision")
@db_option
@handle_errors
def downgrade(revision: str, db_url: str) -> None:
    """Downgrade recmeta's tables to REVISION: an id, -1 (one step) or base (drop them all)."""
    from recmeta.adapters import migrate

    reached = migrate.downgrade(make_engine(db_url), revision)
    click.echo(f"recmeta tables at revision {reached or 'none (base)'}{_head(reached)}")


@db.command()
@db_option
@handle_errors
def current(db_url: str) -> None:
    """Print the revision of recmeta's tables in the database."""
    from recmeta.adapters import migrate

    at = migrate.current(make_engine(db_url))
    if at is None:
        click.echo("none: no recmeta tables yet (run: recmeta db upgrade --db URL)")
    else:
        click.echo(f"{at}{_head(at)}")


def _head(revision) -> str:
    from recmeta.adapters import migrate

    want = migrate.head()
    if revision == want:
        return " (head)"
    return f" (head is {want}; run: recmeta db upgrade --db URL)" if revision else ""
