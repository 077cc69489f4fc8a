"""The study's glue: profiles, run directories, provenance, tables and quoted paper numbers.

The notebooks stay thin: a parameters cell, then calls into this module (and the library modules it
names), a figure or table, and a sentence of interpretation. Everything a notebook computes is
computed by a tested library function; everything it writes goes through :func:`write_table` or
:func:`save_figure`, which put a provenance record beside the output.

Profiles (``profile`` notebook parameter):

* ``smoke``: the ``tiny`` campus, tiny inputs and one epoch; chosen automatically when the
  environment variable ``CI`` is set (as Pyro/GPyTorch notebooks shrink themselves under CI).
* ``default``: the ``small`` campus on a CPU, short training from scratch at a small input size.
* ``paper``: the paper's settings (60 epochs, 384×192 PCB, ImageNet weights) for a GPU and a real
  dataset (``dataset="market"``/``"duke"`` with ``data_root``) or a features file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_path, write_json_atomic, write_text_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("smoke", "default", "paper")

#: The visual models of the study, keyed as in the tables: (architecture, random-erasing probability).
VISUAL_MODELS: dict[str, tuple[str, float]] = {
    "resnet50": ("resnet50", 0.0),
    "densenet121": ("densenet121", 0.0),
    "pcb": ("pcb", 0.0),
    "pcb_re": ("pcb", 0.5),
}


@dataclass(frozen=True)
class TrainSettings:
    """How the visual baselines are trained under a profile (units: epochs, pixels, images)."""

    epochs: int
    height_pcb: int
    width_pcb: int
    height: int
    width: int
    batch_size: int = 32
    weights: str = "imagenet"
    #: Learning rates of the new layers and of the backbone (reference: 0.1 / 0.01 with ImageNet weights).
    #: From scratch on the small campus the reference rates diverge, so the CPU profiles use 0.01 for both.
    lr: float = 0.1
    lr_backbone: float = 0.01


@dataclass(frozen=True)
class StudyConfig:
    """Resolved notebook parameters: every choice a run makes, recorded in its provenance."""

    profile: str
    dataset: str  # campus | market | duke
    data_root: str | None
    features: str | None  # a features file to use instead of training (PCB row)
    device: str
    out_dir: str
    figures_dir: str
    seed: int
    campus_preset: str
    train: TrainSettings
    models: tuple[str, ...] = tuple(VISUAL_MODELS)
    extra: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.out_dir)

    @property
    def naming_dataset(self) -> str:
        """Dataset key for the ST-model defaults (bins) and the known split sizes."""
        return self.dataset

    def features_path(self, model_key: str) -> Path:
        """Where the features file of one visual model lives in this run (``.npz``)."""
        return self.out / "features" / f"{model_key}.npz"


_PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "smoke": {
        "campus_preset": "tiny",
        "train": TrainSettings(
            epochs=1,
            height_pcb=64,
            width_pcb=32,
            height=64,
            width=32,
            batch_size=16,
            weights="none",
            lr=0.01,
            lr_backbone=0.01,
        ),
    },
    "default": {
        "campus_preset": "small",
        # Sized for ≈10 minutes of the whole study on 2 CPU cores. PCB at 64×32 has a 4×2 layer4 map, so its six
        # adaptive-pooling stripes overlap (the paper's 384×192 gives 24 rows, 4 per stripe).
        "train": TrainSettings(
            epochs=2,
            height_pcb=64,
            width_pcb=32,
            height=64,
            width=32,
            batch_size=32,
            weights="none",
            lr=0.01,
            lr_backbone=0.01,
        ),
    },
    "paper": {
        "campus_preset": "large",
        "train": TrainSettings(epochs=60, height_pcb=384, width_pcb=192, height=256, width=128, batch_size=32),
    },
}


def resolve_config(
    profile: str | None = None,
    dataset: str = "campus",
    data_root: str | None = None,
    features: str | None = None,
    device: str = "auto",
    epochs: int | None = None,
    out_dir: str | None = None,
    figures_dir: str | None = None,
    seed: int = 0,
    **extra: Any,
) -> StudyConfig:
    """Turn the notebook parameters into a :class:`StudyConfig`.

    ``profile=None`` means ``smoke`` when the environment variable ``CI`` is set, else ``default``.
    ``out_dir`` defaults to ``runs/<profile>``; ``figures_dir`` to the repository's ``figures/`` for
    the default and paper profiles and to ``<out_dir>/figures`` for smoke (so CI leaves the tree clean).
    """
    if profile in (None, ""):
        profile = "smoke" if "CI" in os.environ else "default"
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {PROFILES}, got {profile!r}")
    if dataset not in ("campus", "market", "duke"):
        raise ValueError(f"dataset: expected 'campus', 'market' or 'duke', got {dataset!r}")
    if dataset != "campus" and data_root is None and features is None:
        raise ValueError(f"dataset={dataset!r} needs data_root (a dataset folder) or features (a features file)")
    d = _PROFILE_DEFAULTS[profile]
    train: TrainSettings = d["train"]
    if epochs is not None:
        train = replace(train, epochs=int(epochs))
    out = Path(out_dir) if out_dir else REPO_ROOT / "runs" / profile
    figs = Path(figures_dir) if figures_dir else (out / "figures" if profile == "smoke" else REPO_ROOT / "figures")
    return StudyConfig(
        profile=profile,
        dataset=dataset,
        data_root=data_root,
        features=features,
        device=device,
        out_dir=str(out),
        figures_dir=str(figs),
        seed=int(seed),
        campus_preset=str(extra.pop("campus_preset", d["campus_preset"])),
        train=train,
        extra=extra,
    )


def dataset_root(cfg: StudyConfig) -> Path | None:
    """The dataset folder of this run; the campus is generated (once, seeded) when missing.

    Returns ``None`` when the run works from a features file only.
    """
    if cfg.dataset != "campus":
        return Path(cfg.data_root) if cfg.data_root else None
    root = Path(cfg.data_root) if cfg.data_root else REPO_ROOT / "data" / f"campus-{cfg.campus_preset}-seed{cfg.seed}"
    if not _campus_is_current(root, cfg):
        from .campus import generate_campus

        generate_campus(root, preset=cfg.campus_preset, seed=cfg.seed)
    return root


def _campus_is_current(root: Path, cfg: StudyConfig) -> bool:
    """True when ``root`` holds a finished campus made with today's configuration of its preset and seed."""
    import dataclasses

    from .campus import INFO_FILE, resolve_config

    info = root / INFO_FILE
    if not (root / "manifest.csv").is_file() or not info.is_file():
        return False
    if cfg.data_root:  # a campus the user pointed at is used as it is
        return True
    rec = json.loads(info.read_text())
    want = json.loads(json.dumps(dataclasses.asdict(resolve_config(cfg.campus_preset)), default=str))
    return rec.get("config") == want and rec.get("seed") == cfg.seed and rec.get("images", True)


