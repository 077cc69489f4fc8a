"""Re-ranked rows over query+gallery: ``VIS+re-rank``, ``st-ReID+re-rank`` and the joint re-ranking variants suited
to the narrow range of joint scores (docs/reference.md §6, §12). ``**kw`` everywhere: :func:`rerank_distances`'
``k1, k2, lambda_value, progress``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..features import FeatureSet
from ..joint import DEFAULT_METRIC, JointMetric, normalize_rows
from ..metrics import evaluate_scores
from ..st_model import SpatialTemporalModel
from .algorithm import RerankError, rerank_distances

VARIANTS: tuple[str, ...] = ("faithful", "visual_then_st", "rescaled")  #: joint re-ranking variants (rerank_joint)


def cosine_matrix(feats: np.ndarray, chunk_size: int = 2048) -> np.ndarray:
    """(N, N) float32 cosine similarities of (N, D) features, Fortran order (fast column reads for re-ranking)."""
    f = normalize_rows(feats)
    out = np.empty((len(f), len(f)), dtype=np.float32)  # holds the transpose, C order; returned as a Fortran view
    for a in range(0, len(f), chunk_size):
        out[a : a + chunk_size] = f[a : a + chunk_size] @ f.T
    return out.T


def joint_score_matrix(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric = DEFAULT_METRIC, chunk_size: int = 1024
) -> np.ndarray:
    """(N, N) float32 joint scores ``J[i, j] = f(s_ij) · f(p̂(i, j))`` over query+gallery (query first), image i as
    "a" (§6); Fortran order, built a chunk of columns at a time. The diagonal is s = 1, p = 0: σ(5)/3 ≈ 0.331102."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise RerankError(f"chunk_size: expected an integer >= 1, got {chunk_size!r}")
    f = normalize_rows(np.concatenate([fs.query_f, fs.gallery_f], axis=0))
    cams = np.concatenate([fs.query.cams, fs.gallery.cams])
    frames = np.concatenate([fs.query.frames, fs.gallery.frames])
    f_table = metric.st_factor(model.lookup_table())
    out = np.empty((len(f), len(f)), dtype=np.float32)  # out[j, i] = J[i, j]
    for a in range(0, len(f), chunk_size):
        b = min(a + chunk_size, len(f))
        idx = model.lookup_index(cams[None, :], frames[None, :], cams[a:b, None], frames[a:b, None])
        out[a:b] = metric.visual_factor(f[a:b] @ f.T) * f_table.take(idx)
    return out.T


def rerank_joint(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric = DEFAULT_METRIC, variant: str = "faithful", **kw
) -> np.ndarray:
    """Re-ranked (nq, ng) **scores** (higher = better) of the joint metric, by variant (§12).

    ``"faithful"`` (§6): −final distance of ``d = 2 − 2·J``; ``"visual_then_st"``: ``f(s') · f(p̂)`` with the
    re-ranked visual similarity ``s' = 1 − final``; ``"rescaled"``: J min–max rescaled to [0, 1] before re-ranking.
    """
    if variant not in VARIANTS:
        raise RerankError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return dict(_variant_scores(fs, model, metric, (variant,), False, kw))[variant]


def _variant_scores(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric, variants: Sequence[str], visual: bool, kw: dict
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, (nq, ng) scores) of VIS+re-rank (with ``visual``) and of the variants, each N×N matrix built once."""
    nq = len(fs.query)
    if visual or "visual_then_st" in variants:
        d_vis = rerank_distances(cosine_matrix(np.concatenate([fs.query_f, fs.gallery_f])), nq, **kw)
        if visual:
            yield "VIS+re-rank", -d_vis
        if "visual_then_st" in variants:
            q, g = fs.query, fs.gallery
            idx = model.lookup_index(q.cams[:, None], q.frames[:, None], g.cams[None, :], g.frames[None, :])
            st_factor = metric.st_factor(model.lookup_table()).take(idx)
            yield "visual_then_st", metric.visual_factor(1.0 - d_vis.astype(np.float64)) * st_factor
    if "faithful" in variants or "rescaled" in variants:
        J = joint_score_matrix(fs, model, metric)
        if "faithful" in variants:
            yield "faithful", -rerank_distances(J, nq, **kw)
        if "rescaled" in variants:  # in place on the matrix we own: J' = (J − lo) / (hi − lo), one affine map
            lo, hi = float(J.min()), float(J.max())
            if not hi > lo:
                raise RerankError(f"joint scores are constant ({lo}); cannot rescale them to [0, 1]")
            J -= np.float32(lo)
            J *= np.float32(1.0 / (hi - lo))
            yield "rescaled", -rerank_distances(J, nq, **kw)


def rerank_results(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    variants: Sequence[str] = ("faithful",),
    visual: bool = True,
    **kw: Any,
) -> dict[str, Any]:
    """``{"VIS+re-rank" (with visual) | variant: RankingResult}`` in :data:`VARIANTS` order, of the scores of
    :func:`rerank_joint`, each N×N matrix built once."""
    if any(v not in VARIANTS for v in variants):
        raise RerankError(f"variants: expected a selection from {VARIANTS}, got {tuple(variants)}")
    out = {
        k: evaluate_scores(v, fs.query, fs.gallery) for k, v in _variant_scores(fs, model, metric, variants, visual, kw)
    }
    return {k: out[k] for k in (["VIS+re-rank"] if visual else []) + [v for v in VARIANTS if v in variants]}


def rerank_rows(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric = DEFAULT_METRIC, **kw: Any
) -> dict[str, Any]:
    """``{row: RankingResult}`` of the table rows ``VIS+re-rank`` and ``st-ReID+re-rank`` (faithful variant)."""
    res = rerank_results(fs, model, metric, ("faithful",), visual=True, **kw)
    return {"VIS+re-rank": res["VIS+re-rank"], "st-ReID+re-rank": res["faithful"]}
