"""Cost of the improved rows against the faithful rows of the same ``evaluate`` run (target: improved ≤ 2×).

One process does what ``python -m streid_lib evaluate`` does, and times it (wall clock and CPU seconds of all
threads):

* faithful: fit the faithful ST model + ``evaluate_features`` with the four paper rows (VIS, ST, VISxST,
  st-ReID), chunked;
* faithful + improved: the same with ``mode="improved"`` — the selection on training identities, the final fit,
  and the improved row ranked in the faithful rows' pass (sharing their cosine) — with the features' training side
  (calibrated w); the first such run of the process pays the scikit-learn import, as a CLI run does;
* the same without the training side (the spread rule, the authors' ``.mat`` route), for reference.

The improved rows' cost is the difference of the two runs; the target is that it stays at most 2× the faithful
rows' cost.

Inputs: the DukeMTMC-reID MobileNetV2 features (``repo/../shared/data/features/duke_mobilenetv2.npz``, with its
training side) by default; ``--market`` uses the real Market-1501 name lists with random features correlated with
identity (seeded; the figures then measure cost only). Timings on a shared machine are noisy: run it when the
machine is quiet, with ``--repeat`` > 1, and read the CPU-time ratio as well.

Usage: ``.venv/bin/python benchmarks/bench_improved.py [--market] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from streid_lib.cli import improved_extra
from streid_lib.evaluation import evaluate_features, fit_st_model
from streid_lib.features import FeatureSet, load_features
from streid_lib.metadata import read_name_lists

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DUKE = SHARED / "features" / "duke_mobilenetv2.npz"
MARKET = SHARED / "names" / "market1501"


def market_set(dim: int, noise: float, seed: int) -> tuple[FeatureSet, str]:
    """Real Market-1501 metadata with random identity-correlated features (query, gallery and training side)."""
    sp = read_name_lists(MARKET)
    rng = np.random.default_rng(seed)
    all_pids = np.concatenate([sp.train.pids, sp.gallery.pids, sp.query.pids])
    centres = rng.standard_normal((int(all_pids.max()) + 2, dim)) / np.sqrt(dim)

    def feats(meta):
        p = meta.pids
        f = (centres[np.where(p > 0, p, 0)] + noise / np.sqrt(dim) * rng.standard_normal((len(p), dim))).astype(
            np.float32
        )
        bad = p <= 0  # junk and distractors: unrelated crops
        f[bad] = rng.standard_normal((int(bad.sum()), dim)).astype(np.float32)
        return f

    fs = FeatureSet(feats(sp.query), feats(sp.gallery), sp.query, sp.gallery, {"source": "random"},
                    train_f=feats(sp.train), train=sp.train)  # fmt: skip
    return fs, "market"


class Clock:
    """Wall-clock and process CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w0, time.process_time() - self.c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--market", action="store_true", help="Market-1501 names with random features instead of Duke")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--noise", type=float, default=3.0, help="noise scale relative to unit-variance centres")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.market:
        if not (MARKET / "train.txt").is_file():
            raise SystemExit(f"Market name lists not found in {MARKET}")
        fs, dataset = market_set(args.dim, args.noise, args.seed)
    else:
        if not DUKE.is_file():
            raise SystemExit(f"{DUKE} not found (the DukeMTMC-reID MobileNetV2 features); use --market")
        fs, dataset = load_features(DUKE), "duke"
    print(f"{dataset}: {len(fs.query)} queries, {len(fs.gallery)} gallery, {len(fs.train)} training images; D={fs.dim}")
    for rep in range(args.repeat):
        with Clock() as faithful_t:
            model = fit_st_model(fs.train, dataset)
            faithful = evaluate_features(fs.without_train(), model)
        print(f"[run {rep}] faithful rows (fit + 4 rows): {faithful_t.wall:6.2f} s wall, {faithful_t.cpu:6.2f} s CPU")
        runs = (("with the training side", fs, None), ("without it (spread rule)", fs.without_train(), fs.train))
        for name, data, train in runs:
            with Clock() as both_t:
                model = fit_st_model(fs.train, dataset)
                both = evaluate_features(data, model, extra=improved_extra(data, model, train))
            wall, cpu = both_t.wall - faithful_t.wall, both_t.cpu - faithful_t.cpu
            print(
                f"[run {rep}] improved {name}: run {both_t.wall:6.2f} s wall; improved rows {wall:6.2f} s = "
                f"{wall / faithful_t.wall:.2f}x faithful (CPU {cpu:6.2f} s = {cpu / faithful_t.cpu:.2f}x)"
            )
            if train is None:
                rows, info = both["rows"], both["params"]["improved"]
            else:
                plain, plain_info = both["rows"], both["params"]["improved"]
    f, i, p = faithful["rows"]["st-ReID"], rows["improved"], plain["improved"]
    print(f"VIS      R1 {faithful['rows']['VIS']['R1']:.2f} mAP {faithful['rows']['VIS']['mAP']:.2f}")
    print(f"faithful R1 {f['R1']:.2f} mAP {f['mAP']:.2f}")
    ch = info["choice"]
    print(
        f"improved R1 {i['R1']:.2f} mAP {i['mAP']:.2f} (choice: {ch['counting']}, sigma={ch['sigma']:g}, "
        f"w={info['w_effective']:.4g} ({info['w_source']}), {ch['protocol']['n_candidates']} candidates)"
    )
    print(f"improved without training side R1 {p['R1']:.2f} mAP {p['mAP']:.2f} (w={plain_info['w_effective']:.4g})")


if __name__ == "__main__":
    main()
