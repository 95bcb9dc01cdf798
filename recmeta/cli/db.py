"""``recmeta db``: Alembic migrations of recmeta's own tables.

recmeta's tables (``recmeta_interactions``, ``recmeta_models``, ``recmeta_runs``,
``recmeta_recommendations``) have their own Alembic history and version table
(``recmeta_alembic_version``), so they live beside the application's own migrations.
"""

import re

import click

from ._common import UsageError, db_option, handle_errors, make_engine, stdin_is_terminal


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


class _RelativeRevision(click.Command):
    """A command whose REVISION may be relative, ``-1``: read as the argument, not as an
    unknown option (as if it came after ``--``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        relative = [a for a in args[:end] if re.fullmatch(r"-\d+", a)]
        if relative:
            args = [a for a in args[:end] if a not in relative] + ["--", *relative,
                                                                   *args[end + 1:]]
        return super().parse_args(ctx, args)


@db.command(cls=_RelativeRevision)
@click.argument("revision")
@db_option
@click.option("--yes", is_flag=True,
              help="Drop tables that hold rows without asking (for scripts).")
@handle_errors
def downgrade(revision: str, db_url: str, yes: bool) -> None:
    """Downgrade recmeta's tables to REVISION: an id, -1 (one step) or base (drop them all).

    A downgrade drops tables; when they hold rows, it asks first (in a terminal) or
    needs --yes.
    """
    from recmeta.adapters import migrate

    engine = make_engine(db_url)
    lost = {} if yes else migrate.rows_dropped(engine, revision)
    if lost:
        tables = ", ".join(f"{name} ({rows} rows)" for name, rows in lost.items())
        message = f"Downgrading recmeta's tables to {revision} drops {tables} with their rows"
        if not stdin_is_terminal():
            raise UsageError(f"{message}. Back them up, then add --yes to go ahead.")
        click.confirm(f"{message}. Go ahead?", abort=True, err=True)
    reached = migrate.downgrade(engine, revision)
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
