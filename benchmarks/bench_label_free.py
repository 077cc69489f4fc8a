"""The label-free route (issue #19, docs/reference.md §14): accuracy targets and cost, printed.

* ``duke`` (default): the DukeMTMC-reID MobileNetV2 dev features (``repo/../shared/data/features/
  duke_mobilenetv2.npz``). Times the clustering of the 16.5k training features (the eps search of
  :class:`streid_lib.pseudo.PseudoIdentities`, target ≤ 60 s) and the transductive route end to end on the ~20k
  query+gallery detections (cluster, fit, rank st-ReID; target ≤ 90 s); prints labelled / label-free / transductive
  st-ReID (targets: label-free ≥ 16.0 R1, transductive within 2 R1 of it).
* ``campus``: the synthetic campus of a preset (generated under ``data/`` when missing) with its colour
  histograms; prints the verdicts (label-free within 2 R1 of labelled, mean TV ≤ 1.25× labelled).
* ``--improved``: also the improved mode on the pseudo-identities, its weight set by the spread rule (what
  ``evaluate --pseudo-labels`` does), the label-free guard that falls back to the faithful fusion when the
  pseudo-identities' ST density is not reproducible (§14.2), and, for reference, calibrated on the clusters' own
  features (target ≥ label-free faithful + 3 R1 and + 5 mAP; never below it).

* ``candidates``: on the campus, every clustering candidate round 1 did not try, each with the label-free
  criterion (consistent cross-camera clusters, §14.1), and, for the record only, its ARI, the st-ReID rank-1 / mAP
  and the mean TV to the truth of the HP model fitted on it: DBSCAN and average-linkage agglomerative clustering on
  the cosine and on the k-reciprocal Jaccard distance (:func:`streid_lib.rerank.rerank_distances` with λ = 0,
  assembled over all pairs), and HDBSCAN on the cosine.

* ``criteria``: on the campus preset and the Duke dev features, two label-free ideas measured against the chosen
  DBSCAN (§14.1): **stability under resampling** of each eps of the grid (mean adjusted Rand index between the
  clustering of three random 80 % subsamples and the full clustering restricted to them; labels not read), and
  **time-gated mutual nearest neighbours**: within one camera, consecutive crops less than 10 s apart and closer than
  0.5 (cosine) form a tracklet; two tracklets of different cameras whose mean frames are at most the 90 % quantile of
  the chosen DBSCAN model's transit votes apart and that are each other's visually nearest in the other's camera form
  a two-member pseudo-identity, with or without a cosine threshold. For the record only: st-ReID, the mean TV to the
  truth (campus) and the pair precision against the hidden labels.

Timings are wall-clock seconds of one process; the machine may be shared, so read them with care.

Usage: ``.venv/bin/python benchmarks/bench_label_free.py [duke|campus|candidates|criteria] [--preset small]
[--improved] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from streid_lib import study
from streid_lib.cli import improved_extra
from streid_lib.evaluation import evaluate_features
from streid_lib.features import load_features
from streid_lib.joint import DEFAULT_METRIC
from streid_lib.pseudo import PseudoIdentities, apply_pseudo_labels, improved_guard, split_half_tv
from streid_lib.st_model import fit_st_model

DUKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "features" / "duke_mobilenetv2.npz"


def st_reid(fs, train, dataset: str, mode: str = "faithful") -> dict:
    """st-ReID (and the improved rows with ``mode="improved"``) with the HP model fitted on ``train``."""
    model = fit_st_model(train, dataset)
    extra = improved_extra(fs, model, train) if mode == "improved" else None
    res = evaluate_features(fs, model, DEFAULT_METRIC, ("st-ReID",), chunk_size=512, extra=extra)
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
        improved_rows(free_fs, free, "duke", fs.train)


def improved_rows(free_fs, free: dict, dataset: str, labelled) -> None:
    """Improved mode on pseudo-identities: w by the spread rule (the CLI's choice, §14.2), the label-free guard
    (split-half TV of the pseudo-identities' ST density) and, for reference, calibrated on the clusters' own
    features (circular)."""
    guard = improved_guard(free_fs.train, lambda m: fit_st_model(m, dataset))
    ref = split_half_tv(labelled, lambda m: fit_st_model(m, dataset))
    print(f"split-half TV of the ST density: pseudo-identities {guard['split_half_tv']:.3f}, real labels {ref:.3f}")
    for label, fs in (("spread rule", free_fs.without_train()), ("calibrated on the clusters (circular)", free_fs)):
        imp = st_reid(fs, free_fs.train, dataset, mode="improved")["improved"]
        print(
            f"improved with pseudo-identities, {label}: {imp['R1']:.2f} R1 / {imp['mAP']:.2f} mAP "
            f"(target >= {free['R1'] + 3:.2f} / {free['mAP'] + 5:.2f}; never below {free['R1']:.2f} R1)"
        )
        if label == "spread rule":
            kept = imp if guard["use_improved"] else free
            print(f"guard: {guard['summary']} -> guarded {kept['R1']:.2f} R1 / {kept['mAP']:.2f} mAP")


def campus(preset: str, improved: bool) -> None:
    cfg = study.study_config(profile="default", dataset="campus", campus_preset=preset)
    fs = study.beyond_features(cfg)
    truth = study.campus_truth(cfg)
    t = time.perf_counter()
    rep = study.label_free.label_free_study(fs, "campus", truth=truth, fps=truth.fps)
    print(f"campus {preset}: {len(fs.train)} training crops, study {time.perf_counter() - t:.1f} s")
    print(rep.table.to_string())
    print(study.label_free.verdicts_markdown(rep))
    if improved:
        eps = rep.records["label-free (train side)"]["eps_chosen"]
        free_fs, _ = apply_pseudo_labels(fs, "train", eps=eps, fps=truth.fps)
        improved_rows(free_fs, rep.table.loc["label-free (train side)"], "campus", fs.train)


def jaccard_all_pairs(f, k1: int = 20, k2: int = 6):
    """(N, N) k-reciprocal Jaccard distances of all pairs of (N, D) features: :func:`rerank_distances` returns
    query × gallery blocks, so each bit b of the index splits the set into a "query" half (bit 0) and a "gallery"
    half (bit 1); every pair differs in some bit. ⌈log2 N⌉ calls, the encodings are those of the whole set."""
    import numpy as np

    from streid_lib.rerank import rerank_distances

    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    n, idx = len(f), np.arange(len(f))
    out = np.zeros((n, n), np.float32)
    for b in range(int(np.ceil(np.log2(n)))):
        a, c = idx[(idx >> b) & 1 == 0], idx[(idx >> b) & 1 == 1]
        p = np.r_[a, c]
        block = rerank_distances(
            np.asfortranarray(f[p] @ f[p].T), len(a), k1=k1, k2=k2, lambda_value=0.0, progress=False
        )
        out[np.ix_(a, c)], out[np.ix_(c, a)] = block, block.T
    return np.clip(np.maximum(out, out.T), 0.0, 1.0)


def candidates(preset: str) -> None:
    import numpy as np
    from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering
    from sklearn.metrics.pairwise import cosine_distances

    from streid_lib.campus import mean_hp_distance
    from streid_lib.evaluation import rank_rows
    from streid_lib.metadata import Metadata
    from streid_lib.pseudo import consistency, diagnostics, drop_clusters

    cfg = study.study_config(profile="default", dataset="campus", campus_preset=preset)
    fs, truth = study.beyond_features(cfg), study.campus_truth(cfg)
    tm, dwell = fs.train, 60.0 * truth.fps
    t = time.perf_counter()
    dist = {"cosine": cosine_distances(fs.train_f).clip(0), "jaccard": jaccard_all_pairs(fs.train_f)}
    print(f"campus {preset}: {len(tm)} training crops; distances {time.perf_counter() - t:.1f} s")
    cos, off = dist["cosine"], ~np.eye(len(tm), dtype=bool)
    same = (tm.pids[:, None] == tm.pids[None, :]) & off
    print(f"cosine distance: same-identity median {np.median(cos[same]):.2f} (labels, for the record); 1 % quantile "
          f"of all pairs {np.quantile(cos[off], 0.01):.2f}")  # fmt: skip
    runs = [(f"DBSCAN cosine eps {e}", "cosine", DBSCAN(eps=e, min_samples=2, metric="precomputed"))
            for e in (0.2, 0.25, 0.3)]  # fmt: skip
    runs += [(f"DBSCAN jaccard eps {e}", "jaccard", DBSCAN(eps=e, min_samples=2, metric="precomputed"))
             for e in (0.3, 0.4, 0.5, 0.6)]  # fmt: skip
    runs += [(f"agglomerative (average) {m} {th}", m,
              AgglomerativeClustering(n_clusters=None, distance_threshold=th, metric="precomputed", linkage="average"))
             for m, ths in (("cosine", (0.3, 0.4)), ("jaccard", (0.5, 0.6, 0.7))) for th in ths]  # fmt: skip
    runs += [(f"HDBSCAN cosine min_cluster_size {k}", "cosine",
              HDBSCAN(min_cluster_size=k, metric="precomputed", copy=True)) for k in (2, 3)]  # fmt: skip
    rows = []
    for name, metric, est in runs:
        labels = est.fit(dist[metric].astype(np.float64)).labels_
        c, bad = consistency(labels, tm.cams, tm.frames, dwell)
        pids = drop_clusters(labels, bad)  # keep="consistent"
        model = fit_st_model(Metadata(pids, tm.cams, tm.frames), "campus")
        s = rank_rows(fs, model, DEFAULT_METRIC, ("st-ReID",))["st-ReID"].summary()
        rows.append({"candidate": name, "consistent cross (criterion)": c["consistent_cross"],
                     "clusters": c["n_clusters"], "ARI": diagnostics(tm.pids, labels)["ari"], "R1": s["R1"],
                     "mAP": s["mAP"], "mean TV": mean_hp_distance(model, truth),
                     "HP votes": model.counts_.sum()})  # fmt: skip
    import pandas as pd

    table = pd.DataFrame(rows).set_index("candidate").sort_values("consistent cross (criterion)", ascending=False)
    print(table.round(3).to_string())
    labelled = fit_st_model(tm, "campus")
    print(f"(clusters that break the one-place rule cast no vote, as keep='consistent'); the labelled model: "
          f"{labelled.counts_.sum():.0f} HP votes, mean TV {mean_hp_distance(labelled, truth):.3f}; "
          f"{time.perf_counter() - t:.1f} s")  # fmt: skip


def gated_pairs(f, meta, gate: int, threshold: float, gap: int = 600, link: float = 0.5):
    """(M, 2) tracklet pairs and the (N,) tracklet of each crop: mutual visually nearest tracklets of two cameras at
    most ``gate`` frames apart and at most ``threshold`` apart (cosine); see the module docstring."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float32)
    o = np.lexsort((meta.frames, meta.cams))
    a, b = o[:-1], o[1:]
    ok = (meta.cams[a] == meta.cams[b]) & (meta.frames[b] - meta.frames[a] <= gap) & ((f[a] * f[b]).sum(1) > 1 - link)
    t = connected_components(coo_matrix((np.ones(ok.sum()), (a[ok], b[ok])), shape=(len(f),) * 2))[1]
    n = t.max() + 1
    tf = np.zeros((n, f.shape[1]), np.float32)
    np.add.at(tf, t, f)
    tf /= np.linalg.norm(tf, axis=1, keepdims=True)
    tc, tfr = np.zeros(n, np.int64), np.bincount(t, weights=meta.frames) / np.bincount(t)
    tc[t] = meta.cams
    best = np.full((n, tc.max() + 1), -1)
    for s in range(0, n, 2000):  # chunks of 2000 rows bound the memory
        sim = tf[s : s + 2000] @ tf.T
        sim[
            (tc[s : s + 2000, None] == tc) | (np.abs(tfr[s : s + 2000, None] - tfr) > gate) | (sim < 1 - threshold)
        ] = -2
        for cam in np.unique(tc):
            j = np.where(tc == cam, sim, -3).argmax(1)
            hit = sim[np.arange(len(sim)), j] > -2
            best[s : s + 2000][hit, cam] = j[hit]
    i, cam = np.nonzero(best >= 0)
    j = best[i, cam]
    keep = (best[j, tc[i]] == i) & (i < j)
    return np.c_[i[keep], j[keep]], t


def _score(fs, truth, dataset: str, meta, what: str):
    """Print st-ReID (and the mean TV to ``truth``) of the HP model fitted on ``meta``; return the model."""
    from streid_lib.campus import mean_hp_distance
    from streid_lib.evaluation import rank_rows
    from streid_lib.metadata import Metadata

    model = fit_st_model(meta, dataset) if isinstance(meta, Metadata) else meta  # metadata, or a model as is
    s = rank_rows(fs, model, DEFAULT_METRIC, ("st-ReID",))["st-ReID"].summary()
    tv = f", mean TV {mean_hp_distance(model, truth):.3f}" if truth is not None else ""
    print(f"  {what}: st-ReID {s['R1']:.2f} R1 / {s['mAP']:.2f} mAP{tv}")
    return model


def criteria(preset: str, seed: int = 0) -> None:
    import numpy as np
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    from streid_lib.metadata import Metadata
    from streid_lib.pseudo import EPS_GRID, _cosine_graph, consistency, drop_clusters  # the eps search's own graph

    cfg = study.study_config(profile="default", dataset="campus", campus_preset=preset, seed=seed)
    sets = [(f"campus {preset}, seed {seed}", study.beyond_features(cfg), study.campus_truth(cfg), "campus")]
    sets += [("Duke dev features", load_features(DUKE), None, "duke")] if DUKE.is_file() and seed == 0 else []
    for label, fs, truth, dataset in sets:
        tm, rng, model = fs.train, np.random.default_rng(0), None
        print(f"{label}: {len(tm)} training crops")
        labelled = _score(fs, truth, dataset, tm, "labelled")
        if truth is not None:
            _score(fs, truth, dataset, study.label_free.truth_model(truth, labelled), "true density")
        est = PseudoIdentities().fit(fs.train_f, tm)
        graph = _cosine_graph(fs.train_f, max(EPS_GRID)).tocsr()
        subs = [np.sort(rng.choice(len(tm), int(0.8 * len(tm)), replace=False)) for _ in range(3)]
        for crit in est.criteria_:
            db = DBSCAN(eps=crit["eps"], min_samples=3, metric="precomputed")
            labels = db.fit(graph).labels_
            stab = np.mean([adjusted_rand_score(labels[s], db.fit(graph[s][:, s]).labels_) for s in subs])
            _, bad = consistency(labels, tm.cams, tm.frames, 60.0 * 60)
            chosen = crit["eps"] == est.eps_
            what = (f"DBSCAN eps {crit['eps']}{' (chosen)' if chosen else ''}: consistent cross-camera clusters "
                    f"{crit['consistent_cross']}, stability {stab:.3f}")  # fmt: skip
            fitted = _score(fs, truth, dataset, Metadata(drop_clusters(labels, bad), tm.cams, tm.frames), what)
            model = fitted if chosen else model
        votes = model.counts_.sum(axis=(0, 1))
        gate = int(np.searchsorted(np.cumsum(votes) / votes.sum(), 0.9) * model.bin_width)
        for threshold in (est.eps_, 2.0):
            pairs, t = gated_pairs(fs.train_f, tm, gate, threshold)
            order, size = np.argsort(t, kind="stable"), np.bincount(t)  # crops grouped by tracklet
            start = np.cumsum(size) - size
            side, n = pairs.ravel(), size[pairs.ravel()]  # both tracklets of every pair, in pair order
            offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
            idx = order[np.repeat(start[side], n) + offset]  # the crops of pair k's two tracklets, pair by pair
            pid = np.repeat(np.repeat(np.arange(1, len(pairs) + 1), 2), n)
            first = tm.pids[order[start]]  # one crop's (hidden) identity per tracklet, for the precision only
            prec = (first[pairs[:, 0]] == first[pairs[:, 1]]).mean()
            what = (f"gated mutual pairs, gate {gate / 60:.0f} s, cosine <= {threshold:g}: {len(pairs)} pairs of "
                    f"{len(size)} tracklets, pair precision {prec:.2f} (labels, for the record)")  # fmt: skip
            _score(fs, truth, dataset, Metadata(pid, tm.cams[idx], tm.frames[idx]), what)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", nargs="?", choices=("duke", "campus", "candidates", "criteria"), default="duke")
    p.add_argument("--preset", default="small", help="campus preset (default %(default)s)")
    p.add_argument("--improved", action="store_true", help="also the improved mode on pseudo-identities")
    p.add_argument("--seed", type=int, default=0, help="criteria: the campus seed (Duke only with 0; default 0)")
    a = p.parse_args()
    if a.dataset in ("candidates", "criteria"):
        return candidates(a.preset) if a.dataset == "candidates" else criteria(a.preset, a.seed)
    duke(a.improved) if a.dataset == "duke" else campus(a.preset, a.improved)


if __name__ == "__main__":
    main()
