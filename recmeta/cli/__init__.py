"""The ``recmeta`` command line."""

import click


@click.group()
@click.version_option(package_name="recmeta")
def main() -> None:
    """recmeta: meta-learned per-user recommendations."""
