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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._io import write_json_atomic
from .features import FeatureSet, load_features
from .joint import DEFAULT_METRIC, ROWS, JointMetric, check_rows, iter_score_chunks
from .metadata import Metadata, MetadataError, list_images, parse_names, read_manifest, read_name_list, read_seq_lengths
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
            (:func:`streid_lib.improved.improved_rows`, which needs ``train``).
        train: training metadata; needed by ``mode="improved"``.
        threads: worker threads that rank the rows of a chunk while the next chunk is scored (default: 2 where
            there are 2 CPUs or more; 1: all in the calling thread). The figures do not depend on it.

    Returns:
        ``{"rows": {row: {"R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"}}, "params": {...},
        "n_query": int, "n_gallery": int}`` with metrics in percent.
    """
    rows = check_rows(rows)
    if mode not in MODES:
        raise EvaluationError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode == "improved" and train is None:
        raise EvaluationError("mode='improved' needs the training metadata (train=...)")
    if threads is None:
        # One ranking thread beside the scoring thread: measured 4.2 s → 2.8 s for the four Market rows on 2 cores.
        threads = min(2, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise EvaluationError(f"threads: expected an integer >= 1, got {threads!r}")
    results = rank_rows(fs, model, metric, rows, chunk_size, int(threads))
    out_rows: dict[str, dict[str, float]] = {row: _summary(results[row]) for row in rows}
    if rerank:
        rerank_rows = _optional("rerank", "rerank_rows", "--rerank / rerank=True")
        out_rows.update({k: _summary(v) for k, v in rerank_rows(fs, model, metric).items()})
    improved_info = None
    if mode == "improved":
        improved_rows = _optional("improved", "improved_rows", "--mode improved")
        info: dict[str, Any] = {}
        # The improved model follows the faithful model's bins, cameras and overflow policy (base=model).
        out_rows.update({k: _summary(v) for k, v in improved_rows(fs, train, rerank, base=model, info=info).items()})
        improved_info = info
    params = {
        "metric": metric.params(),
        "st_model": model.fit_info(),
        "rows": list(rows),
        "chunk_size": int(chunk_size),
        "rerank": bool(rerank),
        "mode": mode,
        "ap": "mAP: the authors' trapezoid AP; mAP_open_reid: non-interpolated AP",
        "ties": "broken by gallery order (stable)",
    }
    if improved_info is not None:
        params["improved"] = improved_info
    return {"rows": out_rows, "params": params, "n_query": len(fs.query), "n_gallery": len(fs.gallery)}


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

    With ``threads > 1`` the rows of chunk i are ranked by worker threads while chunk i+1 is scored; each row's
    chunks still reach its accumulator in query order.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .metrics import MetricAccumulator, RankingProtocol

    protocol = RankingProtocol(fs.gallery)
    accs = {row: MetricAccumulator(fs.gallery, protocol=protocol) for row in rows}
    chunks = iter_score_chunks(fs, model, metric, rows, chunk_size, columns=protocol.columns, rank_only=True)
    if threads == 1:
        for sl, scores in chunks:
            chunk = protocol.chunk(fs.query.take(sl), sl.start)
            for row in rows:
                accs[row].update(scores[row], chunk=chunk)
    else:
        with ThreadPoolExecutor(threads) as pool:
            pending: list[Any] = []
            for sl, scores in chunks:
                chunk = protocol.chunk(fs.query.take(sl), sl.start)
                for f in pending:  # the previous chunk is done before this one starts: order kept per row
                    f.result()
                pending = [pool.submit(accs[row].update, scores[row], chunk=chunk) for row in rows]
            for f in pending:
                f.result()
    return {row: accs[row].result() for row in rows}


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


def _optional(module: str, name: str, option: str) -> Any:
    """A function from a sibling module that may not be written yet; a clear error if it is missing."""
    import importlib

    try:
        mod = importlib.import_module(f"{__package__}.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.{module}":
            raise
        raise EvaluationError(
            f"{option} needs streid_lib.{module}, which is not available in this installation"
        ) from None
    func = getattr(mod, name, None)
    if func is None:
        raise EvaluationError(f"{option} needs streid_lib.{module}.{name}, which is not defined")
    return func


def format_table(result: dict[str, Any]) -> str:
    """The result as a fixed-width text table: one line per row, columns R1 R5 R10 mAP mAP(open-reid) mINP (%)."""
    rows = result["rows"]
    width = max([len("row")] + [len(r) for r in rows])
    header = f"{'row':<{width}}  " + "  ".join(f"{h:>{max(6, len(h))}}" for _, h in COLUMNS)
    lines = [header]
    for row, summary in rows.items():
        cells = "  ".join(f"{summary[k]:>{max(6, len(h))}.1f}" for k, h in COLUMNS)
        lines.append(f"{row:<{width}}  {cells}")
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
