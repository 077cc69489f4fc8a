"""Core evaluation benchmark at Market-1501 scale: time and peak memory of each stage.

3,368 queries × 19,732 gallery images with the real Market metadata (parsed from the standard file names in
``../shared/data/names/market1501``) and seeded random unit float32 features (D = 2048 by default, ``--dim 12288``
for PCB). The ST model is fitted on the real training names. Stages: ST fit, smoothing, similarity GEMM (with its
GFLOP/s against a plain float32 ``np.matmul`` measured in the same run), ST lookup, fusion, metrics per row, and
the total of ST lookup + fusion + metrics over the rows VIS, ST, VISxST and st-ReID. Then a straightforward
per-query Python-loop evaluator, like the authors', on a few queries, extrapolated to all queries, and the start-up
time of ``python -m streid_lib evaluate --help`` (which must not import torch).

Memory is the tracemalloc peak of each stage (numpy registers its buffers with tracemalloc; BLAS scratch space is
not included), plus the process's ru_maxrss at the end.

    .venv/bin/python benchmarks/bench_core.py [--dim 12288] [--chunk-size 256] [--threads 2] [--loop-queries 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streid_lib.features import FeatureSet  # noqa: E402
from streid_lib.joint import ROWS, ChunkScorer, JointMetric  # noqa: E402
from streid_lib.metadata import read_name_list  # noqa: E402
from streid_lib.metrics import MetricAccumulator, RankingProtocol, evaluate_scores  # noqa: E402
from streid_lib.ranking import rank_rows  # noqa: E402
from streid_lib.st_model import SpatialTemporalModel, gaussian_smooth  # noqa: E402

NAMES = REPO.parent / "shared" / "data" / "names" / "market1501"
MB = 1024**2
TIMES: dict[str, tuple[float, float]] = {}


@contextmanager
def stage(name: str, quiet: bool = False):
    """Time a stage (wall clock, s) and record its tracemalloc peak (MiB)."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    yield
    dt = time.perf_counter() - t0
    peak = (tracemalloc.get_traced_memory()[1] - base) / MB
    TIMES[name] = (dt, peak)
    if not quiet:
        print(f"  {name:40s} {dt:8.3f} s   peak +{peak:8.1f} MiB")


