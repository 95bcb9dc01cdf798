"""The model registry: a row per trained model directory in ``recmeta_models``.

A model is named on the command line by its registry id or by its directory; a directory
that is not registered yet is registered when a run first uses it, so every run points at
a registry row. Its parameters and metrics are then read from the model itself
(:func:`model_metrics`: what ``recmeta train`` records but the number of interactions and
the time the fit took, which the model does not keep).
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


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    id: int
    name: str | None
    created: dt.datetime
    parameters: dict
    metrics: dict
    artifact: str


def register(engine: sa.Engine, artifact, parameters: dict, metrics: dict,
             name: str | None = None) -> int:
    """Add a model directory to the registry; returns its id."""
    row = {"name": name, "created": dt.datetime.now(dt.timezone.utc),
           "parameters": _jsonable(parameters), "metrics": _jsonable(metrics),
           "artifact": str(Path(artifact).resolve())}
    with engine.begin() as conn:
        return int(conn.execute(models.insert().values(**row)).inserted_primary_key[0])


def get(conn: sa.Connection, model_id: int) -> ModelEntry:
    """The registry row ``model_id``, or a DataError that says how to list them."""
    row = conn.execute(sa.select(models).where(models.c.id == model_id)).mappings().first()
    if row is None:
        raise DataError(f"No model {model_id} in the registry (recmeta_models). Pass a model "
                        f"directory, or the id printed by `recmeta train`.")
    return ModelEntry(**row)


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
    """A model named by its registry id (digits) or its directory (registered if new, with
    the parameters and metrics of the model it holds: ``fitted``, when the caller has
    loaded it already)."""
    if str(model).isdigit() and not Path(model).exists():
        with engine.connect() as conn:
            return get(conn, int(model))
    path = Path(model).resolve()
    if not (path / "model.json").is_file():
        raise DataError(f"{str(model)!r} is neither a registered model id nor a model "
                        f"directory (no model.json there). Train one with `recmeta train`.")
    with engine.connect() as conn:
        found = conn.execute(sa.select(models.c.id).where(models.c.artifact == str(path))
                             .order_by(models.c.id.desc())).scalar()
        if found is not None:
            return get(conn, found)
    if fitted is None:
        from recmeta import MetaRecommender

        fitted = MetaRecommender.load(path)
    model_id = register(engine, path, fitted.get_params(deep=False), model_metrics(fitted),
                        name=path.name)
    with engine.connect() as conn:
        return get(conn, model_id)


def fingerprint(artifact) -> str:
    """A digest of every file of a model directory: a run records it when it starts, and a
    resume compares, so that a model retrained into the same directory meanwhile is not
    mixed into the run's rows."""
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
