"""Evaluation pipeline: score rows chunk by chunk, rank, and report R1/R5/R10, mAP, mAP (open-reid), mINP (percent).

Peak memory is O(chunk × gallery); the protocol is :mod:`streid_lib.metrics` (docs/reference.md §5). The command
is :mod:`streid_lib.cli`, the training data it reads :mod:`streid_lib.training_names`. Nothing here imports torch.
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
    """Rows ranked beside the faithful ones from each chunk's cosine (e.g. improved mode's, built by the callers):
    ``score(sl, s) -> {row: (n, c) scores}`` on the protocol's columns; ``mode``/``info`` go into ``params``."""

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
    """Evaluate ``rows`` (of :data:`streid_lib.joint.ROWS`) of a features set against a fitted ST model, ``chunk_size``
    queries at a time on ``threads`` ranking threads; ``rerank`` adds ``VIS+re-rank`` and ``st-ReID+re-rank``,
    ``extra`` more rows ranked in the same pass (:class:`ExtraRows`). Returns ``{"rows": {row: {R1, R5, R10, mAP,
    mAP_open_reid, mINP}}, "params", "n_query", "n_gallery", "n_query_without_match"}`` (metrics in percent)."""
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
    """The result as a fixed-width text table (R1 R5 R10 mAP mAP(open-reid) mINP, %), with notes on queries without
    a valid match and on lowered re-ranking parameters."""
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
    """What the ST model cannot tell about this test set: an :class:`EvaluationError` when nothing can be computed
    (a camera outside the model, a model without votes, no test pair seen in training), else the warnings (unseen
    camera pairs, votes beyond the last bin), one line each. ``source`` and ``features`` name them in messages."""
    for side in ("query", "gallery"):
        cams = getattr(fs, side).cams
        if int(cams.max()) > int(model.n_cams):
            raise EvaluationError(
                f"{features}: {side}_cam holds camera {int(cams.max())}, outside the ST model's cameras "
                f"1..{model.n_cams} ({source})"
            )
    if not model.distribution_.any():  # no vote (a fitted model) or an empty distribution (a model from a file)
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
    if model.n_overflow_votes_:
        fate = "dropped" if model.overflow == "zero" else "put in the last bin"
        warnings.append(
            f"{model.n_overflow_votes_} training vote(s) fell beyond the last bin (n_bins={model.n_bins}, "
            f"bin_width={model.bin_width} frames) and were {fate} (overflow={model.overflow!r})"
        )
    return warnings
