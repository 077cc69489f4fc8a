"""Evaluation pipeline: score rows chunk by chunk, rank, and report R1/R5/R10, mAP, mAP (open-reid), mINP.

``evaluate_features`` runs the paper's four rows (VIS, ST, VISxST, st-ReID; see :mod:`streid_lib.joint`) over
chunks of queries, feeding each row's scores to a :class:`streid_lib.metrics.MetricAccumulator`, so peak memory is
O(chunk × gallery). ``cli_evaluate`` is ``python -m streid_lib evaluate``. Nothing here imports torch.

Protocol (reference §5, implemented in :mod:`streid_lib.metrics`): good = same pid, other camera; junk = same pid
and camera, or pid -1; mAP is the authors' trapezoid AP, ``mAP_open_reid`` the plain (non-interpolated) AP;
ranks are by descending score with ties broken by gallery order. All figures are percent.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._io import write_json_atomic
from .features import FeatureSet, load_features
from .joint import DEFAULT_METRIC, ROWS, JointMetric, check_rows, iter_score_chunks
from .metadata import Metadata, MetadataError, list_images, parse_names, read_manifest, read_name_list, read_seq_lengths
from .metrics import default_threads
from .st_model import SpatialTemporalModel, STModelError, fit_st_model, load_st_model

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


class EvaluationError(ValueError):
    """Bad evaluation input or options (names the value and what was expected)."""


def evaluate_features(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    rows: Sequence[str] = ROWS,
    chunk_size: int = 256,
    rerank: bool = False,
    mode: str = "faithful",
    train: Metadata | None = None,
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
        mode: ``"faithful"``, or ``"improved"`` to add the Bayesian-fusion rows
            (:func:`streid_lib.improved.improved_rows`, which needs training metadata).
        train: training metadata for ``mode="improved"`` (default: the set's training side, ``fs.train``). The
            improved mode calibrates on the set's training features when it has them.
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
    if mode not in MODES:
        raise EvaluationError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode == "improved" and train is None and not fs.has_train:
        raise EvaluationError(
            "mode='improved' needs the training metadata (train=...) or a features set with a training side"
        )
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise EvaluationError(f"threads: expected an integer >= 1, got {threads!r}")
    results = rank_rows(fs, model, metric, rows, chunk_size, int(threads))
    out_rows: dict[str, dict[str, float]] = {row: _summary(results[row]) for row in rows}
    params: dict[str, Any] = {
        "metric": metric.params(),
        "st_model": model.fit_info(),
        "rows": list(rows),
        "chunk_size": int(chunk_size),
        "rerank": bool(rerank),
        "mode": mode,
        "ap": "mAP: the authors' trapezoid AP; mAP_open_reid: non-interpolated AP",
        "ties": "broken by gallery order (stable)",
    }
    if rerank:
        from .rerank import effective_params, rerank_rows

        out_rows.update({k: _summary(v) for k, v in rerank_rows(fs, model, metric).items()})
        # Re-ranking lowers k1/k2 for sets smaller than k1 + 1 images: the values it used.
        eff = effective_params(len(fs.query) + len(fs.gallery), len(fs.query))
        params["rerank_params"] = {"k1": eff.k1, "k2": eff.k2, "lambda_value": eff.lambda_value, "n_images": eff.n}
    if mode == "improved":
        from .improved import improved_rows

        info: dict[str, Any] = {}
        # The improved model follows the faithful model's bins, cameras and overflow policy (base=model); it
        # calibrates on the set's training side when there is one (params["improved"]["train_features"]).
        out_rows.update({k: _summary(v) for k, v in improved_rows(fs, train, rerank, base=model, info=info).items()})
        params["improved"] = info
    first = results[rows[0]]
    return {
        "rows": out_rows,
        "params": params,
        "n_query": len(fs.query),
        "n_gallery": len(fs.gallery),
        # Queries with no good item (same identity in another camera) count as misses in every average.
        "n_query_without_match": int(first.n_queries - first.n_valid),
    }


def rank_rows(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    rows: Sequence[str] = ROWS,
    chunk_size: int = 256,
    threads: int = 1,
) -> dict[str, Any]:
    """Per-query metrics (:class:`streid_lib.metrics.RankingResult`) of each selected row, chunk by chunk.

    The rows of a chunk share everything that does not depend on the scores: the ST lookup index
    (:func:`streid_lib.joint.iter_score_chunks`) and the protocol's good/junk items
    (:class:`streid_lib.metrics.RankingProtocol`, one :class:`~streid_lib.metrics.QueryChunk` per chunk). Only the
    gallery items that can take part in a ranking are scored (pid -1 items are junk for every query), and the ST
    row is ranked on the dense ranks of p (``rank_only``): both change no figure, only the work.

    With ``threads > 1`` the rows of chunk i are ranked by worker threads while chunk i+1 is scored
    (:func:`streid_lib.metrics.rank_chunks`); each row's chunks still reach its accumulator in query order.
    """
    from .metrics import RankingProtocol, rank_chunks

    protocol = RankingProtocol(fs.gallery)
    chunks = iter_score_chunks(fs, model, metric, rows, chunk_size, columns=protocol.columns, rank_only=True)
    return rank_chunks(chunks, fs.query, protocol, rows, threads)


def _package_version() -> str:
    """The installed streid version (the package's ``__version__`` when its ``__init__`` ran)."""
    from importlib import import_module, metadata

    version = getattr(import_module(__package__), "__version__", None)
    if version is None:  # e.g. imported through an editable-install namespace path
        try:
            version = metadata.version("streid")
        except metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)


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
# Command line


