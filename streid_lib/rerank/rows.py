"""Re-ranked rows: the N×N score matrices, the table rows ``VIS+re-rank`` / ``st-ReID+re-rank`` and the joint
re-ranking variants suited to the narrow range of joint scores (docs/reference.md §6, §12).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..features import FeatureSet
from ..joint import DEFAULT_METRIC, JointMetric, normalize_rows
from ..st_model import SpatialTemporalModel

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

from .algorithm import RerankError, rerank_distances

VARIANTS: tuple[str, ...] = ("faithful", "visual_then_st", "rescaled")  #: joint re-ranking variants (rerank_joint)
RERANK_ROWS: tuple[str, ...] = ("VIS+re-rank", "st-ReID+re-rank")  #: rows added by ``--rerank``


# ---------------------------------------------------------------------------------------------------------------
# score matrices over query+gallery, table rows and variants
# ---------------------------------------------------------------------------------------------------------------


def cosine_score_matrix(fs: FeatureSet, chunk_size: int = 2048) -> np.ndarray:
    """(N, N) float32 cosine similarities over query+gallery (query first), Fortran order (fast column reads)."""
    return cosine_matrix(np.concatenate([fs.query_f, fs.gallery_f], axis=0), chunk_size)


def cosine_matrix(feats: np.ndarray, chunk_size: int = 2048) -> np.ndarray:
    """(N, N) float32 cosine similarities of (N, D) features, Fortran order (fast column reads for re-ranking)."""
    f = normalize_rows(feats)
    n = len(f)
    out = np.empty((n, n), dtype=np.float32)  # holds the transpose, C order; returned as a Fortran view
    for a in range(0, n, chunk_size):
        out[a : a + chunk_size] = f[a : a + chunk_size] @ f.T
    return out.T


def joint_score_matrix(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric = DEFAULT_METRIC, chunk_size: int = 1024
) -> np.ndarray:
    """(N, N) float32 joint st-ReID scores over query+gallery (query first), as the reference builds them (§6).

    ``J[i, j] = f(s_ij; λ0, γ0) · f(p̂(i, j); λ1, γ1)`` with image i in the query role ("a") and j in the gallery
    role ("b") of :meth:`SpatialTemporalModel.lookup_index` (which matters only at exact frame ties). The
    diagonal is the self pair: s = 1, p = 0 (same camera), J = σ(5)/3 ≈ 0.331102 with the default metric.

    Built a chunk of columns at a time (one GEMM for s, one table lookup for p); the result is a Fortran-ordered
    array (its columns are contiguous), which is the layout re-ranking reads fastest. Peak memory: the output
    plus O(chunk_size × N) temporaries.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise RerankError(f"chunk_size: expected an integer >= 1, got {chunk_size!r}")
    f = normalize_rows(np.concatenate([fs.query_f, fs.gallery_f], axis=0))
    cams = np.concatenate([fs.query.cams, fs.gallery.cams])
    frames = np.concatenate([fs.query.frames, fs.gallery.frames])
    n = len(f)
    f_table = metric.st_factor(model.lookup_table())
    out = np.empty((n, n), dtype=np.float32)  # out[j, i] = J[i, j]
    for a in range(0, n, chunk_size):
        b = min(a + chunk_size, n)
        s = f[a:b] @ f.T  # (c, N): s[j - a, i] = s_ji (= s_ij)
        idx = model.lookup_index(cams[None, :], frames[None, :], cams[a:b, None], frames[a:b, None])
        out[a:b] = metric.visual_factor(s) * f_table.take(idx)
    return out.T


def _query_gallery_st_factor(fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric) -> np.ndarray:
    """(nq, ng) float64 ``f(p̂; λ1, γ1)`` with the query as image a."""
    f_table = metric.st_factor(model.lookup_table())
    q, g = fs.query, fs.gallery
    return f_table.take(model.lookup_index(q.cams[:, None], q.frames[:, None], g.cams[None, :], g.frames[None, :]))


def rerank_joint(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    variant: str = "faithful",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    backend: str = "numpy",
    progress: bool = True,
) -> np.ndarray:
    """Re-ranked (nq, ng) **scores** (higher = better) of the joint metric, by variant.

    * ``"faithful"`` (docs/reference.md §6): re-rank ``d = 2 − 2·J`` over query+gallery; score = −final distance.
    * ``"visual_then_st"``: re-rank the visual distance ``2 − 2·s`` alone, then apply the joint metric with the
      re-ranked similarity ``s' = 1 − final`` in place of the cosine: score = ``f(s'; λ0, γ0) · f(p̂; λ1, γ1)``.
    * ``"rescaled"``: min–max rescale J over the whole N×N matrix to [0, 1] (one affine map) before ``d = 2 − 2·J'``,
      widening the narrow range d ∈ (1.30, 2.0) of §6.
    """
    if variant not in VARIANTS:
        raise RerankError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    kw = dict(k1=k1, k2=k2, lambda_value=lambda_value, backend=backend, progress=progress)
    return dict(_variant_scores(fs, model, metric, (variant,), False, kw))[variant]


