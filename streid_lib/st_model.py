"""The spatial-temporal stream: the histogram-Parzen (HP) estimate of camera-to-camera transit times, fitted from
training metadata exactly as the authors' code does (docs/reference.md §3, lookups §4). Named options, off by default:
``overflow`` (§13.1) and ``counting="image_pairs"`` (the paper's Eqn. 2, §9.1).
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ._io import atomic_path
from .errors import StreidError
from .metadata import Metadata

#: Number of 100-frame bins the reference uses per dataset; the campus uses Market's (gaps up to 500,000 frames).
DATASET_N_BINS: dict[str, int] = {"market": 5000, "duke": 3000, "campus": 5000}

#: Added to denominators exactly where the reference adds it (mean frame, both normalisations).
EPS = 1e-7

OVERFLOW_POLICIES = ("zero", "clip", "error")
COUNTING_MODES = ("identity", "image_pairs")

#: Largest model, in cells ``n_cams² × n_bins`` of one (C, C, H) float64 array (512 MiB; faithful Market: 320,000).
MAX_CELLS = 2**26

#: Largest bin width (frames): lookups run in int32 when they can; 2**31 - 1 frames is 2.3 years at 30 fps.
MAX_BIN_WIDTH = 2**31 - 1
#: Largest sigma per bin: at sigma = 1000·H the kernel varies by < 1e-6 over a histogram of H bins (flat).
SIGMA_PER_BIN = 1000
#: Largest smoothing cost, n_cams² × n_bins × taps (~a minute on one core; faithful Market: 8² × 5000 × 301).
MAX_SMOOTHING_WORK = 2**36

_FORMAT_VERSION = 1


def json_params(estimator: BaseEstimator) -> dict[str, Any]:
    """``estimator.get_params()`` as plain JSON values, in the constructor's order (each value as its default's type,
    numpy scalars as Python numbers): what a file records."""
    sig = inspect.signature(type(estimator).__init__)
    out = {}
    for name, p in sig.parameters.items():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        value = getattr(estimator, name)
        if isinstance(p.default, (bool, int, float)):
            value = type(p.default)(value)
        elif hasattr(value, "item"):
            value = value.item()
        out[name] = value
    return out


class STModelError(StreidError):
    """Bad parameters or input for the spatial-temporal model (names the value and what was expected)."""


def gaussian_kernel(sigma: float, truncate: float = 3.0, max_radius: int | None = None) -> np.ndarray:
    """(2R+1,) float64 truncated Gaussian ``exp(-d²/2σ²) / (σ√(2π))``, d = -R..R bins, ``R = floor(truncate·sigma)``
    cut to ``max_radius``, not renormalised (§3.5); ``sigma = 0`` gives ``[1.0]``."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise STModelError(f"sigma: expected a finite number of bins >= 0, got {sigma!r}")
    if not (math.isfinite(truncate) and truncate > 0):
        raise STModelError(f"truncate: expected a finite number of sigmas > 0, got {truncate!r}")
    if sigma == 0:
        return np.ones(1)
    radius = math.floor(truncate * sigma) if max_radius is None else min(math.floor(truncate * sigma), max_radius)
    d = np.arange(-radius, radius + 1, dtype=np.float64)
    return np.exp(-(d**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))


