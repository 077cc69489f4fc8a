"""Shared test fixtures: the real dataset name lists (when present) and small random feature sets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import random_feature_set

from streid_lib.features import FeatureSet

#: The real Market-1501 / DukeMTMC-reID name lists live beside the repository (repo/../shared), never inside it.
#: ``STREID_NAMES_DIR`` overrides the location.
NAMES_DIR = Path(os.environ.get("STREID_NAMES_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "names"))
NAMES_SUBDIRS = {"market": "market1501", "duke": "dukemtmc-reid"}


@pytest.fixture(scope="session")
def names_dir() -> Path:
    """``../shared/data/names`` (with ``market1501/`` and ``dukemtmc-reid/``), or skip when it is absent."""
    if not all((NAMES_DIR / sub / "train.txt").is_file() for sub in NAMES_SUBDIRS.values()):
        pytest.skip(f"real dataset name lists not found in {NAMES_DIR} (repo/../shared/data/names is absent)")
    return NAMES_DIR


@pytest.fixture
def make_feature_set() -> Callable[..., FeatureSet]:
    """Factory fixture: ``make_feature_set(nq=.., ng=.., dim=.., n_ids=.., n_cams=.., max_frame=.., seed=..)``."""
    return random_feature_set
