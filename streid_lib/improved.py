"""Beyond the paper: a calibrated Bayesian spatial-temporal fusion ("improved" mode), chosen on training ids only.

The faithful joint metric (reference §4) lets the ST stream move the score by at most ~5 %, normalises the two
travel directions of a camera pair apart, and fixes σ = 50 bins by hand. This module replaces it, as a named
opt-in mode measured against faithful, by

1. **An ST log-likelihood ratio.** For every ordered camera pair (a, b) and time-gap bin k (same bins and the
   same "later image's camera first" lookup rule as faithful, :meth:`SpatialTemporalModel.lookup_index`):

   * ``p_same(a, b, k)``: gaps of the *same* training identity, counted exactly as faithful counts them
     (``counting="identity"``: one vote per identity and camera pair from mean frames; ``"image_pairs"``: every
     cross-camera image pair, the paper's Eqn. 2) — the votes are those of a faithful
     :class:`SpatialTemporalModel` fitted on the same data;
   * ``p_diff(a, b, k)``: the background, the same histogram over pairs of *different* training identities
     (identity means or images, whichever ``counting`` says), from chunked outer differences per camera pair;
   * both are Parzen-smoothed with :func:`gaussian_smooth` (σ bins). By default the two directions of a pair are
     smoothed as one signed axis of gaps ``t_a - t_b`` (the kernel crosses Δt = 0, so bin 0 gets no border
     artefact); the mass of every pair is kept;
   * normalisation keeps the priors that faithful discards: ``p = X / n_dir · [n_dir / n_pair] · [n_pair / N]``
     where ``n_dir`` is the mass of the ordered pair, ``n_pair`` that of both directions and ``N`` the total.
     The factor in the first brackets is the **direction prior** (``direction_prior``), the second the
     **camera-pair prior** (``pair_prior``); both on by default, each can be switched off for ablations (the
     direction bracket then becomes 1/2, the pair bracket 1).

   The evidence is ``logLR = log((1 - ρ)·p_same/p_diff + ρ)`` (nats). The **outlier fraction** ρ (default
   0.01) is the floor: it models the few same-identity transits that look like random pairs, keeps the log finite
   and bounds the penalty at ``log ρ`` ≈ -4.6. Explicit definitions where the ratio does not exist:

   * same-camera pairs (a == b): logLR = 0 (no evidence; the protocol makes these matches junk anyway);
   * camera pairs never co-observed by one training identity (either direction), including cameras absent from
     training: logLR = 0 (no evidence either way; we do not extrapolate the pair prior to pairs never seen);
   * bins with no background mass (p_diff = 0): logLR = 0;
   * gaps beyond the last bin: the faithful ``overflow`` policy — ``"zero"`` gives logLR = 0 (no evidence, as
     faithful gives p = 0), ``"clip"`` reads the last bin, ``"error"`` raises.

   A pair seen only one way gets, away from Δt ≈ 0, logLR = log ρ in the unseen direction (evidence against).

2. **Fusion.** ``score = s + w · logLR`` with s the cosine similarity. Read as Bayes' rule, the visual logit is
   ``a·s + b`` and the posterior log-odds ``a·s + b + logLR``; ranking by it is ranking by ``s + logLR / a``,
   so ``w = 1/a``. w is **calibrated on training identities**: per validation fold, a logistic regression of
   same/different on ``[s, logLR]`` over cross-camera training pairs gives ``w_log = coef_logLR / coef_s``
   (case-control sampling of pairs changes only the intercept), and the validation ranking picks a multiplier
   ``m`` of it (:data:`DEFAULT_W_SCALES`): the pairwise fit is dominated by the bulk of easy negatives and, on
   the campus, gives about a quarter of the weight that ranks best, so the scale comes from the logistic fit and
   the last factor from validation mAP. The final ``w = m · w_log`` with ``w_log`` refitted on the pooled
   validation pairs. This needs visual features of the training images (``train_features``). **Without them**
   (a features file holds only query and gallery) w cannot be estimated from training data. The fallback
   (``w_source="spread"``) is ``w = DEFAULT_W · σ_s`` with σ_s the median over queries of the standard deviation
   of a query's cosine row: by the Bayes reading, ``a = d'/σ_s`` for a match separation of d' standard
   deviations, so w scales with σ_s, which removes the feature-dependent unit of the cosine (on the campus and
   on synthetic Market features the calibrated w/σ_s is 0.3-0.7, while w itself spans a factor 12). σ_s reads
   the *unlabelled* query-gallery scores only (no identities, like k-reciprocal re-ranking reads the features);
   σ and the counting rule are still chosen by the protocol, from the ST evidence alone (ST-only validation
   mAP). Labels of test data are never used.

   The re-ranking variant ``improved+re-rank`` first re-ranks the visual distance ``2 - 2s`` (k-reciprocal,
   over query+gallery, :func:`streid_lib.rerank.rerank_scores`) and then adds the ST evidence:
   ``score = -d_rr + w_rr · logLR``; ``w_rr`` is chosen the same way on re-ranked validation distances when
   training features exist, else ``DEFAULT_W`` times the median per-query spread of ``d_rr``.

3. **Selection protocol** (:func:`select_hyperparameters`): training identities only. Identities are split into
   folds; for each fold the ST model is fitted on the other folds' identities and a validation query/gallery
   split is built from the fold's identities (one query per identity and camera, the rest gallery, same-camera
   matches junk; queries without a cross-camera match are dropped). σ, the counting rule and w's multiplier (or
   w from an explicit grid) are chosen by mean validation mAP (ties: R1, then the earlier grid entry). The
   function's signature cannot receive query or gallery data.

   Cost (issue 7: at most 2× the faithful rows): per fold the ranking protocol's good/junk items, the ST lookup
   indices and the calibration pairs are computed once and shared by every candidate (a candidate is one
   ``take`` of its small table); σ variants reuse the counts (:meth:`LikelihoodRatioModel.with_params`); the
   multiplier stage reuses the stage-1 models and logistic weights; validation rankings run in a worker thread
   while the next candidate is fitted; the final model is fitted while the multipliers are ranked. All exact:
   the same choices and figures as computing each candidate from scratch. The logistic fit is our own Newton
   solver of scikit-learn's ``LogisticRegression(C=1)`` objective, run to convergence (scikit-learn stops at a
   gradient tolerance; its weights differ from the exact optimum by ~1e-4 relative), which also avoids
   importing scikit-learn (~2 s).

Library functions for the "beyond the paper" notebook return pandas DataFrames (pandas is imported lazily).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .features import FeatureSet
from .metadata import Metadata
from .st_model import COUNTING_MODES, EPS, SpatialTemporalModel, gaussian_smooth

#: Fallback fusion weight without training features, in units of the visual score's spread σ_s per nat of ST
#: evidence (``w = DEFAULT_W · σ_s``; module docstring). The campus and synthetic-Market calibrations give
#: w/σ_s = 0.3-0.7; 0.5 is their middle. Not calibrated for other features: pass ``train_features`` to calibrate.
DEFAULT_W: float = 0.5
#: The same for the re-ranking variant: w_rr = DEFAULT_W_RERANK · median per-query sd of the re-ranked distance
#: (campus calibration: 1.4; 1.0 keeps the same margin below it as DEFAULT_W).
DEFAULT_W_RERANK: float = 1.0
#: Outlier fraction ρ of the likelihood ratio: the floor ``log ρ`` of the evidence.
DEFAULT_OUTLIER: float = 0.01
#: Default search grid of the selection protocol (σ in bins; counting rules of :class:`SpatialTemporalModel`).
DEFAULT_GRID: dict[str, tuple] = {"sigma": (10.0, 25.0, 50.0), "counting": ("identity", "image_pairs")}
#: Names of the rows this mode adds to an evaluation.
IMPROVED_ROWS: tuple[str, ...] = ("improved", "improved+re-rank")


class ImprovedError(ValueError):
    """Bad input to the improved mode (names the argument or value and what was expected)."""


# ----------------------------------------------------------------------------------------------------------------
# Counting: same-identity votes (from the faithful model) and the different-identity background


def _units(train: Metadata, counting: str, n_cams: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pid, 0-based cam, time) of the counting units: per-(identity, camera) mean frames, or single images.

    Mean frames use the faithful definition ``S / (N + 1e-7)`` (reference §3.2), so that same-identity and
    different-identity gaps are measured alike.
    """
    if counting == "identity":
        uniq, ident = np.unique(train.pids, return_inverse=True)
        ident = ident.reshape(-1)
        C = int(n_cams)
        cell = ident * C + (train.cams - 1)
        n_cells = len(uniq) * C
        S = np.bincount(cell, weights=train.frames.astype(np.float64), minlength=n_cells)
        N = np.bincount(cell, minlength=n_cells)
        present = np.flatnonzero(N > 0)
        return uniq[present // C], present % C, S[present] / (N[present] + EPS)
    return train.pids.copy(), train.cams - 1, train.frames.copy()


def background_counts(
    train: Metadata,
    *,
    counting: str = "identity",
    bin_width: int = 100,
    n_bins: int = 5000,
    n_cams: int = 8,
    overflow: str = "zero",
    max_block: int = 262_144,
) -> tuple[np.ndarray, int]:
    """Histogram of time gaps between **different** training identities, in faithful's layout.

    For every unordered camera pair j < k, every unit of identity i in camera j is paired with every unit of
    identity i' != i in camera k (units: per-camera mean frames for ``counting="identity"``, images for
    ``"image_pairs"``). Each pair votes into ``counts[later, earlier, floor(|Δ| / bin_width)]``, ties counting
    the higher camera as later — the same rule as the same-identity votes. Vectorised as outer differences in
    blocks of at most ``max_block`` pairs (a loop over camera pairs and blocks only; cache-sized blocks are
    fastest, and the integer counts do not depend on the block size).

    Returns:
        ((C, C, H) float64 counts, number of votes beyond the last bin). Overflowing votes follow ``overflow``:
        dropped (``"zero"``), put in the last bin (``"clip"``), or an :class:`ImprovedError` (``"error"``).
    """
    C, H, bw = int(n_cams), int(n_bins), int(bin_width)
    pid, cam, t = _units(train, counting, C)
    counts = np.zeros((C, C, 2 * H), dtype=np.float64)  # [..., :H] j later, [..., H:] k later (stored at [j, k])
    n_over = 0
    groups = [np.flatnonzero(cam == c) for c in range(C)]
    for j in range(C):
        for k in range(j + 1, C):
            gj, gk = groups[j], groups[k]
            if gj.size == 0 or gk.size == 0:
                continue
            tk, pk = t[gk], pid[gk]
            step = max(1, int(max_block) // gk.size)
            for s0 in range(0, gj.size, step):
                rows = gj[s0 : s0 + step]
                d = t[rows, None] - tk[None, :]  # t_j - t_k
                skip = pid[rows, None] == pk[None, :]  # same identity: not background
                if counting == "identity":
                    b = (np.abs(d) / float(bw)).astype(np.int64)  # int() of a non-negative float = floor
                else:
                    b = np.abs(d) // bw
                over = b >= H
                np.logical_and(over, ~skip, out=over)
                if over.any():
                    n_over += int(over.sum())
                    if overflow == "error":
                        raise ImprovedError(
                            f"background: a time gap between different identities falls in bin {int(b[over].max())} "
                            f"(cameras {j + 1} and {k + 1}), beyond the last bin {H - 1} (n_bins={H}, "
                            f"bin_width={bw}); raise n_bins or use overflow='zero'/'clip'"
                        )
                    if overflow == "clip":
                        np.minimum(b, H - 1, out=b)
                    else:
                        skip |= over
                # Slot b: j later; H + b: k later (equal times: k, the higher camera, is later, as in faithful).
                # Skipped pairs go to an extra slot 2H that is dropped: no compaction of the block needed.
                np.add(b, H, out=b, where=d <= 0)
                np.copyto(b, 2 * H, where=skip)
                counts[j, k] += np.bincount(b.reshape(-1), minlength=2 * H + 1)[: 2 * H]
    out = np.zeros((C, C, H), dtype=np.float64)
    j, k = np.triu_indices(C, k=1)
    out[j, k] = counts[j, k, :H]
    out[k, j] = counts[j, k, H:]
    return out, n_over


# ----------------------------------------------------------------------------------------------------------------
# The likelihood-ratio model


def _smooth_mass(X: np.ndarray, sigma: float, truncate: float, across_zero: bool) -> np.ndarray:
    """Parzen-smooth (C, C, H) counts along the bins, keeping each pair's mass (counts in, counts out).

    With ``across_zero`` the two directions of a pair form one signed gap axis ``[X[b, a] reversed, X[a, b]]``
    (bin order: ..., b later by bin 0, a later by bin 0, ...), smoothed as one histogram and split back.
    """
    if across_zero:
        H = X.shape[2]
        signed = np.concatenate([X.transpose(1, 0, 2)[:, :, ::-1], X], axis=2)
        mass = signed.sum(axis=2, keepdims=True)
        sm = gaussian_smooth(signed, sigma, truncate) if sigma > 0 else signed / np.where(mass > 0, mass, 1.0)
        total = sm.sum(axis=2, keepdims=True)
        sm = sm * np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)
        return sm[:, :, H:]
    mass = X.sum(axis=2, keepdims=True)
    if sigma <= 0:
        return X.astype(np.float64, copy=True)
    sm = gaussian_smooth(X, sigma, truncate)
    total = sm.sum(axis=2, keepdims=True)
    return sm * np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)


