"""Ground-truth transit densities of the campus and their distance to a fitted HP model (docs/reference.md §13.5).

File ``transit_truth.npz`` (byte-deterministic): the faithful HP histogram (§3.3) from an unlimited supply of
identities; its arrays are described in :data:`TRUTH_DESCRIPTION` (stored in the file as JSON).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_path
from .simulate import CampusError

TRUTH_FILE = "transit_truth.npz"

TRUTH_DESCRIPTION = {
    "counts": "(K, K, Hb) int64: walkers whose mean crop frame in camera a minus that in camera b lies in "
    "[k*w, (k+1)*w) frames, w = base_bin_width; first index = later camera (HP convention, docs/reference.md §3.3)",
    "pair_n": "(K, K) int64: walkers counted per ordered pair (counts.sum(-1))",
    "density": "counts / pair_n per ordered pair: normalised per direction like the HP distribution_",
    "base_bin_width": "frames per bin of counts",
    "fps": "frames per second",
    "n_walkers": "Monte-Carlo walkers simulated (all, before keeping pairs seen by both cameras)",
    "recording_frames": "length of the recording, frames",
}


@dataclass(frozen=True)
class TransitTruth:
    """Ground-truth transit-time counts of a campus (fields as in :data:`TRUTH_DESCRIPTION`)."""

    counts: np.ndarray
    base_bin_width: int
    fps: float
    n_walkers: int
    recording_frames: int

    @property
    def n_cams(self) -> int:
        return int(self.counts.shape[0])

    @property
    def pair_n(self) -> np.ndarray:
        """(K, K) walkers per ordered pair."""
        return self.counts.sum(axis=2)

    def rebinned(self, bin_width: int) -> np.ndarray:
        """(K, K, ceil(Hb·w0/bin_width)) counts at ``bin_width`` frames (a multiple of the base width)."""
        w0 = self.base_bin_width
        if bin_width < w0 or bin_width % w0:
            raise CampusError(
                f"bin_width={bin_width}: the truth is stored at {w0}-frame bins; expected a multiple of {w0}"
            )
        # floor(x / (f·w0)) == floor(floor(x / w0) / f) for x >= 0: summing groups of f base bins is exact.
        return np.add.reduceat(self.counts, np.arange(0, self.counts.shape[2], bin_width // w0), axis=2)

    def density(self, bin_width: int = 100, n_bins: int | None = None) -> np.ndarray:
        """(K, K, n_bins) true probability per bin of ``bin_width`` frames, normalised per direction over all bins
        (mass beyond ``n_bins`` is not renormalised away, :meth:`overflow`); empty directions are all zero."""
        c = self.rebinned(bin_width).astype(np.float64)
        n = c.sum(axis=2, keepdims=True)
        p = np.divide(c, n, out=np.zeros_like(c), where=n > 0)
        return p if n_bins is None else np.pad(p[:, :, :n_bins], ((0, 0), (0, 0), (0, max(0, n_bins - p.shape[2]))))

    def overflow(self, bin_width: int, n_bins: int) -> np.ndarray:
        """(K, K) true probability mass at or beyond bin ``n_bins`` (not representable in that layout)."""
        return self.density(bin_width)[:, :, n_bins:].sum(axis=2)

    def pairs(self) -> list[tuple[int, int]]:
        """Ordered camera pairs (1-based, later camera first) that have any true mass."""
        a, b = np.nonzero(self.pair_n > 0)
        return [(int(i) + 1, int(j) + 1) for i, j in zip(a, b)]

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` byte-deterministically (:func:`numpy.savez` stamps the current time into the zip
        entries; here every entry is dated 1980-01-01)."""
        arrays = {
            "counts": self.counts,
            "pair_n": self.pair_n,
            "base_bin_width": np.int64(self.base_bin_width),
            "fps": np.float64(self.fps),
            "n_walkers": np.int64(self.n_walkers),
            "recording_frames": np.int64(self.recording_frames),
            "description": np.asarray(json.dumps(TRUTH_DESCRIPTION)),
        }
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
            for name, arr in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())
        return Path(path)


def load_truth(path: str | Path | TransitTruth) -> TransitTruth:
    """Read ``transit_truth.npz`` (or a campus root holding it); a :class:`TransitTruth` is returned as is."""
    if isinstance(path, TransitTruth):
        return path
    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    if not path.is_file():
        raise CampusError(f"{path}: transit truth file not found (expected {TRUTH_FILE} in a campus root)")
    with np.load(path, allow_pickle=False) as z:
        scalars = {"base_bin_width": int, "fps": float, "n_walkers": int, "recording_frames": int}
        missing = [k for k in ("counts", *scalars) if k not in z]
        if missing:
            raise CampusError(f"{path}: missing key(s) {missing}")
        counts = z["counts"]
        if counts.ndim != 3 or counts.shape[0] != counts.shape[1]:
            raise CampusError(f"{path}: counts: expected a (K, K, H) array, got shape {counts.shape}")
        return TransitTruth(counts.astype(np.int64), *(cast(z[k]) for k, cast in scalars.items()))


def hp_distance(model, truth: TransitTruth | str | Path) -> dict[tuple[int, int], float]:
    """``{(a, b): TV}`` per ordered camera pair with true mass (1-based, later camera first): the total-variation
    distance ``½ Σ_k |P̂[a, b, k] − P[a, b, k]|`` between a fitted HP model's ``smoothed_`` ((C, C, H), C ≥ K) and
    ``truth`` (or its file / campus root) over the model's bins, plus ½ of the true mass beyond them. 0 = identical,
    1 = disjoint (also for a pair the model never saw)."""
    truth = load_truth(truth)
    est = getattr(model, "smoothed_", None)
    if est is None:
        raise CampusError("model has no smoothed_ array: fit it first")
    est = np.asarray(est, dtype=np.float64)
    if est.ndim != 3 or est.shape[0] != est.shape[1]:
        raise CampusError(f"model.smoothed_: expected a (C, C, H) array, got shape {est.shape}")
    k = truth.n_cams
    if est.shape[0] < k:
        raise CampusError(f"model.smoothed_ covers {est.shape[0]} cameras but the campus has {k}")
    n_bins = est.shape[2]
    bin_width = int(model.bin_width)
    p = truth.density(bin_width, n_bins)
    over = truth.overflow(bin_width, n_bins)
    q = est[:k, :k]
    mass = q.sum(axis=2)
    # Normalise the estimate per direction too (the faithful P̂ sums to 1 - 1e-7·...; never rescale zeros).
    q = np.divide(q, mass[..., None], out=np.zeros_like(q), where=mass[..., None] > 0)
    tv = 0.5 * (np.abs(q - p).sum(axis=2) + over)
    return {(a, b): (1.0 if mass[a - 1, b - 1] <= 0 else float(tv[a - 1, b - 1])) for a, b in truth.pairs()}


def mean_hp_distance(model, truth: TransitTruth | str | Path) -> float:
    """Mean of :func:`hp_distance` over pairs, weighted by the true pair frequency."""
    truth = load_truth(truth)
    d = hp_distance(model, truth)
    w = np.array([truth.pair_n[a - 1, b - 1] for a, b in d], dtype=np.float64)
    v = np.array(list(d.values()))
    return float((w * v).sum() / w.sum()) if len(v) else float("nan")
