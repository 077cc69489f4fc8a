"""The study's steps: each notebook calls a few of these; every number they return is computed in the run.

A step whose input the run's route (:class:`.config.Route`) lacks raises :class:`MissingInput` (``needs …``); the
row helpers turn that into a :class:`NotComputed` entry, never into another row's numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import st_model
from ..campus import load_truth, mean_hp_distance
from ..colour_histogram import colour_histogram_features
from ..errors import StreidError
from ..features import FeaturesError, load_features, save_features
from ..joint import DEFAULT_METRIC, ROWS, JointMetric, cosine_similarity, score_rows
from ..metadata import DatasetSplits, read_dataset_root, read_name_list, read_seq_lengths
from ..metrics import RankingProtocol, default_threads
from ..ranking import rank_rows
from ..rerank import rerank_rows
from ..uncertainty import TRAINED_TOLERANCE, PerQuery, RowSummary, row_interval
from ..visual.config import ExtractConfig, TrainConfig, portable_environment
from .config import MODEL_LABELS, VISUAL_MODELS, StudyConfig, dataset_root


class MissingInput(StreidError):
    """A step needs an input this run does not have; the message says which (``needs …``)."""


@dataclass(frozen=True)
class NotComputed:
    """A result that this run could not compute, with the reason (``needs …``)."""

    reason: str

    def __str__(self) -> str:
        return f"not computed ({self.reason})"


# --------------------------------------------------------------------------------------------------------------
# Data: splits and training metadata


def load_splits(cfg: StudyConfig):
    """The run's splits (:class:`streid_lib.metadata.DatasetSplits`): from the image folders, else query and
    gallery from the features file's metadata and train from :func:`training_metadata`."""
    root = dataset_root(cfg)
    if root is not None:
        return read_dataset_root(root)
    _, fs = main_features(cfg)
    naming = None if cfg.route.campus else cfg.dataset
    return DatasetSplits(training_metadata(cfg), fs.gallery, fs.query, root=None, naming=naming)


def splits_source(cfg: StudyConfig) -> str:
    """Where :func:`load_splits` reads the splits from, in words."""
    if cfg.route.has_images:
        return "the image folders (bounding_box_train, bounding_box_test, query)"
    key, _ = main_features(cfg)
    given = (f"the training side of {Path(cfg.feature_files[k]).name}" for k, _ in _given_with_train(cfg))
    train = (
        f"the training names in {Path(cfg.train_names).name}" if cfg.train_names else next(given, "no training images")
    )
    return f"the metadata of the features file {Path(cfg.feature_files[key]).name} and {train}"


def per_camera_counts(splits) -> Any:
    """Images per split and camera (a DataFrame: splits × cameras, plus totals and identities), as integers."""
    cams = sorted({int(c) for name in ("train", "gallery", "query") for c in np.unique(getattr(splits, name).cams)})
    rows = {}
    for name in ("train", "gallery", "query"):
        meta = getattr(splits, name)
        counts = np.bincount(meta.cams, minlength=max(cams) + 1)
        row = {f"cam {c}": int(counts[c]) for c in cams}
        row["images"] = len(meta)
        row["identities"] = int(np.unique(meta.pids[meta.pids > 0]).size)
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").astype("int64").rename_axis("split")


def example_entries(meta, n: int = 12, seed: int = 0) -> Any:
    """A few entries of a split as text (name, identity, camera, frame): the stand-in for crops without images."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(meta), size=min(n, len(meta)), replace=False))
    names = meta.names[idx] if meta.names is not None else ["(no name)"] * len(idx)
    return pd.DataFrame(
        {"name": [str(x) for x in names], "id": meta.pids[idx], "camera": meta.cams[idx], "frame": meta.frames[idx]},
        index=pd.Index(idx, name="entry"),
    )


def training_metadata(cfg: StudyConfig):
    """Training-image metadata for the ST model: ``train_names``, else the dataset folder's ``bounding_box_train``,
    else a given features file's training side; :class:`MissingInput` when there is none."""
    if cfg.train_names:
        naming = None if cfg.route.campus else cfg.dataset
        return read_name_list(cfg.train_names, naming, read_seq_lengths(Path(cfg.train_names).parent))
    root = dataset_root(cfg)
    if root is not None:
        return read_dataset_root(root).train
    for _key, fs in _given_with_train(cfg):
        return fs.train
    raise MissingInput(
        "the ST model needs training metadata: give train_names (a file of training image names), data_root, or a "
        "features file with a training side (train_f, train_label, train_cam, train_frames)"
    )


