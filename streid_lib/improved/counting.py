"""Same- and different-identity time-gap histograms of training unit pairs per camera pair (docs/reference.md §12.1).

Units: per-(identity, camera) mean frames (``"identity"``, §3.2) or images (``"image_pairs"``, ``"weighted_pairs"``);
votes go to faithful's ``[later, earlier, floor(|Δt| / bin_width)]``, ties counting the higher camera as later (§3.3).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..metadata import Metadata
from ..st_model import EPS
from .config import COUNTINGS, ImprovedError


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
