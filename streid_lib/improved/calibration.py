"""Calibration of the fusion weight ``w`` of ``s + w·logLR`` (docs/reference.md §12.1).

With training features: ``w = coef_logLR / coef_s`` of a logistic regression of same/different on ``[s, logLR]``
(case-control sampling changes only the intercept). Without: the spread rule ``w = DEFAULT_W · σ_s``, σ_s the
median over queries of the standard deviation of a query's cosine row (unlabelled scores only).
"""

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
    """Fusion weight ``w = coef_logLR / coef_s`` from a logistic regression of same/different on ``[s, logLR]``.

    ``LogisticRegression(C=1)`` (Newton-Cholesky, imported lazily) on standardised columns, so the L2 penalty treats
    both alike and keeps separable pairs finite; slopes mapped back to the original units. At most ``max_positives``
    positive and ``max_negatives`` negative pairs (seeded sample).

    Args:
        s: (n,) visual scores (any scale; higher = more similar); log_lr: (n,) ST evidence (nats); same: (n,) bool.

    Returns:
        (w, {"coef_s", "coef_log_lr", "intercept", "n_pos", "n_neg"}).

    Raises:
        ImprovedError: lengths differ, no positives or negatives, or a visual slope <= 0 (w would be meaningless).
    """
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
    rng = np.random.default_rng(seed)
    if pos.size > max_positives:
        pos = rng.choice(pos, size=int(max_positives), replace=False)
    if neg.size > max_negatives:
        neg = rng.choice(neg, size=int(max_negatives), replace=False)
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


def sample_pairs(
    query: Metadata, gallery: Metadata, *, max_positives: int, max_negatives: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat (query × gallery) indices of cross-camera pairs for calibration, and their same-identity labels.

    At most ``max_positives`` same-identity and ``max_negatives`` different-identity pairs (seeded sample);
    same-camera pairs are left out (junk under the evaluation protocol).
    """
    cross = query.cams[:, None] != gallery.cams[None, :]
    same = (query.pids[:, None] == gallery.pids[None, :]) & cross
    pos = np.flatnonzero(same)
    neg = np.flatnonzero(cross & ~same)
    rng = np.random.default_rng(seed)
    if pos.size > max_positives:
        pos = rng.choice(pos, size=int(max_positives), replace=False)
    if neg.size > max_negatives:
        neg = rng.choice(neg, size=int(max_negatives), replace=False)
    return np.concatenate([pos, neg]), np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]


def score_spread(rows: np.ndarray | None = None, *, qn: np.ndarray | None = None, gnT: np.ndarray | None = None,
                 n_sample: int = 256) -> float:  # fmt: skip
    """σ: the median over (up to ``n_sample`` evenly spaced) queries of the standard deviation of a score row.

    Give either a (nq, ng) score matrix ``rows``, or L2-normalised query features ``qn`` (nq, D) and transposed
    gallery features ``gnT`` (D, ng) for the cosine (only the sampled rows are computed). Uses no labels;
    deterministic.
    """
    n = len(rows) if rows is not None else len(qn)
    idx = np.unique(np.linspace(0, n - 1, min(n, int(n_sample))).astype(np.int64))
    block = rows[idx] if rows is not None else qn[idx] @ gnT
    return float(np.median(np.asarray(block, np.float64).std(axis=1)))
