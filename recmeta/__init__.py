"""recmeta: per-user personalisation by meta-learning.

An embedding-plus-MLP scorer is meta-trained across users (MAML, first-order MAML, Meta-SGD)
so that a few gradient steps on one user's history adapt it to that user. The public face is
a scikit-learn estimator:

>>> from recmeta import MetaRecommender, make_synthetic
>>> data = make_synthetic(n_users=40, n_items=30, random_state=0)
>>> MetaRecommender(max_epochs=1, random_state=0, verbose=0).fit(data.X, data.y).n_epochs_
1
"""

from .adapted import AdaptedUsers
from .estimator import MetaRecommender
from .exceptions import DataError, InvalidParameterError, ModelFormatError, NotFittedError
from .synthetic import SyntheticData, make_synthetic

__version__ = "0.1.0"

__all__ = [
    "AdaptedUsers",
    "DataError",
    "InvalidParameterError",
    "MetaRecommender",
    "ModelFormatError",
    "NotFittedError",
    "SyntheticData",
    "__version__",
    "make_synthetic",
]
