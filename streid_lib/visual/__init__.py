"""The visual stream (the project's only torch package): models, training and feature extraction.

Its one output is a features file (:mod:`streid_lib.features`); the evaluation side never imports torch.
The configuration objects (:mod:`.config`) import no torch, so the command line can build its options from
them; every other name here is imported on first use (and with it torch).
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import MODEL_NAMES, ConfigError, ExtractConfig, TrainConfig, resolve_train_config

_LAZY = {
    "TrainError": ".train",
    "load_checkpoint": ".train",
    "train_model": ".train",
    "extract_features": ".extract",
    "features_from_arrays": ".extract",
    "load_trained_model": ".extract",
    "WeightsError": ".models",
    "WeightsUnavailableError": ".models",
    "build_model": ".models",
}

__all__ = ["MODEL_NAMES", "ConfigError", "ExtractConfig", "TrainConfig", "resolve_train_config", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