def _given_with_train(cfg: StudyConfig):
    """(key, FeatureSet) of the given features files that carry a training side, PCB first."""
    for key in sorted(cfg.feature_files, key=lambda k: k != "pcb"):
        fs = load_features(cfg.feature_files[key])
        if fs.has_train:
            yield key, fs


def fit_st_model(cfg: StudyConfig, **overrides: Any):
    """Fit the faithful HP model on the run's training metadata (:func:`streid_lib.st_model.fit_st_model`)."""
    return st_model.fit_st_model(training_metadata(cfg), cfg.dataset, **overrides)


def campus_truth(cfg: StudyConfig):
    """The campus' ground-truth transit densities (``None`` for a real dataset)."""
    return load_truth(dataset_root(cfg)) if cfg.route.campus else None


# --------------------------------------------------------------------------------------------------------------
# Visual streams


def missing_reason(cfg: StudyConfig, key: str) -> str:
    """Why ``key`` has no features in this run, as ``needs …``."""
    label = MODEL_LABELS.get(key, key)
    if key == "colour":
        return "needs the campus images (the colour histogram is computed on the campus only)"
    if cfg.route.name == "features folder":
        return f"needs {key}.npz or {key}.mat in the features folder"
    return f"needs {label} features: a features folder with {key}.npz, or a dataset folder to train on"


def visual_features(cfg: StudyConfig, key: str):
    """Features of one visual stream (``resnet50``, ``densenet121``, ``pcb``, ``pcb_re`` or ``colour``): a given file
    as it is, else cached in ``features/<key>.npz`` (training resumes from its checkpoint; stale caches are redone).
    """
    if key != "colour" and not cfg.route.trains:
        if key not in cfg.feature_files:
            raise MissingInput(missing_reason(cfg, key))
        fs = load_features(cfg.feature_files[key])
        _check_same_test_side(cfg, key, fs)
        return fs
    path = cfg.features_path(key)
    root = dataset_root(cfg)
    stale = False
    if path.is_file():
        cached = load_features(path)
        if root is None or (same_images(cached, root) and _same_training(cached, cfg, key)):
            if cached.has_train or key not in cfg.route.train_side:
                cached.provenance["trained_in_run"] = key in VISUAL_MODELS  # its rows' tolerance (evaluate_rows)
                return cached
            # Made without the training side this run needs: extracted again from the finished checkpoint.
        else:
            # The dataset or the training settings changed under the run directory: features and checkpoints
            # are stale and are made again from scratch.
            stale = True
    if root is None:
        raise MissingInput(missing_reason(cfg, key))
    if key == "colour":
        fs = colour_histogram_features(root)
    else:
        from ..visual.extract import extract_features
        from ..visual.train import train_model

        req = train_request(cfg, key)
        t0 = time.perf_counter()
        ckpt = train_model(
            TrainConfig(**req),
            data_root=root,
            out_dir=cfg.out / "checkpoints" / key,
            device=cfg.device,
            resume=not stale,
            label=key,
        )
        extract = ExtractConfig(
            model=req["model"], height=req["height"], width=req["width"], train=key in cfg.route.train_side
        )
        fs = extract_features(extract, checkpoint=ckpt, data_root=root, device=cfg.device, label=key)
        # The one line a notebook keeps of a training step (its bars go to the terminal: streid_lib._progress).
        history = json.loads((Path(ckpt).parent / "history.json").read_text())
        n, took = len(history), time.perf_counter() - t0
        acc = 100 * history[-1]["accuracy"]
        print(
            f"{cfg.model_label(key)}: {n} epoch{'s' * (n != 1)}, {took:.0f} s with extraction, "
            f"final training accuracy {acc:.1f} %"
        )
    save_features(path, fs)
    fs = load_features(path)
    fs.provenance["trained_in_run"] = key in VISUAL_MODELS
    return fs