def gaussian_smooth(P: np.ndarray, sigma: float = 50.0, truncate: float = 3.0) -> np.ndarray:
    """(..., H) float64 ``P̂ = Q / (Σ Q + 1e-7)`` with ``Q = g ⋆ P`` (zero outside) along the last axis of
    non-negative histograms P (§3.5); all-zero rows stay zero."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim < 1 or P.shape[-1] == 0:
        raise STModelError(f"gaussian_smooth: expected an array (..., H) with H >= 1 bins, got shape {P.shape}")
    from scipy.ndimage import correlate1d  # imported here: the command line builds its parser from this module

    kernel = gaussian_kernel(sigma, truncate, max_radius=P.shape[-1] - 1)  # the same sums: farther taps hit zeros
    flat = P.reshape(-1, P.shape[-1])
    out = np.zeros_like(flat)
    rows = np.flatnonzero(flat.any(axis=1))
    if rows.size:
        q = correlate1d(flat[rows], kernel, axis=-1, mode="constant", cval=0.0)
        out[rows] = q / (q.sum(axis=1, keepdims=True) + EPS)
    return out.reshape(P.shape)


def _as_int_array(x: Any, name: str) -> np.ndarray:
    """Integer view of a camera or frame array; whole-valued floats are accepted, anything else is an error."""
    a = np.asarray(x)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise STModelError(f"{name}: expected integers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        if a.size and (not np.isfinite(a).all() or (a != np.round(a)).any()):
            raise STModelError(f"{name}: expected whole numbers (frames/cameras), got non-integer values")
    return a.astype(np.int64, copy=False)


class SpatialTemporalModel(BaseEstimator):
    """Histogram-Parzen spatial-temporal model (keyword-only parameters, checked by ``fit``; docs/reference.md §3).

    ``bin_width`` frames (100), ``n_bins`` H (:data:`DATASET_N_BINS`), ``n_cams`` C (8), ``sigma`` bins (50; 0: no
    smoothing), ``truncate`` sigmas (3); ``overflow`` for gaps of ``n_bins·bin_width`` frames or more: ``"zero"``
    (p = 0, the vote dropped), ``"clip"`` (last bin) or ``"error"``; ``counting``: ``"identity"`` (faithful) or
    ``"image_pairs"`` (Eqn. 2). Fitted: (C, C, H) float64 ``counts_`` (``[a, b, k]``: later in camera a+1 than in
    b+1 by ``[k·w, (k+1)·w)`` frames; None from a distribution), ``distribution_`` P, ``smoothed_`` P̂, and
    ``n_identities_``, ``n_votes_``, ``n_overflow_votes_`` (None when not fitted from metadata).
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
    ) -> None:
        self.bin_width = bin_width
        self.n_bins = n_bins
        self.n_cams = n_cams
        self.sigma = sigma
        self.truncate = truncate
        self.overflow = overflow
        self.counting = counting

    def _validate_params(self) -> None:
        for name in ("bin_width", "n_bins", "n_cams"):
            if isinstance(value := getattr(self, name), bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise STModelError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.bin_width > MAX_BIN_WIDTH:
            raise STModelError(f"bin_width: expected at most {MAX_BIN_WIDTH} frames, got {self.bin_width}")
        gaussian_kernel(float(self.sigma), float(self.truncate), max_radius=0)  # validates sigma and truncate
        if self.overflow not in OVERFLOW_POLICIES:
            raise STModelError(f"overflow: expected one of {OVERFLOW_POLICIES}, got {self.overflow!r}")
        if self.counting not in COUNTING_MODES:
            raise STModelError(f"counting: expected one of {COUNTING_MODES}, got {self.counting!r}")
        cells = int(self.n_cams) ** 2 * int(self.n_bins)
        if cells > MAX_CELLS:
            raise STModelError(
                f"n_cams={self.n_cams}, n_bins={self.n_bins}: the model would hold n_cams² × n_bins = {cells:,} cells "
                f"per array, more than the {MAX_CELLS:,} allowed (camera ids are expected to be small 1-based integers)"
            )
        if float(self.sigma) > (most := SIGMA_PER_BIN * self.n_bins):
            raise STModelError(
                f"sigma: expected at most {most:g} bins ({SIGMA_PER_BIN} × n_bins; wider is flat), got {self.sigma}"
            )
        taps = 2 * min(math.floor(float(self.truncate) * float(self.sigma)), int(self.n_bins) - 1) + 1
        if (work := int(self.n_cams) ** 2 * int(self.n_bins) * taps) > MAX_SMOOTHING_WORK:
            raise STModelError(
                f"sigma={self.sigma}, n_bins={self.n_bins}: smoothing would take {work:.2g} multiply-adds "
                f"(n_cams² × n_bins × {taps} taps), more than {MAX_SMOOTHING_WORK:.2g}; lower sigma or n_bins"
            )

    def fit(self, train: Metadata) -> SpatialTemporalModel:
        """Estimate counts, P and P̂ from training metadata; every pid value is one identity (§13.9)."""
        self._validate_params()
        if not isinstance(train, Metadata):
            raise STModelError(f"fit: expected streid_lib.metadata.Metadata, got {type(train).__name__}")
        if len(train) == 0:
            raise STModelError("fit: the training metadata is empty; at least one image is needed")
        if not train.has_labels:
            raise STModelError(
                "fit: the training identities are unknown (no train_label / pid); cluster them first with "
                "--pseudo-labels train (docs/reference.md §14.3)"
            )
        self._check_cams(train.cams, "training cams")
        C, H = int(self.n_cams), int(self.n_bins)
        votes = self._votes_identity if self.counting == "identity" else self._votes_image_pairs
        first, second, bins, n_ids = votes(train)
        over = bins >= H
        n_over = int(over.sum())
        if n_over:
            if self.overflow == "error":
                worst = int(bins.max())
                raise STModelError(
                    f"fit: {n_over} camera-pair time gap(s) fall beyond the last bin (largest: bin {worst}, i.e. "
                    f">= {worst * int(self.bin_width)} frames) with n_bins={H}, bin_width={self.bin_width}; "
                    f"raise n_bins or use overflow='zero'/'clip'"
                )
            if self.overflow == "clip":
                bins = np.minimum(bins, H - 1)
            else:  # "zero": the vote is dropped, as a lookup beyond the last bin gives p = 0
                keep = ~over
                first, second, bins = first[keep], second[keep], bins[keep]
        flat = (first * C + second) * H + bins
        counts = np.bincount(flat, minlength=C * C * H).astype(np.float64).reshape(C, C, H)
        D = counts / (counts.sum(axis=2, keepdims=True) + EPS)
        info = {"n_identities": n_ids, "n_votes": int(flat.size), "n_overflow_votes": n_over}
        return self._set_fitted(D, gaussian_smooth(D, float(self.sigma), float(self.truncate)), counts, info)

    def _set_fitted(self, D: np.ndarray, smoothed: np.ndarray, counts: np.ndarray | None, info: dict) -> Any:
        self.counts_, self.distribution_, self.smoothed_, self._table = counts, D, smoothed, None
        for key in ("n_identities", "n_votes", "n_overflow_votes"):
            setattr(self, f"{key}_", info.get(key))
        return self

    def _votes_identity(self, train: Metadata) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Reference §3.2–3.3: (first cam index, second cam index, bin) of every vote, from mean frames."""
        C = int(self.n_cams)
        _, ident = np.unique(train.pids, return_inverse=True)
        ident = ident.reshape(-1)
        n_ids = int(ident.max()) + 1
        cell = ident * C + (train.cams - 1)
        # Frame sums are exact in float64 (integers far below 2**53), so the summation order does not matter.
        S = np.bincount(cell, weights=train.frames.astype(np.float64), minlength=n_ids * C).reshape(n_ids, C)
        N = np.bincount(cell, minlength=n_ids * C).reshape(n_ids, C)
        A = S / (N + EPS)
        j, k = np.triu_indices(C, k=1)  # unordered camera pairs j < k, in the reference's loop order
        valid = (N[:, j] > 0) & (N[:, k] > 0)
        Aj, Ak = A[:, j], A[:, k]
        j_later = Aj > Ak  # equal means go to k (the higher-index camera) as "later"
        bins = (np.where(j_later, Aj - Ak, Ak - Aj) / float(self.bin_width)).astype(np.int64)  # int() = floor here
        first, second = np.where(j_later, j, k)[valid], np.where(j_later, k, j)[valid]
        return first.astype(np.int64), second.astype(np.int64), bins[valid], n_ids

    def _votes_image_pairs(self, train: Metadata) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Paper Eqn. 2: every cross-camera image pair of one identity votes with its integer frame gap."""
        order = np.argsort(train.pids, kind="stable")
        pids, cams, frames = train.pids[order], train.cams[order] - 1, train.frames[order]
        starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
        sizes = np.diff(np.r_[starts, len(pids)])
        n_ids = int(len(starts))
        # Self-join within each identity: image i pairs with every image of its group (O(Σ n_id²) pairs).
        group_size = np.repeat(sizes, sizes)
        group_start = np.repeat(starts, sizes)
        a = np.repeat(np.arange(len(pids)), group_size)
        offs = np.arange(a.size) - np.repeat(np.cumsum(group_size) - group_size, group_size)
        b = np.repeat(group_start, group_size) + offs
        # One vote per unordered image pair: the lower camera plays j, the higher k (as in the identity mode).
        keep = cams[a] < cams[b]
        a, b = a[keep], b[keep]
        j, k, fj, fk = cams[a], cams[b], frames[a], frames[b]
        j_later = fj > fk
        return np.where(j_later, j, k), np.where(j_later, k, j), np.abs(fj - fk) // int(self.bin_width), n_ids

    @classmethod
    def from_distribution(cls, distribution: np.ndarray, **params: Any) -> SpatialTemporalModel:
        """A model from a per-direction normalised (C, C, H) distribution (e.g. the authors' ``pytorch_result2.mat``),
        smoothed with ``params`` as the reference's evaluator does; ``n_cams``, ``n_bins`` from its shape."""
        D = np.asarray(distribution)
        if D.ndim != 3 or D.shape[0] != D.shape[1] or 0 in D.shape:
            raise STModelError(f"distribution: expected a (C, C, H) array with C, H >= 1, got shape {D.shape}")
        if not np.issubdtype(D.dtype, np.number) or not np.isfinite(D).all() or (D < 0).any():
            raise STModelError("distribution: expected finite, non-negative numbers")
        C, _, H = D.shape
        for key, value in (("n_cams", C), ("n_bins", H)):
            if key in params and params[key] is not None and int(params[key]) != value:
                raise STModelError(f"{key}={params[key]!r} disagrees with the distribution's shape {D.shape}")
            params[key] = value
        model = cls(**params)
        model._validate_params()
        D = D.astype(np.float64)
        return model._set_fitted(D, gaussian_smooth(D, float(model.sigma), float(model.truncate)), None, {})

    def _check_fitted(self) -> None:
        if getattr(self, "smoothed_", None) is None:
            raise STModelError("the spatial-temporal model is not fitted: call fit(train) or from_distribution()")

    def _check_cams(self, cams: np.ndarray, what: str) -> None:
        lo, hi = (int(cams.min()), int(cams.max())) if cams.size else (1, 1)
        if lo < 1:
            raise STModelError(f"{what}: camera ids are 1-based, got camera {lo}")
        if hi > int(self.n_cams):
            raise STModelError(
                f"{what}: camera {hi} is outside the spatial-temporal model, which has n_cams={self.n_cams} "
                f"(cameras 1..{self.n_cams})"
            )

    def lookup_table(self) -> np.ndarray:
        """P̂ as a flat float64 table of ``2·C·C·(H+1)`` values for :meth:`lookup_index` (§8): ``T[s, x, y, k]`` is
        ``P̂[x, y, k]`` when image a is later (s = 1), else ``P̂[y, x, k]``; ``T[..., H] = 0`` (overflow "zero")."""
        self._check_fitted()
        if getattr(self, "_table", None) is None:
            P = self.smoothed_
            C, _, H = P.shape
            T = np.zeros((2, C, C, H + 1), dtype=np.float64)
            T[1, :, :, :H] = P
            T[0, :, :, :H] = P.transpose(1, 0, 2)
            self._table = T.reshape(-1)
        return self._table

    def lookup_index(self, cams_a: Any, frames_a: Any, cams_b: Any, frames_b: Any) -> np.ndarray:
        """``np.intp`` indices into :meth:`lookup_table` of image pairs a, b (1-based cameras and frames, broadcast;
        integer arithmetic throughout)."""
        self._check_fitted()
        ca, fa = _as_int_array(cams_a, "cams_a"), _as_int_array(frames_a, "frames_a")
        cb, fb = _as_int_array(cams_b, "cams_b"), _as_int_array(frames_b, "frames_b")
        self._check_cams(ca, "cams_a")
        self._check_cams(cb, "cams_b")
        try:
            shape = np.broadcast_shapes(ca.shape, fa.shape, cb.shape, fb.shape)
        except ValueError:
            raise STModelError(
                f"cams/frames shapes do not broadcast: cams_a {ca.shape}, frames_a {fa.shape}, "
                f"cams_b {cb.shape}, frames_b {fb.shape}"
            ) from None
        C, H = int(self.n_cams), int(self.smoothed_.shape[2])
        H1, w = H + 1, int(self.bin_width)
        if 0 in shape:
            return np.zeros(shape, np.intp)
        # The bounds of the gap come from the (usually small, broadcast) inputs, not from the pairs: they decide
        # the integer width and whether the overflow policy needs a pass at all.
        gap_max = max(int(fa.max()) - int(fb.min()), int(fb.max()) - int(fa.min()))
        # int32 for the (chunk × gallery) passes when every intermediate fits: |fa - fb| <= gap_max and every
        # index < 2·C·C·(H+1). The final index is written as intp, the type take() needs.
        largest = max(gap_max, 2 * C * C * H1, *(abs(int(v)) for a in (fa, fb) for v in (a.min(), a.max())))
        dt = np.int32 if largest <= 2**31 - 1 else np.int64
        d = np.asarray(np.subtract(fa.astype(dt, copy=False), fb.astype(dt, copy=False)))
        if d.shape != shape:
            d = np.broadcast_to(d, shape).copy()
        later = d > 0  # a later: read P̂[a, b]; otherwise (b later or tie) P̂[b, a]
        k = np.abs(d, out=d)
        np.floor_divide(k, dt(w), out=k)
        if gap_max // w >= H:  # some gap may fall beyond the last bin (pass skipped when none can)
            if self.overflow == "error":
                kmax = int(k.max())
                if kmax >= H:
                    raise STModelError(
                        f"a time gap falls in bin {kmax} (>= {kmax * w} frames), beyond the last "
                        f"bin {H - 1} of the model (n_bins={H}, bin_width={self.bin_width}); reference issue #44. "
                        f"Use the dataset's n_bins, or overflow='zero'/'clip'"
                    )
            else:
                np.minimum(k, H if self.overflow == "zero" else H - 1, out=k)
        # Camera offsets added from the (small) broadcast inputs, so no (chunk × gallery) pair array is built.
        np.add(k, (cb - 1).astype(dt) * dt(H1), out=k)
        np.add(k, dt(C * C * H1), out=k, where=later)
        return np.add(k, (ca - 1).astype(dt) * dt(C * H1), dtype=np.intp)

    def probability(self, cams_a: Any, frames_a: Any, cams_b: Any, frames_b: Any) -> np.ndarray:
        """float64 smoothed ST probability p̂ of image pairs (broadcast; §4); 0 for same-camera and unseen pairs."""
        return self.lookup_table().take(self.lookup_index(cams_a, frames_a, cams_b, frames_b))

    def observed_pairs(self) -> np.ndarray:
        """(C, C) bool: camera pairs a != b with mass in either direction (False: every lookup gives p = 0)."""
        self._check_fitted()
        mass = self.distribution_.sum(axis=2) > 0
        seen = mass | mass.T
        np.fill_diagonal(seen, False)
        return seen

    def fit_info(self) -> dict[str, Any]:
        """Parameters and fit statistics, for provenance records."""
        self._check_fitted()
        return {
            **json_params(self),
            "n_bins": int(self.smoothed_.shape[2]),
            "n_cams": int(self.smoothed_.shape[0]),
            "source": "counts" if self.counts_ is not None else "distribution",
            **{k: getattr(self, f"{k}_") for k in ("n_identities", "n_votes", "n_overflow_votes")},
        }

    def save(self, path: str | Path) -> Path:
        """Write parameters and arrays to an ``.npz`` file, atomically."""
        self._check_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            raise STModelError(f"{path}: expected a .npz path for a saved spatial-temporal model")
        data = {
            "format_version": np.asarray(_FORMAT_VERSION),
            "params": np.asarray(json.dumps(json_params(self))),
            "fit_info": np.asarray(json.dumps(self.fit_info())),
            "distribution": self.distribution_,
            "smoothed": self.smoothed_,
            **({} if self.counts_ is None else {"counts": self.counts_}),
        }
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **data)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SpatialTemporalModel:
        """Read a model written by :meth:`save` (the stored P̂ is used as is, not recomputed)."""
        path = Path(path)
        if not path.is_file():
            raise STModelError(f"{path}: spatial-temporal model file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise several types for a bad file
            raise STModelError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
        if missing := [k for k in ("params", "distribution", "smoothed") if k not in raw]:
            raise STModelError(
                f"{path}: missing key(s) {missing}; expected a file written by SpatialTemporalModel.save"
            )
        try:
            model = cls(**json.loads(str(raw["params"])))
            info = json.loads(str(raw["fit_info"])) if "fit_info" in raw else {}
        except (TypeError, ValueError) as exc:
            raise STModelError(f"{path}: params/fit_info: expected the JSON that save() writes ({exc})") from None
        model._validate_params()
        shape = (int(model.n_cams), int(model.n_cams), int(model.n_bins))
        for key in ("distribution", "smoothed", "counts"):
            if key in raw and raw[key].shape != shape:
                raise STModelError(f"{path}: {key} has shape {raw[key].shape}, expected {shape} from its parameters")
        D, smoothed = raw["distribution"].astype(np.float64), raw["smoothed"].astype(np.float64)
        return model._set_fitted(D, smoothed, raw.get("counts"), info)


def fit_st_model(train: Metadata, dataset: str, **params: Any) -> SpatialTemporalModel:
    """The faithful ST model of every caller: ``n_bins`` defaults to the dataset's :data:`DATASET_N_BINS`, ``n_cams`` to
    8 or the largest training camera id; other ``params`` go to :class:`SpatialTemporalModel`."""
    if params.get("n_bins") is None:
        if dataset not in DATASET_N_BINS:
            expected = f"one of {sorted(DATASET_N_BINS)} or an explicit n_bins"
            raise STModelError(f"dataset: expected {expected}, got {dataset!r}")
        params["n_bins"] = DATASET_N_BINS[dataset]
    if params.get("n_cams") is None:
        params["n_cams"] = max(8, train.n_cams)
    return SpatialTemporalModel(**params).fit(train)


def load_st_model(path: str | Path, **params: Any) -> SpatialTemporalModel:
    """Our ``.npz`` (:meth:`SpatialTemporalModel.load`; ``n_bins``/``n_cams`` in ``params`` must agree) or the authors'
    ``pytorch_result2.mat``, whose (C, C, H) ``distribution`` is smoothed with ``params``."""
    path = Path(path)
    if path.suffix == ".npz":
        model = SpatialTemporalModel.load(path)
        for key in ("n_bins", "n_cams"):
            if params.get(key) is not None and int(params[key]) != int(getattr(model, key)):
                raise STModelError(
                    f"{path}: the stored model has {key}={getattr(model, key)}, but {params[key]} was asked"
                )
        return model
    if path.suffix != ".mat":
        raise STModelError(f"{path}: unknown ST model format {path.suffix!r}; expected .npz or .mat")
    if not path.is_file():
        raise STModelError(f"{path}: ST model file not found")
    import scipy.io

    try:
        raw = scipy.io.loadmat(path)
    except Exception as exc:  # noqa: BLE001 - scipy raises several types (MatReadError, ValueError, ...)
        raise STModelError(f"{path}: not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from None
    if "distribution" not in raw:
        keys = sorted(k for k in raw if not k.startswith("__"))
        hint = " (this looks like a features file, pytorch_result.mat)" if "query_f" in raw else ""
        raise STModelError(f"{path}: missing key 'distribution' (found {keys}){hint}")
    D = np.asarray(raw["distribution"], dtype=np.float64)
    if D.ndim != 3:
        raise STModelError(f"{path}: 'distribution' has shape {D.shape}, expected (C, C, H)")
    return SpatialTemporalModel.from_distribution(D, **params)
