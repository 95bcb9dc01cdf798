"""``recmeta evaluate``: the evaluation protocols on MovieLens or your own data."""

import click


@click.command()
def evaluate() -> None:
    """Evaluate meta-learned adaptation against baselines (not yet implemented)."""
    raise click.ClickException("recmeta evaluate is not implemented yet.")
