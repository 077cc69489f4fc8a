"""Benchmark: k-reciprocal re-ranking of an N×N joint-score matrix, ours vs a dense numpy reference.

Usage::

    .venv/bin/python benchmarks/bench_rerank.py                       # N = 2.5k, 5k, 10k, 20k
    .venv/bin/python benchmarks/bench_rerank.py --sizes 20000 --dense-max 0

Each measurement runs in its own subprocess. The child builds a synthetic joint-score matrix (Duke-like: query
fraction 2228/19889, random unit features D=512 clustered by identity, 8 cameras, an ST-like factor
``1/(1+2·exp(−5p))`` with p ≤ 0.016 for cross-camera pairs close in time; seeded), stored float32 in Fortran
order as :func:`streid_lib.rerank.joint_score_matrix` returns it. Then it resets the kernel's peak-RSS counter
(``/proc/self/clear_refs`` ← 5), runs only the re-ranking step, and reports

* time: wall-clock seconds of the re-ranking call (``time.perf_counter``) and its CPU seconds
  (``time.process_time``, user+sys of all threads: close to the wall time of an idle machine for the
  single-threaded numpy code, and less disturbed by other load);
* extra peak: ``VmHWM`` after the call minus ``VmRSS`` before it, i.e. the peak resident memory *beyond* the
  input matrix (and the interpreter), which includes the (nq, ng) output.

The "dense" method is :func:`tests/rerank_reference.reference_rerank_distances`, the slow reference that the
tests also use: the published algorithm written out image by image with dense arrays (one float64 N×N distance,
dense float32 V and query-expanded V, a Python loop per image and per query). Unlike the published code it
ranks with a stable sort (ties by the smaller index, as :mod:`streid_lib.rerank`) and finds the Jaccard sums by
scanning the columns where the query's V is non-zero instead of building an inverted index; its memory is of the
same order (≈ 16 N² bytes: about 1.5 GiB at 10k, 6 GiB at 20k). It is skipped above ``--dense-max`` images.
Both are also checked to agree (max |Δ| of the final distances) wherever both run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Q_FRACTION = 2228 / 19889


def synthetic_joint(n: int, seed: int = 0, dim: int = 512) -> tuple[np.ndarray, int]:
    """(N, N) float32 Fortran-order joint-like scores and nq (see module docstring)."""
    rng = np.random.default_rng(seed)
    n_ids = max(2, n // 20)
    centres = rng.standard_normal((n_ids, dim)).astype(np.float32)
    pid = rng.integers(0, n_ids, n)
    f = centres[pid] + 1.2 * rng.standard_normal((n, dim)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    cams = rng.integers(1, 9, n)
    frames = rng.integers(0, 200_000, n)
    out = np.empty((n, n), dtype=np.float32)  # holds the transpose; returned as a Fortran view
    for a in range(0, n, 1024):
        b = min(a + 1024, n)
        s = f[a:b] @ f.T
        gap = np.abs(frames[a:b, None] - frames[None, :]).astype(np.float32)
        p = 0.016 * np.exp(-gap / 5000.0) * (cams[a:b, None] != cams[None, :])
        out[a:b] = (1.0 / (1.0 + np.exp(-5.0 * s))) * (1.0 / (1.0 + 2.0 * np.exp(-5.0 * p)))
    return out.T, int(round(n * Q_FRACTION))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(method: str, n: int, seed: int, out_npy: str | None) -> dict:
    t0 = time.perf_counter()
    J, nq = synthetic_joint(n, seed)
    build_s = time.perf_counter() - t0
    if method == "dense":
        sys.path.insert(0, str(ROOT / "tests"))
        from rerank_reference import reference_rerank_distances

        run = lambda: reference_rerank_distances(J, nq)  # noqa: E731
    else:
        from streid_lib.rerank import rerank_distances

        run = lambda: rerank_distances(J, nq, progress=False)  # noqa: E731
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:  # some sandboxes refuse it: the peak then also counts the matrix build
        pass
    rss0 = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    final = run()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    hwm = _status_kib("VmHWM")
    if out_npy:
        np.save(out_npy, np.asarray(final, dtype=np.float32))
    return {
        "method": method,
        "N": n,
        "nq": nq,
        "build_s": round(build_s, 2),
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "input_MiB": round(J.nbytes / 2**20),
        "extra_peak_MiB": round((hwm - rss0) / 1024),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000, 20000])
    ap.add_argument("--dense-max", type=int, default=10000, help="skip the dense reference above this N")
    ap.add_argument("--backends", nargs="+", default=["numpy"], choices=["numpy"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "N", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        method, n, out = args.child
        print(json.dumps(child(method, int(n), args.seed, None if out == "-" else out)))
        return
    import tempfile

    print(f"# re-ranking benchmark, seed={args.seed}, cpus={os.cpu_count()}, k1=20 k2=6 lambda=0.3")
    print(f"# machine: {os.cpu_count()} CPUs")
    print("| method | N | nq | wall (s) | CPU (s) | extra peak (MiB) | input (MiB) | max abs diff vs dense (numpy) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            methods = list(args.backends) + (["dense"] if n <= args.dense_max else [])
            results = {}
            for m in methods:
                out = str(Path(tmp) / f"{m}_{n}.npy")
                cmd = [sys.executable, __file__, "--seed", str(args.seed), "--child", m, str(n), out]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    print(f"| {m} | {n} | failed: {proc.stderr.strip().splitlines()[-1:]} |||||")
                    continue
                results[m] = json.loads(proc.stdout.strip().splitlines()[-1])
                results[m]["out"] = out
            base = "dense" if "dense" in results else "numpy" if "numpy" in results else None
            ref = np.load(results[base]["out"]) if base else None
            for m, r in results.items():
                diff = "—" if ref is None or m == base else f"{np.abs(np.load(r['out']) - ref).max():.1e} ({base})"
                print(
                    f"| {m} | {n} | {r['nq']} | {r['seconds']} | {r['cpu_s']} | {r['extra_peak_MiB']} "
                    f"| {r['input_MiB']} | {diff} |",
                    flush=True,
                )
            if n > args.dense_max:
                print(f"| dense | {n} | | skipped (N > --dense-max={args.dense_max}: too much memory) | | | |")


if __name__ == "__main__":
    main()
