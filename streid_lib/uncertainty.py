"""How sure is a number: 95 % intervals from a paired, vectorised bootstrap over query identities (all queries of a
drawn identity kept), and the verdicts read from them (held, not held, inconclusive; docs/claims.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import StreidError

#: Resamples and seed of every interval of the study (seeded: a rerun gives the same intervals).
N_BOOT = 1000
SEED = 0
LEVEL = 0.95
HELD, NOT_HELD, INCONCLUSIVE = "held", "not held", "inconclusive"
#: How far a number of a CNN trained in the run may move with another training run (points of R1 or mAP; measured
#: as the move under another CPU's kernels: at most 6.3, docs/claims.md). A verdict on such rows widens its interval
#: by it.
TRAINED_TOLERANCE = 7.0


class UncertaintyError(StreidError):
    """Per-query results that cannot be compared (different queries)."""


@dataclass(frozen=True)
class PerQuery:
    """Per-query results of one row: (nq,) float64 rank-1 ``hit`` and ``ap``, (nq,) int64 query ``ids`` (the
    clusters), and the ``tolerance`` in points the row may move with another training run (:data:`TRAINED_TOLERANCE`
    or 0)."""

    hit: np.ndarray
    ap: np.ndarray
    ids: np.ndarray
    tolerance: float = 0.0

    @classmethod
    def from_result(cls, result, query_ids: np.ndarray, tolerance: float = 0.0) -> PerQuery:
        """From a :class:`streid_lib.metrics.RankingResult` and the query identities."""
        hit = (np.asarray(result.first_hit) == 0).astype(np.float64)
        return cls(hit, np.asarray(result.ap, np.float64), np.asarray(query_ids, np.int64), float(tolerance))

    def values(self, metric: str) -> np.ndarray:
        """Per-query values of ``R1`` (hit) or ``mAP`` (AP), in percent."""
        if metric not in ("R1", "mAP"):
            raise UncertaintyError(f"metric: expected 'R1' or 'mAP', got {metric!r}")
        return 100.0 * (self.hit if metric == "R1" else self.ap)


class RowSummary(dict):
    """A row's metrics in percent (``{"R1", "R5", …}``, a plain dict to every reader) with its per-query results
    (``per_query``), from which intervals and paired comparisons are computed."""

    def __init__(self, summary: Mapping[str, float], per_query: PerQuery | None = None) -> None:
        super().__init__(summary)
        self.per_query = per_query


def per_query_of(row) -> PerQuery | None:
    """The per-query results a row carries (None for a plain dict of metrics)."""
    return getattr(row, "per_query", None)


def boot_means(rows: Sequence[PerQuery], metric: str, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, len(rows)) means of ``metric`` (percent) over the same identity resamples for every row."""
    ids = rows[0].ids
    for r in rows[1:]:
        if len(r.ids) != len(ids) or not np.array_equal(r.ids, ids):
            raise UncertaintyError(
                f"paired bootstrap: rows ranked on different queries ({len(ids)} vs {len(r.ids)} queries or other "
                "identities); compare rows of the same query set"
            )
    return cluster_means(np.stack([r.values(metric) for r in rows], axis=1), ids, n_boot, seed)


def cluster_means(values: np.ndarray, ids: np.ndarray, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, k) bootstrap means of (nq, k) per-query ``values``, resampling the clusters ``ids`` (nq,) with
    replacement, every column with the same draws: the one resampling rule of the study."""
    values = np.asarray(values, np.float64).reshape(len(ids), -1)
    uniq, inv = np.unique(np.asarray(ids), return_inverse=True)
    sizes = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    sums = np.stack([np.bincount(inv, weights=v, minlength=len(uniq)) for v in values.T], axis=1)
    counts = bootstrap_counts(len(uniq), int(n_boot), int(seed))
    return (counts @ sums) / (counts @ sizes)[:, None]


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap ``samples`` at ``level``."""
    lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def row_interval(row, metric: str) -> tuple[float, float] | None:
    """The 95 % interval of one row's ``metric`` (None when it carries no per-query results)."""
    pq = per_query_of(row)
    return None if pq is None else interval(boot_means([pq], metric)[:, 0])


@dataclass(frozen=True)
class Estimate:
    """A statistic of some rows, its 95 % interval and the verdict of ``statistic > threshold``."""

    value: float
    lo: float
    hi: float
    threshold: float
    status: str

    def text(self, unit: str = "") -> str:
        """``+8.4 [5.1, 11.6]``."""
        return f"{self.value:+.1f}{unit} [{self.lo:+.1f}, {self.hi:+.1f}]"


def verdict(lo: float, hi: float, threshold: float = 0.0) -> str:
    """Held when the interval lies above ``threshold``, not held when it lies at or below it, else inconclusive."""
    return HELD if lo > threshold else NOT_HELD if hi <= threshold else INCONCLUSIVE


def estimate(
    rows: Sequence, metric: str, statistic: Callable[[np.ndarray], np.ndarray], threshold: float = 0.0
) -> Estimate | None:
    """``statistic`` (of an (…, len(rows)) array of means) with its paired interval, widened by the rows' largest
    ``tolerance``, and verdict; None when a row carries no per-query results."""
    pqs = [per_query_of(r) for r in rows]
    if any(p is None for p in pqs):
        return None
    observed = np.array([[float(r[metric]) for r in rows]])
    value = float(statistic(observed)[0])
    lo, hi = interval(statistic(boot_means(pqs, metric)))
    margin = max(p.tolerance for p in pqs)
    lo, hi = lo - margin, hi + margin
    return Estimate(value, lo, hi, threshold, verdict(lo, hi, threshold))


def difference(a, b, metric: str, threshold: float = 0.0) -> Estimate | None:
    """``b − a`` in ``metric`` (points) with its paired interval; the verdict of ``b − a > threshold``."""
    return estimate([a, b], metric, lambda m: m[:, 1] - m[:, 0], threshold)


def combine(statuses: Sequence[str]) -> str:
    """The verdict of a claim made of several comparisons: held when all are, not held when any is not."""
    if any(s == NOT_HELD for s in statuses):
        return NOT_HELD
    return HELD if statuses and all(s == HELD for s in statuses) else INCONCLUSIVE


@lru_cache(maxsize=8)
def bootstrap_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resample counts of ``n`` items drawn with replacement (multinomial; seeded; read-only, cached)."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=int(n_boot)).astype(np.float64)
    counts.setflags(write=False)
    return counts
