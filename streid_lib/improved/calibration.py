"""The weights of the improved score ``F = s + w·logLR`` and of improved+re-rank ``F - β·J`` (§12.1): ``w`` by logistic
slopes with training features, else the spread rule; ``β = b·σ_F``; J the k-reciprocal Jaccard distance (λ = 0)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..joint import normalize_rows
from ..metadata import Metadata
from .config import RERANK_SOURCES, ImprovedError


def calibrate_weight(
    s: np.ndarray,
    log_lr: np.ndarray,
    same: np.ndarray,
    *,
    max_positives: int = 200_000,
    max_negatives: int = 200_000,
) -> tuple[float, dict[str, float]]:
    """(w = coef_logLR / coef_s, {"coef_s", "coef_log_lr", "intercept", "n_pos", "n_neg"}) of a
    ``LogisticRegression(C=1)`` of ``same`` (n,) bool on standardised ``[s, log_lr]`` (n,) (slopes in the original
    units), on at most ``max_positives``/``max_negatives`` seeded positive/negative pairs. Raises ImprovedError for
    unequal lengths, a missing class, or a visual slope <= 0."""
    from sklearn.linear_model import LogisticRegression

    s = np.asarray(s, dtype=np.float64).reshape(-1)
    log_lr = np.asarray(log_lr, dtype=np.float64).reshape(-1)
    same = np.asarray(same, dtype=bool).reshape(-1)
    if not (s.shape == log_lr.shape == same.shape):
        raise ImprovedError(
            f"calibrate_weight: s, log_lr, same must have one length, got {s.shape}, {log_lr.shape}, {same.shape}"
        )
    pos, neg = np.flatnonzero(same), np.flatnonzero(~same)
    if pos.size == 0 or neg.size == 0:
        raise ImprovedError(f"calibrate_weight: need both same and different pairs, got {pos.size} and {neg.size}")
    pos, neg = _draw(pos, neg, max_positives, max_negatives, seed=0)
    idx = np.concatenate([pos, neg])
    X = np.stack([s[idx], log_lr[idx]], axis=1)
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    fit = LogisticRegression(C=1.0, solver="newton-cholesky", max_iter=100).fit((X - mu) / sd, same[idx])
    coef = fit.coef_[0]
    a, c = (float(v) for v in coef / sd)
    intercept = float(fit.intercept_[0] - np.sum(coef * mu / sd))
    if not a > 0:
        raise ImprovedError(
            f"calibrate_weight: the visual score has a non-positive logistic slope ({a:.4g}) on training pairs; "
            "the features do not separate same from different identities, so no fusion weight can be calibrated"
        )
    info = {"coef_s": a, "coef_log_lr": c, "intercept": intercept, "n_pos": int(pos.size), "n_neg": int(neg.size)}
    return c / a, info


def _draw(pos: np.ndarray, neg: np.ndarray, max_pos: int, max_neg: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_pos`` of ``pos`` and ``max_neg`` of ``neg``, drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    pos = rng.choice(pos, size=int(max_pos), replace=False) if pos.size > max_pos else pos
    return pos, rng.choice(neg, size=int(max_neg), replace=False) if neg.size > max_neg else neg


def sample_pairs(
    query: Metadata, gallery: Metadata, *, max_positives: int, max_negatives: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat (query × gallery) indices of at most ``max_positives``/``max_negatives`` seeded same/different-identity
    cross-camera pairs, and their same-identity labels."""
    cross = query.cams[:, None] != gallery.cams[None, :]
    same = (query.pids[:, None] == gallery.pids[None, :]) & cross
    pos, neg = _draw(np.flatnonzero(same), np.flatnonzero(cross & ~same), max_positives, max_negatives, seed)
    return np.concatenate([pos, neg]), np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]


def score_spread(
    rows: np.ndarray | None = None, *, qn: np.ndarray | None = None, gnT: np.ndarray | None = None
) -> float:
    """σ: median over up to 256 evenly spaced queries of the std of a row of the (nq, ng) scores ``rows``,
    or of the cosine ``qn @ gnT`` (L2-normalised (nq, D) and (D, ng) features; only sampled rows are computed)."""
    n = len(rows) if rows is not None else len(qn)
    idx = np.unique(np.linspace(0, n - 1, min(n, 256)).astype(np.int64))
    block = rows[idx] if rows is not None else qn[idx] @ gnT
    return float(np.median(np.asarray(block, np.float64).std(axis=1)))


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
