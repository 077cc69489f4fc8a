"""improved+re-rank: ``F - β·J``, ``F = s + w·logLR``, J the k-reciprocal Jaccard distance (λ = 0), §12.1."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..joint import normalize_rows
from ..metadata import Metadata
from .calibration import score_spread
from .config import RERANK_SOURCES, ImprovedError


def fused_score_matrix(feats: np.ndarray, meta: Metadata, model: Any, w: float, chunk_size: int = 1024) -> np.ndarray:
    """(N, N) float32 ``s + w·logLR`` over query+gallery divided by its largest magnitude (so ``2 - 2·F`` has a
    cosine distance's range); i plays "a" of ``lookup_index`` as in :func:`streid_lib.rerank.joint_score_matrix`;
    Fortran order (what re-ranking reads fastest)."""
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
    """(nq, ng) float32 Jaccard distances (λ = 0) of (N, D) ``feats`` and ``meta`` (queries first), neighbours of the
    cosine (``source="visual"``) or of ``s + w·logLR`` (``"fused"``: needs the fitted ``model`` and ``w``)."""
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