def _normalise(X: np.ndarray, direction_prior: bool, pair_prior: bool) -> np.ndarray:
    """``p = X / n_dir · [n_dir / n_pair] · [n_pair / N]`` (brackets: the optional priors); 0 where empty.

    Without the direction prior its bracket is 1/2 (both directions equally likely); without the pair prior its
    bracket is 1 (every pair weighted alike).
    """
    n_dir = X.sum(axis=2)
    n_pair = n_dir + n_dir.T
    total = n_dir.sum()
    if direction_prior:
        scale = np.divide(1.0, n_pair, out=np.zeros_like(n_pair), where=n_pair > 0)
    else:
        scale = np.divide(0.5, n_dir, out=np.zeros_like(n_dir), where=n_dir > 0)
    if pair_prior:
        scale = scale * (n_pair / total if total > 0 else 0.0)
    return X * scale[:, :, None]


class LikelihoodRatioModel:
    """ST log-likelihood ratio ``log p(Δt, a→b | same) / p(Δt, a→b | different)`` per ordered camera pair and bin.

    Args:
        bin_width, n_bins, n_cams, truncate, overflow, counting: as :class:`SpatialTemporalModel` (same bins, same
            lookup rule, same overflow policy, same counting rules ``"identity"`` / ``"image_pairs"``).
        sigma: Parzen kernel width in bins, for both the same and the background histograms.
        direction_prior: normalise the two directions of a pair jointly (keeps which way people walk).
        pair_prior: weight camera pairs by how often one identity is seen in both (vs the background).
        background: divide by the different-identity background; False (ablation) divides by a flat background,
            i.e. uses the likelihood ``p_same`` alone.
        across_zero: smooth both directions as one signed gap axis (False: each direction alone, as faithful).
        outlier: ρ in ``log((1 - ρ)·ratio + ρ)``; the floor of the evidence is ``log ρ``.

    Fitted attributes:
        st_: the faithful :class:`SpatialTemporalModel` whose votes are the same-identity counts.
        same_counts_, diff_counts_: (C, C, H) raw counts; p_same_, p_diff_: (C, C, H) smoothed, normalised.
        log_lr_: (C, C, H) float64 evidence in nats; observed_: (C, C) bool, pair co-observed by one identity.
    """

    def __init__(
        self,
        bin_width: int = 100,
        n_bins: int = 5000,
        n_cams: int = 8,
        sigma: float = 50.0,
        truncate: float = 3.0,
        overflow: str = "zero",
        counting: str = "identity",
        direction_prior: bool = True,
        pair_prior: bool = True,
        background: bool = True,
        across_zero: bool = True,
        outlier: float = DEFAULT_OUTLIER,
    ) -> None:
        self.bin_width = bin_width
        self.n_bins = n_bins
        self.n_cams = n_cams
        self.sigma = sigma
        self.truncate = truncate
        self.overflow = overflow
        self.counting = counting
        self.direction_prior = direction_prior
        self.pair_prior = pair_prior
        self.background = background
        self.across_zero = across_zero
        self.outlier = outlier

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as a JSON-able dict (for provenance): the faithful model's, then our own."""
        return {
            **self._faithful().get_params(),
            "direction_prior": bool(self.direction_prior),
            "pair_prior": bool(self.pair_prior),
            "background": bool(self.background),
            "across_zero": bool(self.across_zero),
            "outlier": float(self.outlier),
        }

    def __repr__(self) -> str:
        return "LikelihoodRatioModel(" + ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()) + ")"

    def _faithful(self) -> SpatialTemporalModel:
        """The faithful model with this model's shared parameters (bins, cameras, σ, overflow, counting)."""
        shared = ("bin_width", "n_bins", "n_cams", "sigma", "truncate", "overflow", "counting")
        return SpatialTemporalModel(**{k: getattr(self, k) for k in shared})

    def fit(self, train: Metadata) -> LikelihoodRatioModel:
        """Count same-identity and different-identity gaps on training metadata, then build the evidence table.

        Raises:
            ImprovedError: bad parameters; STModelError (a ValueError) for bad metadata, as faithful's fit.
        """
        if not (isinstance(self.outlier, (int, float)) and 0 < float(self.outlier) < 1):
            raise ImprovedError(f"outlier: expected a fraction in (0, 1), got {self.outlier!r}")
        if self.counting not in COUNTING_MODES:
            raise ImprovedError(f"counting: expected one of {COUNTING_MODES}, got {self.counting!r}")
        if not isinstance(train, Metadata):
            raise ImprovedError(f"train: expected streid_lib.metadata.Metadata, got {type(train).__name__}")
        self.st_ = self._faithful().fit(train)
        self.same_counts_ = self.st_.counts_
        self.diff_counts_, self.n_overflow_background_ = background_counts(
            train,
            counting=self.counting,
            bin_width=self.bin_width,
            n_bins=self.n_bins,
            n_cams=self.n_cams,
            overflow=self.overflow,
        )
        self.n_identities_ = int(np.unique(train.pids).size)
        self._build()
        return self

    def with_params(self, **params: Any) -> LikelihoodRatioModel:
        """A fitted copy with other smoothing/normalisation parameters, reusing the counts (no refit).

        Only ``sigma``, ``truncate``, ``direction_prior``, ``pair_prior``, ``background``, ``across_zero`` and
        ``outlier`` may change; counting and bins need :meth:`fit`.
        """
        allowed = {"sigma", "truncate", "direction_prior", "pair_prior", "background", "across_zero", "outlier"}
        bad = set(params) - allowed
        if bad:
            raise ImprovedError(f"with_params: {sorted(bad)} change the counts; refit instead (allowed: {allowed})")
        self._check_fitted()
        new = LikelihoodRatioModel(**{**self.get_params(), **params})
        new.st_ = self.st_  # lookup indices do not depend on the smoothing
        new.same_counts_, new.diff_counts_ = self.same_counts_, self.diff_counts_
        new.n_overflow_background_, new.n_identities_ = self.n_overflow_background_, self.n_identities_
        new._build()
        return new

    def _build(self) -> None:
        sigma, trunc = float(self.sigma), float(self.truncate)
        same = _smooth_mass(self.same_counts_, sigma, trunc, bool(self.across_zero))
        self.p_same_ = _normalise(same, bool(self.direction_prior), bool(self.pair_prior))
        raw_same = self.same_counts_.sum(axis=2)
        self.observed_ = (raw_same + raw_same.T) > 0
        np.fill_diagonal(self.observed_, False)
        if self.background:
            diff = _smooth_mass(self.diff_counts_, sigma, trunc, bool(self.across_zero))
            self.p_diff_ = _normalise(diff, bool(self.direction_prior), bool(self.pair_prior))
        else:
            # Flat background over the cells of co-observed pairs: logLR is then log p_same up to a constant.
            n_cells = int(self.observed_.sum()) * self.p_same_.shape[2]
            self.p_diff_ = np.where(self.observed_[:, :, None], 1.0 / max(n_cells, 1), 0.0)
        rho = float(self.outlier)
        valid = self.observed_[:, :, None] & (self.p_diff_ > 0)
        ratio = np.divide(self.p_same_, self.p_diff_, out=np.zeros_like(self.p_same_), where=valid)
        self.log_lr_ = np.where(valid, np.log((1.0 - rho) * ratio + rho), 0.0)
        C, _, H = self.log_lr_.shape
        T = np.zeros((2, C, C, H + 1), dtype=np.float64)  # faithful's lookup layout; slot H: beyond the last bin
        T[1, :, :, :H] = self.log_lr_
        T[0, :, :, :H] = self.log_lr_.transpose(1, 0, 2)
        self._table = T.reshape(-1)

    def _check_fitted(self) -> None:
        if getattr(self, "log_lr_", None) is None:
            raise ImprovedError("the likelihood-ratio model is not fitted: call fit(train) first")

    def lookup_table(self) -> np.ndarray:
        """logLR in :meth:`SpatialTemporalModel.lookup_table`'s flat layout (index it with :meth:`lookup_index`)."""
        self._check_fitted()
        return self._table

    def lookup_index(self, cams_a: Any, frames_a: Any, cams_b: Any, frames_b: Any) -> np.ndarray:
        """Faithful's lookup indices (later image's camera first, floor(|Δ|/bin_width), overflow policy)."""
        self._check_fitted()
        return self.st_.lookup_index(cams_a, frames_a, cams_b, frames_b)

    def log_lr(self, cams_a: Any, frames_a: Any, cams_b: Any, frames_b: Any) -> np.ndarray:
        """ST evidence (nats) for image pairs, broadcasting like :meth:`SpatialTemporalModel.probability`."""
        return self.lookup_table().take(self.lookup_index(cams_a, frames_a, cams_b, frames_b))

    def fit_info(self) -> dict[str, Any]:
        """Parameters and fit statistics (for provenance)."""
        self._check_fitted()
        finite = self.log_lr_[self.observed_]
        return {
            **self.get_params(),
            "n_identities": self.n_identities_,
            "n_same_votes": float(self.same_counts_.sum()),
            "n_background_votes": float(self.diff_counts_.sum()),
            "n_overflow_same": self.st_.n_overflow_votes_,
            "n_overflow_background": self.n_overflow_background_,
            "n_observed_pairs": int(self.observed_.sum()),
            "log_lr_range": [float(finite.min()), float(finite.max())] if finite.size else [0.0, 0.0],
        }


