"""The label-free route (issue #19, docs/reference.md §14): accuracy targets and cost, printed.

* ``duke`` (default): the DukeMTMC-reID MobileNetV2 dev features (``repo/../shared/data/features/
  duke_mobilenetv2.npz``). Times the clustering of the 16.5k training features (the eps search of
  :class:`streid_lib.pseudo.PseudoIdentities`, target ≤ 60 s) and the transductive route end to end on the ~20k
  query+gallery detections (cluster, fit, rank st-ReID; target ≤ 90 s); prints labelled / label-free / transductive
  st-ReID (targets: label-free ≥ 16.0 R1, transductive within 2 R1 of it).
* ``campus``: the synthetic campus of a preset (generated under ``data/`` when missing) with its colour
  histograms; prints the verdicts (label-free within 2 R1 of labelled, mean TV ≤ 1.25× labelled).
* ``--improved``: also the improved mode on the pseudo-identities, its weight set by the spread rule (what
  ``evaluate --pseudo-labels`` does) and, for reference, calibrated on the clusters' own features (target ≥
  label-free faithful + 3 R1 and + 5 mAP).

Timings are wall-clock seconds of one process; the machine may be shared, so read them with care.

Usage: ``.venv/bin/python benchmarks/bench_label_free.py [duke|campus] [--preset small] [--improved]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from streid_lib import study
from streid_lib.evaluation import evaluate_features
from streid_lib.features import load_features
from streid_lib.joint import DEFAULT_METRIC
from streid_lib.pseudo import PseudoConfig, PseudoIdentities, apply_pseudo_labels
from streid_lib.st_model import fit_st_model

DUKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "features" / "duke_mobilenetv2.npz"


def st_reid(fs, train, dataset: str, mode: str = "faithful") -> dict:
    """st-ReID (and the improved rows with ``mode="improved"``) with the HP model fitted on ``train``."""
    model = fit_st_model(train, dataset)
    res = evaluate_features(fs, model, DEFAULT_METRIC, ("st-ReID",), chunk_size=512, mode=mode, train=train)
    return res["rows"]


def duke(improved: bool) -> None:
    fs = load_features(DUKE)
    print(f"cores available: {len(os.sched_getaffinity(0))}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    t = time.perf_counter()
    est = PseudoIdentities().fit(fs.train_f, fs.train)
    print(
        f"clustering {len(fs.train)} training features (eps grid of {len(est.criteria_)}): "
        f"{time.perf_counter() - t:.1f} s (target <= 60 s); eps chosen {est.eps_}"
    )
    t = time.perf_counter()
    out, rec = apply_pseudo_labels(fs.without_train(), "test")
    trans = st_reid(fs, out.train, "duke")["st-ReID"]
    n = len(fs.query) + len(fs.gallery)
    print(f"transductive route on {n} detections, end to end: {time.perf_counter() - t:.1f} s (target <= 90 s)")
    lab = st_reid(fs, fs.train, "duke")["st-ReID"]
    free_fs, _ = apply_pseudo_labels(fs, "train")
    free = st_reid(free_fs, free_fs.train, "duke")["st-ReID"]
    print(
        f"st-ReID R1/mAP: labelled {lab['R1']:.2f}/{lab['mAP']:.2f}, label-free (train side) "
        f"{free['R1']:.2f}/{free['mAP']:.2f} (target R1 >= 16.0), transductive {trans['R1']:.2f}/{trans['mAP']:.2f} "
        f"(eps {rec['eps_chosen']}; target within 2 R1 of label-free)"
    )
    if improved:
        improved_rows(free_fs, free, "duke")


def improved_rows(free_fs, free: dict, dataset: str) -> None:
    """Improved mode on pseudo-identities: w by the spread rule (the CLI's choice, §14.2) and, for reference,
    calibrated on the clusters' own features (circular)."""
    for label, fs in (("spread rule", free_fs.without_train()), ("calibrated on the clusters (circular)", free_fs)):
        imp = st_reid(fs, free_fs.train, dataset, mode="improved")["improved"]
        print(
            f"improved with pseudo-identities, {label}: {imp['R1']:.2f} R1 / {imp['mAP']:.2f} mAP "
            f"(target >= {free['R1'] + 3:.2f} / {free['mAP'] + 5:.2f}; never below {free['R1']:.2f} R1)"
        )


def campus(preset: str, improved: bool) -> None:
    cfg = study.resolve_config(profile="default", dataset="campus", campus_preset=preset)
    fs = study.beyond_features(cfg)
    truth = study.campus_truth(cfg)
    t = time.perf_counter()
    rep = study.label_free.label_free_study(fs, "campus", truth=truth, fps=truth.fps)
    print(f"campus {preset}: {len(fs.train)} training crops, study {time.perf_counter() - t:.1f} s")
    print(rep.table.to_string())
    print(study.label_free.verdicts_markdown(rep))
    if improved:
        eps = rep.records["label-free (train side)"]["eps_chosen"]
        free_fs, _ = apply_pseudo_labels(fs, "train", PseudoConfig(eps=eps, fps=truth.fps))
        improved_rows(free_fs, rep.table.loc["label-free (train side)"], "campus")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", nargs="?", choices=("duke", "campus"), default="duke")
    p.add_argument("--preset", default="small", help="campus preset (default %(default)s)")
    p.add_argument("--improved", action="store_true", help="also the improved mode on pseudo-identities")
    a = p.parse_args()
    duke(a.improved) if a.dataset == "duke" else campus(a.preset, a.improved)


if __name__ == "__main__":
    main()
