"""The model registry: a row per trained model directory in ``recmeta_models``.

A model is named on the command line by its registry id or by its directory; a directory
that is not registered yet is registered when a run first uses it, so every run points at
a registry row. Its parameters and metrics are then read from the model itself
(:func:`model_metrics`: what ``recmeta train`` records but the number of interactions and
the time the fit took, which the model does not keep).

A directory can be retrained into (``recmeta train --out`` the same directory again), which
registers a new id for it; the older id would then load the new weights under its own
parameters and metrics. So each row records the directory's :func:`fingerprint` when it was
registered (in its metrics, as ``model_fingerprint``: rows need no new column), and
:func:`get_unchanged` refuses an id whose directory no longer holds what was registered,
naming the id that does. Rows registered before fingerprints were kept have none to
compare: such a row is taken as it is, unless a later row registers the same directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from recmeta.exceptions import DataError

from .tables import models

if TYPE_CHECKING:
    from recmeta import MetaRecommender


FINGERPRINT = "model_fingerprint"  # the key of a row's metrics that holds its fingerprint


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    id: int
    name: str | None
    created: dt.datetime
    parameters: dict
    metrics: dict
    artifact: str

    @property
    def registered_fingerprint(self) -> str | None:
        """The directory's :func:`fingerprint` when it was registered (None for rows
        registered before they were recorded)."""
        return (self.metrics or {}).get(FINGERPRINT)


def register(engine: sa.Engine, artifact, parameters: dict, metrics: dict,
             name: str | None = None) -> int:
    """Add a model directory to the registry, with its :func:`fingerprint`; returns its id."""
    row = {"name": name, "created": dt.datetime.now(dt.timezone.utc),
           "parameters": _jsonable(parameters),
           "metrics": _jsonable({**metrics, FINGERPRINT: fingerprint(artifact)}),
           "artifact": str(Path(artifact).resolve())}
    with engine.begin() as conn:
        return int(conn.execute(models.insert().values(**row)).inserted_primary_key[0])


def refused_rights(engine: sa.Engine) -> list[str]:
    """What the database would refuse ``recmeta train``'s registry row, asked before a fit of
    minutes rather than after it: on PostgreSQL the rights it lacks, by the server's
    privilege functions (an insert rolled back would still take an id from the sequence,
    and the first model would be 2); elsewhere an insert, rolled back, whose error reaches
    the caller as the real insert's would (a read-only SQLite file, say)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            table, sequence = conn.execute(sa.text(
                "SELECT has_table_privilege(:t, 'INSERT'), "
                "has_sequence_privilege(pg_get_serial_sequence(:t, 'id'), 'USAGE')"),
                {"t": models.name}).one()
        return ([f"INSERT on {models.name}"] if table is False else []) + \
            ([f"USAGE on the id sequence of {models.name}"] if sequence is False else [])
    with engine.connect() as conn, conn.begin() as transaction:
        conn.execute(models.insert().values(
            name=None, created=dt.datetime.now(dt.timezone.utc), parameters={}, metrics={},
            artifact=""))
        transaction.rollback()
    return []


def get(conn: sa.Connection, model_id: int) -> ModelEntry:
    """The registry row ``model_id``, or a DataError that says how to list them."""
    row = conn.execute(sa.select(models).where(models.c.id == model_id)).mappings().first()
    if row is None:
        raise DataError(f"No model {model_id} in the registry (recmeta_models). Pass a model "
                        f"directory, or the id printed by `recmeta train`.")
    return ModelEntry(**row)


def registered_before(engine: sa.Engine | None, artifact, model_id: int | None) -> list[int]:
    """The ids the directory ``artifact`` was registered under before ``model_id`` was saved
    into it: :func:`get_unchanged` refuses them from now on."""
    if engine is None or model_id is None:
        return []
    with engine.connect() as conn:
        return list(conn.execute(
            sa.select(models.c.id).where(models.c.artifact == str(Path(artifact).resolve()),
                                         models.c.id < model_id)
            .order_by(models.c.id)).scalars())


