"""Feature extraction (docs/reference.md §2.6): query, gallery and training features into one features file.

Test resize, image plus mirror summed, per-stripe (PCB, channel-major 12288-d) or whole L2 normalisation: §2.6.
Labels, cameras and frames come from the file names (:func:`streid_lib.metadata.read_dataset_root`);
:func:`features_from_arrays` brings any other source's arrays into the same file.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .._progress import progress_bar
from ..features import FeatureSet
from ..metadata import SPLIT_FOLDERS, read_dataset_root
from . import data as vdata
from .config import ConfigError, ExtractConfig, kernels_in_use
from .models import load_trained_model, normalise_features
from .train import resolve_device


@torch.no_grad()
def embed_batch(model: torch.nn.Module, x_uint8: torch.Tensor, device: torch.device, amp: bool = False) -> torch.Tensor:
    """(B, D) float32 normalised test features on ``device`` of a (B, H, W, 3) uint8 batch: image + flip summed,
    then L2 (docs/reference.md §2.6)."""
    x = x_uint8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    mean, std = vdata.norm_constants(device)
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        f = model.embed(x).float() + model.embed(x.flip(3)).float()
    return normalise_features(f)


def extract_features(
    config: ExtractConfig,
    *,
    checkpoint: str | os.PathLike,
    data_root: str | os.PathLike,
    device: str | torch.device = "auto",
    progress: bool = True,
    label: str | None = None,
) -> FeatureSet:
    """Extract the features of ``data_root``'s query, gallery and (with ``config.train``) training images.

    ``checkpoint``: our ``last.pt`` or a bare state dict (the authors' ``net_last.pth``); ``device``: ``"auto"``,
    ``"cpu"``, ``"cuda"``...; ``progress``: a bar over all images named ``label`` (default ``config.model``).
    Returns a FeatureSet of (N, D) float32 rows in sorted file-name order (D = 12288 PCB, 2048 ResNet-50,
    1024 DenseNet-121) with provenance (model, checkpoint, weights source, dataset, input size, ``train_side``).
    """
    if not isinstance(config, ExtractConfig):
        raise TypeError(f"config: expected an ExtractConfig, got {type(config).__name__}")
    dev = resolve_device(device)
    if config.precision == "bf16" and dev.type != "cuda":
        raise ConfigError("precision", "bf16", f"'fp32' on {dev}: bf16 autocast needs CUDA")
    model, info = load_trained_model(config.model, checkpoint)
    model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    size = config.input_size
    splits = read_dataset_root(data_root)
    root = Path(data_root)
    sides = [("query", splits.query), ("gallery", splits.gallery)]
    if config.train:
        sides.append(("train", splits.train))
    feats = {}
    t0 = time.perf_counter()
    name = label or config.model
    with progress_bar(sum(len(m) for _, m in sides), f"extract {name} query", progress, unit="img") as bar:
        for side, meta in sides:
            bar.set_description_str(f"extract {name} {side}", refresh=False)
            paths = [root / SPLIT_FOLDERS[side] / n for n in meta.names]
            out = []
            for batch in vdata.iter_decoded(paths, *size, config.batch_size, config.workers):
                out.append(embed_batch(model, torch.from_numpy(batch), dev, config.precision == "bf16").cpu().numpy())
                bar.update(len(batch))
            feats[side] = np.concatenate(out).astype(np.float32, copy=False)
    provenance = {
        "kind": "visual-features",
        "model": config.model,
        **info,
        "data_root": str(root.resolve()),
        "naming": splits.naming,
        "input_size": list(size),
        "interpolation": "bicubic (PIL)",
        "flip": "image + horizontal flip summed",
        "normalisation": "per-stripe L2, channel-major flatten" if config.model == "pcb" else "L2",
        "precision": config.precision,
        "train_side": bool(config.train),
        "images": {side: len(meta) for side, meta in sides},
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "cpu_kernels": kernels_in_use(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return FeatureSet(
        feats["query"], feats["gallery"], splits.query, splits.gallery, provenance,
        train_f=feats.get("train"), train=splits.train if config.train else None,
    )  # fmt: skip


def features_from_arrays(
    query_f: np.ndarray,
    gallery_f: np.ndarray,
    data_root: str | os.PathLike,
    provenance: dict | None = None,
    train_f: np.ndarray | None = None,
) -> FeatureSet:
    """Pair features computed elsewhere with a dataset's metadata (rows in sorted file-name order of
    ``query/``, ``bounding_box_test/`` and, with ``train_f``, ``bounding_box_train/``), so that they enter the
    study through the same features file."""
    splits = read_dataset_root(data_root)
    prov = {"kind": "imported-features", "data_root": str(Path(data_root).resolve()), **(provenance or {})}
    prov.setdefault("train_side", train_f is not None)
    return FeatureSet(
        np.asarray(query_f), np.asarray(gallery_f), splits.query, splits.gallery, prov,
        train_f=None if train_f is None else np.asarray(train_f), train=None if train_f is None else splits.train,
    )  # fmt: skip
