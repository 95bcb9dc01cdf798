"""Saving and loading a fitted model: safetensors for arrays, JSON for everything else.

A model directory holds three files:

- ``model.json``: format name and version, the estimator's parameters, the column roles,
  the feature vocabularies, fitted scalars, user and item ids, and the SHA-256 of the two
  tensor files;
- ``weights.safetensors``: the network and its inner learning rates;
- ``data.safetensors``: encoded user and item tables and the remembered histories.

Loading checks the format version and both checksums before reading a tensor, and never
unpickles anything. ``model.json`` is written last, so an interrupted save is detected as a
checksum mismatch rather than read half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .catalog import EntityTable
from .episodes import Histories
from .exceptions import ModelFormatError
from .features import FeatureSpace
from .frames import Schema

FORMAT = "recmeta-model"
FORMAT_VERSION = 1
META, WEIGHTS, DATA = "model.json", "weights.safetensors", "data.safetensors"


def save(model, path) -> None:
    """Write ``model`` (fitted) to the directory ``path``, creating it if needed.

    Everything that can be refused (ids of other types than int and str, a description
    that is not JSON) is checked before the first file is written: a refused save leaves
    ``path`` as it was, not tensor files without their ``model.json``."""
    path = Path(path)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.learner_.state_dict().items()}
    data = {f"users/{k}": v for k, v in model.users_.encoded.items()}
    data.update({f"items/{k}": v for k, v in model.items_.encoded.items()})
    h = model.histories_
    data.update({"histories/indptr": h.indptr, "histories/items": h.items,
                 "histories/target": h.target})
    data = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}
    meta = _meta(model)
    json.dumps(meta)  # raises now, before anything is written, if it cannot be written
    path.mkdir(parents=True, exist_ok=True)
    meta["sha256"] = {WEIGHTS: _write(save_file, weights, path / WEIGHTS),
                      DATA: _write(save_file, data, path / DATA)}
    tmp = path / (META + ".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, path / META)


def _meta(model) -> dict:
    """The contents of ``model.json`` but the tensor files' checksums."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "recmeta_version": _version(),
        "params": _jsonable_params(model.get_params(deep=False)),
        "schema": {"user_col": model.schema_.user_col, "item_col": model.schema_.item_col,
                   "time_col": model.schema_.time_col, "user_fields": model.schema_.user_fields,
                   "item_fields": model.schema_.item_fields,
                   "kinds": {k: list(v) for k, v in model.schema_.kinds.items()}},
        "feature_space": model.feature_space_.to_dict(),
        "fitted": {"objective": model.objective_, "target_mean": model.target_mean_,
                   "target_scale": model.target_scale_,
                   "target_range": None if model.target_range_ is None
                   else list(model.target_range_), "n_features_in": model.n_features_in_,
                   "feature_names_in": _names(model), "loss_curve": model.loss_curve_,
                   "validation_loss_curve": model.validation_loss_curve_,
                   "best_epoch": model.best_epoch_, "blend_weight": model.blend_weight_,
                   "blend_losses": model.blend_losses_},
        "user_ids": _ids(model.users_.ids),
        "item_ids": _ids(model.items_.ids),
    }


