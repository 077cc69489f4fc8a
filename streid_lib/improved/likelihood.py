"""The ST log-likelihood ratio ``logLR = log((1 - ρ)·p_same/p_diff + ρ)`` (nats) per ordered camera pair and gap
bin, from same- and different-identity time-gap histograms of training unit pairs (docs/reference.md §12.1).

Units: per-(identity, camera) mean frames (``"identity"``, §3.2) or images (``"image_pairs"``, ``"weighted_pairs"``);
votes go to faithful's ``[later, earlier, floor(|Δt| / bin_width)]``, ties counting the higher camera as later (§3.3).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ..joint import st_rank_table
from ..metadata import Metadata
from ..st_model import EPS, SpatialTemporalModel, gaussian_kernel, json_params
from .config import COUNTINGS, DEFAULT_OUTLIER, ImprovedError


def _units(train: Metadata, counting: str, n_cams: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(pid, 0-based cam, time, weight or None) of the units: mean frames ``S / (N + 1e-7)`` (§3.2), or images
    weighted ``1/n`` (n: the identity's images in that camera) for ``"weighted_pairs"``."""
    C = int(n_cams)
    _, ident = np.unique(train.pids, return_inverse=True)
    cell = ident.reshape(-1) * C + (train.cams - 1)
    if counting == "identity":
        n_cells = (int(ident.max()) + 1) * C
        S = np.bincount(cell, weights=train.frames.astype(np.float64), minlength=n_cells)
        N = np.bincount(cell, minlength=n_cells)
        present = np.flatnonzero(N > 0)
        uniq = np.unique(train.pids)
        return uniq[present // C], present % C, S[present] / (N[present] + EPS), None
    weight = 1.0 / np.bincount(cell)[cell] if counting == "weighted_pairs" else None
    # Images in content order (equal units are interchangeable): the float sums do not depend on the input order.
    o = np.lexsort((train.frames, train.cams, train.pids))
    return train.pids[o], train.cams[o] - 1, train.frames[o], (None if weight is None else weight[o])


#: (C, C, H) float64 gap histograms ``[later, earlier, bin]`` of pairs of different (``diff``) and equal (``same``)
#: identities, and the number of different-identity pairs whose gap fell beyond the last bin.
PairHistograms = namedtuple("PairHistograms", "diff same n_overflow_diff")


def pair_histograms(
    train: Metadata,
    *,
    countings: tuple[str, ...] = ("identity",),
    bin_width: int = 100,
    n_bins: int = 5000,
    n_cams: int = 8,
    overflow: str = "zero",
    max_block: int = 262_144,
) -> dict[str, PairHistograms]:
    """{counting rule: :class:`PairHistograms`} over every pair of units in two cameras (weight ``w_a·w_b`` for
    ``"weighted_pairs"``), counted in blocks of at most ``max_block`` pairs; the few same-identity pairs are enumerated
    apart and subtracted. Overflowing gaps: dropped (``"zero"``), last bin (``"clip"``) or an error (``"error"``)."""
    bad = [c for c in countings if c not in COUNTINGS]
    if bad or not countings:
        raise ImprovedError(f"counting: expected rules from {COUNTINGS}, got {tuple(countings)}")
    C, H, bw = int(n_cams), int(n_bins), int(bin_width)
    out: dict[str, PairHistograms] = {}
    if "identity" in countings:
        pid, cam, t, _ = _units(train, "identity", C)
        out.update(_histograms(pid, cam, t, {"identity": None}, C, H, bw, overflow, max_block, integer=False))
    image = [c for c in countings if c != "identity"]
    if image:
        pid, cam, t, weight = _units(train, "weighted_pairs", C)
        weights = {c: (weight if c == "weighted_pairs" else None) for c in image}
        out.update(_histograms(pid, cam, t, weights, C, H, bw, overflow, max_block, integer=True))
    return out


def _slots(d: np.ndarray, H: int, bw: int, integer: bool, overflow: str) -> tuple[np.ndarray, np.ndarray]:
    """Slots in [0, 2H] of time differences ``d = t_j - t_k`` (b: j later, H + b: k later, 2H: dropped) and the
    overflow mask; ``"clip"`` puts overflows in the last bin."""
    b = (np.abs(d) / float(bw)).astype(np.int64) if not integer else np.abs(d) // bw  # floor of |Δ| / w
    over = b >= H
    if overflow == "clip":
        np.minimum(b, H - 1, out=b)
    np.add(b, H, out=b, where=d <= 0)  # equal times: k, the higher camera, is later (faithful)
    if overflow != "clip":
        b[over] = 2 * H
    return b, over


def _histograms(
    pid: np.ndarray, cam: np.ndarray, t: np.ndarray, weights: dict[str, np.ndarray | None], C: int, H: int,
    bw: int, overflow: str, max_block: int, integer: bool,
) -> dict[str, PairHistograms]:  # fmt: skip
    """The pass of :func:`pair_histograms` over one kind of units, for several weightings."""
    L = 2 * H + 1
    # Same-identity pairs (j < k), from a self-join within each identity: few, counted exactly.
    order = np.argsort(pid, kind="stable")
    starts = np.flatnonzero(np.r_[True, pid[order][1:] != pid[order][:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    rep = np.repeat(sizes, sizes)
    a = np.repeat(np.arange(len(order)), rep)
    b = np.repeat(np.repeat(starts, sizes), rep) + (np.arange(a.size) - np.repeat(np.cumsum(rep) - rep, rep))
    a, b = order[a], order[b]
    keep = cam[a] < cam[b]
    a, b = a[keep], b[keep]
    s_slot, s_over = _slots(t[a] - t[b], H, bw, integer, overflow)
    s_flat = (cam[a] * C + cam[b]) * L + s_slot
    s_over_pair = np.bincount(cam[a] * C + cam[b], weights=s_over, minlength=C * C).reshape(C, C)
    all_h = {name: np.zeros((C, C, L)) for name in weights}
    over_pair = np.zeros((C, C), np.int64)
    groups = [np.flatnonzero(cam == c) for c in range(C)]
    for j in range(C):
        for k in range(j + 1, C):
            gj, gk = groups[j], groups[k]
            if gj.size == 0 or gk.size == 0:
                continue
            tk = t[gk]
            step = max(1, int(max_block) // gk.size)
            for s0 in range(0, gj.size, step):
                rows = gj[s0 : s0 + step]
                slot, over = _slots(t[rows, None] - tk[None, :], H, bw, integer, overflow)
                over_pair[j, k] += int(over.sum())
                flat = slot.reshape(-1)
                for name, w in weights.items():
                    wb = None if w is None else (w[rows, None] * w[None, gk]).reshape(-1)
                    all_h[name][j, k] += np.bincount(flat, weights=wb, minlength=L)
    n_over_diff = over_pair - s_over_pair.astype(np.int64)
    if overflow == "error" and (n_over_diff > 0).any():
        j, k = np.argwhere(n_over_diff > 0)[0]
        raise ImprovedError(
            f"a time gap between different identities (cameras {j + 1} and {k + 1}) falls beyond the last bin "
            f"{H - 1} (n_bins={H}, bin_width={bw}); raise n_bins or use overflow='zero'/'clip'"
        )
    out = {}
    for name, w in weights.items():
        same = np.bincount(s_flat, weights=None if w is None else w[a] * w[b], minlength=C * C * L).reshape(C, C, L)
        diff = all_h[name] - same
        if w is not None:  # weighted sums: clear the rounding residue of the subtraction (weights are >= 1e-8)
            diff[diff < 1e-9] = 0.0
        out[name] = PairHistograms(
            _layout(diff[:, :, : 2 * H], H), _layout(same[:, :, : 2 * H].astype(np.float64), H),
            int(n_over_diff.sum()),
        )  # fmt: skip
    return out


def _layout(counts: np.ndarray, H: int) -> np.ndarray:
    """(C, C, 2H) [j, k] halves (j later | k later) → faithful's (C, C, H) ``[later, earlier, bin]``."""
    C = counts.shape[0]
    out = np.zeros((C, C, H), dtype=np.float64)
    j, k = np.triu_indices(C, k=1)
    out[j, k] = counts[j, k, :H]
    out[k, j] = counts[j, k, H:]
    return out


#: Parameters shared with the faithful model (bins, cameras, kernel truncation, overflow policy).
SHARED_PARAMS: tuple[str, ...] = ("bin_width", "n_bins", "n_cams", "truncate", "overflow")
#: Parameters that :meth:`LikelihoodRatioModel.with_params` may change without counting again.
SMOOTHING_PARAMS: frozenset[str] = frozenset(
    {"sigma", "truncate", "direction_prior", "pair_prior", "background", "across_zero", "outlier"}
)


def _parzen(rows: np.ndarray, sigma: float, truncate: float) -> np.ndarray:
    """Correlate (n, L) rows with faithful's truncated Gaussian, zero outside the array, unnormalised. Long kernels
    go through an FFT whose rounding noise is zeroed beyond the kernel's reach of non-empty bins (empty stays empty)."""
    from scipy.ndimage import correlate1d
    from scipy.signal import fftconvolve

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
    """Parzen-smooth (C, C, H) counts along the bins keeping each pair's mass; with ``across_zero`` both directions
    of a pair form one signed gap axis ``[X[b, a] reversed, X[a, b]]``, smoothed once and split back."""
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
    """``p = X / n_dir · [n_dir / n_pair] · [n_pair / N]``, 0 where empty; a bracket (prior) left out is 1/2 for the
    direction, 1 for the pair."""
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


def _lookup_layout(x: np.ndarray, fill: float) -> np.ndarray:
    """(C, C, H) values in faithful's flat lookup layout ``[later side, x, y, bin]``; slot H (overflow): ``fill``."""
    C, _, H = x.shape
    T = np.full((2, C, C, H + 1), fill, dtype=x.dtype)
    T[1, :, :, :H] = x
    T[0, :, :, :H] = x.transpose(1, 0, 2)
    return T.reshape(-1)


class LikelihoodRatioModel(BaseEstimator):
    """ST evidence ``log p(Δt, a→b | same) / p(Δt, a→b | different)`` per ordered camera pair and bin (§12.1).

    Bins, lookup and overflow as :class:`~streid_lib.st_model.SpatialTemporalModel` (``st_``, fitted with the same
    bins, gives the lookups and the identity/image-pair votes). ``sigma``: Parzen width (bins); ``direction_prior``,
    ``pair_prior``: keep those priors; ``background=False``: a flat background (the likelihood alone);
    ``across_zero``: smooth both directions as one signed axis; ``outlier``: ρ. Fitted: ``same_counts_``,
    ``diff_counts_``, ``p_same_``, ``p_diff_``, ``log_lr_`` (C, C, H) float64, ``observed_`` (C, C) bool.
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

    def fit(self, train: Metadata, *, histograms: PairHistograms | None = None) -> LikelihoodRatioModel:
        """Count same- and different-identity gaps of ``train`` (or take this rule's ``histograms`` of the same
        data and bins), then build the evidence table."""
        if not (isinstance(self.outlier, (int, float)) and 0 < float(self.outlier) < 1):
            raise ImprovedError(f"outlier: expected a fraction in (0, 1), got {self.outlier!r}")
        if self.counting not in COUNTINGS:
            raise ImprovedError(f"counting: expected one of {COUNTINGS}, got {self.counting!r}")
        if not isinstance(train, Metadata):
            raise ImprovedError(f"train: expected streid_lib.metadata.Metadata, got {type(train).__name__}")
        # The faithful model with the same bins (weighted pairs: unweighted image pairs) validates the metadata and
        # bins first, gives the lookups and its identity and image-pair votes (the one copy of that rule).
        counting = "image_pairs" if self.counting == "weighted_pairs" else self.counting
        shared = {k: getattr(self, k) for k in SHARED_PARAMS}
        self.st_ = SpatialTemporalModel(**shared, sigma=self.sigma, counting=counting).fit(train)
        if histograms is None:
            bins = {k: shared[k] for k in ("bin_width", "n_bins", "n_cams", "overflow")}
            histograms = pair_histograms(train, countings=(self.counting,), **bins)[self.counting]
        self.same_counts_ = histograms.same if self.counting == "weighted_pairs" else self.st_.counts_
        self.diff_counts_, self.n_overflow_background_ = histograms.diff, histograms.n_overflow_diff
        self.n_identities_ = int(np.unique(train.pids).size)
        self._cache: dict[tuple, np.ndarray] = {}
        self._build()
        return self

    def with_params(self, **params: Any) -> LikelihoodRatioModel:
        """A fitted copy with other :data:`SMOOTHING_PARAMS`, sharing the counts and smoothed histograms (no refit)."""
        if bad := set(params) - SMOOTHING_PARAMS:
            raise ImprovedError(
                f"with_params: {sorted(bad)} change the counts; refit instead (allowed: {sorted(SMOOTHING_PARAMS)})"
            )
        self._check_fitted()
        new = LikelihoodRatioModel(**{**self.get_params(), **params})
        for k in ("st_", "same_counts_", "diff_counts_", "n_overflow_background_", "n_identities_", "_cache"):
            setattr(new, k, getattr(self, k))  # lookups and counts do not depend on the smoothing
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
        self._table = _lookup_layout(self.log_lr_, 0.0)
        self._ranks = None

    def _check_fitted(self) -> None:
        if getattr(self, "log_lr_", None) is None:
            raise ImprovedError("the likelihood-ratio model is not fitted: call fit(train) first")

    def lookup_table(self) -> np.ndarray:
        """logLR in :meth:`SpatialTemporalModel.lookup_table`'s flat layout (index it with :meth:`lookup_index`)."""
        self._check_fitted()
        return self._table

    def rank_table(self) -> np.ndarray:
        """The dense int32 rank of every lookup-table value (:func:`streid_lib.joint.st_rank_table`): it orders and
        ties pairs as the evidence does; computed on the co-observed pairs' values and 0 (all the others)."""
        self._check_fitted()
        if self._ranks is None:
            obs = self.observed_
            ranks_of = st_rank_table(np.r_[self.log_lr_[obs].ravel(), 0.0])
            zero = ranks_of[-1]
            ranks = np.full(self.log_lr_.shape, zero, dtype=np.int32)
            ranks[obs] = ranks_of[:-1].reshape(-1, ranks.shape[2])
            self._ranks = _lookup_layout(ranks, zero)
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
