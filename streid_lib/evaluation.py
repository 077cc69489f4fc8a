"""Evaluation pipeline: score rows chunk by chunk, rank, and report R1/R5/R10, mAP, mAP (open-reid), mINP.

``evaluate_features`` runs the paper's four rows (VIS, ST, VISxST, st-ReID; see :mod:`streid_lib.joint`) over
chunks of queries, feeding each row's scores to a :class:`streid_lib.metrics.MetricAccumulator`, so peak memory is
O(chunk × gallery). The command ``python -m streid_lib evaluate`` is :mod:`streid_lib.cli`; the training data it
reads is :mod:`streid_lib.training_names`. Nothing here imports torch.

Protocol (§5, implemented in :mod:`streid_lib.metrics`): good = same pid, other camera; junk = same pid
and camera, or pid -1; mAP is the authors' trapezoid AP, ``mAP_open_reid`` the plain (non-interpolated) AP;
ranks are by descending score with ties broken by gallery order. All figures are percent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import StreidError
from .features import FeatureSet
from .joint import DEFAULT_METRIC, ROWS, JointMetric, check_rows
from .metrics import default_threads
from .ranking import rank_rows
from .st_model import SpatialTemporalModel, STModelError, fit_st_model  # noqa: F401 - re-exported

#: Columns of the table: (key in a summary, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("R1", "R1"),
    ("R5", "R5"),
    ("R10", "R10"),
    ("mAP", "mAP"),
    ("mAP_open_reid", "mAP(open-reid)"),
    ("mINP", "mINP"),
)
MODES = ("faithful", "improved")
#: Rows that read the spatial-temporal model.
ST_ROWS = ("ST", "VISxST", "VISxST-shifted", "st-ReID")


class EvaluationError(StreidError):
    """Bad evaluation input or options (names the value and what was expected)."""


@dataclass(frozen=True)
class ExtraRows:
    """Rows ranked beside the faithful ones from each chunk's cosine, e.g. improved mode's (built by the callers).

    ``score(sl, s) -> {row: (n, c) scores}`` on the protocol's columns (``s``: the chunk's cosine, or None);
    ``mode`` is recorded as ``params["mode"]`` and ``info`` as ``params[mode]``.
    """

    mode: str
    rows: tuple[str, ...]
    score: Callable[[slice, Any], dict[str, np.ndarray]]
    info: dict = field(default_factory=dict)

    def __call__(self, sl: slice, s: Any) -> dict[str, np.ndarray]:
        return self.score(sl, s)


def evaluate_features(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    rows: Sequence[str] = ROWS,
    chunk_size: int = 256,
    rerank: bool = False,
    extra: ExtraRows | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Evaluate the selected score rows of a features file against a fitted ST model.

    Args:
        fs: query/gallery features and metadata.
        model: fitted :class:`SpatialTemporalModel` (cameras of fs must lie in 1..model.n_cams).
        metric: λ0, γ0, λ1, γ1 of the st-ReID row.
        rows: subset of :data:`ROWS`.
        chunk_size: queries scored at once (memory O(chunk_size × n_gallery)).
        rerank: also add ``VIS+re-rank`` and ``st-ReID+re-rank`` (:func:`streid_lib.rerank.rerank_rows`).
        extra: more rows ranked in the same pass (:class:`ExtraRows`; the improved mode's: built by the callers).
        threads: worker threads that rank the rows of a chunk while the next chunk is scored (default
            :func:`streid_lib.metrics.default_threads`; 1: all in the calling thread). The figures do not depend
            on it.

    Returns:
        ``{"rows": {row: {"R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"}}, "params": {...},
        "n_query": int, "n_gallery": int, "n_query_without_match": int}`` with metrics in percent.
        ``params["rerank_params"]``: the k1, k2, λ re-ranking used (lowered for sets smaller than k1 + 1 images);
        ``params["improved"]``: the improved mode's provenance (choice, weights, training-features source).
    """
    rows = check_rows(rows)
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise EvaluationError(f"threads: expected an integer >= 1, got {threads!r}")
    results = rank_rows(fs, model, metric, rows, chunk_size, int(threads), extra=extra)
    out_rows: dict[str, dict[str, float]] = {row: _summary(results[row]) for row in rows}
    params: dict[str, Any] = {
        "metric": metric.params(),
        "st_model": model.fit_info(),
        "rows": list(rows),
        "chunk_size": int(chunk_size),
        "rerank": bool(rerank),
        "mode": "faithful" if extra is None else extra.mode,
        "ap": "mAP: the authors' trapezoid AP; mAP_open_reid: non-interpolated AP",
        "ties": "broken by gallery order (stable)",
    }
    if rerank:
        from .rerank import effective_params, rerank_rows

        out_rows.update({k: _summary(v) for k, v in rerank_rows(fs, model, metric).items()})
        # Re-ranking lowers k1/k2 for sets smaller than k1 + 1 images: the values it used.
        eff = effective_params(len(fs.query) + len(fs.gallery), len(fs.query))
        params["rerank_params"] = {"k1": eff.k1, "k2": eff.k2, "lambda_value": eff.lambda_value, "n_images": eff.n}
    if extra is not None:
        out_rows.update({row: _summary(results[row]) for row in extra.rows})
        params[extra.mode] = extra.info
    first = results[rows[0]]
    return {
        "rows": out_rows,
        "params": params,
        "n_query": len(fs.query),
        "n_gallery": len(fs.gallery),
        # Queries with no good item (same identity in another camera) count as misses in every average.
        "n_query_without_match": int(first.n_queries - first.n_valid),
    }