# ----------------------------------------------------------------------------------------------------------------
# Calibration


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

    At most ``max_positives`` positive and ``max_negatives`` negative pairs are sampled (seeded); such
    case-control sampling shifts only the intercept, not the slopes. The columns are standardised and lightly
    L2-regularised (C = 1, intercept not penalised: scikit-learn's ``LogisticRegression(C=1)`` objective): negligible
    for thousands of pairs, and it keeps the fit finite when the training pairs are separable. Solved by
    :func:`_logistic_l2` (Newton's method to convergence; no scikit-learn import, which alone costs ~2 s).

    Args:
        s: (n,) visual scores (any scale; higher = more similar); log_lr: (n,) ST evidence; same: (n,) bool labels.

    Returns:
        (w, {"coef_s", "coef_log_lr", "intercept", "n_pos", "n_neg"}).

    Raises:
        ImprovedError: no positives or negatives, or a visual slope <= 0 (w would be meaningless).
    """
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
    # Standardised columns condition the solver (a few iterations instead of hundreds); slopes are mapped back.
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    coef, b0 = _logistic_l2((X - mu) / sd, same[idx])
    a, c = (float(v) for v in coef / sd)
    intercept = float(b0 - np.sum(coef * mu / sd))
    if not a > 0:
        raise ImprovedError(
            f"calibrate_weight: the visual score has a non-positive logistic slope ({a:.4g}) on training pairs; "
            "the features do not separate same from different identities, so no fusion weight can be calibrated"
        )
    info = {
        "coef_s": a,
        "coef_log_lr": c,
        "intercept": intercept,
        "n_pos": int(pos.size),
        "n_neg": int(neg.size),
    }
    return c / a, info


def _logistic_l2(X: np.ndarray, y: np.ndarray, max_iter: int = 100) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression ``min Σ_i log(1 + e^{z_i}) - y_i z_i + ||β||²/2``, ``z = Xβ + b``.

    The objective of scikit-learn's ``LogisticRegression(C=1)`` (intercept b not penalised), minimised by Newton's
    method with a backtracking line search until the step is below 1e-10 (scikit-learn's Newton solver stops at
    a gradient tolerance of 1e-4, so the two agree to about 1e-6 relative). The objective is strictly convex, so
    the minimiser is unique.

    Args:
        X: (n, d) float64 (standardised) features; y: (n,) bool labels.

    Returns:
        ((d,) coefficients, intercept).
    """
    from scipy.special import expit

    n, d = X.shape
    A = np.ascontiguousarray(np.concatenate([X, np.ones((n, 1))], axis=1))
    AT = np.ascontiguousarray(A.T)
    iu = np.triu_indices(d + 1)
    # Products of column pairs, once: each Hessian is then one (pairs × n) matrix-vector product.
    Q = AT[iu[0]] * AT[iu[1]]
    yf = y.astype(np.float64)
    pen = np.r_[np.ones(d), 0.0]  # the intercept is not penalised
    theta = np.zeros(d + 1)
    ybar = float(yf.mean())
    theta[d] = math.log(ybar / (1.0 - ybar))  # the optimum when every slope is 0: one Newton step saved

    def objective(t: np.ndarray) -> tuple[float, np.ndarray]:
        z = A @ t
        return float(np.sum(np.logaddexp(0.0, z)) - yf @ z + 0.5 * np.sum(pen * t * t)), z

    z = A @ theta
    f: float | None = None
    for _ in range(int(max_iter)):
        p = expit(z)
        grad = AT @ (p - yf) + pen * theta
        hess = np.zeros((d + 1, d + 1))
        hess[iu] = Q @ (p * (1.0 - p))
        hess = hess + np.triu(hess, 1).T + np.diag(pen)
        step = np.linalg.solve(hess, -grad)
        t = 1.0
        if np.max(np.abs(step)) > 0.5:
            # Far from the optimum: Armijo backtracking (Newton steps are usually accepted at t = 1). Close to it
            # (standardised columns, steps <= 0.5) the full Newton step converges quadratically: no objective needed.
            if f is None:
                f = objective(theta)[0]
            while True:
                cand = theta + t * step
                f_new, z_new = objective(cand)
                if f_new <= f + 1e-4 * t * float(grad @ step) or t < 1e-10:
                    break
                t *= 0.5
            theta, f, z = cand, f_new, z_new
        else:
            theta = theta + step
            z, f = A @ theta, None
        if np.max(np.abs(t * step)) < 1e-10:
            break
    return theta[:d], float(theta[d])


# ----------------------------------------------------------------------------------------------------------------
# Selection protocol (training identities only)


@dataclass(frozen=True)
class ValidationSplit:
    """One fold of the protocol: indices into the training metadata.

    Attributes:
        fit: images of the identities the ST model is fitted on; query, gallery: the held-out identities'
            validation split (one query per identity and camera, the rest gallery).
    """

    fit: np.ndarray
    query: np.ndarray
    gallery: np.ndarray


def validation_splits(train: Metadata, n_folds: int = 2, seed: int = 0) -> list[ValidationSplit]:
    """Split training identities into ``n_folds`` folds; build a query/gallery split from each fold.

    In each held-out fold: one randomly chosen (seeded) image per identity and camera is a query, every other
    image of the fold is gallery; same-camera matches are junk under the evaluation protocol. Queries without any
    gallery image of their identity in another camera are dropped (they cannot be evaluated).
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ImprovedError(f"n_folds: expected an integer >= 2, got {n_folds!r}")
    ids = np.unique(train.pids)
    if ids.size < 2 * n_folds:
        raise ImprovedError(f"train: {ids.size} identities are too few for {n_folds} folds (need >= {2 * n_folds})")
    rng = np.random.default_rng(seed)
    fold_of_id = np.empty(ids.size, np.int64)
    fold_of_id[rng.permutation(ids.size)] = np.arange(ids.size) % n_folds
    fold = fold_of_id[np.searchsorted(ids, train.pids)]
    out = []
    for f in range(int(n_folds)):
        held = np.flatnonzero(fold == f)
        perm = held[rng.permutation(held.size)]
        key = train.pids[perm] * (train.n_cams + 1) + train.cams[perm]
        _, first = np.unique(key, return_index=True)  # first in a random order = a random image per (id, cam)
        query = np.sort(perm[first])
        gallery = np.setdiff1d(held, query)
        # A query is usable when its identity has a gallery image in another camera:
        # (#gallery images of its pid) - (#gallery images of its pid in its camera) > 0.
        ncam = train.n_cams + 1
        other_cam = _count_in(train.pids[gallery], train.pids[query]) - _count_in(
            train.pids[gallery] * ncam + train.cams[gallery], train.pids[query] * ncam + train.cams[query]
        )
        out.append(ValidationSplit(np.flatnonzero(fold != f), query[other_cam > 0], gallery))
    return out


def _count_in(pool: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """How many times each of ``keys`` occurs in ``pool`` (vectorised)."""
    values, counts = np.unique(pool, return_counts=True)
    pos = np.minimum(np.searchsorted(values, keys), max(len(values) - 1, 0))
    hit = (values[pos] == keys) if len(values) else np.zeros(len(keys), bool)
    return np.where(hit, counts[pos] if len(values) else 0, 0)


@dataclass
class Choice:
    """Hyperparameters chosen by :func:`select_hyperparameters` (all from training identities).

    Attributes:
        sigma: Parzen width in bins; counting: ``"identity"`` or ``"image_pairs"``.
        w: fusion weight of ``s + w·logLR``; w_rerank: the same after visual re-ranking (None if not asked for).
        w_source: ``"calibrated"`` (logistic fit on training pairs), ``"grid"`` or ``"spread"`` (:data:`DEFAULT_W`,
            no training features).
        calibration: coefficients of the pooled logistic fits; protocol: folds, seed, criterion.
    """

    sigma: float
    counting: str
    w: float
    w_rerank: float | None = None
    w_source: str = "spread"
    calibration: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    #: The likelihood-ratio model with the chosen σ and counting fitted on all of ``train``, when the protocol
    #: fitted it already (while it ranked the last candidates); None otherwise. Not part of :meth:`as_dict`.
    final_model: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for provenance)."""
        return {
            "sigma": float(self.sigma),
            "counting": self.counting,
            "w": float(self.w),
            "w_rerank": None if self.w_rerank is None else float(self.w_rerank),
            "w_source": self.w_source,
            "calibration": self.calibration,
            "protocol": self.protocol,
        }


def _pair_index(
    qm: Metadata, gm: Metadata, max_positives: int, max_negatives: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flat (query × gallery) indices of cross-camera validation pairs for calibration, and their labels.

    At most ``max_positives`` same-identity and ``max_negatives`` different-identity pairs (seeded sample);
    same-camera pairs are left out (junk under the protocol).
    """
    cross = qm.cams[:, None] != gm.cams[None, :]
    same = (qm.pids[:, None] == gm.pids[None, :]) & cross
    pos = np.flatnonzero(same)
    neg = np.flatnonzero(cross & ~same)
    rng = np.random.default_rng(seed)
    if pos.size > max_positives:
        pos = rng.choice(pos, size=int(max_positives), replace=False)
    if neg.size > max_negatives:
        neg = rng.choice(neg, size=int(max_negatives), replace=False)
    idx = np.concatenate([pos, neg])
    return idx, np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]


def _rerank_distance(qf: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """k-reciprocal re-ranked visual distance (nq, ng) from ``d = 2 - 2·cos`` over query+gallery (reference §6)."""
    from .joint import normalize_rows
    from .rerank import rerank_scores

    allf = normalize_rows(np.concatenate([qf, gf], axis=0))
    return np.asarray(rerank_scores(allf @ allf.T, len(qf), progress=False))


def _check_train_features(train: Metadata, train_features: np.ndarray | None) -> np.ndarray | None:
    if train_features is None:
        return None
    f = np.asarray(train_features, dtype=np.float32)
    if f.ndim != 2 or len(f) != len(train):
        raise ImprovedError(
            f"train_features: expected an (N_train, D) array with N_train = {len(train)} rows aligned with the "
            f"training metadata, got shape {f.shape}"
        )
    return f


def _threads() -> int:
    """Ranking threads: 2 where there are 2 CPUs or more (as the faithful rows); the figures do not depend on it."""
    return min(2, os.cpu_count() or 1)


class _Fold:
    """One validation fold: its metadata, features and one ranking protocol shared by every candidate.

    The good/junk items of each query chunk (:class:`streid_lib.metrics.RankingProtocol`) and the ST lookup indices
    (``idx``, (nq, ng) into any candidate's lookup table) depend on the metadata only, so they are computed once
    and reused for every σ, counting rule and weight; a candidate is then one ``take`` of its small table.
    """

    def __init__(
        self,
        fit_meta: Metadata,
        qm: Metadata,
        gm: Metadata,
        fq: np.ndarray | None,
        fg: np.ndarray | None,
        s: np.ndarray | None,
        pidx: np.ndarray | None,
        psame: np.ndarray | None,
        chunk_size: int = 256,
    ) -> None:
        from .metrics import RankingProtocol, iter_row_chunks

        self.fit_meta, self.qm, self.gm, self.fq, self.fg, self.s = fit_meta, qm, gm, fq, fg, s
        self.pidx, self.psame = pidx, psame
        self.s_pairs = None if s is None else s.reshape(-1)[pidx]
        self.protocol = RankingProtocol(gm)
        self.slices = list(iter_row_chunks(len(qm), chunk_size))
        self.chunks = [self.protocol.chunk(qm.take(sl), sl.start) for sl in self.slices]
        self.idx: np.ndarray | None = None
        self.idx_pairs: np.ndarray | None = None

    def set_index(self, model: LikelihoodRatioModel) -> None:
        """Lookup indices of every validation pair (and of the calibration pairs) from a fitted model's bins."""
        q, g = self.qm, self.gm
        self.idx = model.lookup_index(q.cams[:, None], q.frames[:, None], g.cams[None, :], g.frames[None, :])
        if self.pidx is not None:
            self.idx_pairs = self.idx.reshape(-1)[self.pidx]

    def summary_of(self, score: np.ndarray | Callable[[slice], np.ndarray]) -> dict[str, float]:
        """Validation metrics of a (nq, ng) score matrix, or of a function giving its rows ``score(rows)``; equal
        to ``evaluate_scores(score, qm, gm).summary()``."""
        from .metrics import MetricAccumulator

        acc = MetricAccumulator(self.gm, protocol=self.protocol)
        for sl, chunk in zip(self.slices, self.chunks, strict=True):
            acc.update(score(sl) if callable(score) else score[sl], chunk=chunk)
        return acc.result().summary()

    def summary(self, table: np.ndarray) -> dict[str, float]:
        """Validation metrics of a candidate given as its (weighted) lookup table: ``s + table[idx]``, or
        ``table[idx]`` alone without features.

        Built chunk by chunk of queries (cache-sized temporaries instead of full-matrix ones). Float scores are
        ranked as float32 (the metrics' single-pass path; float64 ones are compared twice), integer ones (dense
        ranks) as they are.
        """
        idx, s = self.idx, self.s

        def rows(sl: slice) -> np.ndarray:
            st = table.take(idx[sl])
            if s is None:
                return st if st.dtype.kind == "i" else st.astype(np.float32)
            st += s[sl]  # float64: the same values as s + w·logLR
            return st.astype(np.float32)

        return self.summary_of(rows)


def _dense_model_table(model: LikelihoodRatioModel) -> np.ndarray:
    """:func:`_dense_table` of a fitted model's lookup table, faster: only observed pairs carry non-zero evidence.

    Every other entry (unobserved pairs, the diagonal, the overflow slot) is exactly 0 and the diagonal is never
    observed, so the table's distinct values are those of the observed pairs plus 0; the unique values are
    sorted once on the observed pairs only (a fraction of the table) and the ranks laid out like the table.
    """
    obs = model.observed_
    _, inv = np.unique(np.r_[model.log_lr_[obs].ravel(), 0.0], return_inverse=True)
    inv = inv.reshape(-1).astype(np.int32)
    zero = inv[-1]  # the rank of 0.0
    ranks = np.full(model.log_lr_.shape, zero, dtype=np.int32)
    ranks[obs] = inv[:-1].reshape(-1, ranks.shape[2])
    C, _, H = ranks.shape
    T = np.full((2, C, C, H + 1), zero, dtype=np.int32)
    T[1, :, :, :H] = ranks
    T[0, :, :, :H] = ranks.transpose(1, 0, 2)
    return T.reshape(-1)


def select_hyperparameters(
    train: Metadata,
    train_features: np.ndarray | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    n_folds: int = 2,
    seed: int = 0,
    rerank: bool = False,
    st_params: Mapping[str, Any] | None = None,
    max_positives: int = 20_000,
    max_negatives: int = 50_000,
) -> tuple[Choice, Any]:
    """Choose σ, the counting rule and w by cross-validation on **training identities only**.

    For each fold of :func:`validation_splits`, the likelihood-ratio model is fitted on the other folds'
    identities and scored on the fold's validation split (one query per identity and camera, rest gallery).

    * With ``train_features`` (rows aligned with ``train``): the score is ``s + w·logLR``. Per fold and candidate,
      the logistic weight ``w_log`` is fitted on the fold's cross-camera pairs (:func:`calibrate_weight`) and
      ``w = m · w_log``. Stage 1 picks σ and counting with m = the middle of ``grid["w_scale"]`` (default
      0.5, 1, 2, 4, 8); stage 2 picks m for the winner (the pairwise fit is dominated by the bulk of easy
      negatives while ranking depends on the top of the list; on the campus the best m is 2-4). Two stages keep
      the cost at (#σ·#counting + #m) validation rankings per fold instead of their product.
      ``grid["w"]`` (absolute weights) replaces this with one exhaustive stage.
    * Without features: the score is the ST evidence alone (σ and counting only); w is the spread rule
      (``w_source="spread"``: ``Choice.w`` = :data:`DEFAULT_W` is then a multiplier of the score spread σ_s).

    The candidate with the best mean validation mAP (then R1, then grid order) wins. Its final w is the logistic
    weight refitted on the pooled validation pairs of all folds times the chosen multiplier. With ``rerank``,
    ``w_rerank`` is chosen the same way on re-ranked validation distances for the winning σ and counting.
    Nothing but ``train`` and ``train_features`` is read: the signature cannot receive test data.

    Args:
        train: training metadata; train_features: optional (N_train, D) visual features of the training images.
        grid: ``{"sigma": [bins], "counting": [...], "w_scale": [...], "w": [...]}``, each optional
            (defaults: :data:`DEFAULT_GRID`, :data:`DEFAULT_W_SCALES`).
        n_folds, seed: identity folds and query draws.
        rerank: also choose ``w_rerank`` (needs train_features; without them the spread rule, DEFAULT_W_RERANK).
        st_params: bin_width, n_bins, n_cams, truncate, overflow (and priors, ρ) of :class:`LikelihoodRatioModel`.
        max_positives, max_negatives: pairs sampled per fold for the logistic fits (same pairs for every candidate).

    Returns:
        (:class:`Choice`, DataFrame with one row per candidate and stage: sigma, counting, w_scale, w (mean over
        folds), R1, mAP (validation, percent, mean over folds), R1_sd, mAP_sd, stage, chosen). Per-fold rows are
        in ``df.attrs["per_fold"]``, the re-ranking candidates in ``df.attrs["rerank"]``.
    """
    import pandas as pd

    from .joint import cosine_similarity

    grid = dict(DEFAULT_GRID if grid is None else grid)
    unknown = set(grid) - {"sigma", "counting", "w", "w_scale"}
    sigmas = [float(x) for x in grid.get("sigma", DEFAULT_GRID["sigma"])]
    countings = list(grid.get("counting", DEFAULT_GRID["counting"]))
    w_abs = grid.get("w")
    scales = [float(x) for x in grid.get("w_scale", DEFAULT_W_SCALES)]
    if unknown or not sigmas or not countings or not scales or (w_abs is not None and len(w_abs) == 0):
        raise ImprovedError(f"grid: expected non-empty 'sigma', 'counting' (optional 'w', 'w_scale') lists, got {grid}")
    feats = _check_train_features(train, train_features)
    params = _st_params(train, st_params)
    splits = validation_splits(train, n_folds, seed)
    two_stage = feats is not None and w_abs is None
    m0 = scales[len(scales) // 2]  # stage 1 multiplier (the middle of the grid)
    rows: list[dict[str, Any]] = []
    pooled: dict[tuple, list] = {}
    fold_data: list[_Fold] = []
    final: LikelihoodRatioModel | None = None
    models: dict[tuple[int, str, float], LikelihoodRatioModel] = {}
    w_logs: dict[tuple[int, str, float], float] = {}
    # One ranking worker beside this thread, which fits and calibrates the next candidates meanwhile (a second
    # worker is slower on 2 cores: the rankings' per-query Python loop contends for the GIL).
    pool = ThreadPoolExecutor(1)
    pending: list[tuple[dict[str, Any], Any]] = []

    def record(stage: int, f: int, sigma: float, counting: str, m: float, w: float, table: np.ndarray) -> None:
        """Queue the validation ranking of ``s + table[idx]`` (or of ``table[idx]`` alone without features)."""
        fd = fold_data[f]
        row = {"stage": stage, "fold": f, "sigma": sigma, "counting": counting, "w_scale": m, "w": w,
               "n_query": len(fd.qm), "n_gallery": len(fd.gm)}  # fmt: skip
        rows.append(row)
        pending.append((row, pool.submit(fd.summary, table)))

    def collect() -> None:
        for row, fut in pending:
            summ = fut.result()
            row["R1"], row["mAP"] = summ["R1"], summ["mAP"]
        pending.clear()

    try:
        # Stage 1: σ and counting (w = m0 · w_log with features; the ST evidence alone without).
        for f, sp in enumerate(splits):
            fit_meta, qm, gm = train.take(sp.fit), train.take(sp.query), train.take(sp.gallery)
            if len(qm) == 0:
                raise ImprovedError(
                    f"train: validation fold {f} has no identity seen in two cameras, so no query can be evaluated; "
                    "use fewer folds or more training identities"
                )
            s = cosine_similarity(feats[sp.query], feats[sp.gallery]) if feats is not None else None
            pidx, psame = _pair_index(qm, gm, max_positives, max_negatives, seed + f) if s is not None else (None, None)
            fq, fg = (feats[sp.query], feats[sp.gallery]) if feats is not None else (None, None)
            fd = _Fold(fit_meta, qm, gm, fq, fg, s, pidx, psame)
            fold_data.append(fd)
            for counting in countings:
                base = LikelihoodRatioModel(**{**params, "counting": counting, "sigma": sigmas[0]}).fit(fit_meta)
                if fd.idx is None:
                    # The lookup indices depend only on the bins, cameras and overflow policy, which every
                    # candidate shares: computed once per fold (and the calibration pairs' indices with them).
                    fd.set_index(base)
                for sigma in sigmas:
                    model = base if sigma == base.sigma else base.with_params(sigma=sigma)
                    models[(f, counting, sigma)] = model
                    if s is None:
                        record(1, f, sigma, counting, math.nan, DEFAULT_W, _dense_model_table(model))
                        continue
                    table = model.lookup_table()
                    if w_abs is not None:
                        for w in w_abs:
                            record(1, f, sigma, counting, math.nan, float(w), float(w) * table)
                    else:
                        sample = (fd.s_pairs, table.take(fd.idx_pairs), psame)
                        pooled.setdefault((counting, sigma), []).append(sample)
                        w_log, _ = calibrate_weight(*sample)
                        w_logs[(f, counting, sigma)] = w_log
                        record(1, f, sigma, counting, m0, m0 * w_log, (m0 * w_log) * table)
        collect()
        keys = ["sigma", "counting", "w_scale" if two_stage else "w"]
        agg = _aggregate(pd.DataFrame(rows), keys)
        best = _best(agg)
        sigma, counting = float(agg.loc[best, "sigma"]), str(agg.loc[best, "counting"])
        # Stage 2 (features, no absolute w grid): the multiplier m of the logistic weight, for the winner.
        # The winner's models and logistic weights are those of stage 1 (same counts, σ and calibration pairs).
        if two_stage and len(scales) > 1:
            for f in range(len(fold_data)):
                table, w_log = models[(f, counting, sigma)].lookup_table(), w_logs[(f, counting, sigma)]
                for m in scales:
                    if m != m0:
                        record(2, f, sigma, counting, m, m * w_log, (m * w_log) * table)
            # σ and the counting rule are chosen: the final model (all training identities) is fitted while the
            # multipliers are ranked, and handed to fit_improved with the choice.
            final = LikelihoodRatioModel(**{**params, "counting": counting, "sigma": sigma}).fit(train)
            collect()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if two_stage and len(scales) > 1:
        per = pd.DataFrame(rows)
        winner = (per["sigma"] == sigma) & (per["counting"] == counting)
        stage2 = _aggregate(per[winner], keys)
        stage2 = stage2.sort_values("w_scale", kind="stable").reset_index(drop=True)
        best2 = _best(stage2)
        agg = pd.concat([agg.assign(stage=1), stage2.assign(stage=2)], ignore_index=True)
        best = len(agg) - len(stage2) + best2
    else:
        agg = agg.assign(stage=1)
    agg["chosen"] = agg.index == best
    agg.attrs["per_fold"] = pd.DataFrame(rows)
    win = agg.loc[best]
    calibration: dict[str, Any] = {}
    if feats is None:
        w, source = DEFAULT_W, "spread"
    elif w_abs is not None:
        w, source = float(win["w"]), "grid"
    else:
        w_log, calibration["visual"] = calibrate_weight(
            *(np.concatenate(x) for x in zip(*pooled[(counting, sigma)])),
            max_positives=10**12,
            max_negatives=10**12,
        )
        calibration["visual"]["w_logistic"] = w_log
        calibration["visual"]["w_scale"] = float(win["w_scale"])
        w, source = w_log * float(win["w_scale"]), "calibrated"
    w_rr = None
    if rerank and feats is None:
        w_rr = DEFAULT_W_RERANK
    elif rerank:
        winners = [models[(f, counting, sigma)] for f in range(len(fold_data))]
        w_rr, calibration["rerank"], rr_table = _select_w_rerank(fold_data, winners, scales, w_abs)
        agg.attrs["rerank"] = rr_table
    protocol = {
        "n_folds": int(n_folds),
        "seed": int(seed),
        "criterion": "mean validation mAP, then R1",
        "grid": {
            "sigma": sigmas,
            "counting": countings,
            "w": None if w_abs is None else [float(x) for x in w_abs],
            "w_scale": scales,
        },
        "score": "ST evidence only" if feats is None else "s + w*logLR",
        "st_params": params,
    }
    choice = Choice(sigma, counting, float(w), None if w_rr is None else float(w_rr), source, calibration, protocol)
    choice.final_model = final
    return choice, agg


#: Multipliers of the logistic weight tried by the selection protocol (see :func:`select_hyperparameters`).
DEFAULT_W_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)


def _aggregate(per_fold: Any, keys: list[str]) -> Any:
    """Mean (and sd) of validation R1/mAP over folds per candidate, in grid order."""
    return (
        per_fold.groupby(keys, sort=False, dropna=False)
        .agg(
            **({"w": ("w", "mean")} if "w" not in keys else {}),
            R1=("R1", "mean"),
            mAP=("mAP", "mean"),
            R1_sd=("R1", "std"),
            mAP_sd=("mAP", "std"),
        )
        .reset_index()
    )


def _dense_table(table: np.ndarray) -> np.ndarray:
    """The dense rank (int32) of every value of a lookup table: same order and ties as the values.

    ST-only validation scores are read from this table instead of the logLR one: the metrics are identical,
    and integer scores take the metrics' keyed path, which resolves the many exact ties in one pass.
    """
    _, inv = np.unique(table, return_inverse=True)
    return inv.reshape(table.shape).astype(np.int32)


def _best(agg: Any) -> int:
    """Index of the best candidate: highest mean mAP, then R1, then the earliest in grid order."""
    order = np.lexsort((np.arange(len(agg)), -agg["R1"].to_numpy(), -agg["mAP"].to_numpy()))
    return int(agg.index[order[0]])


def _select_w_rerank(
    fold_data: list[_Fold], models: list[LikelihoodRatioModel], scales: Sequence[float], w_abs: Sequence[float] | None
) -> tuple[float, dict[str, Any], Any]:
    """w_rerank for ``-d_rr + w·logLR``: logistic scale × multiplier (or an absolute grid) by validation mAP.

    ``models``: per fold, the winning likelihood-ratio model fitted on the fold's training identities.
    """
    import pandas as pd

    rows, pooled = [], []
    for f, (fd, model) in enumerate(zip(fold_data, models, strict=True)):
        llr = model.lookup_table().take(fd.idx)
        d_rr = _rerank_distance(fd.fq, fd.fg)
        sample = (-d_rr.reshape(-1)[fd.pidx], llr.reshape(-1)[fd.pidx], fd.psame)
        pooled.append(sample)
        if w_abs is not None:
            cands = [(math.nan, float(w)) for w in w_abs]
        else:
            w_log, _ = calibrate_weight(*sample)
            cands = [(m, m * w_log) for m in scales]
        for m, w in cands:
            summ = fd.summary_of(w * llr - d_rr)
            rows.append({"fold": f, "w_scale": m, "w": w, "R1": summ["R1"], "mAP": summ["mAP"]})
    per_fold = pd.DataFrame(rows)
    key = "w" if w_abs is not None else "w_scale"
    agg = (
        per_fold.groupby(key, sort=False)
        .agg(**({"w": ("w", "mean")} if key != "w" else {}), R1=("R1", "mean"), mAP=("mAP", "mean"))
        .reset_index()
    )
    best = _best(agg)
    agg["chosen"] = agg.index == best
    if w_abs is not None:
        return float(agg.loc[best, "w"]), {"w_source": "grid"}, agg
    w_log, info = calibrate_weight(
        *(np.concatenate(x) for x in zip(*pooled)), max_positives=10**12, max_negatives=10**12
    )
    info.update(w_logistic=w_log, w_scale=float(agg.loc[best, "w_scale"]))
    return w_log * float(agg.loc[best, "w_scale"]), info, agg


def _st_params(train: Metadata, st_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Bins/cameras/overflow (and priors) for the likelihood-ratio model; n_cams at least the training cameras."""
    allowed = set(LikelihoodRatioModel().get_params()) - {"sigma", "counting"}
    params = dict(st_params or {})
    bad = set(params) - allowed
    if bad:
        raise ImprovedError(f"st_params: unknown or grid-chosen keys {sorted(bad)}; allowed: {sorted(allowed)}")
    params.setdefault("n_cams", max(8, train.n_cams))
    return params


# ----------------------------------------------------------------------------------------------------------------
# The fitted improved mode and its rows


@dataclass
class ImprovedModel:
    """The improved mode, ready to score: the likelihood-ratio model fitted on all training identities + weights."""

    lr: LikelihoodRatioModel
    w: float
    w_rerank: float | None
    choice: Choice
    validation: Any = None

    def provenance(self) -> dict[str, Any]:
        """Everything needed to reproduce the scores (JSON-able)."""
        return {"choice": self.choice.as_dict(), "st_model": self.lr.fit_info()}


def fit_improved(
    train: Metadata,
    train_features: np.ndarray | None = None,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    n_folds: int = 2,
    seed: int = 0,
    rerank: bool = False,
    st_params: Mapping[str, Any] | None = None,
) -> ImprovedModel:
    """Run :func:`select_hyperparameters` and fit the chosen likelihood-ratio model on all training identities."""
    choice, table = select_hyperparameters(
        train, train_features, grid, n_folds=n_folds, seed=seed, rerank=rerank, st_params=st_params
    )
    params = {**choice.protocol["st_params"], "sigma": choice.sigma, "counting": choice.counting}
    lr = choice.final_model
    if lr is None or lr.get_params() != LikelihoodRatioModel(**params).get_params():
        lr = LikelihoodRatioModel(**params).fit(train)
    return ImprovedModel(lr, choice.w, choice.w_rerank, choice, table)


def st_params_from(model: SpatialTemporalModel) -> dict[str, Any]:
    """The bins, cameras, truncation and overflow policy of a faithful model (so improved uses the same ones)."""
    p = model.get_params()
    return {k: p[k] for k in ("bin_width", "n_bins", "n_cams", "truncate", "overflow")}


def score_spread(qn: np.ndarray, gnT: np.ndarray, n_sample: int = 256) -> float:
    """σ_s: median over (up to ``n_sample`` evenly spaced) queries of the standard deviation of a cosine row.

    Args:
        qn: (nq, D) L2-normalised query features; gnT: (D, ng) L2-normalised gallery features, transposed.
    Uses no labels; deterministic.
    """
    idx = np.unique(np.linspace(0, len(qn) - 1, min(len(qn), int(n_sample))).astype(np.int64))
    return float(np.median((qn[idx] @ gnT).std(axis=1)))


def _chunked_result(fs: FeatureSet, score_chunk: Callable[[slice], np.ndarray], chunk_size: int, protocol: Any) -> Any:
    """Rank ``score_chunk(rows)`` ((c, n_kept) scores on ``protocol.columns``) chunk by chunk of queries.

    As the faithful rows (:func:`streid_lib.evaluation.rank_rows`): with 2 CPUs a worker thread ranks chunk i while
    chunk i+1 is scored; the chunks reach the accumulator in query order, so the figures do not depend on it.
    """
    from .metrics import MetricAccumulator, iter_row_chunks

    acc = MetricAccumulator(fs.gallery, protocol=protocol)
    slices = iter_row_chunks(len(fs.query), int(chunk_size))
    if _threads() == 1:
        for sl in slices:
            acc.update(score_chunk(sl), chunk=protocol.chunk(fs.query.take(sl), sl.start))
        return acc.result()
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for sl in slices:
            scores, chunk = score_chunk(sl), protocol.chunk(fs.query.take(sl), sl.start)
            if pending is not None:
                pending.result()
            pending = pool.submit(acc.update, scores, chunk=chunk)
        if pending is not None:
            pending.result()
    return acc.result()


def improved_results(
    fs: FeatureSet,
    fitted: ImprovedModel,
    rerank: bool = False,
    *,
    chunk_size: int = 256,
    lr: LikelihoodRatioModel | None = None,
    w: float | None = None,
    info: dict | None = None,
) -> dict[str, Any]:
    """RankingResults of ``improved`` (and ``improved+re-rank``) on a FeatureSet, chunked over queries.

    ``lr``/``w`` override the fitted model's (for ablations; ``w`` is then the weight itself). With the spread rule
    (no training features) the weight is ``fitted.w`` times :func:`score_spread`; ``info`` receives the weights
    used (``w_effective``, ``w_rerank_effective``). Scores are float32 (the precision of the cosine). Memory:
    O(chunk × gallery), plus the N×N re-ranking matrix when ``rerank``.
    """
    from .joint import normalize_rows
    from .metrics import RankingProtocol

    lr = fitted.lr if lr is None else lr
    table = lr.lookup_table()
    # Only the gallery items that can take part in a ranking are scored (pid -1 items are junk for every query),
    # as in the faithful rows: the figures are the same, the work smaller.
    protocol = RankingProtocol(fs.gallery)
    cols = protocol.columns
    qc, qf = fs.query.cams[:, None], fs.query.frames[:, None]
    gc, gf = fs.gallery.cams[None, cols], fs.gallery.frames[None, cols]
    qn, gn = normalize_rows(fs.query_f), normalize_rows(fs.gallery_f)
    gnT = np.ascontiguousarray(gn.T)
    spread_rule = fitted.choice.w_source == "spread"
    if w is None:
        w = fitted.w * score_spread(qn, gnT) if spread_rule else fitted.w
    w = float(w)
    if info is not None:
        info["w_effective"] = w
    # Scale the small table once, not every pair. float32 like s: the metrics rank float32 in one pass, and the
    # cosine itself carries only float32 precision.
    w_table = (w * table).astype(np.float32)

    def improved_chunk(sl: slice) -> np.ndarray:
        # The GEMM runs on the whole gallery, then keeps the columns: a GEMM on the kept columns alone may round
        # differently (1 ulp), which would move near-ties and change the figures in the 8th digit.
        return np.take(qn[sl] @ gnT, cols, axis=1) + w_table.take(lr.lookup_index(qc[sl], qf[sl], gc, gf))

    out = {"improved": _chunked_result(fs, improved_chunk, chunk_size, protocol)}
    if rerank:
        d_rr = _rerank_distance(fs.query_f, fs.gallery_f)
        w_rr = fitted.w_rerank if fitted.w_rerank is not None else DEFAULT_W_RERANK
        if spread_rule:
            w_rr = w_rr * float(np.median(d_rr.std(axis=1)))
        if info is not None:
            info["w_rerank_effective"] = float(w_rr)
        rr_table = (w_rr * table).astype(np.float32)

        def rerank_chunk(sl: slice) -> np.ndarray:
            return rr_table.take(lr.lookup_index(qc[sl], qf[sl], gc, gf)) - np.take(d_rr[sl], cols, axis=1)

        out["improved+re-rank"] = _chunked_result(fs, rerank_chunk, chunk_size, protocol)
    return out


def improved_rows(
    fs: FeatureSet,
    train: Metadata,
    rerank: bool = False,
    *,
    train_features: np.ndarray | None = None,
    fitted: ImprovedModel | None = None,
    st_params: Mapping[str, Any] | None = None,
    base: SpatialTemporalModel | None = None,
    chunk_size: int = 256,
    info: dict | None = None,
    **select_kw: Any,
) -> dict[str, dict[str, float]]:
    """Rows ``improved`` (and with ``rerank`` ``improved+re-rank``) for ``evaluate --mode improved``.

    The hyperparameters come from :func:`fit_improved` on ``train`` (and ``train_features`` if given) — never from
    fs's query/gallery data — unless a ready ``fitted`` model is passed. Bins/cameras/overflow follow ``base`` (the
    faithful model of the same evaluation) or ``st_params``; the defaults are faithful's (5000 bins of 100 frames).

    Returns:
        {row: {"R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"}} in percent. ``info`` (if given) receives the
        provenance (choice, validation table as records, ST-model fit info).
    """
    if fitted is None:
        if st_params is None and base is not None:
            st_params = st_params_from(base)
        fitted = fit_improved(train, train_features, rerank=rerank, st_params=st_params, **select_kw)
    used: dict[str, float] = {}
    results = improved_results(fs, fitted, rerank, chunk_size=chunk_size, info=used)
    if info is not None:
        info.update(fitted.provenance())
        info.update(used)
        if fitted.validation is not None:
            info["validation"] = fitted.validation.to_dict(orient="records")
    return {row: res.summary() for row, res in results.items()}


# ----------------------------------------------------------------------------------------------------------------
# Notebook helpers: ablations and bootstrap confidence intervals


def ablation_table(
    fs: FeatureSet,
    train: Metadata,
    *,
    train_features: np.ndarray | None = None,
    fitted: ImprovedModel | None = None,
    faithful: SpatialTemporalModel | None = None,
    rerank: bool = False,
    sigmas: Sequence[float] | None = None,
    chunk_size: int = 256,
    **select_kw: Any,
) -> Any:
    """Faithful vs improved on a FeatureSet, and what each ingredient brings (one DataFrame row per variant).

    Variants (each changes one thing of the chosen improved model; w stays the chosen one): the other counting
    rule, no direction prior, no camera-pair prior, no background (likelihood only), per-direction smoothing,
    other σ, fusion with w = 1 and with the spread rule (:data:`DEFAULT_W`), the ST evidence alone; and with
    ``rerank``: faithful st-ReID+re-rank (joint score re-ranked), improved+re-rank (visual re-ranked, then ST
    added) and re-ranking the improved fused score. Test labels only *evaluate* the variants here; the chosen
    model comes from training identities.

    Returns:
        DataFrame: variant, ingredient, R1, R5, mAP, mINP (percent), dR1, dmAP (vs faithful st-ReID).
        ``df.attrs["results"]`` maps variant → RankingResult (for :func:`bootstrap_difference`),
        ``df.attrs["choice"]`` the chosen hyperparameters.
    """
    import pandas as pd

    from .joint import JointMetric, iter_score_chunks
    from .metrics import MetricAccumulator

    params = st_params_from(faithful) if faithful is not None else select_kw.pop("st_params", None)
    if fitted is None:
        fitted = fit_improved(train, train_features, rerank=rerank, st_params=params, **select_kw)
    if faithful is None:
        p = fitted.lr.get_params()
        faithful = SpatialTemporalModel(
            **{k: p[k] for k in ("bin_width", "n_bins", "n_cams", "truncate", "overflow")}
        ).fit(train)
    results: dict[str, Any] = {}
    ingredient: dict[str, str] = {}

    accs = {r: MetricAccumulator(fs.gallery) for r in ("VIS", "st-ReID")}
    for sl, sc in iter_score_chunks(fs, faithful, JointMetric(), ("VIS", "st-ReID"), chunk_size):
        for r, acc in accs.items():
            acc.update(sc[r], fs.query.take(sl))
    results["VIS"], ingredient["VIS"] = accs["VIS"].result(), "visual only"
    results["faithful"], ingredient["faithful"] = accs["st-ReID"].result(), "paper/code joint metric (σ=50)"

    def add(name: str, what: str, **kw: Any) -> None:
        results[name] = improved_results(fs, fitted, chunk_size=chunk_size, **kw)["improved"]
        ingredient[name] = what

    from .joint import normalize_rows

    lr = fitted.lr
    spread = score_spread(normalize_rows(fs.query_f), normalize_rows(fs.gallery_f).T)
    w_eff = fitted.w * spread if fitted.choice.w_source == "spread" else fitted.w
    add("improved", f"chosen: {fitted.choice.counting}, σ={lr.sigma:g}, w={w_eff:.4g} ({fitted.choice.w_source})")
    other = [c for c in COUNTING_MODES if c != lr.counting]
    for c in other:
        add(f"counting={c}", "counting rule", lr=LikelihoodRatioModel(**{**lr.get_params(), "counting": c}).fit(train))
    add("no direction prior", "direction prior", lr=lr.with_params(direction_prior=False))
    add("no camera-pair prior", "camera-pair prior", lr=lr.with_params(pair_prior=False))
    add("no background", "likelihood ratio vs likelihood", lr=lr.with_params(background=False))
    add("per-direction smoothing", "smoothing across Δt=0", lr=lr.with_params(across_zero=False))
    for sg in sigmas if sigmas is not None else fitted.choice.protocol["grid"]["sigma"]:
        if float(sg) != float(lr.sigma):
            add(f"σ={float(sg):g}", "bandwidth σ (bins)", lr=lr.with_params(sigma=float(sg)))
    add("w=1", "fusion weight (uncalibrated Bayes)", w=1.0)
    if fitted.choice.w_source != "spread":
        w_spread = DEFAULT_W * spread
        add(f"w={w_spread:.3g} (spread rule)", "fusion weight without training features", w=w_spread)
    add("ST evidence only", "fusion (no visual)", w=1e6)  # ranking by logLR; s only breaks ties
    if rerank:
        from .rerank import rerank_rows

        rr = rerank_rows(fs, faithful, JointMetric(), progress=False)
        results["faithful+re-rank"] = rr["st-ReID+re-rank"]
        ingredient["faithful+re-rank"] = "re-rank the joint score (reference §6)"
        results["VIS+re-rank"] = rr["VIS+re-rank"]
        ingredient["VIS+re-rank"] = "re-rank the visual distance, no ST"
        results["improved+re-rank"] = improved_results(fs, fitted, True, chunk_size=chunk_size)["improved+re-rank"]
        ingredient["improved+re-rank"] = "re-rank visual distance, then add w_rr·logLR"
        results["re-rank improved score"] = _rerank_fused(fs, fitted, w_eff)
        ingredient["re-rank improved score"] = "re-ranking order: fuse first, then re-rank (2 - 2·score)"

    base_s = results["faithful"].summary()
    table = []
    for name, res in results.items():
        sm = res.summary()
        table.append(
            {
                "variant": name,
                "ingredient": ingredient[name],
                "R1": sm["R1"],
                "R5": sm["R5"],
                "mAP": sm["mAP"],
                "mINP": sm["mINP"],
                "dR1": sm["R1"] - base_s["R1"],
                "dmAP": sm["mAP"] - base_s["mAP"],
            }
        )
    df = pd.DataFrame(table)
    df.attrs["results"] = results
    df.attrs["choice"] = fitted.choice.as_dict()
    return df


def _rerank_fused(fs: FeatureSet, fitted: ImprovedModel, w: float) -> Any:
    """Re-rank the improved fused score over query+gallery (d = 2 - 2·score), the faithful re-ranking order."""
    from .joint import normalize_rows
    from .metrics import evaluate_scores
    from .rerank import rerank_scores

    meta = Metadata.concat([fs.query, fs.gallery])
    allf = normalize_rows(np.concatenate([fs.query_f, fs.gallery_f], axis=0))
    n = len(meta)
    score = np.empty((n, n), np.float32)  # filled in row blocks: peak memory N² float32 + one block
    w_table = w * fitted.lr.lookup_table()
    for a in range(0, n, 1024):
        b = min(a + 1024, n)
        idx = fitted.lr.lookup_index(meta.cams[a:b, None], meta.frames[a:b, None], meta.cams[None], meta.frames[None])
        score[a:b] = allf[a:b] @ allf.T + w_table.take(idx)
    d = np.asarray(rerank_scores(score, len(fs.query), progress=False))
    return evaluate_scores(-d, fs.query, fs.gallery)


def bootstrap_difference(result_a: Any, result_b: Any, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Any:
    """Paired bootstrap over queries of ``b - a`` in R1, mAP and mINP (percentage points).

    Both results must come from the same queries in the same order. Queries are resampled with replacement
    (seeded), the same resample for a and b; the interval is the percentile interval at ``level``.

    Returns:
        DataFrame: metric, a, b, diff, ci_low, ci_high, p_boot (two-sided bootstrap fraction of resamples whose
        difference has the other sign than ``diff``, doubled, capped at 1), n_boot.
    """
    import pandas as pd

    if len(result_a.ap) != len(result_b.ap) or not np.array_equal(result_a.n_good, result_b.n_good):
        raise ImprovedError(
            f"bootstrap_difference: the results cover different queries ({len(result_a.ap)} vs {len(result_b.ap)} "
            "queries, or other good-item counts); compare results of the same query set"
        )
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1) or not 0 < level < 1:
        raise ImprovedError(f"n_boot >= 1 and 0 < level < 1 expected, got n_boot={n_boot!r}, level={level!r}")
    nq = len(result_a.ap)
    per = {
        "R1": ((result_a.first_hit == 0).astype(np.float64), (result_b.first_hit == 0).astype(np.float64)),
        "mAP": (np.asarray(result_a.ap, np.float64), np.asarray(result_b.ap, np.float64)),
        "mINP": (np.asarray(result_a.inp, np.float64), np.asarray(result_b.inp, np.float64)),
    }
    rng = np.random.default_rng(seed)
    # Resample counts (multinomial) instead of index matrices: memory O(n_boot × nq) ints, one matmul per metric.
    counts = rng.multinomial(nq, np.full(nq, 1.0 / nq), size=int(n_boot)).astype(np.float64)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    rows = []
    for metric, (a, b) in per.items():
        d = b - a
        boot = 100.0 * (counts @ d) / nq
        diff = 100.0 * float(d.mean())
        other = float(np.mean(boot <= 0)) if diff > 0 else float(np.mean(boot >= 0)) if diff < 0 else 1.0
        rows.append(
            {
                "metric": metric,
                "a": 100.0 * float(a.mean()),
                "b": 100.0 * float(b.mean()),
                "diff": diff,
                "ci_low": float(np.percentile(boot, lo_q)),
                "ci_high": float(np.percentile(boot, hi_q)),
                "p_boot": min(1.0, 2.0 * other),
                "n_boot": int(n_boot),
            }
        )
    return pd.DataFrame(rows)


def colour_histogram_campus(root: Any, **colour_kw: Any) -> tuple[FeatureSet, Metadata, np.ndarray]:
    """Colour-histogram features of a dataset root **with** its training images' features (for calibration).

    Query/gallery features are :func:`streid_lib.colour_histogram.colour_histogram_features` (``colour_kw`` are
    passed on); the training features are computed with the parameters recorded in its provenance, centred the
    same way (``center`` None or ``"train"``), and checked against the first query features.

    Returns:
        (FeatureSet, training metadata, (N_train, D) float32 training features aligned with it).
    """
    import inspect
    from pathlib import Path

    from .colour_histogram import _renorm, colour_histogram_features, histogram_features, load_images
    from .metadata import SPLIT_FOLDERS, read_dataset_root

    root = Path(root)
    fs = colour_histogram_features(root, **colour_kw)
    prov = fs.provenance
    names = set(inspect.signature(histogram_features).parameters) - {"images"}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in prov.items() if k in names}
    center = prov.get("center")
    if center not in (None, "train"):
        raise ImprovedError(f"center={center!r}: training features can be reproduced for center None or 'train'")
    splits = read_dataset_root(root)

    def raw(split: str, names_: Any) -> np.ndarray:
        folder = root / SPLIT_FOLDERS[split]
        return histogram_features(load_images([folder / n for n in names_]), **kw)

    train_raw = raw("train", splits.train.names)
    mean = train_raw.mean(axis=0) if center == "train" else None
    train_f = train_raw if mean is None else _renorm(train_raw - mean)
    check = raw("query", splits.query.names[:4])
    check = check if mean is None else _renorm(check - mean)
    if not np.allclose(check, fs.query_f[:4], atol=1e-5):
        raise ImprovedError(
            "colour_histogram_campus: recomputed query features disagree with colour_histogram_features; "
            "its parameters are not all recorded in the provenance"
        )
    return fs, splits.train, train_f
