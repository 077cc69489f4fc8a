"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) of a precomputed distance or score matrix (docs/reference.md §6),
exact, chunked and sparse (memory and speed: §8); the re-ranked rows ``VIS+re-rank``, ``st-ReID+re-rank`` and the joint
re-ranking variants (§12). ``**kw`` of the rows: :func:`rerank_distances`' ``k1, k2, lambda_value, progress``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._progress import progress_bar
from .errors import StreidError
from .features import FeatureSet
from .joint import DEFAULT_METRIC, JointMetric, normalize_rows
from .metrics import evaluate_scores
from .st_model import SpatialTemporalModel


class RerankError(StreidError):
    """Bad input to re-ranking (names the argument, its value and what was expected)."""


@dataclass(frozen=True)
class RerankParams:
    """Effective parameters after clamping to the matrix size (see :func:`effective_params`)."""

    k1: int
    k2: int
    k_half: int
    lambda_value: float
    n: int
    n_query: int


def _check_int(name: str, value: Any, ok: bool = True, expected: str = "an integer >= 1") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not ok:
        raise RerankError(f"{name}: expected {expected}, got {value!r}")


def effective_params(n: int, n_query: int, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> RerankParams:
    """Validate the parameters and clamp them to an N-image matrix (§6.1): ``k1 ← min(k1, N − 1)``,
    ``k2 ← min(k2, k1 + 1)``, ``k_half = np.around(k1 / 2)`` (half-to-even, as the reference)."""
    for name, value in (("k1", k1), ("k2", k2)):
        _check_int(name, value, isinstance(value, (int, np.integer)) and value >= 1)
    if not (0.0 <= (lam := float(lambda_value)) <= 1.0):
        raise RerankError(f"lambda_value: expected a number in [0, 1], got {lambda_value!r}")
    if n < 2:
        raise RerankError(f"dist: expected at least 2 images (one query, one gallery), got N={n}")
    expected = f"an integer in 1..N-1 = 1..{n - 1} (query rows first)"
    _check_int("n_query", n_query, isinstance(n_query, (int, np.integer)) and 1 <= n_query <= n - 1, expected)
    k1e = min(int(k1), n - 1)
    return RerankParams(k1e, min(int(k2), k1e + 1), int(np.around(k1e / 2)), lam, int(n), int(n_query))


def k_reciprocal_rerank(
    dist: Any,
    n_query: int,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    progress: bool = True,
    block_size: int = 32,
    *,
    similarity: bool = False,
) -> np.ndarray:
    """(nq, N − nq) float32 final distances (ascending = better) of an (N, N) distance matrix over query+gallery,
    query first, neither modified nor copied whole (Fortran order reads fastest); ``block_size`` is a speed knob of
    the neighbour search. ``similarity``: ``dist`` is a score matrix, read as ``d = 2 − 2·score`` (per chunk, §6)."""
    kind = "score" if similarity else "dist"
    shape = np.shape(dist)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise RerankError(f"{kind}: expected a square (N, N) matrix over query+gallery, got shape {shape}")
    prm = effective_params(int(shape[0]), n_query, k1, k2, lambda_value)
    _check_int("block_size", block_size, isinstance(block_size, (int, np.integer)) and block_size >= 1)
    K = prm.k1 + 1
    with progress_bar(total=4, desc="k-reciprocal re-ranking", enabled=progress, leave=False) as bar:
        xn = np.asarray(dist)
        if xn.dtype not in (np.float32, np.float64):
            if not np.issubdtype(xn.dtype, np.number) or np.issubdtype(xn.dtype, np.complexfloating):
                raise RerankError(f"{kind}: expected a real float matrix, got dtype {xn.dtype}")
            xn = xn.astype(np.float64)
        bar.set_postfix_str("neighbours")
        ranks, cext = _topk_columns(xn, K, kind == "score", int(block_size), kind)
        bar.update()
        dmax = cext if kind == "dist" else 2.0 - 2.0 * cext  # column maxima of d (the normaliser), float64
        if (bad := ~(dmax > 0)).any():
            j = int(np.argmax(bad))
            raise RerankError(
                f"{kind}: column {j} has maximum distance {dmax[j]!r}; the normalisation d / column-max needs a "
                "positive maximum in every column"
            )
        bar.set_postfix_str("reciprocal sets")
        V = _build_v(ranks, prm, kind, dmax, xn)
        bar.update()
        bar.set_postfix_str("query expansion")
        if prm.k2 != 1:  # V_qe[i] = mean(V[ranks[i, :k2]]) (float64 accumulation, stored float32)
            k2, n = prm.k2, prm.n
            Q = (np.full(n * k2, 1.0 / k2), ranks[:, :k2].reshape(-1), np.arange(0, n * k2 + 1, k2))
            V = (sp.csr_matrix(Q, shape=(n, n)) @ V.astype(np.float64)).tocsr()
            V.sort_indices()
            V = V.astype(np.float32)
        bar.update()
        bar.set_postfix_str("jaccard")
        out = _jaccard_final(V, xn, prm, kind, dmax)
        bar.update()
    return out


def rerank_distances(
    score: Any,
    n_query: int,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    progress: bool = True,
    block_size: int = 32,
) -> np.ndarray:
    """:func:`k_reciprocal_rerank` of a similarity matrix (``similarity=True``): (nq, N − nq) float32 final
    **distances** (ascending = better)."""
    return k_reciprocal_rerank(score, n_query, k1, k2, lambda_value, progress, block_size, similarity=True)


def _nonfinite_error(name: str, col: int) -> RerankError:
    return RerankError(f"{name}: column {col} contains NaN or inf; re-ranking needs finite values")


# -- step 2: exact k nearest entries of every column, ties broken by the smaller row index -------------------------


def _topk_columns(x: np.ndarray, K: int, descending: bool, B: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (N, K) of the K best entries of every column of x, best first, ties by the smaller row index, and
    each column's extreme on the other side (float64, the normaliser). Best = smallest, or largest (``descending``).

    Exact block pruning: the K row blocks (≤ B rows; interleaved rows when x is Fortran-ordered) with the best
    extrema hold the K best entries, so only they are read again; a tie at the boundary falls back to a full sort.
    """
    n = x.shape[0]
    best_red, other_red = (np.maximum, np.minimum) if descending else (np.minimum, np.maximum)
    fortran = x.flags.f_contiguous and not x.flags.c_contiguous
    nbm, tail = divmod(n, B)  # full blocks, rows left over
    nb = nbm + (tail > 0)
    ranks = np.empty((n, K), dtype=np.int64)
    if nb <= K:
        # Every block would be a candidate: plain stable sort of whole columns (small N).
        for c0 in range(0, n, 1024):
            cols = np.ascontiguousarray(x[:, c0 : c0 + 1024].T)
            if not np.isfinite(cols).all():
                raise _nonfinite_error(name, c0 + int(np.argmin(np.isfinite(cols).all(axis=1))))
            ranks[c0 : c0 + len(cols)] = np.argsort(-cols if descending else cols, axis=1, kind="stable")[:, :K]
        cext = other_red.reduce(x, axis=0).astype(np.float64)
        return ranks, cext

    bT = np.empty((n, nb), dtype=x.dtype)  # bT[i, j]: best entry of block j of column i
    if fortran:
        xt = x.T  # C-contiguous: row i is column i of x
        cext = np.empty(n, dtype=x.dtype)
        step = max(1, (1 << 22) // max(n, 1))
        for c0 in range(0, n, step):
            rows = xt[c0 : c0 + step]
            bT[c0 : c0 + step, :nbm] = best_red.reduce(rows[:, : nbm * B].reshape(len(rows), B, nbm), axis=1)
            if tail:
                bT[c0 : c0 + step, nbm] = best_red.reduce(rows[:, nbm * B :], axis=1)
            cext[c0 : c0 + step] = other_red.reduce(rows, axis=1)
    else:
        bext = np.empty((nb, n), dtype=x.dtype)
        cext = None
        step = max(1, 256 // B) * B  # rows per slab (a whole number of blocks)
        for r0 in range(0, n, step):
            slab = x[r0 : r0 + step]
            full = len(slab) // B
            if full:
                bext[r0 // B : r0 // B + full] = best_red.reduce(slab[: full * B].reshape(full, B, n), axis=1)
            if full * B < len(slab):
                bext[r0 // B + full] = best_red.reduce(slab[full * B :], axis=0)
            o = other_red.reduce(slab, axis=0)
            cext = o if cext is None else other_red(cext, o)
        bT[:] = bext.T
        del bext
    # NaN propagates through min/max; ±inf in any column shows up in one of the two extremes.
    fin = np.isfinite(cext) & np.isfinite(bT).all(axis=1)
    if not fin.all():
        raise _nonfinite_error(name, int(np.argmin(fin)))
    cext = cext.astype(np.float64)

    if descending:
        np.negative(bT, out=bT)  # the key: smaller is better
    sel = np.argpartition(bT, K - 1, axis=1)[:, :K]
    thr = np.take_along_axis(bT, sel, axis=1).max(axis=1)  # K-th best block extremum (as a key)
    # More than K blocks reach the threshold: the boundary tie may continue in an unselected block, so those
    # (rare) columns are ranked by a full stable sort instead.
    tied = np.count_nonzero(bT <= thr[:, None], axis=1) > K
    del bT
    u = np.arange(B)
    for c0 in range(0, n, 2048):
        c1 = min(c0 + 2048, n)
        blk = sel[c0:c1, :, None]
        if fortran:
            rows = np.where(blk < nbm, blk + nbm * u, nbm * B + u)
        else:
            rows = blk * B + u
        rows = rows.reshape(c1 - c0, K * B)
        valid = rows < n
        np.minimum(rows, n - 1, out=rows)
        cidx = np.arange(c0, c1)[:, None]
        vals = x.T[cidx, rows] if fortran else x[rows, cidx]
        key = -vals if descending else vals
        # Only entries at or better than the threshold can be among the K best (at least K of them exist).
        ci, pi = np.nonzero(valid & (key <= thr[c0:c1, None]))
        r, v = rows[ci, pi], key[ci, pi]
        order = np.lexsort((r, v, ci))  # by column, then value, then row index
        ci, r = ci[order], r[order]
        start = np.searchsorted(ci, np.arange(c1 - c0))
        pos = np.arange(len(ci)) - start[ci]
        ranks[c0:c1] = r[pos < K].reshape(c1 - c0, K)
    for c in np.flatnonzero(tied):
        col = np.asarray(x[:, c])
        ranks[c] = np.argsort(-col if descending else col, kind="stable")[:K]
    return ranks, cext


# -- step 3: k-reciprocal sets, expansion, V (sparse) --------------------------------------------------------------


def _reciprocal_mask(ranks: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
    """``mask[i, t] = i in ranks[ranks[i, t], :k]`` for t < k: (N, k) bool."""
    n = ranks.shape[0]
    R = ranks[:, :k]
    mask = np.empty((n, k), dtype=bool)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        mask[a:b] = (R[R[a:b]] == np.arange(a, b)[:, None, None]).any(axis=2)
    return mask


def _build_v(ranks: np.ndarray, prm: RerankParams, kind: str, dmax: np.ndarray, x: np.ndarray) -> sp.csr_matrix:
    """V as a float32 CSR matrix: row i holds ``exp(−D[i, u])``, normalised, over i's expanded reciprocal set."""
    n, K = ranks.shape
    K2 = prm.k_half + 1
    R2 = ranks[:, :K2]
    rec1, rec2 = _reciprocal_mask(ranks, K), _reciprocal_mask(ranks, K2)
    size2 = rec2.sum(axis=1)  # |reciprocal set with k_half| of each image
    indptr = np.zeros(n + 1, dtype=np.int64)
    parts_idx, parts_row = [], []
    chunk = max(1, 2_000_000 // (K * K2 * K))
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        R1c, rec1c = ranks[a:b], rec1[a:b]  # (c, K)
        cand2, crec2 = R2[R1c], rec2[R1c]  # (c, K, K2): the k_half neighbours of each candidate, which reciprocal
        # member of i's k-reciprocal set  <=>  in R[i] at a position marked reciprocal
        member = ((cand2[:, :, :, None] == R1c[:, None, None, :]) & rec1c[:, None, None, :]).any(axis=3)
        inter = (member & crec2).sum(axis=2)  # |S(c) ∩ krec(i)|
        # Literal float comparison, as the reference: len(intersection) > 2./3 * len(S(c)).
        add = rec1c & (inter > (2.0 / 3.0) * size2[R1c])
        sentinel = n
        first = np.where(rec1c, R1c, sentinel)
        second = np.where(add[:, :, None] & crec2, cand2, sentinel).reshape(b - a, K * K2)
        allc = np.concatenate([first, second], axis=1)
        allc.sort(axis=1)
        keep = allc < sentinel
        keep[:, 1:] &= allc[:, 1:] != allc[:, :-1]
        indptr[a + 1 : b + 1] = keep.sum(axis=1)
        parts_idx.append(allc[keep])
        parts_row.append(np.repeat(np.arange(a, b), keep.sum(axis=1)))
    np.cumsum(indptr, out=indptr)
    cols, rows = np.concatenate(parts_idx), np.concatenate(parts_row)  # n >= 2: at least one chunk
    # D[i, u] = d(x[u, i]) / max_col(i): row i of the transposed, normalised distance.
    raw = x[cols, rows].astype(np.float64)
    d = raw if kind == "dist" else 2.0 - 2.0 * raw
    w = np.exp(-(d / dmax[rows]))
    sums = np.bincount(rows, weights=w, minlength=n)
    data = (w / sums[rows]).astype(np.float32)
    return sp.csr_matrix((data, cols.astype(np.int32), indptr), shape=(n, n))


# -- steps 5-6: Jaccard distance of the query rows (sparse min-sums) and the final combination ---------------------

#: Max. expanded (query, k, gallery) triples per Jaccard chunk: bounds its temporaries to ~40 B × this.
_JACCARD_BUDGET = 2_000_000
#: Max. query rows per chunk: bounds the dense (rows, ng) float64 accumulator.
_JACCARD_MAX_ROWS = 256


def _jaccard_plan(V: sp.csr_matrix, nq: int) -> tuple[sp.csr_matrix, sp.csc_matrix, np.ndarray, list]:
    """Query rows Vq, gallery columns Vg (the reference's inverted index), Vg's column counts, and the chunks of
    query rows, each expanding to at most ``_JACCARD_BUDGET`` triples (≥ 1 row each)."""
    Vq, Vg = V[:nq].tocsr(), V[nq:].tocsc()
    Vg.sort_indices()
    colnnz = np.diff(Vg.indptr)
    per_row = np.add.reduceat(colnnz[Vq.indices], Vq.indptr[:-1]) if Vq.nnz else np.zeros(nq, np.int64)
    per_row = np.where(np.diff(Vq.indptr) > 0, per_row, 0)
    cum = np.cumsum(per_row)
    chunks, a = [], 0
    while a < nq:
        base = cum[a - 1] if a else 0
        b = int(np.searchsorted(cum, base + _JACCARD_BUDGET, side="right"))
        b = min(max(b, a + 1), a + _JACCARD_MAX_ROWS, nq)
        chunks.append((a, b))
        a = b
    return Vq, Vg, colnnz, chunks


def _jaccard_final(V: sp.csr_matrix, x: np.ndarray, prm: RerankParams, kind: str, dmax: np.ndarray) -> np.ndarray:
    nq, ng, lam = prm.n_query, prm.n - prm.n_query, prm.lambda_value
    Vq, Vg, colnnz, chunks = _jaccard_plan(V, nq)
    out = np.empty((nq, ng), dtype=np.float32)
    for a, b in chunks:
        lo, hi = Vq.indptr[a], Vq.indptr[b]
        ks = Vq.indices[lo:hi]
        vals = Vq.data[lo:hi].astype(np.float64)
        rloc = np.repeat(np.arange(b - a), np.diff(Vq.indptr[a : b + 1]))
        lens = colnnz[ks]
        pos = np.arange(int(lens.sum())) + np.repeat(Vg.indptr[ks] - (np.cumsum(lens) - lens), lens)  # ragged aranges
        j = Vg.indices[pos].astype(np.int64)
        mins = np.minimum(np.repeat(vals, lens), Vg.data[pos])
        tm = np.bincount(np.repeat(rloc, lens) * ng + j, weights=mins, minlength=(b - a) * ng).reshape(b - a, ng)
        # jaccard = 1 − m/(2 − m), then final = (1 − λ)·jaccard + λ·D, in place on float64 buffers
        den = np.subtract(2.0, tm)
        np.divide(tm, den, out=tm)
        np.subtract(1.0 - lam, (1.0 - lam) * tm, out=tm)
        # D[q, nq + g] = d(x[nq + g, q]) / max_col(q)
        np.copyto(den, x[nq:, a:b].T)
        if kind == "score":
            np.subtract(1.0, den, out=den)  # (2 − 2s)/max = (1 − s)·(2/max)
            den *= (2.0 * lam) / dmax[a:b, None]
        else:
            den *= lam / dmax[a:b, None]
        np.add(tm, den, out=out[a:b], casting="same_kind")
    return out


# -- the re-ranked rows and the joint re-ranking variants ---------------------------------------------------------

VARIANTS: tuple[str, ...] = ("faithful", "visual_then_st", "rescaled")  #: joint re-ranking variants (rerank_joint)


def cosine_matrix(feats: np.ndarray, chunk_size: int = 2048) -> np.ndarray:
    """(N, N) float32 cosine similarities of (N, D) features, Fortran order (fast column reads for re-ranking)."""
    f = normalize_rows(feats)
    out = np.empty((len(f), len(f)), dtype=np.float32)  # holds the transpose, C order; returned as a Fortran view
    for a in range(0, len(f), chunk_size):
        out[a : a + chunk_size] = f[a : a + chunk_size] @ f.T
    return out.T


def joint_score_matrix(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric = DEFAULT_METRIC, chunk_size: int = 1024
) -> np.ndarray:
    """(N, N) float32 joint scores ``J[i, j] = f(s_ij) · f(p̂(i, j))`` over query+gallery (query first), image i as
    "a" (§6); Fortran order, built a chunk of columns at a time. The diagonal is s = 1, p = 0: σ(5)/3 ≈ 0.331102."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise RerankError(f"chunk_size: expected an integer >= 1, got {chunk_size!r}")
    f = normalize_rows(np.concatenate([fs.query_f, fs.gallery_f], axis=0))
    cams = np.concatenate([fs.query.cams, fs.gallery.cams])
    frames = np.concatenate([fs.query.frames, fs.gallery.frames])
    f_table = metric.st_factor(model.lookup_table())
    out = np.empty((len(f), len(f)), dtype=np.float32)  # out[j, i] = J[i, j]
    for a in range(0, len(f), chunk_size):
        b = min(a + chunk_size, len(f))
        idx = model.lookup_index(cams[None, :], frames[None, :], cams[a:b, None], frames[a:b, None])
        out[a:b] = metric.visual_factor(f[a:b] @ f.T) * f_table.take(idx)
    return out.T


def rerank_joint(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric = DEFAULT_METRIC, variant: str = "faithful", **kw
) -> np.ndarray:
    """Re-ranked (nq, ng) **scores** (higher = better) of the joint metric, by variant (§12).

    ``"faithful"`` (§6): −final distance of ``d = 2 − 2·J``; ``"visual_then_st"``: ``f(s') · f(p̂)`` with the
    re-ranked visual similarity ``s' = 1 − final``; ``"rescaled"``: J min–max rescaled to [0, 1] before re-ranking.
    """
    if variant not in VARIANTS:
        raise RerankError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return dict(_variant_scores(fs, model, metric, (variant,), False, kw))[variant]


def _variant_scores(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric, variants: Sequence[str], visual: bool, kw: dict
) -> Iterator[tuple[str, np.ndarray]]:
    """(name, (nq, ng) scores) of VIS+re-rank (with ``visual``) and of the variants, each N×N matrix built once."""
    nq = len(fs.query)
    if visual or "visual_then_st" in variants:
        d_vis = rerank_distances(cosine_matrix(np.concatenate([fs.query_f, fs.gallery_f])), nq, **kw)
        if visual:
            yield "VIS+re-rank", -d_vis
        if "visual_then_st" in variants:
            q, g = fs.query, fs.gallery
            idx = model.lookup_index(q.cams[:, None], q.frames[:, None], g.cams[None, :], g.frames[None, :])
            st_factor = metric.st_factor(model.lookup_table()).take(idx)
            yield "visual_then_st", metric.visual_factor(1.0 - d_vis.astype(np.float64)) * st_factor
    if "faithful" in variants or "rescaled" in variants:
        J = joint_score_matrix(fs, model, metric)
        if "faithful" in variants:
            yield "faithful", -rerank_distances(J, nq, **kw)
        if "rescaled" in variants:  # in place on the matrix we own: J' = (J − lo) / (hi − lo), one affine map
            lo, hi = float(J.min()), float(J.max())
            if not hi > lo:
                raise RerankError(f"joint scores are constant ({lo}); cannot rescale them to [0, 1]")
            J -= np.float32(lo)
            J *= np.float32(1.0 / (hi - lo))
            yield "rescaled", -rerank_distances(J, nq, **kw)


def rerank_results(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    variants: Sequence[str] = ("faithful",),
    visual: bool = True,
    **kw: Any,
) -> dict[str, Any]:
    """``{"VIS+re-rank" (with visual) | variant: RankingResult}`` in :data:`VARIANTS` order, of the scores of
    :func:`rerank_joint`, each N×N matrix built once."""
    if any(v not in VARIANTS for v in variants):
        raise RerankError(f"variants: expected a selection from {VARIANTS}, got {tuple(variants)}")
    out = {
        k: evaluate_scores(v, fs.query, fs.gallery) for k, v in _variant_scores(fs, model, metric, variants, visual, kw)
    }
    return {k: out[k] for k in (["VIS+re-rank"] if visual else []) + [v for v in VARIANTS if v in variants]}


def rerank_rows(
    fs: FeatureSet, model: SpatialTemporalModel, metric: JointMetric = DEFAULT_METRIC, **kw: Any
) -> dict[str, Any]:
    """``{row: RankingResult}`` of the table rows ``VIS+re-rank`` and ``st-ReID+re-rank`` (faithful variant)."""
    res = rerank_results(fs, model, metric, ("faithful",), visual=True, **kw)
    return {"VIS+re-rank": res["VIS+re-rank"], "st-ReID+re-rank": res["faithful"]}