def read_train_metadata(
    dataset: str, names: str | None = None, directory: str | None = None, manifest: str | None = None
) -> tuple[Metadata, dict[str, str]]:
    """Training metadata from exactly one of a name list, a ``bounding_box_train`` folder or a CSV manifest.

    Market-style names use a ``sequence_lengths.json`` beside the list (or beside the folder's dataset root)
    when there is one, else the authors' Market table. Returns the metadata and a provenance record.
    """
    given = [(k, v) for k, v in (("names", names), ("dir", directory), ("manifest", manifest)) if v is not None]
    if len(given) != 1:
        raise EvaluationError(f"training data: give exactly one of a name list, a folder or a manifest, got {given}")
    naming = dataset if dataset in ("market", "duke") else None
    kind, value = given[0]
    path = Path(value)
    if kind == "names":
        train = read_name_list(path, naming, read_seq_lengths(path.parent))
    elif kind == "dir":
        if not path.is_dir():
            raise MetadataError(f"{path}: training folder (bounding_box_train) not found")
        files = list_images(path)
        if not files:
            raise MetadataError(f"{path}: no .jpg images in the training folder")
        from .metadata import detect_naming

        train = parse_names(files, naming or detect_naming(files[0]), read_seq_lengths(path.parent), source=str(path))
    else:
        train = read_manifest(path)
    return train, {"kind": kind, "path": str(path), "n_images": str(len(train))}


def cli_evaluate(args: argparse.Namespace) -> int:
    """``python -m streid_lib evaluate``: print the rows table and optionally write it as JSON."""
    fs = load_features(args.features)
    train, train_source = read_train_metadata(args.dataset, args.train_names, args.train_dir, args.train_manifest)
    metric = JointMetric(args.lambda0, args.gamma0, args.lambda1, args.gamma1)
    params = {"sigma": args.sigma, "bin_width": args.bin_width, "overflow": args.overflow}
    if args.st_model:
        # n_bins/n_cams come from the stored model; --n-bins must agree when given.
        model = load_st_model(args.st_model, **params, n_bins=args.n_bins)
        st_source = {"kind": "file", "path": str(args.st_model)}
    else:
        model = fit_st_model(train, args.dataset, n_bins=args.n_bins, **params)
        st_source = {"kind": "fit", "train": train_source}
    result = evaluate_features(
        fs, model, metric, ROWS, chunk_size=args.chunk_size, rerank=args.rerank, mode=args.mode, train=train
    )
    result["provenance"] = {
        "command": "python -m streid_lib evaluate",
        "arguments": {k: v for k, v in vars(args).items() if k not in ("func", "command")},
        "streid_version": _package_version(),
        "dataset": args.dataset,
        "features": fs.provenance,
        "train": train_source,
        "st_model": st_source,
    }
    print(f"{args.dataset}: {result['n_query']} queries x {result['n_gallery']} gallery images (percent)")
    print(format_table(result))
    if args.json_out:
        write_json_atomic(args.json_out, result)
        print(f"wrote {args.json_out}")
    return 0


__all__ = [
    "COLUMNS",
    "EvaluationError",
    "STModelError",
    "cli_evaluate",
    "evaluate_features",
    "fit_st_model",
    "format_table",
    "rank_rows",
    "read_train_metadata",
]
