"""``recmeta db``: Alembic migrations of recmeta's own tables."""

import click


@click.group()
def db() -> None:
    """Create and upgrade recmeta's tables (its own Alembic history)."""
