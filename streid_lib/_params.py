"""The estimators' parameters: scikit-learn's ``BaseEstimator`` (``get_params``, ``set_params``, ``repr``) and
:func:`json_params`, what a file records (each value as its default's type, numpy scalars as Python numbers).
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
