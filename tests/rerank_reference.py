"""Slow, plain reference of k-reciprocal re-ranking (Zhong et al., CVPR 2017), for tests and benchmarks only.

Not part of the library (:mod:`streid_lib.rerank` is the implementation). This module spells the algorithm out
image by image, with dense (N, N) arrays and Python loops (O(N²) memory, roughly O(N²·log N) time), so that the
fast code can be checked against something short enough to read against the description in docs/reference.md §6 and the
paper. numpy only.

The algorithm, with D the (N, N) distance over query+gallery (query first):

1. D ← transpose(d / column-max of d), float64: row i of D is column i of d divided by that column's maximum.
2. ``N(i, k)`` = the k + 1 images nearest to i in row i of D (i itself included when it is near).
   The k-reciprocal neighbours of i are ``R(i, k) = {g in N(i, k) : i in N(g, k)}``.
3. Expansion: start from ``R(i, k1)``; for each c in it, add ``R(c, k_half)`` (k_half = round(k1/2)) when
   strictly more than 2/3 of ``R(c, k_half)`` already lies in ``R(i, k1)``. On the expanded set E(i) the weights
   are ``V[i, u] = exp(−D[i, u]) / Σ_{u' in E(i)} exp(−D[i, u'])``; V is 0 elsewhere.
4. Local query expansion (skipped when k2 = 1): ``V[i] ← mean of V[g] over the k2 nearest g in N(i, ·)``.
5. Jaccard distance, query i to image j: with ``m = Σ_u min(V[i, u], V[j, u])`` and rows of V summing to 1,
   ``Σ max = 2 − m``, so ``jaccard = 1 − m / (2 − m)``.
6. ``final = (1 − λ)·jaccard + λ·D``; the result is the query × gallery block ``[:nq, nq:]``.

Conventions shared with :mod:`streid_lib.rerank`, so the two agree to float rounding:

* Ranking: row i of D is sorted ascending with a *stable* sort, so equal distances are ordered by the smaller
  image index (the published code's ``argpartition`` leaves that order arbitrary).
* Small N: ``k1 ← min(k1, N − 1)``, ``k2 ← min(k2, k1 + 1)``; ``k_half = round(k1/2)`` of the clamped k1 with
  NumPy's half-to-even rounding (``np.around``), as the published code.
* The "more than 2/3" test is ``3·|overlap| > 2·|R(c, k_half)|`` on integers (the same decision as the published
  floating-point form for every set size that can occur).
* Dtypes: D, the weights and their normalisation are float64; V and its query expansion are stored as float32
  (as the published code stores them); the Jaccard sums and the final combination are float64; the returned
  block is float32.
"""

from __future__ import annotations

import numpy as np


def reference_rerank(
    dist: np.ndarray, n_query: int, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """Re-rank an (N, N) distance matrix (lower = closer), query rows/columns first.

    Returns:
        (nq, N − nq) float32 final distances, query × gallery (ascending = better).
    """
    d = np.asarray(dist)
    _check_square(d, "dist")
    # D[i, u] = d[u, i]: a C-ordered float64 copy of the transpose, so that each row below is contiguous.
    D = np.array(d.T, dtype=np.float64, order="C")
    return _rerank_normalise_in_place(D, n_query, k1, k2, lambda_value)


def reference_rerank_distances(
    score: np.ndarray, n_query: int, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """:func:`reference_rerank` of ``d = 2 − 2·score`` for an (N, N) similarity matrix (higher = better).

    The distance is formed in float64 in the one (N, N) working array, without a second full copy.
    """
    s = np.asarray(score)
    _check_square(s, "score")
    D = np.array(s.T, dtype=np.float64, order="C")
    D *= -2.0
    D += 2.0
    return _rerank_normalise_in_place(D, n_query, k1, k2, lambda_value)


def _check_square(x: np.ndarray, name: str) -> None:
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"{name}: expected a square (N, N) matrix over query+gallery, got shape {x.shape}")


def _rerank_normalise_in_place(D: np.ndarray, n_query: int, k1: int, k2: int, lambda_value: float) -> np.ndarray:
    """Steps 1–6 on ``D`` = the *transposed* raw distance (row i = column i of d), float64, overwritten."""
    n = D.shape[0]
    if not np.isfinite(D).all():
        raise ValueError("distance matrix: expected finite values, found NaN or inf")
    if not 1 <= n_query <= n - 1:
        raise ValueError(f"n_query: expected 1..N-1 = 1..{n - 1}, got {n_query}")
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1, k2: expected integers >= 1, got {k1}, {k2}")
    k1 = min(k1, n - 1)
    k2 = min(k2, k1 + 1)
    k_half = int(np.around(k1 / 2))

    # Step 1: divide column i of d (= row i of D) by its maximum.
    row_max = D.max(axis=1)
    if not (row_max > 0).all():
        raise ValueError("distance matrix: every column needs a positive maximum (the normalisation divides by it)")
    D /= row_max[:, None]

    # Step 2: the k1 + 1 nearest images of every image, nearest first, ties by the smaller index.
    nearest = np.empty((n, k1 + 1), dtype=np.int64)
    for i in range(n):
        nearest[i] = np.argsort(D[i], kind="stable")[: k1 + 1]

    wide = _reciprocal_sets(nearest, k1)  # R(i, k1) for every i
    narrow = _reciprocal_sets(nearest, k_half)  # R(i, k_half) for every i

    # Step 3: expanded sets and their Gaussian-kernel weights.
    V = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        core = set(wide[i])
        expanded = set(core)
        for c in wide[i]:
            candidate = narrow[c]
            overlap = sum(1 for g in candidate if g in core)
            if 3 * overlap > 2 * len(candidate):
                expanded.update(candidate)
        members = np.array(sorted(expanded), dtype=np.int64)
        weights = np.exp(-D[i, members])
        V[i, members] = weights / weights.sum()

    # Step 4: average each row of V with those of its k2 - 1 next nearest images (k2 nearest, itself usually first).
    if k2 != 1:
        expanded_V = np.empty_like(V)
        for i in range(n):
            expanded_V[i] = V[nearest[i, :k2]].mean(axis=0, dtype=np.float64)
        V = expanded_V

    # Steps 5–6: for query i only the columns where V[i] is non-zero can add to Σ min (V >= 0 everywhere).
    gallery_V = V[n_query:]
    out = np.empty((n_query, n - n_query), dtype=np.float32)
    for i in range(n_query):
        support = np.flatnonzero(V[i])
        shared = np.minimum(V[i, support][None, :], gallery_V[:, support]).sum(axis=1, dtype=np.float64)
        jaccard = 1.0 - shared / (2.0 - shared)
        out[i] = (1.0 - lambda_value) * jaccard + lambda_value * D[i, n_query:]
    return out


def _reciprocal_sets(nearest: np.ndarray, k: int) -> list[list[int]]:
    """``R(i, k)`` for every image i, each in the order of i's neighbour list: g is kept when i is among g's k + 1
    nearest as g is among i's."""
    top = nearest[:, : k + 1].tolist()
    top_sets = [set(row) for row in top]
    return [[g for g in top[i] if i in top_sets[g]] for i in range(len(top))]


__all__ = ["reference_rerank", "reference_rerank_distances"]
