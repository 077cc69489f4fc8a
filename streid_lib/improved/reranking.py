"""improved+re-rank: the improved score plus a k-reciprocal Jaccard term, ``F - β·J`` with ``F = s + w·logLR``.

k-reciprocal re-ranking (Zhong et al. 2017, docs/reference.md §6) ends with ``(1 - λ)·J + λ·d``: a Jaccard
distance J between k-reciprocal neighbourhoods, mixed with the original distance d. Here the original term is
the improved score F itself and the mix is chosen, so re-ranking can only reorder what F leaves close:

* ``J`` is the Jaccard distance (:func:`streid_lib.rerank.rerank_distances` with λ = 0) of neighbourhoods found
  either on the visual cosine (``source="visual"``: re-rank the visual distance, then add the ST evidence) or on
  the improved score (``source="fused"``: neighbours that the ST evidence already made likely; F is divided by
  its largest magnitude first so that ``d = 2 - 2·F'`` has the range of a cosine distance);
* ``β = b · σ_F``, with σ_F the median per-query spread of F's query-gallery block (:func:`score_spread`, no
  labels): J is a unitless distance in [0, 1], so b says how many spreads of F a full Jaccard distance is worth.

With training features the source and b are chosen on validation folds of training identities
(:mod:`.selection`), and β is carried over as a number (F has the same units on validation and test: same
features, same w; J's own spread is not used because it shrinks as the gallery grows). Without them the fallback
is :data:`~.config.DEFAULT_RERANK_SOURCE` and ``β = DEFAULT_RERANK_B · σ_F`` on the test set's own F.
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