def load(cls, path, device: str = "auto"):
    """Read a model directory written by :func:`save`."""
    from ._fitting import resolve_device

    path = Path(path)
    meta = _read_meta(path)
    tensors = {name: _read_tensors(path / name, meta["sha256"].get(name)) for name in
               (WEIGHTS, DATA)}
    model = cls(**_params_back(meta["params"]))
    s = meta["schema"]
    model.schema_ = Schema(s["user_col"], s["item_col"], s["time_col"], s["user_fields"],
                           s["item_fields"], {k: tuple(v) for k, v in s["kinds"].items()})
    model.feature_space_ = FeatureSpace.from_dict(meta["feature_space"])
    data = {k: v.numpy() for k, v in tensors[DATA].items()}
    model.users_ = EntityTable(pd.Index(meta["user_ids"]), _prefixed(data, "users/"))
    model.items_ = EntityTable(pd.Index(meta["item_ids"]), _prefixed(data, "items/"))
    model.histories_ = Histories(data["histories/indptr"], data["histories/items"],
                                 data["histories/target"])
    fitted = meta["fitted"]
    model.objective_ = fitted["objective"]
    model.target_mean_, model.target_scale_ = fitted["target_mean"], fitted["target_scale"]
    span = fitted.get("target_range")  # absent from models saved before it was kept
    model.target_range_ = None if span is None else tuple(span)
    model.n_features_in_ = fitted["n_features_in"]
    if fitted["feature_names_in"] is not None:
        model.feature_names_in_ = np.asarray(fitted["feature_names_in"], dtype=object)
    model.loss_curve_ = fitted["loss_curve"]
    model.validation_loss_curve_ = fitted["validation_loss_curve"]
    model.n_epochs_, model.best_epoch_ = len(model.loss_curve_), fitted["best_epoch"]
    # written before the blend: none
    model.blend_weight_ = fitted.get("blend_weight")
    model.blend_losses_ = fitted.get("blend_losses")
    model.device_ = resolve_device(device)
    # a model saved without a blend (before 0/1 feedback had one, or with mf_blend=0)
    learner = model._build_learner(model.feature_space_, model.objective_,
                                   blend=model.blend_weight_ is not None)
    try:
        learner.load_state_dict(tensors[WEIGHTS], strict=True)
    except RuntimeError as exc:
        raise ModelFormatError(f"{path / WEIGHTS} does not fit the model its {META} "
                               f"describes ({exc}).") from None
    model.learner_ = learner.to(model.device_).eval()
    return model


def _read_meta(path: Path) -> dict:
    if not (path / META).is_file():
        raise ModelFormatError(f"{path} is not a recmeta model directory: it has no {META}. "
                               f"Pass the directory given to save().")
    try:
        meta = json.loads((path / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path / META} is not valid JSON ({exc}); the model directory "
                               f"is damaged. Save the model again.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFormatError(f"{path / META} is not a recmeta model description.")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"{path} was written in model format version {version!r}; this recmeta "
            f"({_version()}) reads version {FORMAT_VERSION}. Load it with the recmeta version "
            f"that wrote it ({meta.get('recmeta_version')}), or retrain and save it again.")
    return meta


def _read_tensors(file: Path, expected: str | None) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise ModelFormatError(f"{file} is missing; the model directory is incomplete. "
                               f"Save the model again.")
    if _sha256(file) != expected:
        raise ModelFormatError(f"{file} does not match the checksum recorded in {META}: it is "
                               f"truncated or was modified. Save the model again.")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError) as exc:  # pragma: no cover - checksum catches first
        raise ModelFormatError(f"{file} cannot be read ({exc}).") from None


def _write(writer, tensors: dict, file: Path) -> str:
    tmp = file.with_name(file.name + ".tmp")
    writer(tensors, str(tmp))
    os.replace(tmp, file)
    return _sha256(file)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prefixed(data: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}


def _ids(index: pd.Index) -> list:
    values = index.tolist()
    if not all(isinstance(v, int | str) for v in values):
        raise ModelFormatError("Only int or str user and item ids can be saved; convert the "
                               "id columns with .astype(str) or .astype(int) before fitting.")
    return values


def _names(model) -> list | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(n) for n in names]


def _jsonable_params(params: dict) -> dict:
    out = dict(params)
    out["hidden"] = list(out["hidden"])
    if not (out["random_state"] is None or isinstance(out["random_state"], int)):
        out["random_state"] = None
    for key in ("user_features", "item_features"):
        if isinstance(out[key], tuple):
            out[key] = list(out[key])
    return out


def _params_back(params: dict) -> dict:
    out = dict(params)
    out["hidden"] = tuple(out["hidden"])
    out.setdefault("mf_features", 0)  # written before the option: no item vectors
    out.setdefault("mf_blend", 0.0)  # written before the option: no blend
    return out


def _version() -> str:
    from . import __version__

    return __version__
