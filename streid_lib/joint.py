"""The joint metric and the paper's score rows (docs/reference.md §4); all scores higher-is-better.

``VIS`` = cosine s in [-1, 1]; ``ST`` = smoothed p̂; ``VISxST`` = ``s · p`` (Eqn. 5); ``st-ReID`` =
``f(s; λ0, γ0) · f(p; λ1, γ1)`` (Eqn. 6); named option ``VISxST-shifted`` = ``((1 + s)/2) · p`` (§4.1). Computed in
query chunks (memory O(chunk × gallery)); s is float32, p and the products float64 (§4).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import StreidError
from .features import FeatureSet, row_norms
from .st_model import SpatialTemporalModel

#: The score rows of the paper's tables, in display order (the default selection).
ROWS: tuple[str, ...] = ("VIS", "ST", "VISxST", "st-ReID")
#: Named opt-in rows, computed only when asked for (docs/reference.md §4.1, §12).
OPTIONAL_ROWS: tuple[str, ...] = ("VISxST-shifted",)
#: Every row :func:`check_rows` accepts.
ALL_ROWS: tuple[str, ...] = ROWS + OPTIONAL_ROWS


class JointError(StreidError):
    """Bad input to the joint metric (names the argument and what was expected)."""


def normalize_rows(f: np.ndarray) -> np.ndarray:
    """(N, D) float32 rows of unit L2 norm (PCB rows normalised again as a whole, §2.6); a zero or non-finite norm
    is an error (cosine is undefined there)."""
    f = np.asarray(f, dtype=np.float32)
    if f.ndim != 2:
        raise JointError(f"features: expected a 2-D (N, D) array, got shape {f.shape}")
    norms = row_norms(f)
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        raise JointError(f"features row {int(np.argmax(bad))} has zero or non-finite norm; cosine is undefined")
    return f / norms[:, None]


def cosine_similarity(qf: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """(nq, ng) float32 cosine similarities of (nq, D) and (ng, D) features, one GEMM."""
    qf, gf = normalize_rows(qf), normalize_rows(gf)
    if qf.shape[1] != gf.shape[1]:
        raise JointError(f"feature dimensions disagree: query D={qf.shape[1]}, gallery D={gf.shape[1]}")
    return qf @ gf.T


def logistic(x: np.ndarray | float, lam: float, gamma: float) -> np.ndarray:
    """Logistic smoothing ``f(x; λ, γ) = 1 / (1 + λ·exp(-γ·x))`` (paper Eqn. 6); keeps float32 input float32."""
    x = np.asarray(x)
    out = np.multiply(x, -gamma)  # float32 stays float32 (Python-float scalars do not promote)
    if not isinstance(out, np.ndarray) or out.ndim == 0:
        return 1.0 / (1.0 + lam * np.exp(out))
    # In place: one temporary instead of four on (chunk × gallery) arrays; same IEEE operations.
    np.exp(out, out=out)
    out *= lam
    out += 1.0
    return np.reciprocal(out, out=out)


#: ln of float32's largest value: the bound on ln λ + γ of each logistic factor (:class:`JointMetric`).
LOG_FLOAT32_MAX = float(np.log(np.finfo(np.float32).max))


@dataclass(frozen=True, kw_only=True)
class JointMetric:
    """st-ReID joint metric ``f(s; λ0, γ0) · f(p; λ1, γ1)`` (keyword-only; defaults: the paper's 1, 5, 2, 5)."""

    lambda0: float = 1.0
    gamma0: float = 5.0
    lambda1: float = 2.0
    gamma1: float = 5.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            # Plain Python floats keep float32 inputs float32 (NumPy's scalar promotion rules).
            value = float(value)
            object.__setattr__(self, name, value)
            if not np.isfinite(value) or (name.startswith("lambda") and value < 0):
                raise JointError(f"{name}: expected a finite number{' >= 0' if 'lambda' in name else ''}, got {value}")
            if name.startswith("gamma") and value <= 0:
                raise JointError(f"{name}: expected a number > 0 (γ <= 0 flattens or reverses the order), got {value}")
        for i in "01":
            lam, gamma = getattr(self, f"lambda{i}"), getattr(self, f"gamma{i}")
            # f(x) = 1 / (1 + λ·exp(-γx)) for x in [-1, 1]: λ·exp(γ) must stay finite in float32 (the scores' type).
            if lam > 0 and np.log(lam) + gamma > LOG_FLOAT32_MAX:
                raise JointError(
                    f"lambda{i}={lam:g}, gamma{i}={gamma:g}: expected ln(lambda{i}) + gamma{i} <= "
                    f"{LOG_FLOAT32_MAX:.1f} (λ·exp(γ) overflows float32 beyond it), got {np.log(lam) + gamma:.1f}"
                )

    def visual_factor(self, s: np.ndarray) -> np.ndarray:
        """``f(s; λ0, γ0)``."""
        return logistic(s, self.lambda0, self.gamma0)

    def st_factor(self, p: np.ndarray) -> np.ndarray:
        """``f(p; λ1, γ1)``."""
        return logistic(p, self.lambda1, self.gamma1)

    def __call__(self, s: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Joint score of visual similarities s and ST probabilities p (broadcasting)."""
        return self.visual_factor(s) * self.st_factor(p)

    def params(self) -> dict[str, float]:
        """λ0, γ0, λ1, γ1 as a dict of floats (for provenance)."""
        return asdict(self)


#: The paper's λ0=1, γ0=5, λ1=2, γ1=5 (a frozen dataclass, safe as a default argument).
DEFAULT_METRIC = JointMetric()


def check_rows(rows: Sequence[str]) -> tuple[str, ...]:
    """Validate a selection of score rows (a subset of :data:`ALL_ROWS`, order kept, no duplicates)."""
    rows = tuple(rows)
    unknown = [r for r in rows if r not in ALL_ROWS]
    if unknown or not rows or len(set(rows)) != len(rows):
        raise JointError(f"rows: expected a non-empty selection of distinct rows from {ALL_ROWS}, got {rows}")
    return rows


def vis_x_st(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Eqn. 5 as the paper writes it, ``s · p`` (s float32, p float64 → float64): the faithful ``VISxST`` row."""
    return np.multiply(s, p)


def vis_x_st_shifted(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The named option ``VISxST-shifted``, ``((1 + s) / 2) · p`` (the cosine mapped to [0, 1]; float64, §4.1)."""
    t = np.add(s, 1)
    t *= 0.5  # exact, the same as dividing by 2
    return np.multiply(t, p)


#: Product rows of the two streams: row → function of (s, p).
_PRODUCT_ROWS = {"VISxST": vis_x_st, "VISxST-shifted": vis_x_st_shifted}


def score_rows(
    s: np.ndarray, p: np.ndarray | None, metric: JointMetric = JointMetric(), rows: Sequence[str] = ROWS
) -> dict[str, np.ndarray]:
    """``{row: scores}`` shaped like s from visual similarities s and ST probabilities p of the same shape (VIS
    float32 like s; rows involving p float64)."""
    rows = check_rows(rows)
    if p is None and any(r != "VIS" for r in rows):
        raise JointError(f"rows {rows}: ST probabilities p are needed for every row but VIS")
    return _fuse(rows, metric, s, p, metric.st_factor(p) if "st-ReID" in rows else None)


def _fuse(rows: Sequence[str], metric: JointMetric, s: Any, p: Any, f_p: Any, rank: Any = None) -> dict[str, Any]:
    """The rows from s, p, ``f_p = f(p)`` (multiplied by ``f(s)`` in place) and, for a rank-only ST row, ``rank``."""
    out: dict[str, np.ndarray] = {}
    for row in rows:
        if row == "VIS":
            out[row] = s
        elif row == "ST":
            out[row] = p if rank is None else rank
        elif row in _PRODUCT_ROWS:
            out[row] = _PRODUCT_ROWS[row](s, p)
        else:
            f_p *= metric.visual_factor(s)
            out[row] = f_p
    return out


def st_rank_table(table: np.ndarray) -> np.ndarray:
    """int32 dense ranks of a lookup table's values (same order and ties as p, in 4 bytes per pair)."""
    return np.unique(table, return_inverse=True)[1].astype(np.int32).reshape(table.shape)


class ChunkScorer:
    """Scores of the selected rows for any slice of queries in three stages, timed apart by the benchmark:
    :meth:`similarity` (one GEMM), :meth:`st_lookup` (one ST index shared by the rows, gathers from the model's small
    tables) and :meth:`fuse`; :func:`iter_score_chunks` is the loop (``columns``, ``rank_only``: see it)."""

    def __init__(
        self,
        fs: FeatureSet,
        model: SpatialTemporalModel,
        metric: JointMetric = JointMetric(),
        rows: Sequence[str] = ROWS,
        columns: np.ndarray | None = None,
        rank_only: bool = False,
    ) -> None:
        self.rows = rows = check_rows(rows)
        self.metric, self.model = metric, model
        self.need_s = any(r != "ST" for r in rows)
        g_meta = fs.gallery if columns is None else fs.gallery.take(columns)
        if self.need_s:
            self.qn, gn = normalize_rows(fs.query_f), normalize_rows(fs.gallery_f)
            self.gn = gn if columns is None else gn[columns]
        p_table = model.lookup_table() if any(r != "VIS" for r in rows) else None
        self.tables = {}  # the small tables gathered per chunk: p, f(p) (st-ReID), dense ranks of p (ST, rank_only)
        if any(r in _PRODUCT_ROWS for r in rows) or ("ST" in rows and not rank_only):
            self.tables["p"] = p_table
        if "st-ReID" in rows:
            self.tables["f_p"] = metric.st_factor(p_table)
        if "ST" in rows and rank_only:
            self.tables["rank"] = st_rank_table(p_table)
        if self.tables:
            model._check_cams(fs.query.cams, "query cams")
            model._check_cams(fs.gallery.cams, "gallery cams")
            # The query plays image "a": the later image's camera indexes first (docs/reference.md §4).
            self.gc, self.gfr = g_meta.cams[None, :], g_meta.frames[None, :]
            self.qc, self.qfr = fs.query.cams[:, None], fs.query.frames[:, None]

    def similarity(self, sl: slice) -> np.ndarray | None:
        """(c, n) float32 cosine similarities of the queries ``sl`` (None when no row needs them)."""
        return self.qn[sl] @ self.gn.T if self.need_s else None  # BLAS reads the transposed view: no copy

    def st_lookup(self, sl: slice) -> dict[str, np.ndarray]:
        """The ST quantities of the queries ``sl`` that the rows need: ``p``, ``f_p`` (float64 f(p)), ``rank``."""
        if not self.tables:
            return {}
        idx = self.model.lookup_index(self.qc[sl], self.qfr[sl], self.gc, self.gfr)  # intp: no conversion
        return {key: table.take(idx) for key, table in self.tables.items()}

    def fuse(self, s: np.ndarray | None, st: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{row: scores}`` from :meth:`similarity` and :meth:`st_lookup` (``st["f_p"]`` is used in place)."""
        return _fuse(self.rows, self.metric, s, st.get("p"), st.get("f_p"), st.get("rank"))


def iter_score_chunks(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = JointMetric(),
    rows: Sequence[str] = ROWS,
    chunk_size: int = 256,
    columns: np.ndarray | None = None,
    rank_only: bool = False,
    extra: Any = None,
) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
    """Yield ``(query slice, {row: (c, n) scores})`` per chunk of queries, equal to :func:`score_rows` of the full
    matrices (§8). ``columns``: gallery positions to score (default all, e.g. ``RankingProtocol.columns``);
    ``rank_only``: the ST row yields the int32 dense ranks of p (:func:`st_rank_table`), which rank the same;
    ``extra``: more rows from each chunk's cosine, ``extra(sl, s) -> {row: scores}`` on the same columns."""
    rows = check_rows(rows)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise JointError(f"chunk_size: expected an integer >= 1, got {chunk_size!r}")
    scorer = ChunkScorer(fs, model, metric, rows, columns, rank_only)
    nq = len(fs.query)
    for start in range(0, nq, int(chunk_size)):
        sl = slice(start, min(start + int(chunk_size), nq))
        s = scorer.similarity(sl)
        scores = scorer.fuse(s, scorer.st_lookup(sl))
        if extra is not None:
            scores.update(extra(sl, s))
        yield sl, scores
