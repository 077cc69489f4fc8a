"""A fast appearance baseline (numpy + Pillow): HSV colour histograms over horizontal stripes of 128×64 crops, square
rooted (Hellinger) and L2-normalised; ``center="train"`` subtracts the training mean so that cosines spread over
[-1, 1] like CNN features. The CPU visual stream of the smoke profile and of the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import StreidError
from .features import FeatureSet
from .metadata import SPLIT_FOLDERS, read_dataset_root

H, W = 128, 64


class ColourHistogramError(StreidError):
    """Bad input for the colour-histogram baseline (names the file or parameter)."""


def load_images(paths: Sequence[str | Path], size: tuple[int, int] = (H, W)) -> np.ndarray:
    """Read images as an (N, H, W, 3) uint8 array (RGB), resized bilinearly to ``size`` = (height, width)."""
    from PIL import Image

    out = np.empty((len(paths), size[0], size[1], 3), np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (size[1], size[0]):
                    im = im.resize((size[1], size[0]), Image.BILINEAR)
                out[i] = np.asarray(im)
        except OSError as exc:
            raise ColourHistogramError(f"{p}: cannot read image ({exc})") from None
    return out


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """Vectorised RGB → HSV of uint8 arrays (..., 3); returns float32 H, S, V in [0, 1)."""
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx = x.max(axis=-1)
    mn = x.min(axis=-1)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, (g - b) / safe, np.where(mx == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = np.where(d > 0, (h / 6.0) % 1.0, 0.0)
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack([h, s, mx], axis=-1).astype(np.float32)


def histogram_features(
    images: np.ndarray,
    stripes: int = 6,
    bins: tuple[int, int, int] = (8, 4, 4),
    columns: tuple[float, float] = (0.3, 0.7),
    soft: bool = True,
) -> np.ndarray:
    """(N, stripes·Πbins) float32 L2-normalised HSV histograms of ``stripes`` bands of (N, H, W, 3) uint8 images.

    Hellinger: the square root of each band's sum-1 histogram; ``columns``: the central fraction of the width used
    (pedestrians stand in the middle); ``soft``: each pixel's vote split linearly between neighbouring bins.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ColourHistogramError(f"images: expected an (N, H, W, 3) array, got shape {images.shape}")
    if not 1 <= stripes <= images.shape[1]:
        raise ColourHistogramError(f"stripes={stripes}: expected 1..{images.shape[1]} (the image height)")
    if len(bins) != 3 or any(int(b) < 1 for b in bins):
        raise ColourHistogramError(f"bins={bins}: expected three positive bin counts (hue, saturation, value)")
    lo, hi = columns
    if not 0.0 <= lo < hi <= 1.0:
        raise ColourHistogramError(f"columns={columns}: expected fractions 0 <= low < high <= 1")
    n, h, w = images.shape[:3]
    c0, c1 = int(round(lo * w)), max(int(round(hi * w)), int(round(lo * w)) + 1)
    images = images[:, :, c0:c1]
    nb = int(np.prod(bins))
    dim = stripes * nb
    out = np.empty((n, dim), np.float32)
    row_stripe = (np.arange(h) * stripes // h).astype(np.int64)  # (H,) band of each row
    nbins = np.asarray(bins, np.int64)
    scale = nbins.astype(np.float32)
    for start in range(0, n, 256):  # bounded memory: 256 crops at a time
        hsv = rgb_to_hsv(images[start : start + 256])
        b = len(hsv)
        base = (np.arange(b)[:, None, None] * dim + row_stripe[None, :, None] * nb).astype(np.int64)
        if soft:
            # Linear interpolation between the two nearest bin centres along each axis (8 votes per
            # pixel); hue wraps around, saturation and value are clamped at their ends.
            u = hsv * scale - 0.5
            lo = np.floor(u).astype(np.int64)
            frac = (u - lo).astype(np.float32)
            hist = np.zeros(b * dim, np.float64)
            for corner in range(8):
                weight = np.ones(hsv.shape[:3], np.float32)
                cell = np.zeros(hsv.shape[:3], np.int64)
                for axis in range(3):
                    up = (corner >> axis) & 1
                    idx = lo[..., axis] + up
                    idx = idx % nbins[axis] if axis == 0 else np.clip(idx, 0, nbins[axis] - 1)
                    weight = weight * (frac[..., axis] if up else 1.0 - frac[..., axis])
                    cell = cell * nbins[axis] + idx
                hist += np.bincount((base + cell).reshape(-1), weights=weight.reshape(-1), minlength=b * dim)
            hist = hist.reshape(b, stripes, nb).astype(np.float32)
        else:
            q = np.minimum((hsv * scale).astype(np.int64), nbins - 1)
            cell = (q[..., 0] * bins[1] + q[..., 1]) * bins[2] + q[..., 2]  # (B, H, W)
            hist = np.bincount((base + cell).reshape(-1), minlength=b * dim).reshape(b, stripes, nb).astype(np.float32)
        hist /= hist.sum(axis=2, keepdims=True)
        np.sqrt(hist, out=hist)
        hist = hist.reshape(b, dim)
        out[start : start + b] = hist / np.linalg.norm(hist, axis=1, keepdims=True)
    return out


def colour_histogram_features(
    root: str | Path,
    stripes: int = 6,
    bins: tuple[int, int, int] = (8, 4, 4),
    columns: tuple[float, float] = (0.3, 0.7),
    soft: bool = True,
    center: str | None = None,
    train: bool = False,
) -> FeatureSet:
    """The query and gallery :class:`~streid_lib.features.FeatureSet` of a dataset root (with ``train`` its training
    side too); ``center`` ``"train"`` or ``"gallery"`` subtracts that split's mean feature before normalising again."""
    if center not in ("train", "gallery", None):
        raise ColourHistogramError(f"center={center!r}: expected 'train', 'gallery' or None")
    root = Path(root)
    splits = read_dataset_root(root)

    def feats(split: str, names: np.ndarray) -> np.ndarray:
        images = load_images([root / SPLIT_FOLDERS[split] / n for n in names])
        return histogram_features(images, stripes, bins, columns=columns, soft=soft)

    qf = feats("query", splits.query.names)
    gf = feats("gallery", splits.gallery.names)
    tf = feats("train", splits.train.names) if train or center == "train" else None
    if center is not None:
        mean = (tf if center == "train" else gf).mean(axis=0)
        qf, gf = unit_rows(qf - mean), unit_rows(gf - mean)
        tf = None if tf is None else unit_rows(tf - mean)
    provenance = {
        "features": "colour_histogram",
        "root": str(root),
        "stripes": int(stripes),
        "bins": [int(b) for b in bins],
        "columns": [float(c) for c in columns],
        "soft": bool(soft),
        "space": "HSV",
        "hellinger": True,
        "center": center,
    }
    if not train:
        return FeatureSet(qf, gf, splits.query, splits.gallery, provenance)
    provenance["train_side"] = "colour histograms of bounding_box_train (same parameters)"
    return FeatureSet(qf, gf, splits.query, splits.gallery, provenance, train_f=tf, train=splits.train)


def unit_rows(f: np.ndarray) -> np.ndarray:
    """(N, D) rows scaled to unit norm, float32; a zero row (a crop equal to the mean) stays tiny but non-zero."""
    n = np.linalg.norm(f, axis=1, keepdims=True)
    return (f / np.where(n > 0, n, 1.0) + (n == 0) * 1e-6).astype(np.float32)
