"""Image data for the visual stream: decoding, the in-memory training set, the plain DataLoader path, a toy writer.

``MemoryTrainSet`` decodes and resizes every training image once (PIL bicubic) into a uint8 (N, H, W, 3) tensor on the
device and augments each batch there (docs/reference.md §13.8); the augmentation follows the reference (§2.5).
"""

from __future__ import annotations

import collections
import functools
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import StreidError
from ..metadata import SPLIT_FOLDERS, read_dataset_root
from .config import default_workers
from .models import IMAGENET_MEAN, IMAGENET_STD

ERASE_AREA = (0.02, 0.4)
ERASE_ASPECT = 0.3
ERASE_ATTEMPTS = 100


class ImageDataError(StreidError):
    """An image or image folder that cannot be used."""


def derive_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (seed, epoch, rank, stream): independent, reproducible streams."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@functools.cache
def norm_constants(device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std as (3,) float32 tensors on ``device``, created once per device (per step, they would
    be copied from host memory and synchronise the GPU every step)."""
    return tuple(torch.tensor(v, dtype=torch.float32, device=device) for v in (IMAGENET_MEAN, IMAGENET_STD))


def load_rgb(path: str | Path, size: tuple[int, int] | None = None) -> Image.Image:
    """Decode one image to RGB, resized to ``size`` = (height, width) with PIL bicubic unless ``None``."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            return im if size is None or im.size == size[::-1] else im.resize(size[::-1], Image.BICUBIC)
    except (OSError, ValueError) as exc:
        raise ImageDataError(f"{path}: cannot decode image ({exc})") from None


def _load_batch(paths: Sequence[str | Path], height: int, width: int) -> np.ndarray:
    return np.stack([np.asarray(load_rgb(p, (height, width)), dtype=np.uint8) for p in paths])


def iter_decoded(
    paths: Sequence[str | Path], height: int, width: int, batch_size: int, workers: int | None = None
) -> Iterator[np.ndarray]:
    """Yield (b, H, W, 3) uint8 batches of ``paths`` in order, decoded by ``workers`` threads at most ``2·workers``
    batches ahead; when the consumer stops early (an error, Ctrl-C) the batches not yet started are cancelled."""
    workers = max(1, default_workers() if workers is None else workers)
    pool = ThreadPoolExecutor(workers)
    try:
        pending: collections.deque = collections.deque()
        for i in range(0, len(paths), batch_size):
            pending.append(pool.submit(_load_batch, paths[i : i + batch_size], height, width))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def decode_images(paths: Sequence[str | Path], height: int, width: int, workers: int | None = None) -> torch.Tensor:
    """Decode and resize every image once → (N, H, W, 3) uint8 CPU tensor."""
    out = torch.empty((len(paths), height, width, 3), dtype=torch.uint8)
    for i, batch in zip(range(0, len(paths), 64), iter_decoded(paths, height, width, 64, workers)):
        out[i : i + len(batch)] = torch.from_numpy(batch)
    return out


def training_split(root: str | Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """The training images of a dataset root (``bounding_box_train/``, all identities as in ``train_all``): (paths,
    (N,) int64 class indices, (C,) int64 person id of each class), classes in sorted pid order (ImageFolder's)."""
    meta = read_dataset_root(root).train
    folder = Path(root) / SPLIT_FOLDERS["train"]
    class_pids, labels = np.unique(meta.pids, return_inverse=True)
    if len(class_pids) < 2:
        raise ImageDataError(f"{folder}: training needs at least 2 identities, found {len(class_pids)}")
    return [folder / n for n in meta.names], labels.astype(np.int64), class_pids.astype(np.int64)


def shard_indices(n: int, epoch_seed: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's shuffled indices for one epoch, as ``DistributedSampler`` does: one permutation shared by all
    ranks, padded by wrapping around to a multiple of ``world_size``; rank r takes positions r, r+W, r+2W, ..."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed))
    total = math.ceil(n / world_size) * world_size
    if total > n:
        perm = torch.cat([perm, perm[: total - n]])
    return perm[rank::world_size]


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches over n items; a trailing batch of a single image is dropped (BatchNorm needs ≥ 2)."""
    out = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if out and out[-1].stop - out[-1].start == 1 and len(out) > 1:
        out.pop()
    return out


def erasing_boxes(
    batch: int, height: int, width: int, p: float, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random-erasing rectangles (apply (B,) bool, top, left, h, w (B,) int64 pixels) by the reference's rule
    (docs/reference.md §2.5), vectorised over images and over the 100 attempts."""
    apply = torch.rand(batch, generator=generator, device=device) < p
    lo, hi = ERASE_AREA
    area = (lo + (hi - lo) * torch.rand(batch, ERASE_ATTEMPTS, generator=generator, device=device)) * (height * width)
    r1 = ERASE_ASPECT
    aspect = r1 + (1.0 / r1 - r1) * torch.rand(batch, ERASE_ATTEMPTS, generator=generator, device=device)
    h = torch.round(torch.sqrt(area * aspect)).long()
    w = torch.round(torch.sqrt(area / aspect)).long()
    ok = (h < height) & (w < width)
    first = ok.to(torch.int8).argmax(1, keepdim=True)
    apply = apply & ok.any(1)
    h = h.gather(1, first).squeeze(1)
    w = w.gather(1, first).squeeze(1)
    u = torch.rand(batch, 2, generator=generator, device=device)
    top = torch.floor(u[:, 0] * (height - h + 1)).long().clamp_max(height - h)
    left = torch.floor(u[:, 1] * (width - w + 1)).long().clamp_max(width - w)
    return apply, top, left, h, w


def augment_batch(images: torch.Tensor, index, out_size, erasing: float, generator, flip: bool = True) -> torch.Tensor:
    """Crop to ``out_size`` (h, w), flip, normalise and erase (probability ``erasing``) the (B,) ``index`` images of
    a (N, H0, W0, 3) uint8 set on its device, all randomness from ``generator`` → (B, 3, h, w) float32 channels-last.
    """
    n, h0, w0, _ = images.shape
    h, w = out_size
    if h > h0 or w > w0:
        raise ImageDataError(f"crop {h}x{w} is larger than the stored images {h0}x{w0}")
    dev = images.device
    b = index.shape[0]
    top = torch.randint(0, h0 - h + 1, (b,), generator=generator, device=dev)
    left = torch.randint(0, w0 - w + 1, (b,), generator=generator, device=dev)
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = top[:, None] + ar_h  # (B, h)
    cols = left[:, None] + ar_w  # (B, w)
    if flip:
        flipped = torch.rand(b, generator=generator, device=dev) < 0.5
        cols = torch.where(flipped[:, None], left[:, None] + (w - 1 - ar_w), cols)
    x = images[index[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, h, w, 3) uint8
    mean, std = norm_constants(dev)
    x = (x.float().div_(255.0) - mean).div_(std)
    if erasing > 0:
        apply, et, el, eh, ew = erasing_boxes(b, h, w, erasing, generator, dev)
        in_r = (ar_h[None, :] >= et[:, None]) & (ar_h[None, :] < (et + eh)[:, None])
        in_c = (ar_w[None, :] >= el[:, None]) & (ar_w[None, :] < (el + ew)[:, None])
        mask = in_r[:, :, None] & in_c[:, None, :] & apply[:, None, None]
        x = x.masked_fill(mask[..., None], 0.0)
    return x.permute(0, 3, 1, 2)  # NHWC storage = channels_last NCHW view


class MemoryTrainSet:
    """The decoded (N, H0, W0, 3) uint8 training set and its (N,) labels, batched and augmented on ``device``; the
    images move there when they fit in ``max_device_fraction`` of its free memory, else only each batch does."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device, max_device_fraction: float = 0.5) -> None:
        self.device = torch.device(device)
        self.images_on_device = self.device.type == "cpu"
        if self.device.type == "cuda":
            self.images_on_device = images.numel() <= max_device_fraction * torch.cuda.mem_get_info(self.device)[0]
        self.images = images.to(self.device) if self.images_on_device else images.pin_memory()
        self.labels = labels.to(self.device)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, order: torch.Tensor, batch_size: int, out_size, erasing: float, generator) -> Iterator[tuple]:
        """Yield augmented (x (B,3,h,w) float32 channels-last, y (B,)) batches over ``order`` (indices)."""
        order_dev = order.to(self.device)
        for sl in batch_slices(len(order), batch_size):
            idx = order_dev[sl]
            if self.images_on_device:
                src, sub = self.images, idx
            else:
                src = self.images[order[sl]].to(self.device, non_blocking=True)
                sub = torch.arange(src.shape[0], device=self.device)
            yield augment_batch(src, sub, out_size, erasing, generator), self.labels[idx]


class ReferenceRandomErasing:
    """Per-image random erasing (fill 0) of a normalised (3, H, W) tensor as the reference's transform, drawing from
    torch's global RNG (seeded per DataLoader worker by PyTorch)."""

    def __init__(self, p: float) -> None:
        self.p = float(p)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.p <= 0 or torch.rand(()).item() >= self.p:
            return img
        _, hh, ww = img.shape
        lo, hi = ERASE_AREA
        for _ in range(ERASE_ATTEMPTS):
            area = (lo + (hi - lo) * torch.rand(()).item()) * hh * ww
            aspect = ERASE_ASPECT + (1 / ERASE_ASPECT - ERASE_ASPECT) * torch.rand(()).item()
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if h < hh and w < ww:
                top = int(torch.randint(0, hh - h + 1, ()).item())
                left = int(torch.randint(0, ww - w + 1, ()).item())
                img[:, top : top + h, left : left + w] = 0.0
                return img
        return img


class FileDataset(torch.utils.data.Dataset):
    """Images read from disk at every access (the plain, reference-style path)."""

    def __init__(self, paths: Sequence[str | Path], labels: np.ndarray, transform) -> None:
        self.paths = list(paths)
        self.labels = np.asarray(labels, np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_rgb(self.paths[i])), int(self.labels[i])


def plain_train_transform(resize: tuple[int, int], crop: tuple[int, int], erasing: float):
    """The reference training transform with torchvision: Resize (bicubic) → [RandomCrop] → flip → ToTensor →
    Normalize → random erasing (reference semantics)."""
    from torchvision import transforms as T

    steps = [T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC)]
    if tuple(crop) != tuple(resize):
        steps.append(T.RandomCrop(crop))
    steps += [T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if erasing > 0:
        steps.append(ReferenceRandomErasing(erasing))
    return T.Compose(steps)


def plain_loader(
    paths, labels, resize, crop, erasing: float, batch_size: int, workers: int, seed: int, rank=0, world_size=1
):
    """A torchvision-style DataLoader over files (decode + augment per image on CPU workers, fp32), shuffled by
    ``seed`` (under DDP call ``loader.sampler.set_epoch(e)``; else the caller reseeds its generator per epoch)."""
    ds = FileDataset(paths, labels, plain_train_transform(resize, crop, erasing))
    g = torch.Generator().manual_seed(seed)
    # One shuffled order per epoch: the sampler's (seeded, shared by the ranks) under DDP, else the loader's own.
    order: dict = {"shuffle": True}
    if world_size > 1:
        order = {"sampler": torch.utils.data.DistributedSampler(ds, world_size, rank, shuffle=True, seed=seed)}
    return torch.utils.data.DataLoader(
        ds, batch_size, **order, num_workers=workers, pin_memory=torch.cuda.is_available(), generator=g, drop_last=False
    )


def write_toy_dataset(root, n_ids=4, per_id=3, n_query_ids=2, size=(128, 64), seed=0, quality=90) -> Path:
    """Write a small Market-style dataset of generated JPEGs, one colour pattern plus noise per identity (for tests
    and benchmarks): train ids 1..n_ids, test ids after them with ``per_id`` gallery images and one query each."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    frame = 100
    for pid in range(1, n_ids + n_query_ids + 1):
        shots = [("train" if pid <= n_ids else "gallery", 1 + k % 3, k) for k in range(per_id)]
        if pid > n_ids:
            shots.append(("query", 4, 0))
        colour = np.array([(pid * 53) % 256, (pid * 97) % 256, (pid * 151) % 256], np.float64)
        for split, cam, k in shots:
            frame += 7
            base = rng.integers(0, 256, 3)
            img = np.empty((h, w, 3), np.float64)
            img[: h // 2] = colour
            img[h // 2 :] = 255 - colour
            img += 0.25 * base + rng.normal(0, 20, (h, w, 3))
            folder = root / SPLIT_FOLDERS[split]
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{pid:04d}_c{cam}s1_{frame:06d}_{k:02d}.jpg"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / name, quality=quality)
    return root
