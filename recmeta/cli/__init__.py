"""The ``recmeta`` command line.

Commands live in submodules, one per job: ``db`` (migrations), ``jobs`` (train, score,
recommend, demo) and ``evaluate``. Exit codes: 0 success, 1 the job failed (the run is
marked failed and can be resumed), 2 bad usage or input.
"""

import click

from .db import db
from .evaluate import evaluate
from .jobs import demo, recommend, score, train


@click.group()
@click.version_option(package_name="recmeta")
def main() -> None:
    """recmeta: meta-learned per-user recommendations."""


for command in (db, train, score, recommend, demo, evaluate):
    main.add_command(command)
