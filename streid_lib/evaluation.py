"""Evaluation pipeline: score rows chunk by chunk, rank, and report R1/R5/R10, mAP, mAP (open-reid), mINP.

``evaluate_features`` runs the paper's four rows (VIS, ST, VISxST, st-ReID; see :mod:`streid_lib.joint`) over
chunks of queries, feeding each row's scores to a :class:`streid_lib.metrics.MetricAccumulator`, so peak memory is
O(chunk × gallery). ``cli_evaluate`` is ``python -m streid_lib evaluate``. Nothing here imports torch.

Protocol (§5, implemented in :mod:`streid_lib.metrics`): good = same pid, other camera; junk = same pid
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
from .errors import StreidError
from .features import FeatureSet, load_features
from .joint import DEFAULT_METRIC, ROWS, JointMetric, check_rows, iter_score_chunks
from .metadata import (
    SEQ_LENGTHS_FILE,
    Metadata,
    MetadataError,
    detect_list_naming,
    detect_naming,
    list_images,
    parse_names,
    read_manifest,
    read_name_lines,
    read_seq_lengths_file,
)
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


class EvaluationError(StreidError):
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
    improved = None
    if mode == "improved":
        from .improved import prepare_improved
        from .metrics import RankingProtocol

        info: dict[str, Any] = {}
        # The improved model follows the faithful model's bins, cameras and overflow policy (base=model); it
        # calibrates on the set's training side when there is one (params["improved"]["train_features"]). Its rows
        # are ranked in the faithful rows' pass, sharing their cosine.
        columns = RankingProtocol(fs.gallery).columns
        improved = prepare_improved(fs, train, rerank, columns=columns, base=model, info=info)
    results = rank_rows(fs, model, metric, rows, chunk_size, int(threads), extra=improved)
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
    if improved is not None:
        out_rows.update({row: _summary(results[row]) for row in improved.rows})
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
    extra: Any = None,
) -> dict[str, Any]:
    """Per-query metrics (:class:`streid_lib.metrics.RankingResult`) of each selected row, chunk by chunk.

    The rows of a chunk share everything that does not depend on the scores: the ST lookup index
    (:class:`streid_lib.joint.ChunkScorer`) and the protocol's good/junk items
    (:class:`streid_lib.metrics.RankingProtocol`, one :class:`~streid_lib.metrics.QueryChunk` per chunk). Only the
    gallery items that can take part in a ranking are scored (pid -1 items are junk for every query), and the ST
    row is ranked on the dense ranks of p (``rank_only``): both change no figure, only the work.

    ``extra`` adds rows computed from the same chunk's cosine: an object with ``rows`` (names) and
    ``extra(sl, s) -> {row: scores}`` on the protocol's columns (``s`` None when no faithful row needs the cosine),
    e.g. :class:`streid_lib.improved.ImprovedRows`. The faithful rows' figures do not depend on it.

    With ``threads > 1`` the rows of chunk i are ranked by worker threads while chunk i+1 is scored
    (:func:`streid_lib.metrics.rank_chunks`); each row's chunks still reach its accumulator in query order.
    """
    from .joint import ChunkScorer
    from .metrics import RankingProtocol, iter_row_chunks, rank_chunks

    rows = check_rows(rows)
    protocol = RankingProtocol(fs.gallery)
    if extra is None:
        chunks = iter_score_chunks(fs, model, metric, rows, chunk_size, columns=protocol.columns, rank_only=True)
        return rank_chunks(chunks, fs.query, protocol, rows, threads)
    # iter_score_chunks' three stages, with the extra rows fed the chunk's cosine.
    scorer = ChunkScorer(fs, model, metric, rows, protocol.columns, True)

    def chunks_with_extra():
        for sl in iter_row_chunks(len(fs.query), int(chunk_size)):
            s = scorer.similarity(sl)
            scores = scorer.fuse(s, scorer.st_lookup(sl))
            scores.update(extra(sl, s))
            yield sl, scores

    return rank_chunks(chunks_with_extra(), fs.query, protocol, [*rows, *extra.rows], threads)


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


#: The naming each ``--dataset`` expects of training names (``--train-names``/``--train-dir``) unless declared with
#: ``--naming``. The campus is written with Market-style names by default (``synth --naming market``); a campus
#: written with Duke-style names is recognised from its features file's provenance (``naming``, written by
#: ``extract``) or declared (docs/reference.md §13).
DATASET_NAMING: dict[str, str] = {"market": "market", "duke": "duke", "campus": "market"}
_NAMING_TEXT = {"market": "Market-style (PPPP_cXsY_FFFFFF_BB.jpg)", "duke": "Duke-style (PPPP_cC_fFFFFFFF.jpg)"}
#: What the provenance says of the authors' Market-1501 sequence table.
AUTHORS_MARKET_TABLE = "the authors' Market-1501 table (metadata.MARKET_SEQ_LENGTHS)"
#: Rows that read the spatial-temporal model.
_ST_ROWS = ("ST", "VISxST", "VISxST-shifted", "st-ReID")


def read_train_metadata(
    dataset: str,
    names: str | None = None,
    directory: str | None = None,
    manifest: str | None = None,
    *,
    naming: str | None = None,
    sequence_lengths: str | None = None,
    features_naming: str | None = None,
    features_file: str = "the features file",
) -> tuple[Metadata, dict[str, Any]]:
    """Training metadata from exactly one of a name list, a ``bounding_box_train`` folder or a CSV manifest.

    Names must follow the naming of the features (``features_naming``, see :func:`naming_of_features`) when it is
    known, which must agree with a named dataset's, else the dataset's (:data:`DATASET_NAMING`), unless ``naming``
    declares it. Market-style names are made global with a sequence table: ``sequence_lengths`` (a file) when
    given, else a ``sequence_lengths.json`` beside the list (or beside the folder), else, for Market-1501 only, the
    authors' table. Campus names without their table are refused. Manifests carry global frames and need neither.

    Returns:
        the metadata and a provenance record: ``kind`` (``names``/``dir``/``manifest``), ``path``, ``n_images``,
        ``n_identities`` and, for names, ``naming``, ``naming_from`` and ``sequence_table``.

    Raises:
        EvaluationError, MetadataError: naming the file (and line) and what was expected.
    """
    given = [(k, v) for k, v in (("names", names), ("dir", directory), ("manifest", manifest)) if v is not None]
    if len(given) != 1:
        raise EvaluationError(f"training data: give exactly one of a name list, a folder or a manifest, got {given}")
    if dataset not in DATASET_NAMING:
        raise EvaluationError(f"dataset: expected one of {sorted(DATASET_NAMING)}, got {dataset!r}")
    kind, value = given[0]
    path = Path(value)
    if kind == "manifest":
        if naming is not None or sequence_lengths is not None:
            raise EvaluationError(
                f"{path}: a manifest carries global frames; --naming and --sequence-lengths apply to names only"
            )
        train = read_manifest(path)
        return train, _train_record(kind, path, train, frames="as given in the manifest (global per camera)")
    if kind == "names":
        lines, files = read_name_lines(path)
    else:
        if not path.is_dir():
            raise MetadataError(f"{path}: training folder (bounding_box_train) not found")
        files, lines = list_images(path), None
        if not files:
            raise MetadataError(f"{path}: no .jpg images in the training folder")
    found = detect_list_naming(files, str(path), lines)
    expected, because = _expected_naming(dataset, naming, features_naming, features_file)
    if found != expected:
        where = f"{path}, line {lines[0]}" if lines else str(path)
        hint = (
            "; a campus written with --naming duke has Duke-style names: pass --naming duke"
            if dataset == "campus" and found == "duke"
            else f"; if these names are right, declare them with --naming {found}"
        )
        raise EvaluationError(
            f"{where}: {files[0]!r} is a {_NAMING_TEXT[found]} name, but {because} expects "
            f"{_NAMING_TEXT[expected]} names{hint}"
        )
    seq, table = _sequence_table(dataset, expected, path, kind, sequence_lengths)
    train = parse_names(files, expected, seq, source=str(path), lines=lines)
    return train, _train_record(kind, path, train, naming=expected, naming_from=because, sequence_table=table)


def _expected_naming(
    dataset: str, declared: str | None, features_naming: str | None, features_file: str
) -> tuple[str, str]:
    """The naming training names must have, and why (for messages and the provenance).

    Declared (``--naming``) wins; else the features file's naming when known, which must agree with a named
    dataset's; else the dataset's (:data:`DATASET_NAMING`).
    """
    if declared is not None:
        if declared not in _NAMING_TEXT:
            raise EvaluationError(f"naming: expected one of {sorted(_NAMING_TEXT)}, got {declared!r}")
        return declared, f"--naming {declared}"
    if features_naming in _NAMING_TEXT:
        if dataset != "campus" and features_naming != DATASET_NAMING[dataset]:
            raise EvaluationError(
                f"{features_file}: holds {_NAMING_TEXT[features_naming]} names, but --dataset {dataset} expects "
                f"{_NAMING_TEXT[DATASET_NAMING[dataset]]} names: are the features from another dataset? (declare "
                f"the training names' naming with --naming to go ahead)"
            )
        return features_naming, f"--dataset {dataset} with {features_file} ({features_naming}-style names)"
    return DATASET_NAMING[dataset], f"--dataset {dataset}"


def naming_of_features(fs: FeatureSet) -> str | None:
    """The naming of a features file's images: its provenance's ``naming`` (written by ``extract``), else the
    naming of its stored query names, else ``None`` (unknown, e.g. the authors' ``.mat``)."""
    recorded = fs.provenance.get("naming")
    if recorded in _NAMING_TEXT:
        return recorded
    names = fs.query.names
    if names is not None and len(names):
        try:
            return detect_naming(str(names[0]))
        except MetadataError:
            return None
    return None


def _sequence_table(
    dataset: str, naming: str, path: Path, kind: str, explicit: str | None
) -> tuple[np.ndarray | None, str | None]:
    """The sequence table for Market-style names and how the provenance names it (None, None for Duke names)."""
    if naming != "market":
        if explicit is not None:
            raise EvaluationError(f"{explicit}: --sequence-lengths applies to Market-style names only")
        return None, None
    if explicit is not None:
        return read_seq_lengths_file(explicit), str(Path(explicit))
    beside = path.parent / SEQ_LENGTHS_FILE  # a name list's folder, or a bounding_box_train folder's dataset root
    if beside.is_file():
        return read_seq_lengths_file(beside), str(beside)
    if dataset != "market":
        what = (
            "campus Market-style names need the campus's"
            if dataset == "campus"
            else (f"Market-style names with --dataset {dataset} need their own")
        )
        raise EvaluationError(
            f"{path}: {what} sequence table to make frames global (the authors' Market-1501 table is for Market-1501 "
            f"only); looked for {beside}, which does not exist. Pass --sequence-lengths FILE (the dataset root's "
            f"{SEQ_LENGTHS_FILE})"
        )
    return None, AUTHORS_MARKET_TABLE


def _train_record(kind: str, path: Path, train: Metadata, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": kind, "path": str(path), "n_images": len(train)}
    record["n_identities"] = int(np.unique(train.pids).size)
    record.update({k: v for k, v in extra.items() if v is not None})
    return record


def check_output_file(path: str | Path, option: str = "--json") -> Path:
    """Check, before any work, that a result file can be written at ``path`` (:func:`streid_lib._io.check_output_path`).

    Missing parent folders are created when the file is written (as ``extract`` and ``train`` do).

    Raises:
        EvaluationError: one line naming the option, the path and why.
    """
    from ._io import check_output_path

    try:
        return check_output_path(path, kind="file", what=f"{option} file")
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None


def choose_training(args: argparse.Namespace, fs: FeatureSet) -> tuple[Metadata | None, dict[str, Any]]:
    """The training metadata of ``evaluate``: a ``--train-*`` option when given, else the features file's side.

    Returns ``(None, {"kind": "none"})`` when there is neither (allowed only with ``--st-model`` in faithful mode).
    """
    options = (args.train_names, args.train_dir, args.train_manifest)
    if any(v is not None for v in options):
        train, record = read_train_metadata(
            args.dataset,
            *options,
            naming=args.naming,
            sequence_lengths=args.sequence_lengths,
            features_naming=naming_of_features(fs),
            features_file=str(args.features),
        )
        if fs.has_train:
            record["features_train_side"] = "present but not used: the option given wins"
        return train, record
    if args.naming is not None or args.sequence_lengths is not None:
        raise EvaluationError("--naming and --sequence-lengths apply to --train-names or --train-dir, none was given")
    if fs.has_train:
        return fs.train, _train_record("features file", Path(args.features), fs.train, side="train_*")
    if args.st_model is None or args.mode != "faithful":
        need = "the ST model" if args.st_model is None else "--mode improved"
        raise EvaluationError(
            f"{args.features}: no training side (train_f, train_label, train_cam, train_frames) and no "
            f"--train-names, --train-dir or --train-manifest given; {need} needs training metadata"
        )
    return None, {"kind": "none"}


def _describe_train(record: dict[str, Any], table: bool = True) -> str:
    """A training source in words, for messages and the printed header (``table``: with its sequence table)."""
    if record["kind"] == "features file":
        where = f"the training side of {record['path']}"
    elif record["kind"] == "none":
        return "no training data"
    else:
        where = {"names": "name list", "dir": "folder", "manifest": "manifest"}[record["kind"]] + f" {record['path']}"
    text = f"{where} ({record['n_images']} images, {record['n_identities']} identities"
    if table and record.get("sequence_table"):
        text += f"; sequence table: {record['sequence_table']}"
    return text + ")"


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


def cli_evaluate(args: argparse.Namespace) -> int:
    """``python -m streid_lib evaluate``: print the rows table and optionally write it as JSON.

    Every input is checked at the door, before anything is computed: the ``--json`` destination, the features
    file, the training data (``--train-*``, else the features file's training side) and what the ST model can say
    about the test set (:func:`st_checks`). Warnings are printed under the table and listed in the JSON.
    """
    json_out = check_output_file(args.json_out) if args.json_out else None
    fs = load_features(args.features)
    pseudo = None
    if getattr(args, "pseudo_labels", None):  # docs/reference.md §14.2: the training side becomes pseudo-identities
        from .pseudo import guarded_mode, pseudo_from_args

        fs, pseudo = pseudo_from_args(fs, args)

    rows = check_rows(args.rows)
    metric = JointMetric(lambda0=args.lambda0, gamma0=args.gamma0, lambda1=args.lambda1, gamma1=args.gamma1)
    params = {"sigma": args.sigma, "bin_width": args.bin_width, "overflow": args.overflow}
    if pseudo is not None and "train" in pseudo:  # §14.3: --train-manifest described train_f's rows
        train, train_source = fs.train, pseudo.pop("train")
    else:
        train, train_source = choose_training(args, fs)
    if args.st_model:
        # n_bins/n_cams come from the stored model; --n-bins must agree when given.
        model = load_st_model(args.st_model, **params, n_bins=args.n_bins)
        st_source = {"kind": "file", "path": str(args.st_model)}
        st_text = f"the ST model file {args.st_model}"
    else:
        try:
            model = fit_st_model(train, args.dataset, n_bins=args.n_bins, **params)
        except STModelError as exc:
            raise STModelError(f"fitting the ST model on {_describe_train(train_source)}: {exc}") from None
        st_source = {"kind": "fit", "train": train_source}
        st_text = f"fitted on {_describe_train(train_source)}"
    uses_st = args.rerank or args.mode != "faithful" or any(r in _ST_ROWS for r in rows)
    short = st_text if args.st_model else f"fitted on {_describe_train(train_source, table=False)}"
    warnings = st_checks(fs, model, short, str(args.features)) if uses_st else []
    if pseudo is not None:  # §14.2: improved mode sets w by the spread rule, not on the clusters' own features
        fs = fs.without_train()
    mode = args.mode if pseudo is None else guarded_mode(args.mode, pseudo)  # §14.2: the label-free guard
    result = evaluate_features(
        fs, model, metric, rows, chunk_size=args.chunk_size, rerank=args.rerank, mode=mode, train=train
    )
    result["warnings"] = warnings + ([pseudo["improved_guard"]["summary"]] if mode != args.mode else [])
    if pseudo is not None:
        result["pseudo_labels"] = pseudo
        print(f"pseudo-identities: {pseudo['summary']}")
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
    print(f"ST model: {st_text}")
    print(format_table(result))
    for w in warnings:
        print(f"warning: {w}")
    if json_out is not None:
        write_json_atomic(json_out, result)
        print(f"wrote {json_out}")
    return 0


__all__ = [
    "COLUMNS",
    "DATASET_NAMING",
    "EvaluationError",
    "STModelError",
    "check_output_file",
    "choose_training",
    "cli_evaluate",
    "evaluate_features",
    "fit_st_model",
    "format_table",
    "rank_rows",
    "read_train_metadata",
    "st_checks",
]
