"""Constructor parameters of the library's estimators: scikit-learn's ``BaseEstimator``, plus a JSON-able copy.

The estimators store each keyword of their keyword-only ``__init__`` unchanged under the same name, so
``sklearn.base.BaseEstimator`` gives ``get_params``/``set_params``/``repr``. :func:`json_params` is what a file
records: a value whose default is a bool, int or float is given as that type (``sigma=50`` reads back as ``50.0``)
and numpy scalars as Python numbers.
"""

from __future__ import annotations

import inspect
from typing import Any

from sklearn.base import BaseEstimator

__all__ = ["BaseEstimator", "json_params"]


def json_params(estimator: BaseEstimator) -> dict[str, Any]:
    """``estimator.get_params()`` as plain JSON values, in the constructor's order."""
    sig = inspect.signature(type(estimator).__init__)
    out = {}
    for name, p in sig.parameters.items():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        value = getattr(estimator, name)
        if isinstance(p.default, (bool, int, float)):
            value = type(p.default)(value)
        elif hasattr(value, "item"):
            value = value.item()
        out[name] = value
    return out