def beyond_features(cfg: StudyConfig):
    """The features of notebooks 07-08 (:attr:`.config.Route.beyond`) with their training side where there is one:
    the colour histograms on the campus (the CPU CNNs are weak), else :func:`main_features`."""
    if cfg.route.beyond != "colour":
        return main_features(cfg)[1]
    return colour_histogram_features(dataset_root(cfg), train=True)


def main_features(cfg: StudyConfig) -> tuple[str, Any]:
    """The visual stream of Figure 4 and of the ST sweeps: PCB as in the paper, else the first one given."""
    return cfg.route.main, visual_features(cfg, cfg.route.main)


def _check_same_test_side(cfg: StudyConfig, key: str, fs) -> None:
    """Given features files must all describe the same query and gallery images (same ids, cameras, frames)."""
    ref_key = next(iter(sorted(cfg.feature_files, key=lambda k: k != "pcb")))
    if ref_key == key:
        return
    side = _differing_side(fs, load_features(cfg.feature_files[ref_key]), ("pids", "cams", "frames"))
    if side is not None:
        raise FeaturesError(
            f"{cfg.feature_files[key]}: its {side} side differs from {cfg.feature_files[ref_key]} "
            "(ids, cameras or frames): every features file of a run must describe the same images"
        )


def _differing_side(a, b, fields: tuple[str, ...]) -> str | None:
    """The first side (query, gallery) whose ``fields`` differ between ``a`` and ``b`` (features or splits), or None."""
    for side in ("query", "gallery"):
        x, y = getattr(a, side), getattr(b, side)
        if len(x) != len(y) or not all(np.array_equal(getattr(x, f), getattr(y, f)) for f in fields):
            return side
    return None


def train_request(cfg: StudyConfig, key: str) -> dict:
    """The training settings a visual model of this run is asked for (compared with a cache's provenance)."""
    arch, erasing = VISUAL_MODELS[key]
    t = replace(cfg.train, model=arch, erasing=erasing, seed=cfg.seed)
    h, w = t.input_size
    keys = ("model", "epochs", "erasing", "height", "width", "weights", "seed", "lr", "lr_backbone", "batch_size")
    return {k: {**asdict(t), "height": h, "width": w}[k] for k in keys}


def _same_training(fs, cfg: StudyConfig, key: str) -> bool:
    """Whether cached features were made by a model trained with this run's settings."""
    if key not in VISUAL_MODELS:
        return True
    done = fs.provenance.get("training_config", {})
    return same_kernels(fs, cfg) and all(done.get(k) == v for k, v in train_request(cfg, key).items())


def same_kernels(fs, cfg: StudyConfig) -> bool:
    """Whether features made on the CPU were made with the kernels this run uses: the portable ones
    (``"DEFAULT, <threads> threads"``, :func:`~streid_lib.visual.config.use_portable_cpu`, §13.13) when its profile
    asks for them and this process runs them; features made on a GPU, or a run without portable kernels, accept any."""
    if fs.provenance.get("device") != "cpu" or not cfg.cpu_threads or not portable_environment():
        return True
    return fs.provenance.get("cpu_kernels") == f"DEFAULT, {cfg.cpu_threads} threads"


def same_images(fs, root: Path) -> bool:
    """Whether a cached features file describes exactly the query and gallery images of ``root``."""
    return _differing_side(fs, read_dataset_root(root), ("names", "frames", "pids")) is None


# --------------------------------------------------------------------------------------------------------------
# Rows and sweeps


def evaluate_rows(fs, model, rows=None, rerank: bool = False, **metric_params: Any) -> dict:
    """``{row: summary}`` for one features set and ST model (faithful joint metric with ``metric_params``): the
    metrics in percent carrying their per-query results, with the training tolerance of a CNN trained in the run."""
    metric = JointMetric(**metric_params)
    results = rank_rows(fs, model, metric, tuple(rows or ROWS), threads=default_threads())
    if rerank:
        results.update(rerank_rows(fs, model, metric))
    ids, tol = fs.query.pids, TRAINED_TOLERANCE if fs.provenance.get("trained_in_run") else 0.0
    return {k: RowSummary(r.summary(), PerQuery.from_result(r, ids, tol)) for k, r in results.items()}


