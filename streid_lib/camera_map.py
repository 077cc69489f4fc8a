"""A map of the camera network from any HP model or the campus truth: edges carrying at least ``min_share`` of the
votes, their shares and modal transit times (docs/reference.md §14.4), and :func:`compare_maps` of two maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import StreidError

#: Columns of an edge table.
EDGE_COLUMNS = ("cam_a", "cam_b", "share", "identities", "transit_s", "later")


class CameraMapError(StreidError):
    """A model or truth that cannot be drawn as a camera map."""


def edges_from_arrays(
    votes: np.ndarray, density: np.ndarray, bin_width: float, fps: float, min_share: float = 0.02
) -> Any:
    """DataFrame of :data:`EDGE_COLUMNS`, one row per camera pair a < b with at least ``min_share`` of the (C, C)
    votes (first index = later camera, §3.3): ``identities`` of both directions, ``transit_s`` the modal bin centre of
    the (C, C, H) density in the direction with more votes, ``later`` that direction's later camera."""
    votes = np.asarray(votes, dtype=np.float64)
    density = np.asarray(density, dtype=np.float64)
    if votes.ndim != 2 or density.shape[:2] != votes.shape or fps <= 0 or bin_width <= 0:
        raise CameraMapError(
            f"expected (C, C) votes and (C, C, H) densities, fps > 0; got {votes.shape}, {density.shape}"
        )
    total = votes.sum()
    a, b = np.triu_indices(len(votes), k=1)
    both = votes[a, b] + votes[b, a]
    share = both / total if total > 0 else np.zeros_like(both)
    a_later = votes[a, b] >= votes[b, a]
    first, second = np.where(a_later, a, b), np.where(a_later, b, a)
    mode = density[first, second].argmax(axis=1)
    transit = (mode + 0.5) * float(bin_width) / float(fps)
    values = (a + 1, b + 1, share, both.astype(np.int64), transit, first + 1)
    return pd.DataFrame({c: v[share >= min_share] for c, v in zip(EDGE_COLUMNS, values, strict=True)})


def model_edges(model: Any, fps: float, min_share: float = 0.02) -> Any:
    """Edge table of a fitted :class:`~streid_lib.st_model.SpatialTemporalModel` (counts_ and smoothed_)."""
    if getattr(model, "counts_", None) is None:
        raise CameraMapError("the ST model has no counts_: fit it (a model loaded from a .mat holds only P)")
    return edges_from_arrays(model.counts_.sum(axis=2), model.smoothed_, model.bin_width, fps, min_share)


def truth_edges(truth: Any, bin_width: int = 100, min_share: float = 0.02) -> Any:
    """Edge table of the campus truth (:class:`~streid_lib.campus.TransitTruth`), same rule as the models."""
    return edges_from_arrays(truth.pair_n, truth.density(bin_width), bin_width, truth.fps, min_share)


def compare_maps(estimated: Any, true: Any) -> dict[str, Any]:
    """``precision``, ``recall``, ``n_estimated``, ``n_true``, ``mean_abs_transit_error_s`` (shared edges; NaN
    without one) of ``estimated`` against ``true``, and ``table``: their outer join, ``in_estimated``/``in_true``."""
    key = ["cam_a", "cam_b"]
    table = estimated.merge(true, on=key, how="outer", suffixes=("_est", "_true"), indicator=True)
    table["in_estimated"] = table["_merge"] != "right_only"
    table["in_true"] = table["_merge"] != "left_only"
    table = table.drop(columns="_merge").sort_values(key).reset_index(drop=True)
    shared = table["in_estimated"] & table["in_true"]
    n_est, n_true, n_both = len(estimated), len(true), int(shared.sum())
    err = (table.loc[shared, "transit_s_est"] - table.loc[shared, "transit_s_true"]).abs()
    return {
        "precision": n_both / n_est if n_est else float("nan"),
        "recall": n_both / n_true if n_true else float("nan"),
        "n_estimated": n_est,
        "n_true": n_true,
        "mean_abs_transit_error_s": float(err.mean()) if n_both else float("nan"),
        "table": table,
    }
