"""The fusion weight ``w`` of ``s + w·logLR``: logistic slopes with training features, else the spread rule (§12.1)."""

from __future__ import annotations

import numpy as np

from ..metadata import Metadata
from .config import ImprovedError


def calibrate_weight(
    s: np.ndarray,
    log_lr: np.ndarray,
    same: np.ndarray,
    *,
    max_positives: int = 200_000,
    max_negatives: int = 200_000,
    seed: int = 0,
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
    pos, neg = _draw(pos, neg, max_positives, max_negatives, seed)
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