def _summary(result: Any) -> dict[str, float]:
    """A metrics summary (RankingResult or dict) as plain floats, in percent."""
    summary = result.summary() if hasattr(result, "summary") else dict(result)
    return {key: float(summary[key]) for key, _ in COLUMNS}


def format_table(result: dict[str, Any]) -> str:
    """The result as a fixed-width text table: one line per row, columns R1 R5 R10 mAP mAP(open-reid) mINP (%).

    Notes follow the table when the numbers need them: queries without any valid match (they count as misses),
    and re-ranking parameters lowered for a small set.
    """
    rows = result["rows"]
    width = max([len("row")] + [len(r) for r in rows])
    header = f"{'row':<{width}}  " + "  ".join(f"{h:>{max(6, len(h))}}" for _, h in COLUMNS)
    lines = [header]
    for row, summary in rows.items():
        cells = "  ".join(f"{summary[k]:>{max(6, len(h))}.1f}" for k, h in COLUMNS)
        lines.append(f"{row:<{width}}  {cells}")
    missing = int(result.get("n_query_without_match", 0))
    if missing:
        lines.append(
            f"note: {missing} of {result['n_query']} queries have no valid match (no image of their identity in "
            "another camera); they count as misses (AP 0) in every average"
        )
    rr = result.get("params", {}).get("rerank_params")
    if rr and (rr["k1"], rr["k2"]) != (20, 6):
        lines.append(
            f"note: re-ranking used k1={rr['k1']}, k2={rr['k2']} (lowered from 20, 6: the set has only "
            f"{rr['n_images']} images)"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Checks of the inputs


def st_checks(fs: FeatureSet, model: SpatialTemporalModel, source: str, features: str) -> list[str]:
    """What the ST model cannot tell about this test set: errors where nothing can be computed, else warnings.

    * a test camera outside the model's cameras → error;
    * a model without any vote (e.g. a training set of one image, or with no identity seen by two cameras), or a
      test set none of whose cross-camera pairs was seen together in training → error: every ST lookup is 0;
    * some cross-camera test pairs never seen together, or training votes beyond the last bin → warnings.

    Args:
        source: where the model came from, in words (for messages).
        features: the features file, for messages.

    Returns:
        the warnings, one line each.
    """
    for side in ("query", "gallery"):
        cams = getattr(fs, side).cams
        if int(cams.max()) > int(model.n_cams):
            raise EvaluationError(
                f"{features}: {side}_cam holds camera {int(cams.max())}, outside the ST model's cameras "
                f"1..{model.n_cams} ({source})"
            )
    info = model.fit_info()
    empty = info["n_votes"] == 0 if info["n_votes"] is not None else not model.distribution_.any()
    if empty:
        raise EvaluationError(
            f"the spatial-temporal model from {source} has no votes: no identity is seen by two cameras, so p = 0 "
            f"for every pair and the ST rows cannot be computed; give training data in which identities appear in "
            f"more than one camera"
        )
    warnings: list[str] = []
    C = int(model.n_cams)
    gallery = fs.gallery.cams[fs.gallery.pids != -1]  # junk items take part in no ranking
    pairs = np.outer(np.bincount(fs.query.cams - 1, minlength=C), np.bincount(gallery - 1, minlength=C))
    np.fill_diagonal(pairs, 0)
    unseen = np.where(model.observed_pairs(), 0, pairs)
    if pairs.sum() and unseen.sum() == pairs.sum():
        raise EvaluationError(
            f"no camera pair of the test set in {features} was seen together in training ({source}): p = 0 for "
            f"every cross-camera query-gallery pair, so the ST rows cannot be computed"
        )
    if unseen.sum():
        a, b = np.nonzero(np.triu(unseen + unseen.T))
        listed = ", ".join(f"{i + 1}-{j + 1}" for i, j in zip(a, b, strict=True))
        share = 100.0 * unseen.sum() / pairs.sum()
        warnings.append(
            f"camera pair(s) {listed} of the test set were never seen together in training ({source}): p = 0 for "
            f"{share:.1f}% of the cross-camera query-gallery pairs"
        )
    if info.get("n_overflow_votes"):
        fate = "dropped" if model.overflow == "zero" else "put in the last bin"
        warnings.append(
            f"{info['n_overflow_votes']} training vote(s) fell beyond the last bin (n_bins={model.n_bins}, "
            f"bin_width={model.bin_width} frames) and were {fate} (overflow={model.overflow!r})"
        )
    return warnings
