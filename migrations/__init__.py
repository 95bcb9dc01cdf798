"""recmeta's Alembic environment: the history of its own tables.

Installed as ``recmeta.migrations``, so the scripts ship inside the wheel. Run it with
``recmeta db upgrade --db URL`` (or :func:`recmeta.adapters.migrate.upgrade`); its version
table is ``recmeta_alembic_version``, so it lives beside the host application's own Alembic
history without touching it.
"""

from pathlib import Path

SCRIPT_LOCATION = Path(__file__).resolve().parent
"""The Alembic script directory, wherever the package is installed."""
