"""What training bought: each CNN trained in a run beside the same network at its initial weights (issue #22).

The untrained network is built and seeded as :func:`streid_lib.visual.train.train_model` builds it, with no training
step; both rank the same queries, so the gain gets a paired 95 % interval over query identities.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .._io import atomic_path
from ..features import load_features, save_features
from ..uncertainty import HELD, INCONCLUSIVE, NOT_HELD, TRAINED_TOLERANCE, combine, difference
from .config import VISUAL_MODELS, StudyConfig, dataset_root
from .outputs import say, write_table
from .steps import NotComputed, evaluate_rows, same_images, same_kernels, train_request

#: A training gain's verdict in words (the verdict of ``trained − untrained > 0``).
GAIN_WORDS = {
    HELD: "training helped beyond noise",
    NOT_HELD: "untrained as good or better",
    INCONCLUSIVE: "not beyond noise",
}


def trained_in_run(cfg: StudyConfig, key: str) -> bool:
    """Whether this run trains ``key`` (a CNN of a dataset folder or the campus; not a given features file)."""
    return key in VISUAL_MODELS and cfg.route.trains and dataset_root(cfg) is not None


def untrained_features(cfg: StudyConfig, key: str, progress: bool = True):
    """Features of ``key``'s network at its initial weights (cached as ``features/<architecture>_untrained.npz``:
    PCB and PCB+RE differ only in training, so they share one untrained network)."""
    full = train_request(cfg, key)
    req = {k: full[k] for k in ("model", "height", "width", "weights", "seed")}  # what fixes the initial network
    path, root = cfg.features_path(f"{req['model']}_untrained"), dataset_root(cfg)
    if path.is_file():
        cached = load_features(path)
        if same_images(cached, root) and cached.provenance.get("untrained_of") == req and same_kernels(cached, cfg):
            return cached
    import torch

    from ..visual.config import ExtractConfig
    from ..visual.data import training_split
    from ..visual.extract import extract_features
    from ..visual.models import build_model

    n_classes = len(training_split(root)[2])
    torch.manual_seed(cfg.seed)  # as train_model seeds before it builds the model: the same initial weights
    model = build_model(req["model"], n_classes, req["weights"])
    ckpt = cfg.out / "checkpoints" / "untrained" / f"{req['model']}.pt"
    with atomic_path(ckpt) as tmp:
        torch.save(model.state_dict(), tmp)
    extract = ExtractConfig(model=req["model"], height=req["height"], width=req["width"], train=False)
    fs = extract_features(extract, checkpoint=ckpt, data_root=root, device=cfg.device, progress=progress, label=key)
    fs.provenance["untrained_of"] = req
    save_features(path, fs)
    return load_features(path)


def untrained_rows(cfg: StudyConfig, keys, model) -> dict[str, Any]:
    """``{key: VIS summary of the untrained network}`` for each of ``keys`` trained in this run."""
    return {k: evaluate_rows(untrained_features(cfg, k), model, rows=("VIS",))["VIS"] for k in keys
            if trained_in_run(cfg, k)}  # fmt: skip


def beside_untrained(cfg: StudyConfig, trained: dict[str, Any], untrained: dict[str, Any]) -> dict[str, Any]:
    """``{label: row}`` of the trained rows, each followed by its network untrained (``<label> untrained``)."""
    out = {}
    for key, row in trained.items():
        out[cfg.model_label(key)] = row
        if key in untrained:
            out[f"{cfg.model_label(key)} untrained"] = untrained[key]
    return out


def training_gain(cfg: StudyConfig, trained: dict[str, Any], untrained: dict[str, Any]) -> Any:
    """One row per CNN: R1 and mAP trained and untrained, the gain with its paired 95 % interval, and the verdict
    (``training helped beyond noise`` when the R1 and the mAP gains both lie above 0, ``untrained as good or
    better`` when either lies at or below 0, else ``not beyond noise``)."""
    recs = {}
    for key, base in untrained.items():
        row, rec = trained.get(key), {}
        if row is None or isinstance(row, NotComputed):
            continue
        statuses = []
        for m in ("R1", "mAP"):
            est = difference(base, row, m)
            rec |= {f"{m} trained": float(row[m]), f"{m} untrained": float(base[m]), f"gain {m}": est.value,
                    f"gain {m} 95% CI": f"[{est.lo:+.1f}, {est.hi:+.1f}]"}  # fmt: skip
            statuses.append(est.status)
        rec["training"] = GAIN_WORDS[combine(statuses)]
        recs[cfg.model_label(key)] = rec
    df = pd.DataFrame.from_dict(recs, orient="index")
    df.index.name = "network"
    return df


def show_training_gain(cfg: StudyConfig, trained: dict[str, Any], untrained: dict[str, Any]) -> Any:
    """Write and show the table ``training_gain`` (:func:`training_gain`) and its sentence; returns the table."""
    gain = training_gain(cfg, trained, untrained)
    if len(gain):
        title = f"What training bought: each CNN against itself untrained (same initial weights), {cfg.run_label}"
        note = (
            "Gains are trained − untrained in points. Intervals: paired 95 % bootstrap over query identities, "
            f"widened by the {TRAINED_TOLERANCE:g}-point training tolerance of a trained row (docs/claims.md)."
        )
        write_table(gain, "training_gain", cfg, title=title, note=note)
    say(describe_gain(gain))
    return gain


def describe_gain(gain: Any) -> str:
    """Which CNNs training helped beyond noise, and which it did not (every one named)."""
    if not len(gain):
        return "No network was trained in this run (features given or training-free): nothing to compare."
    parts = [f"{net}: R1 {r['gain R1']:+.1f} {r['gain R1 95% CI']}, mAP {r['gain mAP']:+.1f} {r['gain mAP 95% CI']} "
             f"({r['training']})" for net, r in gain.iterrows()]  # fmt: skip
    helped = int((gain["training"] == GAIN_WORDS[HELD]).sum())
    return (
        f"Training against the same network untrained (paired 95 % intervals over query identities, with the training "
        f"tolerance of a trained row): "
        f"{helped} of {len(gain)} networks gained beyond noise. " + "; ".join(parts) + "."
    )
