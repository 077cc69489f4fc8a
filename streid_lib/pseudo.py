"""Pseudo-identities: DBSCAN clusters of unlabelled detections, chosen without labels, so that the ST model can be
fitted without labels (docs/reference.md §14.1), and the guard of improved mode on them (§14.2). Labels, when
present, only feed :func:`diagnostics`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.base import BaseEstimator
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import pair_confusion_matrix
from sklearn.neighbors import NearestNeighbors

from .errors import StreidError
from .features import FeatureSet
from .metadata import UNKNOWN_PID, Metadata, read_manifest
from .st_model import json_params

#: The modes of ``evaluate --pseudo-labels``.
PSEUDO_MODES = ("train", "test")
#: Default grid of DBSCAN ``eps`` (cosine distance) searched by the label-free criterion.
EPS_GRID = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
#: Improved mode on pseudo-identities falls back to the faithful fusion above this split-half TV (§14.2).
MAX_SPLIT_TV = 0.5


class PseudoLabelError(StreidError):
    """Bad parameters or inputs for pseudo-identities."""


def _cosine_graph(features: np.ndarray, radius: float) -> Any:
    """Sparse (N, N) cosine distances up to ``radius`` between the unit-normalised rows of ``features``."""
    f = np.asarray(features, dtype=np.float32)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    return NearestNeighbors(radius=radius, metric="cosine").fit(f).radius_neighbors_graph(mode="distance")


def with_singletons(labels: np.ndarray) -> np.ndarray:
    """(N,) int64 pids ≥ 1 from cluster labels: cluster c → c + 1, each noise point (-1) its own new pid (a
    singleton casts no vote in the HP histogram, §3.3)."""
    labels = np.asarray(labels, dtype=np.int64)
    noise = labels < 0
    return np.where(noise, labels.max(initial=-1) + np.cumsum(noise), labels) + 1


def drop_clusters(labels: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """(N,) pids ≥ 1 (:func:`with_singletons`); members of the clusters flagged in (n_clusters,) ``drop`` become
    singletons, as noise does."""
    labels = np.asarray(labels, dtype=np.int64)
    return with_singletons(np.where(np.append(drop, False)[labels], -1, labels))  # noise (-1) reads the False


def consistency(labels: np.ndarray, cams: np.ndarray, frames: np.ndarray, max_dwell: float) -> tuple[dict, np.ndarray]:
    """Label-free counts of one clustering (§14.1): ``n_clusters``, ``noise_share``, ``cross_camera`` (clusters seen
    by ≥ 2 cameras), ``conflict_share`` (share of (cluster, camera) cells spanning more than ``max_dwell`` frames:
    impossible) and ``consistent_cross`` (cross-camera clusters without an impossible cell: the criterion); and
    (n_clusters,) bool, the clusters holding an impossible cell."""
    keep = labels >= 0
    n = int(labels.max(initial=-1)) + 1
    if n == 0:
        zero = {"n_clusters": 0, "noise_share": 1.0, "cross_camera": 0, "conflict_share": 0.0, "consistent_cross": 0}
        return zero, np.zeros(0, bool)
    c = np.asarray(cams, np.int64)[keep]
    cell = labels[keep] * (int(c.max()) + 1) + c
    fr = np.asarray(frames, np.float64)[keep]
    cells, inv = np.unique(cell, return_inverse=True)
    lo = np.full(len(cells), np.inf)
    hi = np.full(len(cells), -np.inf)
    np.minimum.at(lo, inv, fr)
    np.maximum.at(hi, inv, fr)
    owner = cells // (int(c.max()) + 1)
    bad = (hi - lo) > max_dwell
    n_cams = np.bincount(owner, minlength=n)
    n_bad = np.bincount(owner, weights=bad, minlength=n)
    counts = {
        "n_clusters": n,
        "noise_share": float((~keep).mean()),
        "cross_camera": int((n_cams >= 2).sum()),
        "conflict_share": float(bad.mean()),
        "consistent_cross": int(((n_cams >= 2) & (n_bad == 0)).sum()),
    }
    return counts, n_bad > 0


class PseudoIdentities(BaseEstimator):
    """DBSCAN (cosine) pseudo-identities, ``eps`` fixed or chosen from ``eps_grid`` without labels (§14.1).

    ``max_dwell_s`` (seconds, at ``fps``) is the consistency rule's longest stay in one view; the members of clusters
    that break it become singletons. :meth:`fit` sets
    ``labels_`` (N,) DBSCAN labels (-1 noise), ``pids_`` (N,) pids ≥ 1 for the ST fit, ``eps_``, ``criteria_`` (one
    dict per candidate) and ``n_dropped_``.
    """

    def __init__(
        self,
        *,
        eps: float | None = None,
        eps_grid: tuple[float, ...] = EPS_GRID,
        min_samples: int = 3,
        max_dwell_s: float = 60.0,
        fps: float = 60.0,
    ) -> None:
        self.eps = eps
        self.eps_grid = eps_grid
        self.min_samples = min_samples
        self.max_dwell_s = max_dwell_s
        self.fps = fps

    def fit(self, features: np.ndarray, meta: Metadata) -> PseudoIdentities:
        """Cluster (N, D) ``features`` of detections with cameras and frames ``meta`` (its pids are not read)."""
        grid = (self.eps,) if self.eps is not None else tuple(self.eps_grid)
        if not grid or any(not 0 < float(e) < 2 for e in grid):
            raise PseudoLabelError(f"eps: expected values in (0, 2) (cosine distance), got {grid}")
        if int(self.min_samples) < 1 or self.max_dwell_s <= 0 or self.fps <= 0:
            raise PseudoLabelError(
                f"min_samples >= 1, max_dwell_s > 0 and fps > 0 expected, got {self.min_samples}, "
                f"{self.max_dwell_s}, {self.fps}"
            )
        if len(features) != len(meta):
            raise PseudoLabelError(f"features have {len(features)} rows but the metadata {len(meta)}")
        dwell = float(self.max_dwell_s) * float(self.fps)
        graph = _cosine_graph(features, max(grid))  # one search at the largest eps serves every candidate
        best, self.criteria_ = None, []
        for eps in grid:
            labels = DBSCAN(eps=float(eps), min_samples=int(self.min_samples), metric="precomputed").fit(graph).labels_
            counts, bad = consistency(labels, meta.cams, meta.frames, dwell)
            crit = {"eps": float(eps), **counts}
            self.criteria_.append(crit)
            if best is None or crit["consistent_cross"] > best[0]["consistent_cross"]:
                best = (crit, labels, bad)
        self.eps_ = best[0]["eps"]
        self._set_labels(best[1], best[2])
        return self

    def _set_labels(self, labels: np.ndarray, bad: np.ndarray) -> None:
        self.labels_ = labels.astype(np.int64)
        self.n_dropped_ = int(bad.sum())
        self.pids_ = drop_clusters(self.labels_, bad)

    def record(self) -> dict[str, Any]:
        """Method, parameters, the chosen eps, clusters, noise share and every candidate's criterion."""
        chosen = next(c for c in self.criteria_ if c["eps"] == self.eps_)
        return {
            "method": "DBSCAN (scikit-learn), cosine distance",
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in json_params(self).items()},
            "eps_chosen": self.eps_,
            "criterion": "most consistent cross-camera clusters (labels never read), docs/reference.md §14.1",
            "n_clusters": chosen["n_clusters"],
            "noise_share": chosen["noise_share"],
            "n_dropped_inconsistent": self.n_dropped_,
            "candidates": self.criteria_,
        }


