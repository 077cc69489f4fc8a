"""The campus generative model: camera network, walkers, camera passes and crop times (docs/reference.md §13.5).

Metadata only (appearance: :mod:`.render`); draws both a dataset's people and the Monte-Carlo sample behind the
ground truth. Times are in seconds until converted to frames at ``fps``; routes in metres.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from ..errors import StreidError

#: Default 6-camera network: (camera a, camera b, route lengths in metres). Cameras 1-2, 3-4 and
#: 5-6 have two routes each (bimodal transit); 6 hangs off 5 only, so 6 and 1/3 are far apart.
DEFAULT_ROUTES_6: tuple[tuple[int, int, tuple[float, ...]], ...] = (
    (1, 2, (220.0, 560.0)),
    (2, 3, (330.0,)),
    (1, 4, (420.0,)),
    (3, 4, (260.0, 700.0)),
    (2, 5, (480.0,)),
    (4, 5, (380.0,)),
    (5, 6, (300.0, 900.0)),
)


#: The faithful HP's denominator epsilon in per-identity mean frames (docs/reference.md §3.2).
HP_EPS = 1e-7


class CampusError(StreidError):
    """A campus parameter, preset or output folder that is not what is expected."""


@dataclass(frozen=True)
class CampusNetwork:
    """The walking graph between cameras (1-based ids in names; 0-based indices here)."""

    n_cams: int  # K
    route_len: np.ndarray  # (K, K, R) route lengths in metres, symmetric, NaN where there is no route
    route_p: np.ndarray  # (K, K, R) probability of taking each parallel route (rows sum to 1 where defined)
    entry_p: np.ndarray  # (K,) probability of starting at each camera
    view_m: np.ndarray  # (K,) metres of walk visible in each camera

    def describe(self) -> list[dict]:
        """One dict per direct connection: cameras (1-based) and route lengths (metres)."""
        return [
            {
                "cams": [int(a) + 1, int(b) + 1],
                "routes_m": lens.tolist(),
                "route_p": self.route_p[a, b, : lens.size].tolist(),
            }
            for a, b in zip(*np.triu_indices(self.n_cams, 1))
            if (lens := self.route_len[a, b][np.isfinite(self.route_len[a, b])]).size
        ]


def build_network(n_cams: int, layout_seed: int = 0) -> CampusNetwork:
    """The campus walking graph: the hand-made :data:`DEFAULT_ROUTES_6` for 6 cameras, else cameras in a 1.2 × 0.8 km
    area joined to their two nearest neighbours (route 1.2-1.5× the distance; 40% get a second, 1.8-2.6× longer)."""
    rng = np.random.default_rng([layout_seed, 7919])
    edges: list[tuple[int, int, tuple[float, ...]]]
    if n_cams == 6 and layout_seed == 0:
        edges = list(DEFAULT_ROUTES_6)
    else:
        pos = rng.uniform([0, 0], [1200, 800], size=(n_cams, 2))
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=2)
        np.fill_diagonal(dist, np.inf)
        pairs = set()
        for a in range(n_cams):
            for b in np.argsort(dist[a])[: min(2, n_cams - 1)]:
                pairs.add((min(a, int(b)), max(a, int(b))))
        edges = []
        for a, b in sorted(pairs):
            base = float(np.round(dist[a, b] * rng.uniform(1.2, 1.5), -1))
            lens = (base,) if rng.random() > 0.4 else (base, float(np.round(base * rng.uniform(1.8, 2.6), -1)))
            edges.append((a + 1, b + 1, lens))
    r_max = max((len(e[2]) for e in edges), default=1)
    route_len = np.full((n_cams, n_cams, r_max), np.nan)
    route_p = np.zeros((n_cams, n_cams, r_max))
    for a, b, lens in edges:
        # The shorter route is the popular one: weights 0.6, 0.4 (or 1 for a single route).
        w = np.array([0.6, 0.4, 0.2][: len(lens)]) if len(lens) > 1 else np.ones(1)
        w = w / w.sum()
        for i, j in ((a - 1, b - 1), (b - 1, a - 1)):
            route_len[i, j, : len(lens)] = lens
            route_p[i, j, : len(lens)] = w
    entry_p = np.full(n_cams, 1.0 / n_cams)
    view_m = np.round(rng.uniform(8.0, 18.0, size=n_cams), 1)
    return CampusNetwork(n_cams, route_len, route_p, entry_p, view_m)


#: Camera passes of N simulated walkers (at most ``Lmax`` cameras each): ``cams`` (N, Lmax) 0-based camera of each
#: visited camera, -1 after the route ends; ``recorded`` (N, Lmax) bool, the pass was detected and ended before the
#: recording ended; ``n_crops`` (N, Lmax) crops of each recorded pass (0 if not); ``crop_frames`` (N, Lmax, M) int64
#: global crop frames, -1 padding.
WalkerSample = namedtuple("WalkerSample", "cams recorded n_crops crop_frames")


def take(rows: tuple, idx: np.ndarray) -> tuple:
    """Rows ``idx`` of every array of the namedtuple ``rows`` (:class:`WalkerSample`, :class:`.render.Outfits`)."""
    return type(rows)(*(v[idx] for v in rows))


def concat(parts: list[tuple]) -> tuple:
    """The namedtuples ``parts`` (of one type) joined row-wise."""
    return type(parts[0])(*map(np.concatenate, zip(*parts, strict=True)))


def simulate_walkers(net: CampusNetwork, cfg, n: int, rng: np.random.Generator) -> WalkerSample:
    """Draw ``n`` walkers of the campus model ``cfg`` (a :class:`~.config.CampusConfig`, docs/reference.md §13.5):
    a start camera from ``entry_p``, ``route_cams_p`` cameras without revisits, heavy-tailed speeds, pauses and
    detection misses, ``1 + Poisson(crops_per_pass - 1)`` crops per pass at one frame per equal stratum."""
    k = net.n_cams
    route_cams_p = np.asarray(cfg.route_cams_p, dtype=np.float64)
    lmax = len(route_cams_p)
    m = cfg.max_crops_per_pass
    fps = float(cfg.fps)
    t_end = cfg.recording_frames / fps  # seconds

    length = 1 + rng.choice(lmax, size=n, p=route_cams_p / route_cams_p.sum())
    speed = np.exp(np.log(cfg.speed_mps) + cfg.speed_log_scale * rng.standard_t(cfg.speed_tail_df, size=n))
    speed = np.clip(speed, *cfg.speed_range_mps)
    cams = np.full((n, lmax), -1, np.int64)
    t_in = np.zeros((n, lmax))
    dur = np.zeros((n, lmax))
    cams[:, 0] = rng.choice(k, size=n, p=net.entry_p)
    t_in[:, 0] = rng.uniform(0.0, t_end, size=n)
    visited = np.zeros((n, k), bool)
    visited[np.arange(n), cams[:, 0]] = True
    adj = np.isfinite(net.route_len).any(axis=2)  # (K, K) cameras joined by a direct route
    cum_route_p = np.cumsum(net.route_p, axis=2)
    rows = np.arange(n)
    v_hop = speed[:, None] * rng.lognormal(0.0, cfg.hop_speed_jitter, size=(n, lmax))  # (n, lmax) m/s
    dur[:, 0] = net.view_m[cams[:, 0]] / v_hop[:, 0]
    active = length > 1
    for step in range(1, lmax):
        cur = cams[:, step - 1]
        cand = adj[np.maximum(cur, 0)] & ~visited & (cur >= 0)[:, None] & active[:, None]
        n_cand = cand.sum(axis=1)
        go = n_cand > 0
        # Uniform choice among unvisited neighbours: the j-th True of each row.
        pick = np.floor(rng.random(n) * np.maximum(n_cand, 1)).astype(np.int64)
        order = np.cumsum(cand, axis=1) - 1
        nxt = np.argmax(cand & (order == pick[:, None]), axis=1)
        u = rng.random(n)
        route = (u[:, None] > cum_route_p[np.maximum(cur, 0), nxt]).sum(axis=1)
        route = np.minimum(route, net.route_len.shape[2] - 1)
        metres = net.route_len[np.maximum(cur, 0), nxt, route]
        pause = np.where(rng.random(n) < cfg.pause_prob, rng.exponential(cfg.pause_mean_s, size=n), 0.0)
        transit = metres / v_hop[:, step] + pause
        go &= np.isfinite(transit)
        cams[go, step] = nxt[go]
        t_in[go, step] = t_in[go, step - 1] + dur[go, step - 1] + transit[go]
        dur[go, step] = net.view_m[nxt[go]] / v_hop[go, step]
        visited[rows[go], nxt[go]] = True
        active = go & (length > step + 1)

    exists = cams >= 0
    recorded = exists & (rng.random((n, lmax)) < cfg.detect_prob) & (t_in + dur < t_end)
    n_crops = np.minimum(1 + rng.poisson(max(cfg.crops_per_pass - 1.0, 0.0), size=(n, lmax)), m)
    n_crops = np.where(recorded, n_crops, 0)
    # Stratified crop times: stratum j of n equal strata of the pass, one uniform frame in each, so
    # frames are distinct whenever the pass spans at least n frames (it spans hundreds).
    f_in = np.floor(t_in * fps)
    span = np.floor(dur * fps) + 1.0
    j = np.arange(m)[None, None, :]
    u = rng.random((n, lmax, m))
    nc = np.maximum(n_crops, 1)[:, :, None]
    frames = f_in[:, :, None] + np.floor((j + u) * span[:, :, None] / nc)
    frames = np.where(j < n_crops[:, :, None], frames, -1).astype(np.int64)
    return WalkerSample(cams, recorded, n_crops, frames)


def truth_histogram(
    sample: WalkerSample, n_cams: int, bin_width: int, max_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of per-identity mean-frame differences, exactly as the faithful HP counts them.

    For every walker and unordered camera pair (j < k) both recorded, with mean frames A_j, A_k:
    if ``A_j > A_k`` add one to ``hist[j, k, floor((A_j - A_k) / bin_width)]``, else to
    ``hist[k, j, floor((A_k - A_j) / bin_width)]`` (first index = later camera; ties to the higher
    index, docs/reference.md §3.3).

    Returns:
        hist: (K, K, ceil(max_frames / bin_width) + 1) int64 counts.
        pair_n: (K, K) int64 number of walkers counted per ordered pair.
    """
    # (N, K) mean crop frame per walker and camera, NaN where not recorded; ``sum / (n + 1e-7)`` as the faithful HP
    # computes it (docs/reference.md §3.2), so that the truth is bit-for-bit its counting rule.
    means = np.full((sample.cams.shape[0], n_cams), np.nan)
    sums = np.where(sample.crop_frames >= 0, sample.crop_frames, 0).sum(axis=2).astype(np.float64)
    rows, steps = np.nonzero(sample.recorded)
    means[rows, sample.cams[rows, steps]] = (sums / (sample.n_crops + HP_EPS))[rows, steps]
    n_bins = int(np.ceil(max_frames / bin_width)) + 1
    j, k = np.triu_indices(n_cams, 1)  # camera pairs (<= 36), vectorised over walkers too
    d = means[:, j] - means[:, k]
    rows, pair = np.nonzero(np.isfinite(d))
    d = d[rows, pair]
    later_j = d > 0
    b = np.floor(np.abs(d) / bin_width).astype(np.int64)
    if b.size and b.max() >= n_bins:
        raise CampusError(f"transit of {b.max() * bin_width} frames beyond the recording ({max_frames})")
    idx = (np.where(later_j, j[pair], k[pair]) * n_cams + np.where(later_j, k[pair], j[pair])) * n_bins + b
    hist = np.bincount(idx, minlength=n_cams * n_cams * n_bins).astype(np.int64).reshape(n_cams, n_cams, n_bins)
    return hist, hist.sum(axis=2)