def get_unchanged(conn: sa.Connection, model_id: int) -> ModelEntry:
    """The registry row ``model_id``, refused with a DataError when its directory no longer
    holds the model registered under it (retrained into the same ``--out``, say): the row's
    parameters and metrics would describe other weights than a run loads, and runs would
    record them. The message names the id to use instead, when a row holds what the
    directory holds now."""
    entry = get(conn, model_id)
    path = Path(entry.artifact)
    if not (path / "model.json").is_file():
        return entry  # nothing there to compare: loading it says what is missing
    later = [ModelEntry(**row) for row in conn.execute(
        sa.select(models).where(models.c.artifact == entry.artifact, models.c.id > entry.id)
        .order_by(models.c.id.desc())).mappings()]
    recorded = entry.registered_fingerprint
    if recorded is None and not later:
        return entry  # registered before fingerprints were kept, and not retrained since
    now = fingerprint(path)
    if recorded == now:
        return entry
    holds = next((e for e in later if e.registered_fingerprint == now), None)
    how = (f"a later `recmeta train --out` trained into it (registered as model "
           f"{', '.join(str(e.id) for e in reversed(later))})" if later
           else "it changed since it was registered (retrained or saved over)")
    instead = (f"Use --model {holds.id}, the model it holds now." if holds else
               f"Pass the directory itself (--model {entry.artifact}) to use, and register, "
               f"the model it holds now.")
    raise DataError(
        f"Model {model_id} of the registry is no longer what its directory {entry.artifact} "
        f"holds: {how}, so its weights are not those that model {model_id}'s row in "
        f"recmeta_models (its parameters and metrics) describes. {instead} Train each model "
        f"into a directory of its own (--out) to keep older ids usable.")


def model_metrics(model: MetaRecommender) -> dict:
    """The metrics of the registry that a fitted (or loaded) model knows of itself."""
    return {
        "n_users": len(model.users_), "n_items": len(model.items_),
        "n_epochs": model.n_epochs_, "best_epoch": model.best_epoch_,
        "train_loss": model.loss_curve_[-1] if model.loss_curve_ else None,
        "validation_loss": (min(model.validation_loss_curve_)
                            if model.validation_loss_curve_ else None),
    }


def resolve(engine: sa.Engine, model: str, fitted: MetaRecommender | None = None
            ) -> ModelEntry:
    """A model named by its registry id (digits; refused when its directory was overwritten
    since, see :func:`get_unchanged`) or its directory: the row registered with what it
    holds now, else registered now, with the parameters and metrics of the model it holds
    (``fitted``, when the caller has loaded it already)."""
    if str(model).isdigit() and not Path(model).exists():
        with engine.connect() as conn:
            return get_unchanged(conn, int(model))
    path = Path(model).resolve()
    if not (path / "model.json").is_file():
        raise DataError(f"{str(model)!r} is neither a registered model id nor a model "
                        f"directory (no model.json there). Train one with `recmeta train`.")
    with engine.connect() as conn:
        rows = [ModelEntry(**row) for row in conn.execute(
            sa.select(models).where(models.c.artifact == str(path))
            .order_by(models.c.id.desc())).mappings()]
    if rows:
        # the row registered with what the directory holds now; a directory changed since
        # its rows were registered (saved over from Python, say) is registered anew
        now = fingerprint(path)
        for entry in rows:
            if entry.registered_fingerprint == now:
                return entry
        if rows[0].registered_fingerprint is None:
            return rows[0]  # registered before fingerprints were kept: nothing to compare
    if fitted is None:
        from recmeta import MetaRecommender

        fitted = MetaRecommender.load(path)
    model_id = register(engine, path, fitted.get_params(deep=False), model_metrics(fitted),
                        name=path.name)
    with engine.connect() as conn:
        return get(conn, model_id)


def fingerprint(artifact) -> str:
    """A digest of every file of a model directory: the registry records it with each row
    and a run when it starts; a registry id and a resume compare, so that a model retrained
    into the same directory meanwhile is neither taken for the one registered nor mixed
    into the run's rows."""
    digest = hashlib.sha256()
    root = Path(artifact)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _jsonable(value):
    """``value`` as plain JSON types (tuples become lists, numpy scalars numbers)."""
    return json.loads(json.dumps(value, default=_default))


def _default(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)
