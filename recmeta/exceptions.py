"""Exceptions raised by recmeta.

Each one subclasses the built-in exception a caller would already catch (``ValueError``,
``RuntimeError``), so ``except ValueError`` keeps working.
"""



def __getattr__(name: str):
    # NotFittedError is raised when a model is used before ``fit``: scikit-learn's own
    # class, so its tools agree; imported on first use, as scikit-learn takes a while.
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError

        return NotFittedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ModelFormatError(ValueError):
    """A saved model directory is missing, from another format version, truncated or tampered."""


class DataError(ValueError):
    """Input data is malformed: a missing column, a bad value, an empty frame."""


class InvalidParameterError(ValueError, TypeError):
    """An estimator parameter has a value outside what it allows (as scikit-learn's own)."""