def refine_with_st(
    est: PseudoIdentities, features: np.ndarray, meta: Metadata, fit_model: Any, rounds: int = 2, boost: float = 0.05
) -> list[dict[str, Any]]:
    """Re-cluster ``rounds`` times with ST evidence (§14.1), updating ``est``; one record per round.

    Each round fits ``fit_model(Metadata) -> model`` on the current ``pids_`` and reruns DBSCAN at ``est.eps_`` on the
    cosine graph (radius ``eps_ + boost``) where a cross-camera pair loses ``boost × p̂ / max p̂`` of its distance and
    an impossible pair (p̂ = 0 across cameras, or beyond ``max_dwell_s`` in one camera) is cut.
    """
    graph = _cosine_graph(features, est.eps_ + float(boost)).tocoo()
    i, j, d = graph.row, graph.col, graph.data
    cams, frames = np.asarray(meta.cams), np.asarray(meta.frames)
    same = cams[i] == cams[j]
    dwell = float(est.max_dwell_s) * float(est.fps)
    far = same & (np.abs(frames[i] - frames[j]) > dwell)
    records = []
    for r in range(int(rounds)):
        model = fit_model(Metadata(est.pids_, cams, frames))
        p = np.zeros(len(d))
        p[~same] = model.probability(cams[i[~same]], frames[i[~same]], cams[j[~same]], frames[j[~same]])
        peak = model.smoothed_.max(axis=2)
        top = np.maximum(peak[cams[i] - 1, cams[j] - 1], peak[cams[j] - 1, cams[i] - 1])
        ratio = np.divide(p, top, out=np.zeros_like(p), where=top > 0)
        dist = np.where(same, d, d - float(boost) * np.minimum(ratio, 1.0))
        cut = far | (~same & (p <= 0)) | (dist > est.eps_)
        g = csr_matrix((np.maximum(dist[~cut], 0.0), (i[~cut], j[~cut])), shape=graph.shape)
        labels = DBSCAN(eps=est.eps_, min_samples=int(est.min_samples), metric="precomputed").fit(g).labels_
        counts, bad = consistency(labels, cams, frames, dwell)
        est._set_labels(labels, bad)
        records.append({"round": r + 1, **counts, "n_dropped_inconsistent": est.n_dropped_})
    return records