# --------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------


def git_commit() -> str:
    """The commit of the code that made an output (with ``+dirty`` when the tree has changes)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # The outputs themselves (figures/) do not make the code dirty.
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(cfg: StudyConfig, **details: Any) -> dict:
    """A provenance record: dataset, features source, parameters, commit, date, machine."""
    import numpy

    rec = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "profile": cfg.profile,
        "dataset": cfg.dataset,
        "data_root": cfg.data_root or (f"campus preset {cfg.campus_preset!r}" if cfg.dataset == "campus" else None),
        "features_file": cfg.features,
        "seed": cfg.seed,
        "train_settings": asdict(cfg.train),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
    }
    rec.update(details)
    return rec


def _provenance_header(rec: dict) -> str:
    lines = ["<!-- provenance"]
    lines += [f"{k}: {json.dumps(v, default=str)}" for k, v in rec.items()]
    lines.append("-->")
    return "\n".join(lines)


def write_table(df: Any, name: str, cfg: StudyConfig, title: str = "", **details: Any) -> Path:
    """Write a table as CSV and Markdown, each with a provenance header, into ``figures_dir``.

    Returns the Markdown path. A column ``source`` (``"computed"`` or ``"quoted: …"``) should say
    where every row's numbers came from.
    """
    rec = provenance(cfg, table=name, **details)
    out = Path(cfg.figures_dir)
    csv_head = "".join(f"# {k}: {json.dumps(v, default=str)}\n" for k, v in rec.items())
    write_text_atomic(out / f"{name}.csv", csv_head + df.to_csv(index=True, float_format="%.1f"))
    md = df.to_markdown(floatfmt=".1f") if _has_tabulate() else _markdown(df)
    write_text_atomic(
        out / f"{name}.md", _provenance_header(rec) + "\n\n" + (f"**{title}**\n\n" if title else "") + md + "\n"
    )
    return out / f"{name}.md"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _markdown(df: Any) -> str:
    """A plain Markdown table (pandas' to_markdown needs the optional tabulate package)."""
    cols = [str(df.index.name or "")] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        cells = [str(idx)] + [
            f"{v:.1f}"
            if isinstance(v, (float, np.floating)) and np.isfinite(v)
            else ("-" if isinstance(v, (float, np.floating)) else str(v))
            for v in row.tolist()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_figure(fig: Any, name: str, cfg: StudyConfig, **details: Any) -> Path:
    """Save a matplotlib figure as PNG and SVG, with ``<name>.provenance.json`` beside them."""
    out = Path(cfg.figures_dir)
    for ext in ("png", "svg"):
        with atomic_path(out / f"{name}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=110, bbox_inches="tight")
    write_json_atomic(out / f"{name}.provenance.json", provenance(cfg, figure=name, **details))
    return out / f"{name}.png"


# --------------------------------------------------------------------------------------------
# Numbers quoted from the paper (Wang et al., AAAI 2019). Never computed here: labelled "quoted".
# --------------------------------------------------------------------------------------------

PAPER_SOURCE = "quoted: Wang et al., AAAI 2019"
_COLS = ("R1", "R5", "R10", "mAP")
_nan = float("nan")

#: Table 1 (Market-1501) and Table 2 (DukeMTMC-reID) rows: R1, R5, R10, mAP (percent; NaN = "-").
PAPER_TABLE1 = {
    "BoW+kissme": (44.4, 63.9, 72.2, 20.8),
    "KLFDA": (46.5, 71.1, 79.9, _nan),
    "Null Space": (55.4, _nan, _nan, 29.9),
    "WARCA": (45.2, 68.1, 76.0, _nan),
    "PAN": (82.8, _nan, _nan, 63.4),
    "SVDNet": (82.3, 92.3, 95.2, 62.1),
    "HA-CNN": (91.2, _nan, _nan, 75.7),
    "SSDAL": (39.4, _nan, _nan, 19.6),
    "APR": (84.3, 93.2, 95.2, 64.7),
    "Human Parsing": (93.9, 98.8, 99.5, _nan),
    "Mask-guided": (83.79, _nan, _nan, 74.3),
    "Background": (81.2, 94.6, 97.0, _nan),
    "PDC": (84.1, 92.7, 94.9, 63.4),
    "PSE+ECN": (90.3, _nan, _nan, 84.0),
    "MultiScale": (88.9, _nan, _nan, 73.1),
    "Spindle Net": (76.9, 91.5, 94.6, _nan),
    "Latent Parts": (80.3, _nan, _nan, 57.5),
    "Part-Aligned": (81.0, 92.0, 94.7, 63.4),
    "PCB(*)": (91.2, 97.0, 98.2, 75.8),
    "TFusion-sup": (73.1, 86.4, 90.5, _nan),
    "st-ReID": (97.2, 99.3, 99.5, 86.7),
    "st-ReID+RE": (98.1, 99.3, 99.6, 87.6),
    "st-ReID+RE+re-rank": (98.0, 98.9, 99.1, 95.5),
}
PAPER_TABLE2 = {
    "BoW+kissme": (25.1, _nan, _nan, 12.2),
    "LOMO+XQDA": (30.8, _nan, _nan, 17.0),
    "PAN": (71.6, _nan, _nan, 51.5),
    "SVDNet": (76.7, _nan, _nan, 56.8),
    "HA-CNN": (80.5, _nan, _nan, 63.8),
    "APR": (70.7, _nan, _nan, 51.9),
    "Human Parsing": (84.4, 91.9, 93.7, 71.0),
    "PSE+ECN": (85.2, _nan, _nan, 79.8),
    "MultiScale": (79.2, _nan, _nan, 60.6),
    "PCB(*)": (83.8, 91.7, 94.4, 69.4),
    "st-ReID": (94.0, 97.0, 97.8, 82.8),
    "st-ReID+RE": (94.4, 97.4, 98.2, 83.9),
    "st-ReID+RE+re-rank": (94.5, 96.8, 97.1, 92.7),
}
#: Table 3 (DukeMTMC-reID): visual baselines with and without the ST stream.
PAPER_TABLE3 = {
    "ResNet50 baseline": (76.9, 87.8, 91.0, 58.7),
    "ResNet50+ST": (87.7, 94.1, 95.8, 72.2),
    "DenseNet121 baseline": (79.3, 89.9, 92.6, 63.3),
    "DenseNet121+ST": (90.8, 95.2, 96.5, 76.9),
    "PCB(*)": (83.8, 91.7, 94.4, 69.4),
    "PCB+ST": (94.0, 97.0, 97.8, 82.8),
}
#: Figure 4 rank-1 values stated in the paper's text (DukeMTMC-reID, the paper's Ablation Studies section).
PAPER_FIGURE4_TEXT = {
    "ST only (Fig. 4a)": 5.5,
    "VIS only (Fig. 4a)": 83.8,
    "VIS+ST, st-ReID (Fig. 4a)": 94.0,
    "Eqn. 5 product (Fig. 4b)": 86.9,
    "logistic smoothing (Fig. 4b)": 94.0,
}


def paper_table(rows: dict[str, tuple[float, ...]], names: list[str] | None = None) -> Any:
    """The quoted paper rows as a DataFrame (columns R1 R5 R10 mAP, plus ``source``)."""
    import pandas as pd

    names = list(rows) if names is None else names
    df = pd.DataFrame([rows[n] for n in names], index=names, columns=list(_COLS))
    df["source"] = PAPER_SOURCE
    return df


def results_frame(rows: dict[str, dict], columns: tuple[str, ...] = ("R1", "R5", "R10", "mAP")) -> Any:
    """Computed rows (``{row: summary}``) as a DataFrame labelled ``source = "computed"``."""
    import pandas as pd

    df = pd.DataFrame({k: {c: v[c] for c in columns} for k, v in rows.items()}).T
    df["source"] = "computed (this run)"
    return df


# --------------------------------------------------------------------------------------------
# The study's steps (each notebook calls one or two of these)
# --------------------------------------------------------------------------------------------


def load_splits(cfg: StudyConfig):
    """Metadata of the run's dataset (``None`` when only a features file is given)."""
    from .metadata import read_dataset_root

    root = dataset_root(cfg)
    return None if root is None else read_dataset_root(root)


def per_camera_counts(splits) -> Any:
    """Images per split and camera (a DataFrame: splits × cameras, plus totals and identities)."""
    import pandas as pd

    out = {}
    for name in ("train", "gallery", "query"):
        meta = getattr(splits, name)
        cams, counts = np.unique(meta.cams, return_counts=True)
        row = {f"cam {c}": int(n) for c, n in zip(cams, counts)}
        row["images"] = len(meta)
        row["identities"] = int(np.unique(meta.pids[meta.pids > 0]).size)
        out[name] = row
    df = pd.DataFrame(out).T.fillna(0).astype(int)
    df.index.name = "split"
    return df


def training_metadata(cfg: StudyConfig):
    """Training-image metadata for the ST model: the dataset's ``bounding_box_train`` or ``train_names``."""
    from .metadata import read_name_list

    names = cfg.extra.get("train_names")
    if names:
        return read_name_list(names)
    splits = load_splits(cfg)
    if splits is None:
        raise ValueError("the ST model needs training names: give data_root or train_names")
    return splits.train


def st_params(cfg: StudyConfig, **overrides: Any) -> dict:
    """ST-model parameters for the run's dataset (faithful defaults; the campus' own bins)."""
    from .st_model import DATASET_N_BINS

    params = {"n_bins": DATASET_N_BINS[cfg.dataset]}
    params.update(overrides)
    return params


def fit_st_model(cfg: StudyConfig, **overrides: Any):
    """Fit the faithful HP model on the run's training metadata (:func:`streid_lib.st_model.fit_st_model`)."""
    from .st_model import fit_st_model as fit

    return fit(training_metadata(cfg), cfg.dataset, **overrides)


def visual_features(cfg: StudyConfig, key: str, force: bool = False, progress: bool = True):
    """Features of one visual model (``resnet50``, ``densenet121``, ``pcb``, ``pcb_re`` or ``colour``).

    Cached in the run directory (``features/<key>.npz``): a rerun, or a run resumed after an
    interruption, reuses finished features, and training resumes from its last checkpoint. When the
    run was given a features file (``cfg.features``), it stands for the PCB rows and nothing is trained.
    """
    from .features import load_features, save_features

    path = cfg.features_path(key)
    if cfg.features and key in ("pcb", "pcb_re"):
        return load_features(cfg.features)
    root = dataset_root(cfg)
    stale = False
    if path.is_file() and not force:
        cached = load_features(path)
        if root is None or (_same_images(cached, root) and _same_training(cached, cfg, key)):
            return cached
        # The dataset or the training settings changed under the run directory: features and checkpoints
        # are stale and are made again from scratch.
        stale = True
    if root is None:
        raise ValueError(f"features for {key!r}: no dataset folder and no features file were given")
    if key == "colour":
        from .colour_histogram import colour_histogram_features

        fs = colour_histogram_features(root)
    else:
        from .visual import ExtractConfig, TrainConfig, extract_features, train_model

        req = _train_request(cfg, key)
        ckpt = train_model(
            TrainConfig(**req),
            data_root=root,
            out_dir=cfg.out / "checkpoints" / key,
            device=cfg.device,
            resume=not (stale or force),
            progress=progress,
            label=key,
        )
        # The training side only where a notebook uses it: PCB's, for improved mode's calibration.
        extract = ExtractConfig(model=req["model"], height=req["height"], width=req["width"], train=key == "pcb")
        fs = extract_features(extract, checkpoint=ckpt, data_root=root, device=cfg.device, progress=progress, label=key)
    save_features(path, fs)
    return load_features(path)


def _train_request(cfg: StudyConfig, key: str) -> dict:
    """The training settings a visual model of this run is asked for (compared with a cache's provenance)."""
    arch, erasing = VISUAL_MODELS[key]
    t = cfg.train
    h, w = (t.height_pcb, t.width_pcb) if arch == "pcb" else (t.height, t.width)
    return {
        "model": arch,
        "epochs": t.epochs,
        "erasing": erasing,
        "height": h,
        "width": w,
        "weights": t.weights,
        "seed": cfg.seed,
        "lr": t.lr,
        "lr_backbone": t.lr_backbone,
        "batch_size": t.batch_size,
    }


def _same_training(fs, cfg: StudyConfig, key: str) -> bool:
    """Whether cached features were made by a model trained with this run's settings."""
    if key not in VISUAL_MODELS:
        return True
    done = fs.provenance.get("training_config", {})
    return all(done.get(k) == v for k, v in _train_request(cfg, key).items())


def _same_images(fs, root: Path) -> bool:
    """Whether a cached features file describes exactly the query and gallery images of ``root``."""
    from .metadata import read_dataset_root

    splits = read_dataset_root(root)
    for side in ("query", "gallery"):
        a, b = getattr(fs, side), getattr(splits, side)
        if a.names is None or len(a) != len(b) or not np.array_equal(a.names.astype(str), b.names.astype(str)):
            return False
        if not (np.array_equal(a.frames, b.frames) and np.array_equal(a.pids, b.pids)):
            return False
    return True


def evaluate_rows(
    fs, model, rows=None, rerank: bool = False, mode: str = "faithful", train=None, **metric_params: Any
) -> dict:
    """``{row: summary}`` for one features set and ST model (faithful joint metric; ``mode="improved"``
    adds the improved rows, fitted on ``train`` metadata only)."""
    from .evaluation import evaluate_features
    from .joint import ROWS, JointMetric

    res = evaluate_features(
        fs, model, JointMetric(**metric_params), rows=rows or ROWS, rerank=rerank, mode=mode, train=train
    )
    return res["rows"]


def best_of(df: Any, metrics: Sequence[str] = ("R1", "mAP")) -> str:
    """A sentence naming the best row of a results table for each metric (computed, for notebooks)."""
    return "; ".join(f"best {m}: {df[m].idxmax()} ({df[m].max():.1f})" for m in metrics)


def sweep_metric(fs, model, name: str, values: Sequence[float], base: dict | None = None) -> Any:
    """st-ReID metrics while one joint-metric parameter varies (Figure 4 c/d).

    ``name`` is ``lambda0``, ``lambda1``, ``gamma0``, ``gamma1`` or ``gamma`` (both γ, as the
    authors' single ``--alpha``).
    """
    import pandas as pd

    recs = []
    for v in values:
        params = dict(base or {})
        if name == "gamma":
            params.update(gamma0=float(v), gamma1=float(v))
        else:
            params[name] = float(v)
        summary = evaluate_rows(fs, model, rows=("st-ReID",), **params)["st-ReID"]
        recs.append({name: float(v), **summary})
    return pd.DataFrame(recs)


def ranked_examples(fs, model, n_queries: int = 3, top: int = 8, seed: int = 0) -> tuple[list[int], dict]:
    """Queries whose rank-1 VIS gets wrong and st-ReID gets right (or any, when none), with top lists.

    Returns ``(query_indices, {"VIS": (n, top) gallery indices, "VIS+ST": ...})``.
    """
    from .joint import JointMetric, cosine_similarity

    s = cosine_similarity(fs.query_f, fs.gallery_f)
    q, g = fs.query, fs.gallery
    p = model.probability(q.cams[:, None], q.frames[:, None], g.cams[None, :], g.frames[None, :])
    joint = JointMetric()(s, p)
    valid = (g.pids[None, :] != -1) & ~((g.pids[None, :] == q.pids[:, None]) & (g.cams[None, :] == q.cams[:, None]))
    masked = {name: np.where(valid, sc, -np.inf) for name, sc in (("VIS", s), ("VIS+ST", joint))}
    # Rank-1 of every query needs only an argmax; full (stable) orderings only for the few shown.
    hit = {k: g.pids[np.argmax(v, axis=1)] == q.pids for k, v in masked.items()}
    fixed = np.flatnonzero(~hit["VIS"] & hit["VIS+ST"])
    rng = np.random.default_rng(seed)
    pool = fixed if len(fixed) >= n_queries else np.arange(len(q))
    chosen = sorted(rng.choice(pool, size=min(n_queries, len(pool)), replace=False).tolist())
    return chosen, {k: np.argsort(-v[chosen], axis=1, kind="stable")[:, :top] for k, v in masked.items()}


def side_by_side(ours: dict[str, dict], paper: dict[str, tuple], paper_label: str) -> Any:
    """Our computed rows next to the paper's quoted rows for the same methods.

    Columns: ``R1 R5 R10 mAP`` (computed in this run) and ``paper R1 … paper mAP`` (quoted from
    ``paper_label``); rows the paper has but we do not compute are appended, quoted only.
    """
    import pandas as pd

    mine = pd.DataFrame({k: {c: v[c] for c in _COLS} for k, v in ours.items()}).T
    theirs = pd.DataFrame(paper, index=list(_COLS)).T.add_prefix("paper ")
    df = mine.join(theirs, how="outer").loc[list(ours) + [k for k in paper if k not in ours]]
    df["source"] = [
        f"computed (this run); paper column {PAPER_SOURCE.split(': ', 1)[1]}, {paper_label}"
        if k in ours
        else f"{PAPER_SOURCE}, {paper_label}"
        for k in df.index
    ]
    df.index.name = "method"
    return df


def tables_1_2_rows(cfg: StudyConfig, model) -> dict[str, dict]:
    """Our rows of Tables 1-2: PCB(*), st-ReID, st-ReID+RE, st-ReID+RE+re-rank."""
    pcb, pcb_re = visual_features(cfg, "pcb"), visual_features(cfg, "pcb_re")
    plain = evaluate_rows(pcb, model, rows=("VIS", "st-ReID"))
    with_re = evaluate_rows(pcb_re, model, rows=("st-ReID",), rerank=True)
    return {
        "PCB(*)": plain["VIS"],
        "st-ReID": plain["st-ReID"],
        "st-ReID+RE": with_re["st-ReID"],
        "st-ReID+RE+re-rank": with_re["st-ReID+re-rank"],
    }


def table_3_rows(cfg: StudyConfig, model) -> dict[str, dict]:
    """Our rows of Table 3: each visual baseline without and with the ST stream."""
    out = {}
    for key, label in (("resnet50", "ResNet50"), ("densenet121", "DenseNet121"), ("pcb", "PCB")):
        rows = evaluate_rows(visual_features(cfg, key), model, rows=("VIS", "st-ReID"))
        out["PCB(*)" if key == "pcb" else f"{label} baseline"] = rows["VIS"]
        out[f"{label}+ST"] = rows["st-ReID"]
    return out


def campus_truth(cfg: StudyConfig):
    """The campus' ground-truth transit densities (``None`` for a real dataset)."""
    if cfg.dataset != "campus":
        return None
    from .campus import load_truth

    return load_truth(dataset_root(cfg))


def st_sensitivity(
    cfg: StudyConfig,
    fs,
    sigmas: Sequence[float] = (0, 5, 10, 25, 50, 100, 200),
    bin_widths: Sequence[int] = (20, 50, 100, 200, 400),
) -> Any:
    """Effect of the Parzen width σ and of the bin width on the HP estimate and on st-ReID.

    Two one-dimensional sweeps around the faithful layout (100-frame bins, σ = 50 bins):
    σ in bins at 100-frame bins; and the bin width with σ held at 5,000 frames (so only the
    histogram's resolution changes). The time span covered stays that of the faithful layout.
    Columns: sweep, bin_width (frames), sigma (bins), sigma_frames, TV (mean total-variation distance
    to the truth, weighted by pair frequency; campus only), R1 and mAP of st-ReID (percent).
    """
    import pandas as pd

    from .st_model import SpatialTemporalModel

    train = training_metadata(cfg)
    truth = campus_truth(cfg)
    base = st_params(cfg)
    span = base["n_bins"] * 100  # frames covered by the faithful layout
    grid = [("sigma", 100, float(s)) for s in sigmas] + [("bin width", int(w), 5000.0 / w) for w in bin_widths]
    recs = []
    for sweep_name, bw, sigma in grid:
        model = SpatialTemporalModel(bin_width=bw, n_bins=int(np.ceil(span / bw)), sigma=sigma).fit(train)
        rec = {"sweep": sweep_name, "bin_width": bw, "sigma": sigma, "sigma_frames": sigma * bw}
        if truth is not None:
            from .campus import mean_hp_distance

            rec["TV"] = mean_hp_distance(model, truth)
        summary = evaluate_rows(fs, model, rows=("st-ReID",))["st-ReID"]
        rec.update(R1=summary["R1"], mAP=summary["mAP"])
        recs.append(rec)
    return pd.DataFrame(recs)
