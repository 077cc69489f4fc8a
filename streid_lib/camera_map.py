"""A map of the camera network from any HP model (labelled or not): edges, shares and modal transit times.

An edge joins two cameras whose pair carries at least ``min_share`` of all identity votes of the model; its
width is that share and its label the modal transit time in seconds (docs/reference.md §14.4). The same rule
applied to the campus truth gives the true network, and :func:`compare_maps` scores one map against the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import StreidError

#: Columns of an edge table.
EDGE_COLUMNS = ("cam_a", "cam_b", "share", "identities", "transit_s", "later")


class CameraMapError(StreidError):
    """A model or truth that cannot be drawn as a camera map."""


def edges_from_arrays(
    votes: np.ndarray, density: np.ndarray, bin_width: float, fps: float, min_share: float = 0.02
) -> Any:
    """Edge table from (C, C) votes per ordered pair and (C, C, H) densities (first index = later camera, §3.3).

    Returns:
        DataFrame with :data:`EDGE_COLUMNS`, one row per unordered pair {a < b} with share ≥ ``min_share``:
        ``share`` of all votes, ``identities`` (votes of both directions), ``transit_s`` the modal gap of the
        direction with more votes (bin centre, seconds), ``later`` the camera that sees the person later.
    """
    import pandas as pd

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
    keep = share >= min_share
    return pd.DataFrame(
        {
            "cam_a": a[keep] + 1,
            "cam_b": b[keep] + 1,
            "share": share[keep],
            "identities": both[keep].astype(np.int64),
            "transit_s": (mode[keep] + 0.5) * float(bin_width) / float(fps),
            "later": first[keep] + 1,
        }
    )


def model_edges(model: Any, fps: float, min_share: float = 0.02) -> Any:
    """Edge table of a fitted :class:`~streid_lib.st_model.SpatialTemporalModel` (counts_ and smoothed_)."""
    if getattr(model, "counts_", None) is None:
        raise CameraMapError("the ST model has no counts_: fit it (a model loaded from a .mat holds only P)")
    return edges_from_arrays(model.counts_.sum(axis=2), model.smoothed_, model.bin_width, fps, min_share)


def truth_edges(truth: Any, bin_width: int = 100, min_share: float = 0.02) -> Any:
    """Edge table of the campus truth (:class:`~streid_lib.campus.TransitTruth`), same rule as the models."""
    return edges_from_arrays(truth.pair_n, truth.density(bin_width), bin_width, truth.fps, min_share)


def compare_maps(estimated: Any, true: Any) -> dict[str, Any]:
    """Edge precision and recall of ``estimated`` against ``true``, and the transit-time error on shared edges.

    Returns:
        ``precision``, ``recall``, ``n_estimated``, ``n_true``, ``mean_abs_transit_error_s`` (NaN without a
        shared edge) and ``table``: the outer join of both edge tables with ``in_estimated``/``in_true``.
    """
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


__all__ = ["EDGE_COLUMNS", "CameraMapError", "compare_maps", "edges_from_arrays", "model_edges", "truth_edges"]
