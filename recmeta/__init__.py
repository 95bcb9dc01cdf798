"""recmeta: per-user personalisation by meta-learning.

An embedding-plus-MLP scorer is meta-trained across users (MAML, first-order MAML, Meta-SGD)
so that a few gradient steps on one user's history adapt it to that user. The public face is
a scikit-learn estimator:

>>> from recmeta import MetaRecommender, make_synthetic
>>> data = make_synthetic(n_users=40, n_items=30, random_state=0)
>>> MetaRecommender(max_epochs=1, random_state=0, verbose=0).fit(data.X, data.y).n_epochs_
1

Names are imported on first use, so ``import recmeta`` (and the command line's database
commands) do not pay for importing torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "AdaptedUsers": ".adapted",
    "MetaRecommender": ".estimator",
    "DataError": ".exceptions",
    "InvalidParameterError": ".exceptions",
    "ModelFormatError": ".exceptions",
    "NotFittedError": ".exceptions",
    "SyntheticData": ".synthetic",
    "make_synthetic": ".synthetic",
}

# the public submodules, imported on first use too: ``import recmeta`` then
# ``help(recmeta.evaluate)`` works as ``import recmeta.evaluate`` does
_SUBMODULES = ("datasets", "evaluate", "fastpath", "metrics", "synthetic")

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'recmeta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])
