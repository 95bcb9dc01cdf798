"""``recmeta train | score | recommend | demo``: the jobs."""

import click


@click.command()
def train() -> None:
    """Train a model (not yet implemented)."""
    raise click.ClickException("not implemented yet")


@click.command()
def score() -> None:
    """Score users in batches (not yet implemented)."""
    raise click.ClickException("not implemented yet")


@click.command()
def recommend() -> None:
    """Recommend for one user (not yet implemented)."""
    raise click.ClickException("not implemented yet")


@click.command()
def demo() -> None:
    """Run the demo (not yet implemented)."""
    raise click.ClickException("not implemented yet")
