"""Command line: ``python -m streid_lib {evaluate,synth,train,extract,reproduce} ...``.

Exit codes: 0 done, 1 a bug or a failed notebook (the traceback in a log file, or shown with ``--debug``), 2 bad
input or destination (:class:`streid_lib.errors.StreidError`), 130 interrupted. ``evaluate`` never imports torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import StreidError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and a pointer to ``--help`` (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _options(p: argparse.ArgumentParser, table: Sequence[tuple]) -> None:
    """Add ``--name`` options from ``(field, type or choices, default, help)``; ``bool``: a ``store_true`` flag."""
    for name, kind, default, text in table:
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action="store_true", help=text)
        elif isinstance(kind, (tuple, list)):
            p.add_argument(flag, choices=kind, default=default, help=text)
        else:
            p.add_argument(flag, type=kind, default=default, help=text)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    # The defaults have one home, the library: they are read from it here, never repeated.
    import dataclasses
    import inspect

    from .evaluation import MODES, evaluate_features
    from .joint import ALL_ROWS, ROWS, JointMetric
    from .pseudo import PSEUDO_MODES, PseudoIdentities, apply_pseudo_labels
    from .st_model import DATASET_N_BINS, OVERFLOW_POLICIES, SpatialTemporalModel
    from .training_names import DATASET_NAMING

    st = {k: v.default for k, v in inspect.signature(SpatialTemporalModel).parameters.items()}
    metric = {f.name: f.default for f in dataclasses.fields(JointMetric)}
    evaluate = {k: v.default for k, v in inspect.signature(evaluate_features).parameters.items()}
    pseudo = {k: v.default for k, v in inspect.signature(PseudoIdentities).parameters.items()}
    rounds = inspect.signature(apply_pseudo_labels).parameters["rounds"].default
    p = sub.add_parser("evaluate", help="evaluate a features file: VIS, ST, VISxST (Eqn. 5) and st-ReID rows")
    p.add_argument("--features", required=True, help="pytorch_result.mat or .npz features file")
    p.add_argument("--dataset", choices=list(DATASET_N_BINS), required=True)
    _options(p.add_mutually_exclusive_group(), [
        ("train_names", str, None,
         "text file of training image names, one per line (default: the features file's train side)"),
        ("train_dir", str, None, "a bounding_box_train folder"),
        ("train_manifest", str, None, "CSV manifest path,pid,camera,frame of the training images"),
    ])  # fmt: skip
    p.add_argument(
        "--sequence-lengths",
        metavar="FILE",
        help="sequence table for Market-style names (default: sequence_lengths.json beside the names; for market "
        "the authors' table)",
    )
    p.add_argument("--st-model", help="use this fitted ST model (.npz, or the authors' pytorch_result2.mat)")
    p.add_argument("--json", dest="json_out", help="also write the table as JSON here (checked before any work)")
    p.add_argument(
        "--rows",
        nargs="+",
        choices=ALL_ROWS,
        default=list(ROWS),
        metavar="ROW",
        help=f"score rows, from {', '.join(ALL_ROWS)} (default: {' '.join(ROWS)})",
    )
    n_bins = ", ".join(f"{k} {v}" for k, v in DATASET_N_BINS.items())
    namings = ", ".join(f"{k} → {v}" for k, v in DATASET_NAMING.items())
    _options(p, [
        ("naming", sorted(set(DATASET_NAMING.values())), None, "declare the naming of --train-names/--train-dir "
         f"(default: the dataset's, {namings}; for campus, the naming recorded in the features file if there is one)"),
        *((k, float, metric[k], f"{what} (default %(default)s)") for k, what in (
            ("lambda0", "visual smoothing factor λ0"), ("gamma0", "visual shrinking factor γ0"),
            ("lambda1", "ST smoothing factor λ1"), ("gamma1", "ST shrinking factor γ1"),
        )),
        ("sigma", float, st["sigma"], "Parzen kernel width in bins (default %(default)s)"),
        ("bin_width", int, st["bin_width"], "histogram bin width in frames (default %(default)s)"),
        ("n_bins", int, None, f"number of bins (default: {n_bins})"),
        ("overflow", OVERFLOW_POLICIES, st["overflow"],
         "time gaps beyond the last bin: p=0 (zero), last bin (clip), or an error (default %(default)s)"),
        ("chunk_size", int, evaluate["chunk_size"], "queries scored per chunk (bounds memory; default %(default)s)"),
        ("rerank", bool, False, "add the k-reciprocal re-ranking rows"),
        ("mode", MODES, MODES[0], None),
        ("allow_duplicates", bool, False, "accept duplicate images on one side (default: an error)"),
        ("pseudo_labels", PSEUDO_MODES, None, "fit the ST model on pseudo-identities: of the training side (labels "
         "ignored), or of query+gallery (transductive); docs/reference.md §14"),
        ("pseudo_eps", float, pseudo["eps"], "fixed DBSCAN eps (default: chosen without labels)"),
        ("pseudo_min_samples", int, pseudo["min_samples"], "DBSCAN min_samples (default %(default)s)"),
        ("pseudo_rounds", int, rounds, "rounds re-clustered with ST evidence (default %(default)s)"),
        ("fps", float, pseudo["fps"], "frames per second of the frames (default %(default)s)"),
        ("max_dwell", float, pseudo["max_dwell_s"], "longest stay in one camera, seconds (default %(default)s)"),
    ])  # fmt: skip
    p.set_defaults(func=cli_evaluate)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic camera-network dataset (campus)")
    p.add_argument("--out", required=True, help="dataset root to write")
    _options(p, [
        ("preset", ("tiny", "small", "large"), "small", None),
        ("seed", int, 0, None),
        ("naming", ("market", "duke"), "market", None),
        ("metadata_only", bool, False, "write names and manifests but no images"),
    ])  # fmt: skip
    p.set_defaults(func=cli_synth)


def _add_train(sub: argparse._SubParsersAction) -> None:
    # Defaults come from the configuration dataclass (torch-free); each option is named after its field.
    from .visual.config import MODEL_NAMES, TrainConfig, defaults

    d = {**defaults(TrainConfig), "device": "auto"}
    p = sub.add_parser("train", help="train a visual baseline (PCB, ResNet-50, DenseNet-121)")
    p.add_argument("--model", choices=MODEL_NAMES, required=True)
    p.add_argument("--data", required=True, help="dataset root with bounding_box_train/")
    p.add_argument("--out", required=True, help="run directory (last.pt, history.json, provenance.json)")
    _options(p, [(k, kind, d.get(k), text) for k, kind, text in (
        ("erasing", float, "random erasing probability (paper's +RE: 0.5)"),
        ("epochs", int, "default %(default)s"),
        ("batch_size", int, "default %(default)s"),
        ("height", int, "input height in pixels (default 384 PCB, 256 others)"),
        ("width", int, "input width in pixels (default 192 PCB, 128 others)"),
        ("weights", str, "'imagenet' (torchvision, default), 'none' (from scratch), or a file"),
        ("device", str, None),
        ("seed", int, None),
        ("compile", bool, "torch.compile the model"),
        ("cuda_graph", ("auto", "on", "off"),
         "replay each step as a CUDA graph (auto: on with the memory loader on one GPU without --compile)"),
        ("checkpoint_every", int, "epochs between checkpoints"),
        ("keep_checkpoints", bool,
         "keep every checkpoint as epoch_NNN.pt (default: only last.pt, slimmed when the run is finished)"),
        ("decay_epoch", int, "epoch index of the x0.1 lr step (default 39/60)"),
        ("lr", float, "learning rate of the new layers (reference %(default)s)"),
        ("lr_backbone", float, "learning rate of the backbone (reference %(default)s)"),
        ("loader", ("memory", "plain"), "fast in-memory or plain DataLoader"),
        ("precision", ("auto", "bf16", "fp32"), "auto: bf16 on CUDA"),
        ("workers", int, "decoding threads / DataLoader workers"),
        ("download_weights", bool, "allow downloading ImageNet weights (internet)"),
        ("no_resume", bool, "start afresh instead of resuming from OUT/last.pt"),
        ("no_progress", bool, "no progress bar"),
    )])  # fmt: skip
    p.set_defaults(func=cli_train)


def _add_extract(sub: argparse._SubParsersAction) -> None:
    from .visual.config import MODEL_NAMES, ExtractConfig, defaults

    d = {**defaults(ExtractConfig), "device": "auto"}
    p = sub.add_parser("extract", help="extract query, gallery and training features into a features file")
    p.add_argument("--model", choices=MODEL_NAMES, required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="dataset root with query/, bounding_box_test/, bounding_box_train/")
    p.add_argument("--out", required=True, help="features file to write (.mat or .npz)")
    _options(p, [(k, kind, d.get(k), text) for k, kind, text in (
        ("batch_size", int, "default %(default)s"),
        ("device", str, None),
        ("height", int, "test resize height (default 384 PCB, 288 others)"),
        ("width", int, "test resize width (default 192 PCB, 144 others)"),
        ("precision", ("fp32", "bf16"), "bf16: CUDA autocast"),
        ("workers", int, "decoding threads"),
        ("no_progress", bool, "no progress bar"),
    )])  # fmt: skip
    p.add_argument(
        "--no-train", dest="train", action="store_false", default=d["train"],
        help="skip the training images (the file then holds query and gallery only)",
    )  # fmt: skip
    p.set_defaults(func=cli_extract)


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="run the study's notebooks in order with papermill",
        description="Run the study's notebooks in order; executed (signed) copies go to OUT/notebooks. The terminal "
        "shows each notebook as it starts, the kernels' progress bars and warnings, and the time per notebook.",
    )
    p.add_argument("--profile", choices=["smoke", "default", "paper"], default=None, help="default: smoke under CI")
    p.add_argument("--out", default=None, help="run directory (default runs/<profile>); same as -p out_dir")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a notebook parameter (a name of the notebooks' parameters cell), converted to its type",
    )
    p.add_argument("--only", nargs="*", default=None, help="run only notebooks whose name contains one of these")
    p.set_defaults(func=cli_reproduce)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m streid_lib", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_evaluate, _add_synth, _add_train, _add_extract, _add_reproduce):
        add(sub)
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


# ----------------------------------------------------------------------------------------------------------------
# evaluate


def cli_evaluate(args: argparse.Namespace) -> int:
    """``python -m streid_lib evaluate``: the namespace as keyword arguments of :func:`evaluate_command`."""
    return evaluate_command(**{k: v for k, v in vars(args).items() if k not in ("func", "command", "debug")})


def evaluate_command(
    *,
    features: str,
    dataset: str,
    json_out: str | None = None,
    rows: Sequence[str] | None = None,
    st_model: str | None = None,
    train_names: str | None = None,
    train_dir: str | None = None,
    train_manifest: str | None = None,
    naming: str | None = None,
    sequence_lengths: str | None = None,
    n_bins: int | None = None,
    allow_duplicates: bool = False,
    **options: Any,
) -> int:
    """Print the rows table of a features file and optionally write it as JSON (``json_out="-"``: stdout).

    Every input is checked before anything is computed: the destination, the features (duplicates), the training
    data (:func:`streid_lib.training_names.choose_training`) and what the ST model can say about the test set
    (:func:`streid_lib.evaluation.st_checks`). ``options``: the other ``evaluate`` options; warnings are printed.
    """
    arguments = {**{k: v for k, v in locals().items() if k != "options"}, **options}
    from ._io import check_output_path, write_json_atomic
    from .evaluation import ST_ROWS, evaluate_features, format_table, st_checks
    from .features import check_duplicates, check_queries, load_features
    from .joint import ROWS, JointMetric, check_rows
    from .st_model import STModelError, fit_st_model, load_st_model
    from .training_names import choose_training, describe_train

    inputs = [features, st_model, train_names, train_dir, train_manifest, sequence_lengths]
    to_stdout, to_file = json_out == "-", json_out not in (None, "-")
    if to_file:
        check_output_path(json_out, kind="file", what="--json file", inputs=[i for i in inputs if i])
    rows = check_rows(ROWS if rows is None else rows)
    mode = options.get("mode", "faithful")
    metric = JointMetric(**{k: options[k] for k in ("lambda0", "gamma0", "lambda1", "gamma1") if k in options})
    fs = load_features(features)
    check_queries(fs, features)
    warnings = check_duplicates(fs, features, allow=allow_duplicates)
    pseudo = None
    if options.get("pseudo_labels"):  # docs/reference.md §14.2: the clustered side becomes pseudo-identities
        from .pseudo import guarded_mode

        fs, pseudo = _pseudo_labels(fs, **arguments)
    params = {k: options[k] for k in ("sigma", "bin_width", "overflow") if k in options}
    needed_by = "the ST model" if st_model is None else (None if mode == "faithful" else "--mode improved")
    if pseudo is not None and "train" in pseudo:  # §14.3: --train-manifest described train_f's rows
        train, train_source = fs.train, pseudo.pop("train")
    else:
        fs, train, train_source = choose_training(
            fs,
            dataset,
            features=str(features),
            train_names=train_names,
            train_dir=train_dir,
            train_manifest=train_manifest,
            naming=naming,
            sequence_lengths=sequence_lengths,
            needed_by=needed_by,
        )
    if st_model:
        # n_bins/n_cams come from the stored model; --n-bins must agree when given.
        model = load_st_model(st_model, **params, n_bins=n_bins)
        st_source = {"kind": "file", "path": str(st_model)}
        st_text = f"the ST model file {st_model}"
    else:
        try:
            model = fit_st_model(train, dataset, n_bins=n_bins, **params)
        except STModelError as exc:
            raise STModelError(f"fitting the ST model on {describe_train(train_source)}: {exc}") from None
        st_source = {"kind": "fit", "train": train_source}
        st_text = f"fitted on {describe_train(train_source)}"
    uses_st = options.get("rerank") or mode != "faithful" or any(r in ST_ROWS for r in rows)
    short = st_text if st_model else f"fitted on {describe_train(train_source, table=False)}"
    if uses_st:
        warnings += st_checks(fs, model, short, str(features))
    if pseudo is not None:  # §14.2: w by the spread rule, not on the clusters' features; the guard may keep faithful
        fs = fs.without_train()
        asked, mode = mode, guarded_mode(mode, pseudo)
        if mode != asked:
            warnings.append(pseudo["improved_guard"]["summary"])
    kwargs = {k: options[k] for k in ("chunk_size", "rerank") if k in options}
    extra = improved_extra(fs, model, train, kwargs.get("rerank", False)) if mode == "improved" else None
    result = evaluate_features(fs, model, metric, rows, extra=extra, **kwargs)
    result["warnings"] = warnings
    if pseudo is not None:
        result["pseudo_labels"] = pseudo
    result["provenance"] = {
        "command": "python -m streid_lib evaluate",
        "arguments": arguments,
        "streid_version": __version__,
        "dataset": dataset,
        "features": fs.provenance,
        "train": train_source,
        "st_model": st_source,
    }
    if to_file:
        write_json_atomic(json_out, result)  # first: a full disk is one line, no table
    lines = [f"{dataset}: {result['n_query']} queries x {result['n_gallery']} gallery images (percent)"]
    lines.append(f"ST model: {st_text}")
    if pseudo is not None:
        lines.append(f"pseudo-identities: {pseudo['summary']}")
    if train_source.get("n_junk_excluded"):
        lines.append(
            f"training: {train_source['n_junk_excluded']} images with pid 0 or -1 (distractors, junk) excluded; "
            "they are not identities (docs/reference.md §13.9)"
        )
    lines += [format_table(result), *(f"warning: {w}" for w in warnings)]
    print("\n".join(lines), file=sys.stderr if to_stdout else sys.stdout)  # with --json -, stdout: the JSON only
    if to_stdout:
        import json

        from ._io import json_default

        print(json.dumps(result, indent=2, default=json_default))
    elif json_out is not None:
        print(f"wrote {json_out}")
    return 0


def improved_extra(fs: Any, model: Any, train: Any = None, rerank: bool = False) -> Any:
    """Improved mode's rows as :class:`streid_lib.evaluation.ExtraRows`, fitted on ``train`` (default: ``fs.train``;
    it calibrates on the set's training features when there are some) and following ``model``'s bins and cameras."""
    from .evaluation import EvaluationError, ExtraRows
    from .improved import prepare_improved
    from .metrics import RankingProtocol

    if train is None and not fs.has_train:
        raise EvaluationError(
            "mode='improved' needs the training metadata (train=...) or a features set with a training side"
        )
    info: dict[str, Any] = {}
    columns = RankingProtocol(fs.gallery).columns
    scorer = prepare_improved(fs, train, rerank, columns=columns, base=model, info=info)
    return ExtraRows("improved", tuple(scorer.rows), scorer, info)


def _pseudo_labels(
    fs: Any, *, pseudo_labels: str, dataset: str, train_manifest: str | None, fps: float, mode: str, **a: Any
) -> tuple[Any, dict]:
    """:func:`streid_lib.pseudo.apply_pseudo_labels` from ``evaluate``'s options (``--train-manifest``:
    :func:`streid_lib.pseudo.with_train_manifest`)."""
    from .pseudo import PseudoLabelError, apply_pseudo_labels, improved_guard, with_train_manifest
    from .st_model import fit_st_model
    from .training_names import train_record

    if any(a[k] is not None for k in ("train_names", "train_dir", "st_model")):
        raise PseudoLabelError("--pseudo-labels: give no --train-names/--train-dir/--st-model with it")
    if train_manifest is not None:
        if pseudo_labels != "train":
            raise PseudoLabelError("--train-manifest goes with --pseudo-labels train (test clusters query+gallery)")
        fs = with_train_manifest(fs, train_manifest, fps)
    st = {k: a[k] for k in ("n_bins", "sigma", "bin_width", "overflow")}

    def fit(m: Any) -> Any:  # the ST model of the evaluation itself (its --n-bins/--sigma/--bin-width/...)
        return fit_st_model(m, dataset, **st)

    params = {"eps": a["pseudo_eps"], "min_samples": a["pseudo_min_samples"], "max_dwell_s": a["max_dwell"], "fps": fps}
    out, record = apply_pseudo_labels(fs, pseudo_labels, fit, rounds=a["pseudo_rounds"], **params)
    if mode == "improved":
        record["improved_guard"] = improved_guard(out.train, fit)
    if train_manifest is not None:
        identities = "pseudo-identities (a pid column, if any, only scores the clusters)"
        record["train"] = train_record("manifest", train_manifest, out.train, identities=identities)
    return out, record


# ----------------------------------------------------------------------------------------------------------------
# synth, train, extract, reproduce


def cli_synth(args: argparse.Namespace) -> int:
    """``python -m streid_lib synth``: generate a campus (:func:`streid_lib.campus.generate_campus`), print a report."""
    from .campus import generate_campus
    from .metadata import read_dataset_root, read_name_lists, split_report

    info = generate_campus(
        args.out, preset=args.preset, seed=args.seed, naming=args.naming, images=not args.metadata_only, progress=True
    )
    splits = read_dataset_root(info.root) if info.images else read_name_lists(info.root, info.naming)
    print(
        f"campus ({info.preset}, seed {info.seed}, {info.naming} names) written to {info.root} in {info.seconds:.1f} s"
    )
    print(split_report(splits))
    st = info.st_params
    print(f"HP layout: bin_width={st['bin_width']} frames, n_bins={st['n_bins']}, sigma={st['sigma']} bins")
    print(f"ground truth: {info.files['transit_truth']}")
    return 0


def from_options(cls: type, options: argparse.Namespace) -> Any:
    """Build a visual config ``cls`` from a namespace (every field with a same-named option); a bad value raises
    :class:`~streid_lib.visual.config.ConfigError` worded for the command line (``--height 0: expected ...``)."""
    import dataclasses

    from .visual.config import ConfigError

    try:
        return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(cls) if hasattr(options, f.name)})
    except ConfigError as exc:
        raise ConfigError(exc.field, exc.value, exc.expected, option=True) from None


def cli_train(args: argparse.Namespace) -> int:
    """``python -m streid_lib train`` (also under ``torchrun``): options named as ``TrainConfig``'s fields."""
    from .visual.config import TrainConfig
    from .visual.train import train_model

    path = train_model(
        from_options(TrainConfig, args),
        data_root=args.data,
        out_dir=args.out,
        device=args.device,
        resume=not args.no_resume,
        download_weights=args.download_weights,
        progress=not args.no_progress,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {path}")
    return 0


def cli_extract(args: argparse.Namespace) -> int:
    """``python -m streid_lib extract``: write ``args.out`` (.mat or .npz), checked before any work (temp files a
    killed extraction left beside it are removed)."""
    from ._io import check_output_path, remove_stale_leftovers
    from .features import save_features
    from .visual.config import ExtractConfig
    from .visual.extract import extract_features

    out = Path(args.out)
    check_output_path(out, kind="file", suffixes=(".npz", ".mat"), what="features file")
    config = from_options(ExtractConfig, args)
    remove_stale_leftovers(out.parent, name=out.name)
    fs = extract_features(
        config, checkpoint=args.checkpoint, data_root=args.data, device=args.device, progress=not args.no_progress
    )
    path = save_features(out, fs)
    print(f"wrote {path}: " + ", ".join(f"{side} {getattr(fs, side + '_f').shape}" for side in fs.sides))
    return 0


def cli_reproduce(args: argparse.Namespace) -> int:
    """``python -m streid_lib reproduce``: exit code 2 for bad input (given or met in a notebook), 1 for a failure."""
    from .reproduce import NotebookFailed, notebook_parameters, notebooks, parse_parameters, run_study

    params = parse_parameters(args.parameter, notebook_parameters(notebooks()))
    try:  # run_study refuses an empty --only before anything runs
        run_study(args.profile, args.out, params, args.only)
    except NotebookFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure ends with one line on stderr (exit codes in the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StreidError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None and not isinstance(exc, FileNotFoundError):
            return _bug(exc, args)
        # A missing, unreadable or full file or folder: bad input or destination, named.
        text = _one_line(exc) if exc.filename is None else f"{exc.filename}: {exc.strerror or exc}"
        print(f"error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: one line, the traceback logged
        return _bug(exc, args)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _bug(exc: BaseException, args: argparse.Namespace) -> int:
    """Exit code 1 for an unexpected exception: one line, and the traceback in a log file (or shown, ``--debug``)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if getattr(args, "debug", False):
        print(text, end="", file=sys.stderr)
        where = "traceback above"
    else:
        log = Path(tempfile.gettempdir()) / f"streid-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        log.write_text(text, encoding="utf-8")
        where = f"traceback in {log}; rerun with --debug to show it"
    print(f"internal error (a bug, not bad input): {type(exc).__name__}: {_one_line(exc)} ({where})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