def diagnostics(true_pids: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``ari``, ``pair_precision`` and ``pair_recall`` of a clustering (noise as singletons) against known labels:
    reported only, never used to choose (§14.1)."""
    pred = with_singletons(labels)
    (_, fp), (fn, tp) = pair_confusion_matrix(true_pids, pred)
    return {
        "ari": float(adjusted_rand_score(true_pids, pred)),
        "pair_precision": float(tp / (tp + fp)) if tp + fp else float("nan"),
        "pair_recall": float(tp / (tp + fn)) if tp + fn else float("nan"),
    }


def split_half_tv(meta: Metadata, fit_model: Any, *, n_splits: int = 3, seed: int = 0) -> float:
    """Mean over ``n_splits`` random halvings of the identities of the vote-weighted total variation between the HP
    densities of the halves (``fit_model(Metadata) -> model``; a pair one half never saw counts 1): 0 = the halves
    agree, 1 = disjoint (§14.2)."""
    full = fit_model(meta).counts_.sum(axis=2)
    ids, rng, out = np.unique(meta.pids), np.random.default_rng(seed), []
    for _ in range(int(n_splits)):
        in_a = np.isin(meta.pids, rng.permutation(ids)[: len(ids) // 2])
        dens = []
        for part in (in_a, ~in_a):
            p = fit_model(meta.take(np.flatnonzero(part))).smoothed_
            mass = p.sum(axis=2, keepdims=True)
            dens.append((np.divide(p, mass, out=np.zeros_like(p), where=mass > 0), mass[..., 0] > 0))
        (pa, ha), (pb, hb) = dens
        tv = np.where(ha & hb, 0.5 * np.abs(pa - pb).sum(axis=2), 1.0)
        out.append(float((full * tv).sum() / full.sum()) if full.sum() > 0 else 1.0)
    return float(np.mean(out))


def improved_guard(meta: Metadata, fit_model: Any, max_tv: float = MAX_SPLIT_TV) -> dict[str, Any]:
    """The label-free rule of improved mode on pseudo-identities (§14.2): the improved fusion only when the density is
    reproducible, :func:`split_half_tv` ≤ ``max_tv``; else the faithful fusion ranks."""
    tv = split_half_tv(meta, fit_model)
    use = bool(tv <= max_tv)
    outcome = (
        f"<= {max_tv:g}: improved fusion" if use else f"> {max_tv:g}: improved mode falls back to the faithful fusion"
    )
    return {
        "split_half_tv": tv,
        "max_split_tv": float(max_tv),
        "use_improved": use,
        "rule": "improved fusion only when the split-half TV of the pseudo-identities' HP density <= max_split_tv; "
        "else the faithful fusion (docs/reference.md §14.2)",
        "summary": f"split-half TV of the pseudo-identities' ST density {tv:.2f} {outcome}",
    }


def guarded_mode(mode: str, record: dict | None) -> str:
    """``evaluate``'s ranking mode once the pseudo-identities' :func:`improved_guard` (in ``record``) has spoken."""
    guard = (record or {}).get("improved_guard")
    return "faithful" if mode == "improved" and guard is not None and not guard["use_improved"] else mode


def apply_pseudo_labels(
    fs: FeatureSet, mode: str, fit_model: Any = None, *, rounds: int = 0, **params: Any
) -> tuple[FeatureSet, dict]:
    """The set whose training side carries pseudo-identities, and the JSON record (§14.2).

    ``mode="train"`` clusters the training side (labels ignored); ``"test"`` (transductive) clusters query+gallery,
    which become the training side, with ``PseudoIdentities(**params)``. ``rounds`` > 0 re-clusters with ST evidence
    (:func:`refine_with_st`).
    """
    if mode not in PSEUDO_MODES:
        raise PseudoLabelError(f"--pseudo-labels: expected one of {PSEUDO_MODES}, got {mode!r}")
    if mode == "train":
        if not fs.has_train:
            raise PseudoLabelError(
                "--pseudo-labels train: the features file has no training side (train_f, train_cam, train_frames)"
            )
        f, meta = fs.train_f, fs.train
    else:
        f = np.concatenate([fs.query_f, fs.gallery_f])
        meta = Metadata.concat([fs.query, fs.gallery])
    est = PseudoIdentities(**params).fit(f, meta)
    record = {"mode": mode, "side": "train" if mode == "train" else "query+gallery (transductive)", **est.record()}
    if rounds != 0:
        if int(rounds) < 0 or fit_model is None:
            raise PseudoLabelError(f"rounds: expected >= 0 with fit_model (the ST fit of each round), got {rounds}")
        record["rounds"] = refine_with_st(est, f, meta, fit_model, rounds=rounds)
        record.update(n_clusters=record["rounds"][-1]["n_clusters"], noise_share=record["rounds"][-1]["noise_share"])
    record["summary"] = (
        f"{record['n_clusters']} clusters of the {record['side']} side (DBSCAN eps {est.eps_:g}), "
        f"{100 * record['noise_share']:.1f} % noise"
    )
    if mode == "test":
        record["note"] = "transductive: the ST model was fitted on the unlabelled test detections"
        record["summary"] += "; " + record["note"]
    if (meta.pids != UNKNOWN_PID).all():
        record["diagnostics"] = diagnostics(meta.pids, est.labels_)
    train = Metadata(est.pids_, meta.cams, meta.frames)
    out = FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, fs.provenance, train_f=f, train=train)
    return out, record


def with_train_manifest(fs: FeatureSet, path: str, fps: float) -> FeatureSet:
    """``fs`` whose training metadata is the manifest ``path`` (§14.3), row for row of ``train_f`` (same file names
    where the features file names its images)."""
    if not fs.has_train:
        raise PseudoLabelError(
            f"--train-manifest {path} with --pseudo-labels train: the features file has no train_f to cluster"
        )
    meta = read_manifest(path, fps=fps)
    if len(meta) != len(fs.train_f):
        raise PseudoLabelError(f"{path}: {len(meta)} manifest rows, but train_f has {len(fs.train_f)} rows")
    if fs.train.names is not None:
        ours = [Path(str(n)).name for n in fs.train.names]
        bad = next((i for i, n in enumerate(meta.names) if Path(str(n)).name != ours[i]), None)
        if bad is not None:
            raise PseudoLabelError(
                f"{path}, row {bad + 1}: path {meta.names[bad]!r} is not train_f's image {ours[bad]!r} (same order "
                "expected)"
            )
    return dataclasses.replace(fs, train=meta)
