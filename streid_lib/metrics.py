"""Market-1501/DukeMTMC ranking metrics: CMC, mAP (the authors' trapezoid AP), open-reid AP, mINP (docs/reference.md
§5); higher score = better, ties in gallery order (§13.2), positions counted rather than sorted (§8).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import StreidError
from .metadata import Metadata

JUNK_PID = -1


class MetricsError(StreidError):
    """Scores or metadata that cannot be evaluated (shape, non-finite score, junk query, ...)."""


@dataclass(frozen=True)
class RankingResult:
    """Per-query metrics of one score matrix: (nq,) ``ap`` (trapezoid), ``ap_open_reid``, ``inp`` (G/(r_G+1)), all
    in [0, 1] and 0 without a good item; (nq,) int64 ``first_hit`` (0-based junk-free position, -1 if none) and
    ``n_good``; (ng,) ``cmc`` fractions over all nq queries."""

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

    def rank_k(self, k: int) -> float:
        """CMC at rank k (1-based), in percent; the last CMC value when the gallery is shorter than k."""
        if k < 1:
            raise MetricsError(f"rank k must be >= 1, got {k}")
        return 100.0 * float(self.cmc[min(k, len(self.cmc)) - 1])

    def summary(self) -> dict[str, float]:
        """``{"R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"}`` in percent; means summed in query order (as the
        reference's loop, not pairwise) over all queries."""
        n = max(self.n_queries, 1)

        def mean(a: np.ndarray) -> float:
            return 100.0 * float(np.add.accumulate(a)[-1]) / n if len(a) else 0.0

        ranks = {f"R{k}": self.rank_k(k) for k in (1, 5, 10)}
        return ranks | {"mAP": mean(self.ap), "mAP_open_reid": mean(self.ap_open_reid), "mINP": mean(self.inp)}


_LITTLE_ENDIAN = sys.byteorder == "little"
_HAS_POPCOUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0
#: Bool buffers are padded to a multiple of this many columns: 255 uint64 words of 8 bools (see _count_rows).
_BLOCK = 8 * 255
#: Integer score dtypes ranked through int64 keys ``score·2^32 + (n - 1 - position)`` (distinct, stable order).
_KEYED = (np.int8, np.int16, np.int32, np.uint8, np.uint16)
#: Float dtypes compared as they are; wider floats are ranked on a float32 copy first.
_NARROW_FLOATS = (np.float16, np.float32)


def _count_rows(buf: np.ndarray) -> np.ndarray:
    """Number of True per row of a C-contiguous (G, W) bool array, W a multiple of :data:`_BLOCK`: bytes summed as
    uint64 words, 255 at a time (no byte lane exceeds 255), then the lanes (about twice a popcount's speed)."""
    g = buf.shape[0]
    lanes = np.add.reduce(buf.view(np.uint64).reshape(g, -1, 255), axis=2)
    return lanes.view(np.uint8).reshape(g, -1).sum(axis=1, dtype=np.int64)


def _count_before(buf: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``buf[i, :stop[i]].sum()`` per row of a C-contiguous (n, W) bool array (W a multiple of 8), by prefix sums of
    the popcounts of whole uint64 words, then the start of the last one."""
    if not (_HAS_POPCOUNT and _LITTLE_ENDIAN):
        return np.count_nonzero(buf & (np.arange(buf.shape[1]) < stop[:, None]), axis=1).astype(np.int64)
    words = buf.view(np.uint64)
    csum = np.zeros((len(stop), words.shape[1] + 1), np.int64)
    np.cumsum(np.bitwise_count(words), axis=1, out=csum[:, 1:])
    q, r = np.divmod(stop, 8)
    rows = np.arange(len(stop))
    # The first r bytes of word q are its r low-order bytes on a little-endian machine (q < n_words: stop < W).
    last = words[rows, q] & ((np.uint64(1) << (8 * r).astype(np.uint64)) - np.uint64(1))
    return csum[rows, q] + np.bitwise_count(last).astype(np.int64)


@dataclass(frozen=True)
class QueryChunk:
    """Per query of a chunk, the good and same-camera junk items (ascending kept-gallery positions), shared by every
    score row of the chunk."""

    query: Metadata
    goods: tuple[np.ndarray, ...]
    junks: tuple[np.ndarray, ...]
    n_good: np.ndarray  # (c,) int64


class RankingProtocol:
    """The Market/Duke protocol of one gallery, shared by every score row: :attr:`columns` are the items that are
    not pid -1 (junk for every query); good and same-camera junk items are looked up per (pid, camera) and cached."""

    def __init__(self, gallery: Metadata) -> None:
        if len(gallery) == 0:
            raise MetricsError("gallery is empty: at least one gallery item is needed")
        self.gallery, self.n_gallery = gallery, len(gallery)
        keep = gallery.pids != JUNK_PID
        #: Gallery positions that take part in rankings (all but pid -1), ascending.
        self.columns = np.flatnonzero(keep)
        self.n_kept, kept_pids = len(self.columns), gallery.pids[keep]
        # Bool buffers are padded to a multiple of _BLOCK columns for _count_rows; padding stays False.
        self.width = -(-max(self.n_kept, 1) // _BLOCK) * _BLOCK
        # Gallery positions grouped by pid (positions ascending within a pid) for O(log Ng) look-up.
        order = np.argsort(kept_pids, kind="stable")
        self._pid_sorted, self._pos_sorted = kept_pids[order], order.astype(np.int64)
        self._cam_sorted = gallery.cams[keep][order]
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def chunk(self, query: Metadata, offset: int = 0) -> QueryChunk:
        """Good/junk items of a chunk of queries (``offset``: index of its first query, for error messages)."""
        if (query.pids == JUNK_PID).any():
            i = int(np.argmax(query.pids == JUNK_PID))
            raise MetricsError(f"query {offset + i} has pid -1 (junk): junk images cannot be queries")
        pairs = []  # kept-gallery positions (ascending) of the good and the same-camera junk items, cached
        for key in zip(query.pids.tolist(), query.cams.tolist(), strict=True):
            if (hit := self._cache.get(key)) is None:
                lo, hi = np.searchsorted(self._pid_sorted, [key[0], key[0] + 1])
                pos, other_cam = self._pos_sorted[lo:hi], self._cam_sorted[lo:hi] != key[1]
                hit = self._cache[key] = (pos[other_cam], pos[~other_cam])
            pairs.append(hit)
        goods = tuple(g for g, _ in pairs)
        return QueryChunk(query, goods, tuple(j for _, j in pairs), np.array([len(g) for g in goods], np.int64))


class MetricAccumulator:
    """Evaluate a score matrix chunk by chunk of queries (memory O(chunk × gallery)): ``update`` consecutive chunks,
    then ``result()``, equal to :func:`evaluate_scores` of the whole matrix. Several accumulators may share one
    ``protocol`` and, per chunk, its :class:`QueryChunk` (``update(scores, chunk=protocol.chunk(query))``)."""

    def __init__(self, gallery: Metadata, protocol: RankingProtocol | None = None) -> None:
        if protocol is None:
            protocol = RankingProtocol(gallery)
        elif protocol.gallery is not gallery and len(protocol.gallery) != len(gallery):
            raise MetricsError(f"protocol: built for {len(protocol.gallery)} gallery items, not {len(gallery)}")
        self.protocol = protocol
        self.n_gallery = len(gallery)
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []  # per chunk: n_good, flat sorted ranks (query-major)
        self._n_queries = 0

    def update(self, scores: np.ndarray, query: Metadata | None = None, *, chunk: QueryChunk | None = None) -> None:
        """Add the rankings of c queries: (c, Ng) finite scores, or (c, n_kept) on the protocol's columns, with the
        queries' metadata (in row order) or their ``chunk``."""
        if chunk is None and query is None:
            raise MetricsError("update: give the query metadata or its QueryChunk")
        n = len(query if chunk is None else chunk.query)
        scores = np.asarray(scores)
        n_kept = self.protocol.n_kept
        if scores.ndim != 2 or scores.shape[0] != n or scores.shape[1] not in (self.n_gallery, n_kept):
            raise MetricsError(
                f"scores: expected shape (len(query), len(gallery)) = ({n}, {self.n_gallery}), got {scores.shape}"
            )
        if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
            raise MetricsError(f"scores: expected real numbers, got dtype {scores.dtype}")
        if n == 0:
            return
        if np.issubdtype(scores.dtype, np.floating) and not np.isfinite(scores.sum()):
            # One fast sum finds NaN/inf (or an overflow, which the exact check below clears).
            if (bad := ~np.isfinite(scores)).any():
                q, g = np.argwhere(bad)[0]
                value = float(scores[q, g])
                if scores.shape[1] != self.n_gallery:  # scores on the protocol's columns
                    g = self.protocol.columns[g]
                raise MetricsError(
                    f"scores[{self._n_queries + q}, {g}] = {value}: scores must be finite (NaN/inf cannot be ranked)"
                )
        if chunk is None:
            chunk = self.protocol.chunk(query, self._n_queries)
        if scores.shape[1] == self.n_gallery and n_kept != self.n_gallery:  # (c, Ng): keep the protocol's columns
            scores = np.take(scores, self.protocol.columns, axis=1)
        self._parts.append(rank_chunk(np.ascontiguousarray(scores), chunk, self.protocol))
        self._n_queries += n

    def result(self) -> RankingResult:
        """The metrics of all queries added so far."""
        nq = self._n_queries
        parts = self._parts or [(np.zeros(0, np.int64),) * 2]
        n_good, r = (np.concatenate(a).astype(np.int64) for a in zip(*parts))
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


def _resolve_fine(eq: np.ndarray, stop: np.ndarray, frow: np.ndarray, crow: np.ndarray, n_k: int) -> np.ndarray:
    """Items ahead of each tied good item among those equal to it in float32 (``eq``), by full-precision score
    (``x_k > x_j``, or equal and ``k < j``); items exactly equal to their float32 value are counted in bulk."""
    xj, v = frow[stop], crow[stop].astype(frow.dtype)
    inexact = np.zeros(eq.shape[1], bool)
    np.not_equal(frow, crow, out=inexact[:n_k])
    exact_eq = eq & ~inexact
    n_exact = _count_rows(exact_eq)
    # x_j == v: the exact items tie with j (ahead when earlier); v > x_j: all ahead; v < x_j: none.
    out = np.where(xj == v, _count_before(exact_eq, stop), np.where(v > xj, n_exact, 0))
    which, col = np.nonzero(eq & inexact)
    if len(col):
        xk, xt, sk = frow[col], xj[which], stop[which]
        ahead = (xk > xt) | ((xk == xt) & (col < sk))
        out += np.bincount(which[ahead], minlength=len(stop))
    return out


def rank_chunk(kept: np.ndarray, chunk: QueryChunk, protocol: RankingProtocol) -> tuple[np.ndarray, np.ndarray]:
    """Sorted 0-based junk-free ranks of every good item of each query of a chunk (flat, query-major), from (c,
    n_kept) C-contiguous scores on the protocol's columns (§5, §8).

    Rank of good item j: ``#{k : s_k > s_j} + #{k < j : s_k = s_j}`` minus the junk so counted, as bools counted in
    uint64 words. float64 scores are compared as float32 first (monotone rounding: only float32 ties are compared
    again in full precision); small integer scores become distinct int64 keys ``score·2^32 + (n_kept - 1 - k)``.
    """
    n_k = protocol.n_kept
    fine = None
    if keyed := kept.dtype.type in _KEYED:
        coarse = np.left_shift(kept, 32, dtype=np.int64)
        coarse += np.arange(n_k - 1, -1, -1, dtype=np.int64)
    elif kept.dtype.type in _NARROW_FLOATS or not np.issubdtype(kept.dtype, np.floating):
        coarse = kept  # float32/float16, or wide integers: compared exactly as they are
    else:
        coarse, fine = kept.astype(np.float32), kept
    exact = coarse if fine is None else fine
    width = protocol.width
    buf = np.zeros((16, width), dtype=bool)  # grows on demand; padding columns stay False
    n_good = chunk.n_good
    out: list[np.ndarray] = []
    for i in range(len(kept)):
        g = int(n_good[i])
        if g == 0:
            continue
        good, junk = chunk.goods[i], chunk.junks[i]
        if g > len(buf):
            buf = np.zeros((max(g, 2 * len(buf)), width), dtype=bool)
        row = coarse[i]
        t = row[good][:, None]
        b = buf[:g]
        # Items strictly better than each good item ...
        np.greater(row, t, out=b[:, :n_k])
        rank = _count_rows(b)
        if not keyed:
            # ... plus equal items earlier in gallery order (stable ties). Each good item equals itself.
            np.equal(row, t, out=b[:, :n_k])
            tied = np.flatnonzero(_count_rows(b) > 1)
            if len(tied):
                eq = b[tied]  # (n_tied, width): the items equal to each tied good item (in coarse precision)
                stop = good[tied]
                if fine is None:
                    rank[tied] += _count_before(eq, stop)
                else:
                    rank[tied] += _resolve_fine(eq, stop, fine[i], coarse[i], n_k)
        if len(junk):
            # Same-camera junk items that were counted ahead of a good item are removed from the list.
            xrow = exact[i]
            sj, tx = xrow[junk][None, :], xrow[good][:, None]
            ahead = (sj > tx) | ((sj == tx) & (junk[None, :] < good[:, None]))
            rank -= ahead.sum(axis=1)
        out.append(np.sort(rank))
    ranks = np.concatenate(out) if out else np.zeros(0, np.int64)
    return n_good, ranks


def iter_row_chunks(n: int, chunk_size: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` with at most ``chunk_size`` items."""
    if chunk_size < 1:
        raise MetricsError(f"chunk_size must be >= 1, got {chunk_size}")
    for a in range(0, n, chunk_size):
        yield slice(a, min(a + chunk_size, n))


def default_threads() -> int:
    """Ranking threads beside the scoring thread: 2 where there are 2 CPUs or more, else 1 (figures do not depend
    on it; 4.2 s → 2.8 s for the four Market rows on 2 cores)."""
    return min(2, os.cpu_count() or 1)


def rank_chunks(
    chunks: Iterable[tuple[slice, dict[str, np.ndarray]]],
    query: Metadata,
    protocol: RankingProtocol,
    rows: Sequence[str],
    threads: int = 1,
) -> dict[str, RankingResult]:
    """``{row: RankingResult}`` of score chunks: ``chunks`` yields ``(query slice, {row: (c, n) scores})`` in query
    order, on the whole gallery or the protocol's columns; the rows of a chunk share its :class:`QueryChunk`. With
    ``threads > 1`` chunk i is ranked by worker threads while chunk i+1 is scored, in query order per row."""
    accs = {row: MetricAccumulator(protocol.gallery, protocol=protocol) for row in rows}
    if threads == 1:
        for sl, scores in chunks:
            chunk = protocol.chunk(query.take(sl), sl.start)
            for row in rows:
                accs[row].update(scores[row], chunk=chunk)
    else:
        with ThreadPoolExecutor(int(threads)) as pool:
            pending: list = []
            for sl, scores in chunks:
                chunk = protocol.chunk(query.take(sl), sl.start)
                for f in pending:  # the previous chunk is done before this one starts: order kept per row
                    f.result()
                pending = [pool.submit(accs[row].update, scores[row], chunk=chunk) for row in rows]
            for f in pending:
                f.result()
    return {row: accs[row].result() for row in rows}


def evaluate_scores(scores: np.ndarray, query: Metadata, gallery: Metadata, chunk_size: int = 256) -> RankingResult:
    """CMC, mAP (trapezoid and open-reid) and mINP of a (nq, ng) score matrix (higher = better, ties in gallery
    order), ``chunk_size`` queries at a time."""
    scores = np.asarray(scores)
    if len(query) == 0:
        raise MetricsError("query is empty: at least one query is needed")
    if scores.ndim != 2 or scores.shape != (len(query), len(gallery)):
        raise MetricsError(
            f"scores: expected shape (len(query), len(gallery)) = ({len(query)}, {len(gallery)}), got {scores.shape}"
        )
    acc = MetricAccumulator(gallery)
    for sl in iter_row_chunks(len(query), chunk_size):
        acc.update(scores[sl], query.take(sl))
    return acc.result()
