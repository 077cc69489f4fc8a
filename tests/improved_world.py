"""Small hand-made worlds for the improved-mode tests (a helper module, not a test file)."""

from __future__ import annotations

import numpy as np

from streid_lib.features import FeatureSet
from streid_lib.metadata import Metadata


def meta(rows: list[tuple[int, int, int]]) -> Metadata:
    """Metadata from (pid, cam, frame) rows."""
    a = np.array(rows, dtype=np.int64)
    return Metadata(a[:, 0], a[:, 1], a[:, 2])


def one_way_train(n: int = 30, gap: int = 1000, seed: int = 0) -> Metadata:
    """n identities walking cam 1 → cam 2 (cam 2 later by about ``gap`` frames), at spread-out start times."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(1, n + 1):
        t0 = int(rng.integers(0, 200_000))
        rows += [(pid, 1, t0), (pid, 2, t0 + gap + int(rng.integers(-40, 40)))]
    return meta(rows)


def synthetic_world(seed: int = 0, n_ids: int = 120, dim: int = 24, noise: float = 1.6) -> FeatureSet:
    """Identities walking 1 → 2 → 3 with fixed transit times; features = identity centre + noise.

    Returns a FeatureSet whose training side holds the first ``n_ids`` identities and whose query (cameras 1 and
    3) and gallery hold the others.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2 * n_ids + 1, dim))
    rows, feats = [], []
    for pid in range(1, 2 * n_ids + 1):
        t = int(rng.integers(0, 300_000))
        for cam, dt in ((1, 0), (2, 3000), (3, 9000)):
            for _ in range(int(rng.integers(1, 4))):
                rows.append((pid, cam, t + dt + int(rng.integers(0, 600))))
                feats.append(centres[pid] + noise * rng.standard_normal(dim))
    m, f = meta(rows), np.asarray(feats, np.float32)
    train_mask = m.pids <= n_ids
    test = np.flatnonzero(~train_mask)
    test_meta = m.take(test)
    _, first = np.unique(test_meta.pids * 10 + test_meta.cams, return_index=True)
    q = np.zeros(len(test), bool)
    q[first[test_meta.cams[first] != 2]] = True  # queries from cams 1 and 3, the rest gallery
    return FeatureSet(
        f[test][q], f[test][~q], test_meta.take(q), test_meta.take(~q), {"features": "synthetic world"},
        train_f=f[train_mask], train=m.take(train_mask),
    )  # fmt: skip