def random_unit(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    f = rng.standard_normal((n, d), dtype=np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return f


def loop_evaluator(qf, gf, q, g, P_hat, n: int, metric: JointMetric) -> tuple[float, list[float], np.ndarray]:
    """The authors' style (§4, §5): per query a matrix-vector product, a Python loop over the gallery for
    the ST score with scalar indexing, argsort, in1d good/junk, trapezoid AP. Returns (seconds, APs, scores)."""
    t0 = time.perf_counter()
    aps, scores = [], []
    for i in range(n):
        score = gf @ qf[i]
        st = np.zeros(len(gf))
        qc, qfr = q.cams[i], q.frames[i]
        for j in range(len(gf)):
            if qfr > g.frames[j]:
                st[j] = P_hat[qc - 1][g.cams[j] - 1][int((qfr - g.frames[j]) / 100.0)]
            else:
                st[j] = P_hat[g.cams[j] - 1][qc - 1][int((g.frames[j] - qfr) / 100.0)]
        score = (
            1
            / (1 + metric.lambda0 * np.exp(-metric.gamma0 * score))
            * 1
            / (1 + metric.lambda1 * np.exp(-metric.gamma1 * st))
        )
        scores.append(score)
        index = np.argsort(-score)
        query_index = np.argwhere(g.pids == q.pids[i])
        camera_index = np.argwhere(g.cams == q.cams[i])
        good = np.setdiff1d(query_index, camera_index, assume_unique=True)
        junk = np.append(np.intersect1d(query_index, camera_index), np.argwhere(g.pids == -1))
        index = index[np.isin(index, junk, invert=True)]
        rows_good = np.flatnonzero(np.isin(index, good))
        ap = 0.0
        for k in range(len(good)):
            precision = (k + 1) / (rows_good[k] + 1)
            old = k / rows_good[k] if rows_good[k] != 0 else 1.0
            ap += (1.0 / len(good)) * (old + precision) / 2
        aps.append(ap)
    return time.perf_counter() - t0, aps, np.stack(scores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=2048, help="feature dimension (2048 ResNet-50, 12288 PCB)")
    ap.add_argument("--chunk-size", type=int, default=256, help="queries per chunk")
    ap.add_argument("--threads", type=int, default=2, help="worker threads ranking the rows (1: none)")
    ap.add_argument("--loop-queries", type=int, default=50, help="queries for the Python-loop evaluator (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not NAMES.is_dir():
        sys.exit(f"{NAMES}: the Market-1501 name lists are needed (repo/../shared/data/names)")

    print(f"machine: {os.cpu_count()} CPUs, numpy {np.__version__}; load average {os.getloadavg()}")
    tracemalloc.start()
    train = read_name_list(NAMES / "train.txt", "market")
    query = read_name_list(NAMES / "query.txt", "market")
    gallery = read_name_list(NAMES / "gallery.txt", "market")
    nq, ng, D = len(query), len(gallery), args.dim
    print(f"Market scale: {nq} queries x {ng} gallery, D={D}, chunk {args.chunk_size}, metric threads {args.threads}")
    rng = np.random.default_rng(args.seed)
    fs = FeatureSet(random_unit(nq, D, rng), random_unit(ng, D, rng), query, gallery, {"source": "random"})

    print("stages:")
    with stage("ST fit (no smoothing)"):
        SpatialTemporalModel(n_bins=5000, sigma=0).fit(train)
    with stage("ST fit + smoothing (sigma 50)"):
        model = SpatialTemporalModel(n_bins=5000).fit(train)
    with stage("smoothing alone (8x8x5000)"):
        gaussian_smooth(model.distribution_, 50.0, 3.0)

    # Plain float32 GEMM rate of this machine, measured now (same BLAS, same load).
    a = random_unit(2048, 2048, rng)
    b = random_unit(2048, 2048, rng)
    a @ b  # warm-up
    t0 = time.perf_counter()
    reps = 3
    for _ in range(reps):
        a @ b
    gemm_rate = reps * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9
    del a, b
    metric = JointMetric()
    protocol = RankingProtocol(gallery)
    n_cols = protocol.n_kept  # pid -1 columns are junk for every query: never scored (see README)
    with stage("ST tables (lookup, f(p), dense ranks)"):
        scorer = ChunkScorer(fs, model, metric, ROWS, protocol.columns, rank_only=True)
    with stage("similarity GEMM (chunked, all queries)"):
        S = np.empty((nq, n_cols), np.float32)
        for a0 in range(0, nq, args.chunk_size):
            S[a0 : a0 + args.chunk_size] = scorer.similarity(slice(a0, a0 + args.chunk_size))
    sim_rate = 2 * nq * n_cols * D / TIMES["similarity GEMM (chunked, all queries)"][0] / 1e9
    print(
        f"  similarity ({nq} x {n_cols} scored columns): {sim_rate:.1f} GFLOP/s vs plain float32 np.matmul 2048^3: "
        f"{gemm_rate:.1f} GFLOP/s"
    )

    # ST lookup + fusion + metrics for the four rows, with the similarities already computed: the library's own
    # stages (joint.ChunkScorer, metrics.RankingProtocol/MetricAccumulator), timed apart, wall and CPU time.
    def clock() -> np.ndarray:
        return np.array([time.perf_counter(), time.process_time()])

    t_lookup, t_fuse, t_chunk = np.zeros(2), np.zeros(2), np.zeros(2)
    t_metric = {r: np.zeros(2) for r in ROWS}
    accs = {r: MetricAccumulator(gallery, protocol=protocol) for r in ROWS}
    # tracemalloc hooks every numpy allocation, which slows the many small per-query arrays of the metrics by
    # 2x: the timed loops run without it (their memory is that of the library-path stage below, traced).
    tracemalloc.stop()
    t_all = clock()
    for a0 in range(0, nq, args.chunk_size):
        sl = slice(a0, min(a0 + args.chunk_size, nq))
        t0 = clock()
        st = scorer.st_lookup(sl)
        t1 = clock()
        rows = scorer.fuse(S[sl], st)
        t2 = clock()
        chunk = protocol.chunk(query.take(sl), a0)
        t3 = clock()
        t_lookup += t1 - t0
        t_fuse += t2 - t1
        t_chunk += t3 - t2
        for r in ROWS:
            t4 = clock()
            accs[r].update(rows[r], chunk=chunk)
            t_metric[r] += clock() - t4
    results = {r: accs[r].result() for r in ROWS}
    total = clock() - t_all

    def show(name: str, t: np.ndarray, extra: str = "") -> None:
        print(f"  {name:44s} {t[0]:8.3f} s  (CPU {t[1]:6.3f} s){extra}")

    show("ST lookup (index + gathers, all pairs)", t_lookup)
    show("fusion (VISxST, st-ReID)", t_fuse)
    show("protocol (good/junk per chunk, shared)", t_chunk)
    for r in ROWS:
        show(f"metrics {r} ({rows[r].dtype})", t_metric[r])
    show("TOTAL ST lookup + fusion + metrics, 4 rows", total, "   (target <= 3 s)")
    for r in ROWS:
        print(f"    {r:8s} " + " ".join(f"{k}={v:6.2f}" for k, v in results[r].summary().items()))

    # The same with the rows of a chunk ranked by worker threads while the next chunk is looked up and fused
    # (as evaluation.rank_rows does with threads > 1).
    if args.threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        accs_t = {r: MetricAccumulator(gallery, protocol=protocol) for r in ROWS}
        t_all = clock()
        with ThreadPoolExecutor(args.threads) as pool:
            pending: list = []
            for a0 in range(0, nq, args.chunk_size):
                sl = slice(a0, min(a0 + args.chunk_size, nq))
                rows = scorer.fuse(S[sl], scorer.st_lookup(sl))
                chunk = protocol.chunk(query.take(sl), a0)
                for f in pending:
                    f.result()
                pending = [pool.submit(accs_t[r].update, rows[r], chunk=chunk) for r in ROWS]
            for f in pending:
                f.result()
        same_t = all(accs_t[r].result().summary() == results[r].summary() for r in ROWS)
        show(f"TOTAL, 4 rows, {args.threads} metric threads", clock() - t_all, f"   same summaries: {same_t}")

    # The library path end to end (GEMM included), as evaluation uses it; memory traced (which slows it).
    tracemalloc.start()
    with stage("evaluation.rank_rows, 4 rows (incl. GEMM, traced)"):
        lib = rank_rows(fs, model, metric, ROWS, args.chunk_size, threads=args.threads)
        same = all(lib[r].summary() == results[r].summary() for r in ROWS)
    print(f"  library path gives the same summaries: {same}")

    # One-shot evaluate_scores on the full VIS matrix (float32) for reference.
    with stage("evaluate_scores one-shot, VIS (float32, whole gallery)"):
        full = np.zeros((nq, ng), np.float32)  # pid -1 columns (never scored) are junk: any value will do
        full[:, protocol.columns] = S
        evaluate_scores(full, query, gallery, chunk_size=args.chunk_size)
        del full

    if args.loop_queries:
        n = args.loop_queries
        P_hat = model.smoothed_
        secs, aps, loop_scores = loop_evaluator(fs.query_f, fs.gallery_f, query, gallery, P_hat, n, metric)
        # Same scores → same APs exactly; our own joint scores differ from the loop's by float rounding (other
        # operation order), which can swap near-equal random scores and move an AP by ~1e-8.
        same_scores = np.abs(evaluate_scores(loop_scores, query.take(slice(0, n)), gallery).ap - aps).max()
        own_scores = np.abs(results["st-ReID"].ap[:n] - aps).max()
        extrap = secs * nq / n
        ours_row = (
            TIMES["similarity GEMM (chunked, all queries)"][0] + t_lookup[0] + t_fuse[0] / 2 + t_metric["st-ReID"][0]
        )  # one row: GEMM + lookup + its share of fusion + its metrics
        print(
            f"Python-loop evaluator (authors' style): {n} queries in {secs:.2f} s -> {extrap:.0f} s for {nq} "
            f"queries (one row, st-ReID); vectorised same row incl. GEMM {ours_row:.2f} s: "
            f"ratio {extrap / ours_row:.0f}x; "
            f"max |dAP| on the loop's scores {same_scores:.1e}, on our joint scores {own_scores:.1e}"
        )

    tracemalloc.stop()
    print(f"ru_maxrss at end: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    # Start-up of the CLI: `evaluate --help`, and whether importing the evaluation side pulls in torch.
    py = sys.executable
    t0 = time.perf_counter()
    subprocess.run([py, "-m", "streid_lib", "evaluate", "--help"], cwd=REPO, check=True, capture_output=True)
    t_help = time.perf_counter() - t0
    probe = (
        "import sys; from streid_lib import cli\n"
        "try: cli.main(['evaluate', '--help'])\nexcept SystemExit: pass\n"
        "import streid_lib.evaluation, streid_lib.metrics, streid_lib.joint, streid_lib.st_model\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([py, "-c", probe], cwd=REPO, check=True, capture_output=True, text=True).stdout
    print(
        f"`python -m streid_lib evaluate --help`: {t_help:.2f} s; torch imported by cli + evaluation side: "
        f"{out.strip().splitlines()[-1]}"
    )


if __name__ == "__main__":
    main()
