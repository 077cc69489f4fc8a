"""Constructor parameters of the library's estimators, read one way (scikit-learn's convention).

An estimator stores each keyword of its ``__init__`` unchanged under the same name; :class:`ParamsMixin` then gives
``get_params()`` (a JSON-able dict in the constructor's order; a value whose default is a bool, int or float is
given as that type, so ``sigma=50`` reads back as ``50.0``) and a ``repr`` that shows them, so that no estimator
repeats its parameter list a second time.
"""

from __future__ import annotations

import inspect
from typing import Any


class ParamsMixin:
    """``get_params()`` and ``__repr__`` from the keyword parameters of ``__init__``."""

    @classmethod
    def _param_defaults(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {p.name: p.default for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as a JSON-able dict."""
        out = {}
        for name, default in self._param_defaults().items():
            value = getattr(self, name)
            if isinstance(default, (bool, int, float)):
                value = type(default)(value)
            elif hasattr(value, "item"):
                value = value.item()
            out[name] = value
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