def _variant_scores(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric, variants: Sequence[str], visual: bool, kw: dict
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, (nq, ng) scores) of VIS+re-rank (with ``visual``) and of the variants, each N×N matrix built once: the
    cosine matrix serves VIS+re-rank and ``"visual_then_st"``, the joint matrix ``"faithful"`` and then, rescaled in
    place, ``"rescaled"``."""
    nq = len(fs.query)
    if visual or "visual_then_st" in variants:
        d_vis = rerank_distances(cosine_score_matrix(fs), nq, **kw)
        if visual:
            yield "VIS+re-rank", -d_vis
        if "visual_then_st" in variants:
            st_factor = _query_gallery_st_factor(fs, model, metric)
            yield "visual_then_st", metric.visual_factor(1.0 - d_vis.astype(np.float64)) * st_factor
    if "faithful" in variants or "rescaled" in variants:
        J = joint_score_matrix(fs, model, metric)
        if "faithful" in variants:
            yield "faithful", -rerank_distances(J, nq, **kw)
        if "rescaled" in variants:
            _rescale_in_place(J)  # in place on the matrix we own: J' = (J − lo) / (hi − lo)
            yield "rescaled", -rerank_distances(J, nq, **kw)


def rerank_results(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    variants: Sequence[str] = ("faithful",),
    visual: bool = True,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    backend: str = "numpy",
    progress: bool = True,
) -> dict[str, Any]:
    """RankingResults of ``VIS+re-rank`` (with ``visual``) and of the joint re-ranking ``variants``
    (:func:`rerank_joint`), each N×N matrix built once (the same scores as :func:`rerank_joint`'s).

    Returns:
        ``{"VIS+re-rank" | variant: RankingResult}``, in :data:`VARIANTS` order.
    """
    from ..metrics import evaluate_scores

    if any(v not in VARIANTS for v in variants):
        raise RerankError(f"variants: expected a selection from {VARIANTS}, got {tuple(variants)}")
    kw = dict(k1=k1, k2=k2, lambda_value=lambda_value, backend=backend, progress=progress)
    out = {
        k: evaluate_scores(v, fs.query, fs.gallery) for k, v in _variant_scores(fs, model, metric, variants, visual, kw)
    }
    return {k: out[k] for k in (["VIS+re-rank"] if visual else []) + [v for v in VARIANTS if v in variants]}


def _rescale_in_place(J: np.ndarray) -> None:
    """``J ← (J − min) / (max − min)`` over the whole matrix (one affine map: every column keeps its order)."""
    lo, hi = float(J.min()), float(J.max())
    if not hi > lo:
        raise RerankError(f"joint scores are constant ({lo}); cannot rescale them to [0, 1]")
    J -= np.float32(lo)
    J *= np.float32(1.0 / (hi - lo))


def rerank_rows(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    backend: str = "numpy",
    progress: bool = True,
) -> dict[str, Any]:
    """``{row: RankingResult}`` of the table rows ``VIS+re-rank`` (cosine, d = 2 − 2·s) and ``st-ReID+re-rank``
    (faithful joint scores), each evaluated on −final distance (:func:`rerank_results`)."""
    kw = dict(k1=k1, k2=k2, lambda_value=lambda_value, backend=backend, progress=progress)
    res = rerank_results(fs, model, metric, ("faithful",), visual=True, **kw)
    return {"VIS+re-rank": res["VIS+re-rank"], "st-ReID+re-rank": res["faithful"]}


def compare_rerank_variants(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    variants: Sequence[str] = VARIANTS,
    include_baselines: bool = True,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    backend: str = "numpy",
    progress: bool = False,
) -> pd.DataFrame:
    """Metrics of each re-ranking variant (rows) in percent: columns R1 R5 R10 mAP mAP_open_reid mINP.

    With ``include_baselines``, also the rows ``st-ReID`` (joint scores, no re-ranking) and ``VIS+re-rank``.
    """
    import pandas as pd

    from ..metrics import evaluate_scores

    if not variants or any(v not in VARIANTS for v in variants):
        raise RerankError(f"variants: expected a non-empty selection from {VARIANTS}, got {tuple(variants)}")
    kw = dict(k1=k1, k2=k2, lambda_value=lambda_value, backend=backend, progress=progress)
    rows: dict[str, dict[str, float]] = {}
    if include_baselines:
        nq = len(fs.query)
        J = joint_score_matrix(fs, model, metric)
        rows["st-ReID"] = evaluate_scores(np.ascontiguousarray(J[:nq, nq:]), fs.query, fs.gallery).summary()
        del J
    res = rerank_results(fs, model, metric, variants, visual=include_baselines, **kw)
    rows.update({k: v.summary() for k, v in res.items()})
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "variant"
    return df[["R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"]]
