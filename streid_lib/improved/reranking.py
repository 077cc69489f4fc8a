"""improved+re-rank: ``F - β·J`` with ``F = s + w·logLR`` and J the k-reciprocal Jaccard distance (λ = 0).

Sources of neighbours and ``β = b·σ_F``: docs/reference.md §12.1. With ``source="fused"`` F is divided by its largest
magnitude so that ``d = 2 - 2·F'`` has a cosine distance's range. Without training features:
:data:`~.config.DEFAULT_RERANK_SOURCE` and ``β = DEFAULT_RERANK_B · σ_F`` on the test set's own F.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metadata import Metadata
from .calibration import score_spread
from .config import RERANK_SOURCES, ImprovedError


def fused_score_matrix(feats: np.ndarray, meta: Metadata, model: Any, w: float, chunk_size: int = 1024) -> np.ndarray:
    """(N, N) float32 improved scores ``s + w·logLR`` over query+gallery, divided by their largest magnitude.

    Image i plays "a" and j "b" of :meth:`LikelihoodRatioModel.lookup_index` (which matters only at exact frame
    ties), as :func:`streid_lib.rerank.joint_score_matrix` builds the joint scores; Fortran order (columns
    contiguous), the layout re-ranking reads fastest. Memory: the output plus O(chunk_size × N).
    """
    from ..joint import normalize_rows

    f = normalize_rows(feats)
    n = len(f)
    table = (float(w) * model.lookup_table()).astype(np.float32)
    out = np.empty((n, n), dtype=np.float32)  # out[j, i] = F[i, j]
    for a in range(0, n, chunk_size):
        b = min(a + chunk_size, n)
        idx = model.lookup_index(meta.cams[None, :], meta.frames[None, :], meta.cams[a:b, None], meta.frames[a:b, None])
        np.matmul(f[a:b], f.T, out=out[a:b])
        out[a:b] += table.take(idx)
    top = max(float(out.max()), -float(out.min()))
    if top > 0:
        out *= np.float32(1.0 / top)
    return out.T


def jaccard_distance(
    feats: np.ndarray, meta: Metadata, n_query: int, *, source: str, model: Any = None, w: float = 0.0
) -> np.ndarray:
    """(nq, ng) float32 k-reciprocal Jaccard distances (λ = 0) over query+gallery (query rows first).

    Args:
        feats: (N, D) features of the queries then the gallery; meta: their metadata (concatenated alike).
        source: ``"visual"`` (neighbours of the cosine) or ``"fused"`` (neighbours of ``s + w·logLR``, which
            needs the fitted likelihood-ratio ``model`` and the weight ``w``).
    """
    from ..rerank import cosine_matrix, rerank_distances

    if source not in RERANK_SOURCES:
        raise ImprovedError(f"source: expected one of {RERANK_SOURCES}, got {source!r}")
    if source == "visual":
        score = cosine_matrix(feats)
    else:
        if model is None:
            raise ImprovedError("source='fused' needs the fitted likelihood-ratio model and its weight w")
        score = fused_score_matrix(feats, meta, model, w)
    return np.asarray(rerank_distances(score, int(n_query), lambda_value=0.0, progress=False))


def jaccard_weight(fused: np.ndarray, b: float) -> float:
    """β = b · σ_F: b times the median per-query spread of the improved score F (its query-gallery block)."""
    return float(b) * score_spread(fused)
