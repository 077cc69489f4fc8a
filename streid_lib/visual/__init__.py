"""The visual stream (the project's only torch package): models, training and feature extraction.

Its one output is a features file (:mod:`streid_lib.features`); the evaluation side never imports torch.
"""

from .extract import extract_features, features_from_arrays, load_trained_model
from .models import MODEL_NAMES, WeightsError, WeightsUnavailableError, build_model
from .train import TrainError, load_checkpoint, train_model

__all__ = [
    "MODEL_NAMES",
    "TrainError",
    "WeightsError",
    "WeightsUnavailableError",
    "build_model",
    "extract_features",
    "features_from_arrays",
    "load_checkpoint",
    "load_trained_model",
    "train_model",
]
