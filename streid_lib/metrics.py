"""Ranking metrics with the Market-1501/DukeMTMC protocol: CMC, mAP (two conventions) and mINP.

Protocol (reference behaviour §5, identical to the authors' and layumi's ``evaluate.py``), per query:

* **good** gallery items: same pid and a different camera;
* **junk** items: same pid and the same camera, or pid ``-1``; they are removed from the ranking,
  which keeps its order otherwise;
* distractors (pid ``0``) are ordinary negatives.

Let ``r_1 < … < r_G`` be the 0-based positions of the G good items in the junk-free ranking.

* ``ap`` (default, reported as ``mAP``): the authors' trapezoid rule,
  ``AP = Σ_i (1/G)·(old_i + i/(r_i+1))/2`` with ``old_i = (i-1)/r_i`` (``1.0`` when ``r_i = 0``).
* ``ap_open_reid`` (``mAP_open_reid``): the non-interpolated AP, mean over hits of ``i/(r_i+1)``. open-reid
  computes it with scikit-learn, which averages over tied scores; here ties follow the stable order below.
* ``inp`` (``mINP``, Ye et al. 2021): ``G/(r_G+1)``, the precision at the hardest (last) good item.
* CMC: ``cmc[k]`` is the fraction of queries whose first good item is at position ``<= k``.

Queries without any good item follow the reference: CMC counts 0 for them, their AP, open-reid AP and
INP are 0, and every average divides by the **total** number of queries. ``n_valid`` tells how many
queries had at least one good item.

**Ties** are broken by gallery order (stable): among equal scores, the gallery item with the smaller
index ranks first. Higher score = better.

Speed: no sort is needed. The position of a good item j among the non-junk items is a count,
``#{k : s_k > s_j} + #{k < j : s_k = s_j}`` minus the junk items counted, so each query costs two
vectorised comparisons of its G good scores against its gallery row (``G × Ng``), counted with a
popcount. pid ``-1`` columns are junk for every query and are dropped once per chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .metadata import Metadata

JUNK_PID = -1


class MetricsError(ValueError):
    """Scores or metadata that cannot be evaluated (shape, non-finite score, junk query, ...)."""


@dataclass(frozen=True)
class RankingResult:
    """Per-query ranking metrics of one score matrix.

    Attributes:
        ap: (nq,) trapezoid AP (authors' convention), in [0, 1]; 0 for a query without good items.
        ap_open_reid: (nq,) non-interpolated AP (mean precision at each hit), in [0, 1].
        inp: (nq,) inverse negative penalty ``G/(r_G+1)``, in [0, 1].
        first_hit: (nq,) int64 0-based position of the first good item in the junk-free ranking; -1 if none.
        n_good: (nq,) int64 number of good gallery items per query.
        cmc: (ng,) float64 cumulative match characteristic, fractions in [0, 1] over all nq queries.
    """

    ap: np.ndarray
    ap_open_reid: np.ndarray
    inp: np.ndarray
    first_hit: np.ndarray
    n_good: np.ndarray
    cmc: np.ndarray

    @property
    def n_queries(self) -> int:
        """Number of queries evaluated (the denominator of every average)."""
        return len(self.ap)

    @property
    def n_valid(self) -> int:
        """Number of queries with at least one good gallery item."""
        return int((self.n_good > 0).sum())

    @property
    def per_query(self) -> dict[str, np.ndarray]:
        """Per-query arrays (for bootstrap over queries): ap, ap_open_reid, inp, first_hit, n_good."""
        return {
            "ap": self.ap,
            "ap_open_reid": self.ap_open_reid,
            "inp": self.inp,
            "first_hit": self.first_hit,
            "n_good": self.n_good,
        }

    def rank_k(self, k: int) -> float:
        """CMC at rank k (1-based), in percent; the last CMC value when the gallery is shorter than k."""
        if k < 1:
            raise MetricsError(f"rank k must be >= 1, got {k}")
        return 100.0 * float(self.cmc[min(k, len(self.cmc)) - 1])

    def summary(self) -> dict[str, float]:
        """``{"R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"}`` in percent (plain floats).

        Means are summed in query order, as the reference does, and divided by the number of queries.
        """
        n = max(self.n_queries, 1)

        def mean(a: np.ndarray) -> float:
            # Sequential sum in query order (like the reference's Python loop), not pairwise.
            return 100.0 * float(np.add.accumulate(a)[-1]) / n if len(a) else 0.0

        return {
            "R1": self.rank_k(1),
            "R5": self.rank_k(5),
            "R10": self.rank_k(10),
            "mAP": mean(self.ap),
            "mAP_open_reid": mean(self.ap_open_reid),
            "mINP": mean(self.inp),
        }


_HAS_POPCOUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0


def _popcount_rows(buf: np.ndarray) -> np.ndarray:
    """Number of True per row of a C-contiguous (G, W) bool array whose W is a multiple of 8."""
    if _HAS_POPCOUNT:  # popcount of 8 bools (bytes 0/1) at a time: the fastest count numpy offers
        return np.bitwise_count(buf.view(np.uint64)).sum(axis=1, dtype=np.int64)
    return np.count_nonzero(buf, axis=1).astype(np.int64)


class MetricAccumulator:
    """Evaluate a score matrix chunk by chunk of queries; memory stays O(chunk × gallery).

    ``update(scores_chunk, query_chunk)`` for consecutive chunks, then ``result()``. The result equals
    :func:`evaluate_scores` on the whole matrix.

    Args:
        gallery: metadata of the Ng gallery items (columns of every chunk).
        threads: worker threads per chunk (numpy releases the GIL in the comparisons); 1 = none.
    """

    def __init__(self, gallery: Metadata, threads: int = 1) -> None:
        if len(gallery) == 0:
            raise MetricsError("gallery is empty: at least one gallery item is needed")
        if threads < 1:
            raise MetricsError(f"threads must be >= 1, got {threads}")
        self.gallery = gallery
        self.threads = int(threads)
        self.n_gallery = len(gallery)
        keep = gallery.pids != JUNK_PID
        # pid -1 columns are junk for every query: drop them once per chunk (None = keep all).
        self._keep = None if keep.all() else np.flatnonzero(keep)
        kept_pids = gallery.pids[keep]
        self._n_kept = len(kept_pids)
        # Bool buffers are padded to a multiple of 8 columns so they can be popcounted as uint64.
        self._width = -(-max(self._n_kept, 1) // 8) * 8
        # Gallery positions grouped by pid (positions ascending within a pid) for O(log Ng) look-up.
        order = np.argsort(kept_pids, kind="stable")
        self._pid_sorted = kept_pids[order]
        self._pos_sorted = order.astype(np.int64)
        self._cam_sorted = gallery.cams[keep][order]
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._n_good: list[np.ndarray] = []
        self._ranks: list[np.ndarray] = []  # per chunk: flat sorted ranks of good items, query-major
        self._n_queries = 0

    def update(self, scores: np.ndarray, query: Metadata) -> None:
        """Add the rankings of a chunk of queries.

        Args:
            scores: (c, Ng) scores of c queries against the whole gallery; higher = better; finite.
            query: metadata of the c queries, in row order.
        """
        scores = np.asarray(scores)
        if scores.ndim != 2 or scores.shape != (len(query), self.n_gallery):
            raise MetricsError(
                f"scores: expected shape (len(query), len(gallery)) = ({len(query)}, {self.n_gallery}), "
                f"got {scores.shape}"
            )
        if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
            raise MetricsError(f"scores: expected real numbers, got dtype {scores.dtype}")
        if len(query) == 0:
            return
        if np.issubdtype(scores.dtype, np.floating) and not np.isfinite(scores.sum(dtype=np.float64)):
            # One fast sum finds NaN/inf (or an overflow, which the exact check below clears).
            bad = ~np.isfinite(scores)
            if bad.any():
                q, g = np.argwhere(bad)[0]
                raise MetricsError(
                    f"scores[{self._n_queries + q}, {g}] = {float(scores[q, g])}: scores must be finite "
                    "(NaN/inf cannot be ranked)"
                )
        if (query.pids == JUNK_PID).any():
            i = int(np.argmax(query.pids == JUNK_PID))
            raise MetricsError(f"query {self._n_queries + i} has pid -1 (junk): junk images cannot be queries")
        kept = scores if self._keep is None else np.take(scores, self._keep, axis=1)
        kept = np.ascontiguousarray(kept)
        n = len(query)
        if self.threads == 1 or n < 2 * self.threads:
            n_good, ranks = self._rank_block(kept, query.pids, query.cams)
        else:
            bounds = np.linspace(0, n, self.threads + 1).astype(int)
            with ThreadPoolExecutor(self.threads) as pool:
                parts = list(
                    pool.map(
                        lambda ab: self._rank_block(
                            kept[ab[0] : ab[1]], query.pids[ab[0] : ab[1]], query.cams[ab[0] : ab[1]]
                        ),
                        zip(bounds[:-1], bounds[1:], strict=True),
                    )
                )
            n_good = np.concatenate([p[0] for p in parts])
            ranks = np.concatenate([p[1] for p in parts])
        self._n_good.append(n_good)
        self._ranks.append(ranks)
        self._n_queries += n

    def _good_junk(self, pid: int, cam: int) -> tuple[np.ndarray, np.ndarray]:
        """Kept-gallery positions (ascending) of the good and the same-camera junk items of one query (cached)."""
        key = (pid, cam)
        hit = self._cache.get(key)
        if hit is None:
            lo, hi = np.searchsorted(self._pid_sorted, [pid, pid + 1])
            pos = self._pos_sorted[lo:hi]
            other_cam = self._cam_sorted[lo:hi] != cam
            hit = self._cache[key] = (pos[other_cam], pos[~other_cam])
        return hit

    def _rank_block(self, kept: np.ndarray, pids: np.ndarray, cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sorted 0-based junk-free ranks of every good item of each query of a block (flat, query-major)."""
        n_k = self._n_kept
        buf = np.zeros((16, self._width), dtype=bool)  # grows on demand; padding columns stay False
        n_good = np.zeros(len(pids), np.int64)
        out: list[np.ndarray] = []
        for q in range(len(pids)):
            good, junk = self._good_junk(int(pids[q]), int(cams[q]))
            g = len(good)
            n_good[q] = g
            if g == 0:
                continue
            if g > len(buf):
                buf = np.zeros((max(g, 2 * len(buf)), self._width), dtype=bool)
            row = kept[q]
            t = row[good]
            b = buf[:g]
            # Items strictly better than each good item ...
            np.greater(row, t[:, None], out=b[:, :n_k])
            rank = _popcount_rows(b)
            # ... plus equal items earlier in gallery order (stable ties). Each good item equals itself.
            np.equal(row, t[:, None], out=b[:, :n_k])
            n_eq = _popcount_rows(b)
            tied = np.flatnonzero(n_eq > 1)
            if len(tied):
                before = np.arange(n_k)[None, :] < good[tied, None]
                rank[tied] += np.count_nonzero(b[tied, :n_k] & before, axis=1)
            if len(junk):
                # Same-camera junk items that were counted ahead of a good item are removed from the list.
                sj = row[junk]
                ahead = (sj[None, :] > t[:, None]) | ((sj[None, :] == t[:, None]) & (junk[None, :] < good[:, None]))
                rank -= ahead.sum(axis=1)
            out.append(np.sort(rank))
        ranks = np.concatenate(out) if out else np.zeros(0, np.int64)
        return n_good, ranks

    def result(self) -> RankingResult:
        """The metrics of all queries added so far."""
        nq = self._n_queries
        n_good = np.concatenate(self._n_good) if self._n_good else np.zeros(0, np.int64)
        r = (np.concatenate(self._ranks) if self._ranks else np.zeros(0, np.int64)).astype(np.int64)
        qid = np.repeat(np.arange(nq), n_good)
        start = np.cumsum(n_good) - n_good  # index of each query's first good item in the flat arrays
        i = (np.arange(len(r)) - start[qid] + 1).astype(np.float64)  # 1-based hit number
        rf = r.astype(np.float64)
        precision = i / (rf + 1.0)
        old = np.where(r == 0, 1.0, (i - 1.0) / np.maximum(rf, 1.0))
        d_recall = 1.0 / n_good[qid]
        # Same evaluation order as the reference: d_recall * (old + precision) / 2, summed over hits in order.
        ap = np.bincount(qid, d_recall * (old + precision) / 2, minlength=nq)
        ap_open = np.bincount(qid, precision * d_recall, minlength=nq)
        valid = n_good > 0
        first_hit = np.full(nq, -1, np.int64)
        first_hit[valid] = r[start[valid]]
        inp = np.zeros(nq)
        last = start + n_good - 1
        inp[valid] = n_good[valid] / (r[last[valid]] + 1.0)
        hits = np.bincount(first_hit[valid], minlength=self.n_gallery)[: self.n_gallery]
        cmc = np.cumsum(hits) / max(nq, 1)
        return RankingResult(ap, ap_open, inp, first_hit, n_good, cmc)


def iter_row_chunks(n: int, chunk_size: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` with at most ``chunk_size`` items."""
    if chunk_size < 1:
        raise MetricsError(f"chunk_size must be >= 1, got {chunk_size}")
    for a in range(0, n, chunk_size):
        yield slice(a, min(a + chunk_size, n))


def evaluate_scores(
    scores: np.ndarray, query: Metadata, gallery: Metadata, chunk_size: int = 256, threads: int = 1
) -> RankingResult:
    """CMC, mAP (trapezoid and open-reid) and mINP of a (nq, ng) score matrix; higher = better.

    Ties are broken by gallery order (the smaller gallery index ranks first). ``chunk_size`` queries
    are processed at a time, which bounds the temporary copy without the pid -1 columns.
    """
    scores = np.asarray(scores)
    if len(query) == 0:
        raise MetricsError("query is empty: at least one query is needed")
    if scores.ndim != 2 or scores.shape != (len(query), len(gallery)):
        raise MetricsError(
            f"scores: expected shape (len(query), len(gallery)) = ({len(query)}, {len(gallery)}), got {scores.shape}"
        )
    acc = MetricAccumulator(gallery, threads=threads)
    for sl in iter_row_chunks(len(query), chunk_size):
        acc.update(scores[sl], query.take(sl))
    return acc.result()
