"""The ST log-likelihood ratio ``logLR = log((1 - ρ)·p_same/p_diff + ρ)`` (nats) per ordered camera pair and gap bin.

Counting rules, background, smoothing across Δt = 0, direction and camera-pair priors, and where the evidence is 0:
docs/reference.md §12.1. ``background=False`` (an ablation, "likelihood instead of likelihood ratio") divides by a
flat background over the co-observed pairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._params import BaseEstimator, json_params
from ..metadata import Metadata
from ..st_model import SpatialTemporalModel
from .config import COUNTINGS, DEFAULT_OUTLIER, ImprovedError
from .counting import PairHistograms, pair_histograms

#: Parameters shared with the faithful model (bins, cameras, kernel truncation, overflow policy).
SHARED_PARAMS: tuple[str, ...] = ("bin_width", "n_bins", "n_cams", "truncate", "overflow")
#: Parameters that :meth:`LikelihoodRatioModel.with_params` may change without counting again.
SMOOTHING_PARAMS: frozenset[str] = frozenset(
    {"sigma", "truncate", "direction_prior", "pair_prior", "background", "across_zero", "outlier"}
)


# ----------------------------------------------------------------------------------------------------------------
# Smoothing and normalisation


def _parzen(rows: np.ndarray, sigma: float, truncate: float) -> np.ndarray:
    """Correlate (n, L) rows with faithful's truncated Gaussian (:func:`~streid_lib.st_model.gaussian_kernel`),
    zero outside the array (no border correction), without normalising.

    Long kernels (σ of a few bins and more) go through an FFT; its rounding noise (~1e-16 of a row's mass) is set
    to exactly 0 outside the kernel's reach of the non-empty bins, so empty regions stay empty as with the direct
    correlation.
    """
    from scipy.ndimage import correlate1d
    from scipy.signal import fftconvolve

    from ..st_model import gaussian_kernel

    kernel = gaussian_kernel(sigma, truncate)
    if len(kernel) <= 33:
        return correlate1d(rows, kernel, axis=-1, mode="constant", cval=0.0)
    out = fftconvolve(rows, kernel[None, :], mode="same", axes=1)
    radius = len(kernel) // 2
    occupied = np.cumsum(rows > 0, axis=1)
    L = rows.shape[1]
    hi = occupied[:, np.minimum(np.arange(L) + radius, L - 1)]
    lo = np.where(np.arange(L) - radius - 1 >= 0, occupied[:, np.maximum(np.arange(L) - radius - 1, 0)], 0)
    out[(hi - lo) == 0] = 0.0
    np.maximum(out, 0.0, out=out)
    return out


def _smooth_mass(X: np.ndarray, sigma: float, truncate: float, across_zero: bool) -> np.ndarray:
    """Parzen-smooth (C, C, H) counts along the bins, keeping each pair's mass (counts in, counts out).

    With ``across_zero`` the two directions of a pair form one signed gap axis ``[X[b, a] reversed, X[a, b]]``
    (bin order: ..., b later by bin 0, a later by bin 0, ...), smoothed as one histogram and split back; each
    unordered pair is smoothed once.
    """
    X = np.asarray(X, dtype=np.float64)
    if not sigma > 0:
        return X.copy()
    C, _, H = X.shape
    if across_zero:
        a, b = np.triu_indices(C, k=1)
        rows = np.concatenate([X[b, a, ::-1], X[a, b]], axis=1)  # (pairs, 2H): b later ... | ... a later
    else:
        a, b = np.nonzero(np.ones((C, C), bool))
        rows = X[a, b]
    keep = np.flatnonzero(rows.any(axis=1))
    out = np.zeros_like(X)
    if keep.size:
        r = rows[keep]
        sm = _parzen(r, float(sigma), float(truncate))
        sm *= (r.sum(axis=1) / sm.sum(axis=1))[:, None]  # the mass of every pair is kept
        ka, kb = a[keep], b[keep]
        if across_zero:
            out[ka, kb] = sm[:, H:]
            out[kb, ka] = sm[:, :H][:, ::-1]
        else:
            out[ka, kb] = sm
    return out


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


# ----------------------------------------------------------------------------------------------------------------
# The model


class LikelihoodRatioModel(BaseEstimator):
    """ST log-likelihood ratio ``log p(Δt, a→b | same) / p(Δt, a→b | different)`` per ordered camera pair and bin.

    scikit-learn style: keyword-only parameters here, :meth:`fit` sets the ``*_`` attributes.

    Args:
        bin_width, n_bins, n_cams, truncate, overflow: as :class:`~streid_lib.st_model.SpatialTemporalModel`
            (same bins, same lookup rule, same overflow policy).
        counting: ``"identity"``, ``"image_pairs"`` or ``"weighted_pairs"`` (docs/reference.md §12.1).
        sigma: Parzen kernel width in bins, for both the same and the background histograms.
        direction_prior: normalise the two directions of a pair jointly (keeps which way people walk).
        pair_prior: weight camera pairs by how often one identity is seen in both (vs the background).
        background: divide by the different-identity background; False (ablation) divides by a flat background,
            i.e. uses the likelihood ``p_same`` alone.
        across_zero: smooth both directions as one signed gap axis (False: each direction alone, as faithful).
        outlier: ρ in ``log((1 - ρ)·ratio + ρ)``; the floor of the evidence is ``log ρ``.

    Fitted attributes:
        st_: a faithful :class:`~streid_lib.st_model.SpatialTemporalModel` with the same bins, used for lookups;
            its votes are the same-identity counts for ``"identity"`` and ``"image_pairs"`` (for
            ``"weighted_pairs"`` it counts the same image pairs unweighted).
        same_counts_, diff_counts_: (C, C, H) float64 counts; p_same_, p_diff_: (C, C, H) smoothed, normalised.
        log_lr_: (C, C, H) float64 evidence in nats; observed_: (C, C) bool, pair co-observed by one identity.
        n_identities_, n_overflow_background_: fit statistics.
    """

    def __init__(
        self,
        *,
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

    def _faithful(self) -> SpatialTemporalModel:
        """The faithful model with this model's bins, cameras, σ and overflow policy (its counting for votes)."""
        counting = "image_pairs" if self.counting == "weighted_pairs" else self.counting
        shared = {k: getattr(self, k) for k in SHARED_PARAMS}
        return SpatialTemporalModel(**shared, sigma=self.sigma, counting=counting)

    def fit(self, train: Metadata, *, histograms: PairHistograms | None = None) -> LikelihoodRatioModel:
        """Count same-identity and different-identity gaps on training metadata, then build the evidence table.

        ``histograms``: this rule's :func:`pair_histograms` of the same ``train`` and bins, when computed already
        (the selection computes both image rules in one pass).

        Raises:
            ImprovedError: bad parameters; STModelError (a ValueError) for bad metadata, as faithful's fit.
        """
        if not (isinstance(self.outlier, (int, float)) and 0 < float(self.outlier) < 1):
            raise ImprovedError(f"outlier: expected a fraction in (0, 1), got {self.outlier!r}")
        if self.counting not in COUNTINGS:
            raise ImprovedError(f"counting: expected one of {COUNTINGS}, got {self.counting!r}")
        if not isinstance(train, Metadata):
            raise ImprovedError(f"train: expected streid_lib.metadata.Metadata, got {type(train).__name__}")
        self.st_ = self._faithful().fit(train)  # validates the metadata and the bins first
        if histograms is None:
            bins = {k: getattr(self, k) for k in ("bin_width", "n_bins", "n_cams", "overflow")}
            histograms = pair_histograms(train, countings=(self.counting,), **bins)[self.counting]
        hist = histograms
        # Identity and image-pair votes are the faithful model's own counts (the one copy of that rule).
        self.same_counts_ = hist.same if self.counting == "weighted_pairs" else self.st_.counts_
        self.diff_counts_, self.n_overflow_background_ = hist.diff, hist.n_overflow_diff
        self.n_identities_ = int(np.unique(train.pids).size)
        self._cache: dict[tuple, np.ndarray] = {}
        self._build()
        return self

    def with_params(self, **params: Any) -> LikelihoodRatioModel:
        """A fitted copy with other smoothing/normalisation parameters, reusing the counts (no refit).

        Only :data:`SMOOTHING_PARAMS` may change; counting and bins need :meth:`fit`. Smoothed histograms are
        shared between copies (a change of priors or outlier fraction smooths nothing again).
        """
        bad = set(params) - SMOOTHING_PARAMS
        if bad:
            raise ImprovedError(
                f"with_params: {sorted(bad)} change the counts; refit instead (allowed: {sorted(SMOOTHING_PARAMS)})"
            )
        self._check_fitted()
        new = LikelihoodRatioModel(**{**self.get_params(), **params})
        new.st_ = self.st_  # lookup indices do not depend on the smoothing
        new.same_counts_, new.diff_counts_ = self.same_counts_, self.diff_counts_
        new.n_overflow_background_, new.n_identities_ = self.n_overflow_background_, self.n_identities_
        new._cache = self._cache
        new._build()
        return new

    def _smoothed(self, which: str) -> np.ndarray:
        key = (which, float(self.sigma), float(self.truncate), bool(self.across_zero))
        hit = self._cache.get(key)
        if hit is None:
            counts = self.same_counts_ if which == "same" else self.diff_counts_
            hit = self._cache[key] = _smooth_mass(counts, float(self.sigma), float(self.truncate), self.across_zero)
        return hit

    def _build(self) -> None:
        self.p_same_ = _normalise(self._smoothed("same"), bool(self.direction_prior), bool(self.pair_prior))
        raw_same = self.same_counts_.sum(axis=2)
        self.observed_ = (raw_same + raw_same.T) > 0
        np.fill_diagonal(self.observed_, False)
        if self.background:
            self.p_diff_ = _normalise(self._smoothed("diff"), bool(self.direction_prior), bool(self.pair_prior))
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
        self._ranks = None

    def _check_fitted(self) -> None:
        if getattr(self, "log_lr_", None) is None:
            raise ImprovedError("the likelihood-ratio model is not fitted: call fit(train) first")

    def lookup_table(self) -> np.ndarray:
        """logLR in :meth:`SpatialTemporalModel.lookup_table`'s flat layout (index it with :meth:`lookup_index`)."""
        self._check_fitted()
        return self._table

    def rank_table(self) -> np.ndarray:
        """The dense rank (int32) of every lookup-table value (:func:`streid_lib.joint.st_rank_table`).

        Ranking by these orders and ties every pair exactly as the evidence does. Only co-observed pairs carry
        non-zero evidence (everything else is exactly 0), so the ranks are computed on their values and 0, and
        laid out like the table.
        """
        self._check_fitted()
        if self._ranks is None:
            from ..joint import st_rank_table

            obs = self.observed_
            ranks_of = st_rank_table(np.r_[self.log_lr_[obs].ravel(), 0.0])
            zero = ranks_of[-1]
            ranks = np.full(self.log_lr_.shape, zero, dtype=np.int32)
            ranks[obs] = ranks_of[:-1].reshape(-1, ranks.shape[2])
            C, _, H = ranks.shape
            T = np.full((2, C, C, H + 1), zero, dtype=np.int32)
            T[1, :, :, :H] = ranks
            T[0, :, :, :H] = ranks.transpose(1, 0, 2)
            self._ranks = T.reshape(-1)
        return self._ranks

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
            **json_params(self),
            "n_identities": self.n_identities_,
            "n_same_votes": float(self.same_counts_.sum()),
            "n_background_votes": float(self.diff_counts_.sum()),
            "n_overflow_same": self.st_.n_overflow_votes_,
            "n_overflow_background": self.n_overflow_background_,
            "n_observed_pairs": int(self.observed_.sum()),
            "log_lr_range": [float(finite.min()), float(finite.max())] if finite.size else [0.0, 0.0],
        }
