"""Cost of the improved rows vs the faithful rows on Market-scale data (issue 7: improved <= 2x faithful).

Real Market-1501 metadata (repo/../shared/data/names/market1501, never copied into the repo) with random
features correlated with identity (D dimensions, seeded), so the metrics are meaningful but the figures measure
cost only. Prints wall-clock seconds for:

* faithful: fit the faithful ST model + the four paper rows (VIS, ST, VISxST, st-ReID), chunked;
* improved: the whole ``improved_rows`` (selection protocol on training identities + final fit + scoring),
  without training features (the ``evaluate --mode improved`` path), and its scoring part alone;
* improved with training features (calibrated w), for reference.

Usage: ``.venv/bin/python benchmarks/bench_improved.py [--dim 512] [--noise 1.2] [--repeat 1]``.
Timings on a shared machine are noisy; run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from streid_lib.evaluation import evaluate_features, fit_st_model
from streid_lib.features import FeatureSet
from streid_lib.improved import fit_improved, improved_results, improved_rows, st_params_from
from streid_lib.joint import ROWS, JointMetric
from streid_lib.metadata import read_name_lists

NAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "names" / "market1501"


def features_for(pids: np.ndarray, centres: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Identity centre + Gaussian noise; pids index the centre table (distractors/junk get their own rows)."""
    return (centres[pids] + noise * rng.standard_normal((len(pids), centres.shape[1]))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--noise", type=float, default=3.0, help="noise scale relative to unit-variance centres")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (NAMES / "train.txt").is_file():
        raise SystemExit(f"Market name lists not found in {NAMES}")
    sp = read_name_lists(NAMES)
    rng = np.random.default_rng(args.seed)
    all_pids = np.concatenate([sp.train.pids, sp.gallery.pids, sp.query.pids])
    # Distinct centre per pid value; junk (-1) and distractors (0) get one centre per image (unrelated crops).
    centres = rng.standard_normal((int(all_pids.max()) + 2, args.dim)) / np.sqrt(args.dim)

    def feats(meta):
        p = meta.pids.copy()
        f = features_for(np.where(p > 0, p, 0), centres, args.noise / np.sqrt(args.dim), rng)
        bad = p <= 0
        f[bad] = rng.standard_normal((int(bad.sum()), args.dim)).astype(np.float32)
        return f

    fs = FeatureSet(feats(sp.query), feats(sp.gallery), sp.query, sp.gallery, {"source": "random"})
    train_f = feats(sp.train)
    print(f"Market metadata: {len(sp.query)} queries, {len(sp.gallery)} gallery, {len(sp.train)} train; D={args.dim}")

    for rep in range(args.repeat):
        t0 = time.perf_counter()
        model = fit_st_model(sp.train, "market")
        faithful = evaluate_features(fs, model, JointMetric(), ROWS)
        t_faith = time.perf_counter() - t0

        t0 = time.perf_counter()
        info: dict = {}
        rows = improved_rows(fs, sp.train, base=model, info=info)
        t_impr = time.perf_counter() - t0

        fitted = fit_improved(sp.train, st_params=st_params_from(model))
        t0 = time.perf_counter()
        improved_results(fs, fitted)
        t_score = time.perf_counter() - t0

        t0 = time.perf_counter()
        cal = improved_rows(fs, sp.train, base=model, train_features=train_f)
        t_cal = time.perf_counter() - t0

        print(f"[run {rep}] faithful rows (fit + 4 rows): {t_faith:6.2f} s")
        print(
            f"[run {rep}] improved row (select + fit + score, no train features): {t_impr:6.2f} s "
            f"= {t_impr / t_faith:.2f}x faithful; scoring alone {t_score:.2f} s"
        )
        print(
            f"[run {rep}] improved row with train features (calibrated w): {t_cal:6.2f} s "
            f"= {t_cal / t_faith:.2f}x faithful"
        )
    f, i, c = faithful["rows"]["st-ReID"], rows["improved"], cal["improved"]
    print(f"VIS      R1 {faithful['rows']['VIS']['R1']:.2f} mAP {faithful['rows']['VIS']['mAP']:.2f}")
    print(f"faithful R1 {f['R1']:.2f} mAP {f['mAP']:.2f}")
    print(
        f"improved R1 {i['R1']:.2f} mAP {i['mAP']:.2f}  (choice: {info['choice']['counting']}, "
        f"sigma={info['choice']['sigma']}, w={info['w_effective']:.4g} ({info['choice']['w_source']}))"
    )
    print(f"improved (calibrated) R1 {c['R1']:.2f} mAP {c['mAP']:.2f}")


if __name__ == "__main__":
    main()