def model_rows(cfg: StudyConfig, key: str, model, rows: Sequence[str], rerank: bool = False) -> dict[str, Any]:
    """``{row: summary}`` of one visual stream (with ``rerank``: ``VIS+re-rank`` and ``st-ReID+re-rank`` too), or
    ``{row: NotComputed}`` for every row when it has no features."""
    try:
        fs = visual_features(cfg, key)
    except MissingInput as exc:
        names = list(rows) + (["VIS+re-rank", "st-ReID+re-rank"] if rerank else [])
        return dict.fromkeys(names, NotComputed(str(exc)))
    return evaluate_rows(fs, model, rows=tuple(rows), rerank=rerank)


def sweep_metric(fs, model, name: str, values: Sequence[float]) -> Any:
    """st-ReID metrics while one joint-metric parameter varies (Figure 4 c/d), with 95 % intervals (``R1_lo`` …);
    ``name``: ``lambda0``, ``lambda1``, ``gamma0``, ``gamma1`` or ``gamma`` (both γ, the authors' ``--alpha``)."""
    recs, per_query = [], []
    for v in values:
        params = dict.fromkeys(("gamma0", "gamma1") if name == "gamma" else (name,), float(v))
        summary = evaluate_rows(fs, model, rows=("st-ReID",), **params)["st-ReID"]
        bounds = {f"{m}_{end}": x for m in ("R1", "mAP") for end, x in zip(("lo", "hi"), row_interval(summary, m))}
        recs.append({name: float(v), **summary, **bounds})
        per_query.append(summary.per_query)
    df = pd.DataFrame(recs)
    df.attrs["per_query"] = per_query  # for the paired comparisons of the sweep's claims
    return df


def st_sensitivity(cfg: StudyConfig, fs) -> Any:
    """Effect of the Parzen width σ (bins, at 100-frame bins) and of the bin width (σ held at 5,000 frames) on the HP
    estimate and on st-ReID, sized by ``cfg.sizes``, over the faithful layout's span. Columns: sweep, bin_width,
    sigma, sigma_frames, TV (to the truth, pair-weighted; campus only), R1 and mAP of st-ReID (percent)."""
    train = training_metadata(cfg)
    truth = campus_truth(cfg)
    span = st_model.DATASET_N_BINS[cfg.dataset] * 100  # frames covered by the faithful layout
    grid = [("sigma", 100, float(s)) for s in cfg.sizes.sigmas]
    grid += [("bin width", int(w), 5000.0 / w) for w in cfg.sizes.bin_widths]
    recs = []
    for sweep_name, bw, sigma in grid:
        model = st_model.fit_st_model(train, cfg.dataset, bin_width=bw, n_bins=int(np.ceil(span / bw)), sigma=sigma)
        rec = {"sweep": sweep_name, "bin_width": bw, "sigma": sigma, "sigma_frames": sigma * bw}
        if truth is not None:
            rec["TV"] = mean_hp_distance(model, truth)
        summary = evaluate_rows(fs, model, rows=("st-ReID",))["st-ReID"]
        rec.update(R1=summary["R1"], mAP=summary["mAP"])
        recs.append(rec)
    return pd.DataFrame(recs)


# --------------------------------------------------------------------------------------------------------------
# Figure 1: ranked lists


@dataclass(frozen=True)
class RankedExamples:
    """A few queries (n,) and the top of their rankings per method: gallery indices (n, top), best first, junk
    removed; their scores; and the selection rule in words (the paper's Figure 1)."""

    queries: np.ndarray
    lists: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    rule: str


