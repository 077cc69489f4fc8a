"""Command line: ``python -m streid_lib {evaluate,synth,train,extract,reproduce} ...``.

The parser lives here; each command's work is done by a library function imported lazily, so that
``evaluate`` never imports torch and starts fast. This module holds no logic of its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    # The defaults have one home, the library: they are read from it here, never repeated.
    import dataclasses
    import inspect

    from .evaluation import DATASET_NAMING, MODES, evaluate_features
    from .joint import ALL_ROWS, ROWS, JointMetric
    from .pseudo import add_pseudo_options
    from .st_model import DATASET_N_BINS, OVERFLOW_POLICIES, SpatialTemporalModel

    st = {k: v.default for k, v in inspect.signature(SpatialTemporalModel).parameters.items()}
    metric = {f.name: f.default for f in dataclasses.fields(JointMetric)}
    evaluate = {k: v.default for k, v in inspect.signature(evaluate_features).parameters.items()}
    p = sub.add_parser("evaluate", help="evaluate a features file: VIS, ST, VISxST (Eqn. 5) and st-ReID rows")
    p.add_argument("--features", required=True, help="pytorch_result.mat or .npz features file")
    p.add_argument("--dataset", choices=list(DATASET_N_BINS), required=True)
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--train-names",
        help="text file of training image names, one per line (default: the features file's train side)",
    )
    src.add_argument("--train-dir", help="a bounding_box_train folder")
    src.add_argument("--train-manifest", help="CSV manifest path,pid,camera,frame of the training images")
    p.add_argument(
        "--naming",
        choices=sorted(set(DATASET_NAMING.values())),
        help="declare the naming of --train-names/--train-dir (default: the dataset's, "
        + ", ".join(f"{k} → {v}" for k, v in DATASET_NAMING.items())
        + "; for campus, the naming recorded in the features file when there is one)",
    )
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
    for name, what in (
        ("lambda0", "visual smoothing factor λ0"),
        ("gamma0", "visual shrinking factor γ0"),
        ("lambda1", "ST smoothing factor λ1"),
        ("gamma1", "ST shrinking factor γ1"),
    ):
        p.add_argument(f"--{name}", type=float, default=metric[name], help=f"{what} (default %(default)s)")
    p.add_argument("--sigma", type=float, default=st["sigma"], help="Parzen kernel width in bins (default %(default)s)")
    p.add_argument(
        "--bin-width", type=int, default=st["bin_width"], help="histogram bin width in frames (default %(default)s)"
    )
    p.add_argument(
        "--n-bins",
        type=int,
        default=None,
        help="number of bins (default: " + ", ".join(f"{k} {v}" for k, v in DATASET_N_BINS.items()) + ")",
    )
    p.add_argument(
        "--overflow",
        choices=OVERFLOW_POLICIES,
        default=st["overflow"],
        help="time gaps beyond the last bin: p=0 (zero), last bin (clip), or an error (default %(default)s)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=evaluate["chunk_size"],
        help="queries scored per chunk (bounds memory; default %(default)s)",
    )
    p.add_argument("--rerank", action="store_true", help="add the k-reciprocal re-ranking rows")
    p.add_argument("--mode", choices=MODES, default=evaluate["mode"])
    add_pseudo_options(p)
    p.set_defaults(func="streid_lib.evaluation:cli_evaluate")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate the synthetic camera-network dataset (campus)")
    p.add_argument("--out", required=True, help="dataset root to write")
    p.add_argument("--preset", choices=["tiny", "small", "large"], default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--naming", choices=["market", "duke"], default="market")
    p.add_argument("--metadata-only", action="store_true", help="write names and manifests but no images")
    p.set_defaults(func="streid_lib.campus:cli_synth")


def _add_train(sub: argparse._SubParsersAction) -> None:
    # Defaults come from the configuration dataclass (torch-free); each option is named after its field.
    from .visual.config import MODEL_NAMES, TrainConfig, defaults

    d = defaults(TrainConfig)
    p = sub.add_parser("train", help="train a visual baseline (PCB, ResNet-50, DenseNet-121)")
    p.add_argument("--model", choices=MODEL_NAMES, required=True)
    p.add_argument("--data", required=True, help="dataset root with bounding_box_train/")
    p.add_argument("--out", required=True, help="run directory (last.pt, history.json, provenance.json)")
    p.add_argument("--erasing", type=float, default=d["erasing"], help="random erasing probability (paper's +RE: 0.5)")
    p.add_argument("--epochs", type=int, default=d["epochs"], help="default %(default)s")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="default %(default)s")
    p.add_argument(
        "--height", type=int, default=d["height"], help="input height in pixels (default 384 PCB, 256 others)"
    )
    p.add_argument("--width", type=int, default=d["width"], help="input width in pixels (default 192 PCB, 128 others)")
    p.add_argument(
        "--weights", default=d["weights"], help="'imagenet' (torchvision, default), 'none' (from scratch), or a file"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--cuda-graph", choices=["auto", "on", "off"], default=d["cuda_graph"],
        help="replay each step as a CUDA graph (auto: on with the memory loader on one GPU without --compile)",
    )  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"], help="epochs between checkpoints")
    p.add_argument(
        "--keep-checkpoints", action="store_true",
        help="keep every checkpoint as epoch_NNN.pt (default: only last.pt, slimmed when the run is finished)",
    )  # fmt: skip
    p.add_argument(
        "--decay-epoch", type=int, default=d["decay_epoch"], help="epoch index of the x0.1 lr step (default 39/60)"
    )
    p.add_argument("--lr", type=float, default=d["lr"], help="learning rate of the new layers (reference %(default)s)")
    p.add_argument(
        "--lr-backbone",
        type=float,
        default=d["lr_backbone"],
        help="learning rate of the backbone (reference %(default)s)",
    )
    p.add_argument(
        "--loader", choices=["memory", "plain"], default=d["loader"], help="fast in-memory or plain DataLoader"
    )
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=d["precision"], help="auto: bf16 on CUDA")
    p.add_argument("--workers", type=int, default=d["workers"], help="decoding threads / DataLoader workers")
    p.add_argument("--download-weights", action="store_true", help="allow downloading ImageNet weights (internet)")
    p.add_argument("--no-resume", action="store_true", help="start afresh instead of resuming from OUT/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func="streid_lib.visual.train:cli_train")


def _add_extract(sub: argparse._SubParsersAction) -> None:
    from .visual.config import MODEL_NAMES, ExtractConfig, defaults

    d = defaults(ExtractConfig)
    p = sub.add_parser("extract", help="extract query, gallery and training features into a features file")
    p.add_argument("--model", choices=MODEL_NAMES, required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="dataset root with query/, bounding_box_test/, bounding_box_train/")
    p.add_argument("--out", required=True, help="features file to write (.mat or .npz)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="default %(default)s")
    p.add_argument("--device", default="auto")
    p.add_argument("--height", type=int, default=d["height"], help="test resize height (default 384 PCB, 288 others)")
    p.add_argument("--width", type=int, default=d["width"], help="test resize width (default 192 PCB, 144 others)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=d["precision"], help="bf16: CUDA autocast")
    p.add_argument("--workers", type=int, default=d["workers"], help="decoding threads")
    p.add_argument(
        "--no-train", dest="train", action="store_false", default=d["train"],
        help="skip the training images (the file then holds query and gallery only)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func="streid_lib.visual.extract:cli_extract")


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
    p.set_defaults(func="streid_lib.reproduce:cli_reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m streid_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_evaluate, _add_synth, _add_train, _add_extract, _add_reproduce):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; library errors and Ctrl-C end with one line on stderr, never a traceback.

    Exit codes: 0 done, 1 the work failed (e.g. a notebook raised), 2 bad input or destination, 130 interrupted.
    """
    args = build_parser().parse_args(argv)
    module_name, func_name = args.func.split(":")
    try:
        import importlib

        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        # Library errors carry a message that names the file/field; show it without a traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
