"""Do the trained rows and the verdicts reproduce on another CPU? Run the study's training twice, once on this CPU
as it is and once as a baseline x86-64 CPU with another core count would (``ATEN_CPU_CAPABILITY=default``,
``ONEDNN_MAX_CPU_ISA=SSE41``, ``MKL_ENABLE_INSTRUCTIONS=SSE4_2``, one OpenMP thread), then compare every R1/mAP of
Tables 1-3, Figure 4 and the sweeps and every verdict (the claims and each CNN's gain over itself untrained).

The study trains with the portable CPU kernels (``streid_lib.visual.config.use_portable_cpu``, docs/reference.md
§13.13), which every x86-64 CPU runs alike, so both runs should agree to the last bit; a difference means something
escaped the portable kernels.

Usage: ``python benchmarks/check_reproducible.py [--profile default] [--tolerance 7.0] [--out runs/reproducible]``
(``make check-reproducible``; slow: it trains the profile's models twice, about 2 × the training time of the study).
Exit status 1 when a verdict differs or a number differs by more than ``--tolerance`` points, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: The CPUs simulated on this one: "native" is this machine as it is; "baseline" is the x86-64 floor with one core.
BASELINE = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "OMP_NUM_THREADS": "1",
}
CAPABILITIES = {"native": {}, "baseline": BASELINE}


def measure(profile: str, out: str, result: str) -> None:
    """Train (or reuse) the run's models in ``out``, evaluate the trained rows, check the claims; write JSON."""
    import numpy as np

    from streid_lib import study

    cfg = study.setup(profile=profile, out_dir=out)  # before torch loads: the portable CPU kernels
    import torch

    st = study.fit_st_model(cfg)
    vis = {k: study.model_rows(cfg, k, st, ("VIS",))["VIS"] for k in cfg.route.streams}
    t12, t3 = study.tables_1_2_rows(cfg, st), study.table_3_rows(cfg, st)
    _, fs = study.main_features(cfg)
    fig4 = study.evaluate_rows(fs, st)
    n = cfg.sizes.sweep_points
    lam = study.sweep_metric(fs, st, "lambda1", np.linspace(*study.PAPER_LAMBDA_RANGE, n))
    gam = study.sweep_metric(fs, st, "gamma", np.linspace(*study.PAPER_GAMMA_RANGE, n))
    numbers = {}
    for table, rows in (("visual", vis), ("tables_1_2", t12), ("table_3", t3), ("figure4", fig4)):
        for row, v in rows.items():
            if not isinstance(v, study.NotComputed):
                numbers.update({f"{table} · {row} · {m}": float(v[m]) for m in ("R1", "mAP")})
    for name, df, col in (("λ1 sweep", lam, "lambda1"), ("γ sweep", gam, "gamma")):
        for _, r in df.iterrows():
            numbers.update({f"{name} · {r[col]:g} · {m}": float(r[m]) for m in ("R1", "mAP")})
    kwargs = {
        "02": {"visual": vis},
        "04": {"tables_1_2": t12},
        "05": {"table_3": t3},
        "06": {"figure4": fig4, "lambda_sweep": lam, "gamma_sweep": gam},
    }
    verdicts = {}
    for nb, kw in kwargs.items():
        verdicts.update({v.claim.id: v.status for v in study.check_claims(cfg, nb, record=False, **kw).verdicts})
    gain = study.training_gain(cfg, vis, study.untrained_rows(cfg, vis, st))
    verdicts.update({f"training gain · {net}": str(r["training"]) for net, r in gain.iterrows()})
    kernels = f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
    rec = {"capability": kernels, "numbers": numbers, "verdicts": verdicts}
    Path(result).write_text(json.dumps(rec, indent=1, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", choices=("smoke", "default"))
    ap.add_argument("--tolerance", type=float, default=7.0, help="largest difference allowed, percentage points")
    ap.add_argument("--out", default="runs/reproducible", help="folder of the two runs (reused when present)")
    ap.add_argument("--child", nargs=2, metavar=("OUT", "RESULT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        measure(args.profile, *args.child)
        return 0
    recs = {}
    for name, env in CAPABILITIES.items():
        out = Path(args.out) / f"{args.profile}-{name}"
        out.mkdir(parents=True, exist_ok=True)
        child_env = {**{k: v for k, v in os.environ.items() if k not in BASELINE}, **env}
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--profile", args.profile, "--child", str(out), str(out / "result.json")]
        subprocess.run(cmd, env=child_env, check=True)
        recs[name] = json.loads((out / "result.json").read_text())
        print(f"{name}: capability {recs[name]['capability']}, {time.perf_counter() - t0:.0f} s", flush=True)
    a, b = recs["native"], recs["baseline"]
    diffs = {k: abs(a["numbers"][k] - b["numbers"][k]) for k in a["numbers"] if k in b["numbers"]}
    exact = sum(d == 0 for d in diffs.values())
    worst = sorted(diffs, key=diffs.get, reverse=True)[:8]
    print(f"{len(diffs)} numbers: {exact} identical; largest differences (points):")
    for k in worst:
        print(f"  {k}: {a['numbers'][k]:.2f} vs {b['numbers'][k]:.2f} (Δ {diffs[k]:.2f})")
    flipped = {k: (v, b["verdicts"].get(k)) for k, v in a["verdicts"].items() if b["verdicts"].get(k) != v}
    print(f"{len(a['verdicts'])} verdicts: {len(flipped)} differ")
    for k, v in flipped.items():
        print(f"  {k}: {v[0]} vs {v[1]}")
    worst_d = max(diffs.values(), default=0.0)
    ok = not flipped and worst_d <= args.tolerance
    print(f"{'OK' if ok else 'FAILED'}: largest difference {worst_d:.2f} (tolerance {args.tolerance:g}) points")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