def ranked_examples(fs, model, n_queries: int = 3, top: int = 8, seed: int = 0) -> RankedExamples:
    """Queries whose rank-1 is wrong with VIS and right with st-ReID (any queries when none is), with their top
    lists under :class:`streid_lib.metrics.RankingProtocol`, as in every table."""
    methods = ("VIS", "st-ReID")
    results = rank_rows(fs, model, DEFAULT_METRIC, rows=methods)
    hit = {m: results[m].first_hit == 0 for m in methods}
    fixed = np.flatnonzero(~hit["VIS"] & hit["st-ReID"])
    rng = np.random.default_rng(seed)
    nq = len(fs.query)
    if len(fixed):
        chosen = rng.choice(fixed, size=min(n_queries, len(fixed)), replace=False)
        rule = (
            f"{len(chosen)} queries drawn at random (seed {seed}) among the {len(fixed)} of {nq} whose rank-1 "
            "gallery image is another identity with VIS alone and the true identity with st-ReID"
        )
    else:
        chosen = rng.choice(nq, size=min(n_queries, nq), replace=False)
        rule = (
            f"no query of {nq} has a wrong VIS rank-1 and a right st-ReID rank-1, so {len(chosen)} queries are "
            f"drawn at random (seed {seed})"
        )
    chosen = np.sort(chosen)
    protocol = RankingProtocol(fs.gallery)
    cols = protocol.columns
    q, g = fs.query.take(chosen), fs.gallery.take(cols)
    s = cosine_similarity(fs.query_f[chosen], fs.gallery_f[cols])
    p = model.probability(q.cams[:, None], q.frames[:, None], g.cams[None, :], g.frames[None, :])
    scores = score_rows(s, p, DEFAULT_METRIC, rows=methods)
    junks = protocol.chunk(q).junks
    lists, tops = {}, {}
    for m in methods:
        sc = np.array(scores[m], dtype=np.float64)
        for i, junk in enumerate(junks):
            sc[i, junk] = -np.inf
        order = np.argsort(-sc, axis=1, kind="stable")[:, :top]  # ties: gallery order, as the metrics
        lists[m] = cols[order]
        tops[m] = np.take_along_axis(sc, order, axis=1)
    return RankedExamples(chosen, lists, tops, rule)


def ranked_text(fs, ex: RankedExamples) -> Any:
    """Figure 1 as text: one block per query, one column per method; a cell is ``✓ id 12 · cam 3 · f 10234 · 0.812``
    (✓ a true match, ✗ another identity, · a distractor), then the method's score."""
    marks = {True: "✓", False: "✗"}
    blocks = {}
    for pos, qi in enumerate(ex.queries):
        qid, qcam, qframe = int(fs.query.pids[qi]), int(fs.query.cams[qi]), int(fs.query.frames[qi])
        cells = {}
        for m, lists in ex.lists.items():
            gi = lists[pos]
            gid, cams, frames = fs.gallery.pids[gi], fs.gallery.cams[gi], fs.gallery.frames[gi]
            cells[m] = [
                f"{'·' if g == 0 else marks[bool(g == qid)]} id {g} · cam {c} · f {f} · {score:.3f}"
                for g, c, f, score in zip(gid.tolist(), cams.tolist(), frames.tolist(), ex.scores[m][pos].tolist())
            ]
        blocks[f"query {int(qi)}: id {qid}, cam {qcam}, f {qframe}"] = pd.DataFrame(
            cells, index=pd.RangeIndex(1, len(gi) + 1, name="rank")
        )
    return pd.concat(blocks, names=["query", "rank"])


def features_summary(cfg: StudyConfig) -> Any:
    """One line per visual stream of the run: where its features come from (loaded, trained first where needed, or
    what they need), their dimension and sizes."""
    recs = {}
    for key in cfg.route.streams:
        try:
            fs = visual_features(cfg, key)
        except MissingInput as exc:
            recs[cfg.model_label(key)] = {"source": f"not computed ({exc})", "D": None}
            continue
        if key in cfg.feature_files:
            source = f"features file {Path(cfg.feature_files[key]).name}"
        else:
            source = "computed from the images" if key == "colour" else "trained in this run"
        train = len(fs.train) if fs.has_train else None
        sizes = {"D": fs.dim, "query": len(fs.query), "gallery": len(fs.gallery), "train": train}
        recs[cfg.model_label(key)] = {"source": source, **sizes}
    df = pd.DataFrame.from_dict(recs, orient="index").reindex(columns=["source", "D", "query", "gallery", "train"])
    return df.astype(dict.fromkeys(["D", "query", "gallery", "train"], "Int64")).rename_axis("visual stream")
