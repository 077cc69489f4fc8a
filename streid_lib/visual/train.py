"""Training the visual baselines with the reference recipe (docs/reference.md §2.5), resumable.

Defaults: :class:`~streid_lib.visual.config.TrainConfig` (§2.5, §13.7, §13.10); GPU path (``loader="memory"``,
bf16, CUDA graphs) §13.8. Random streams restart from (seed, epoch, rank), so a killed run resumes exactly. ``out_dir``
holds ``last.pt``, ``history.json``, ``provenance.json`` and, with ``keep_checkpoints``, ``epoch_NNN.pt``.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import cuda

from .._io import atomic_path, check_output_path, remove_stale_leftovers, write_json_atomic
from .._progress import progress_bar, progress_message
from ..errors import StreidError
from . import config
from . import data as vdata
from .config import kernels_in_use, resolve_train_config
from .models import CHECKPOINT_FORMAT, build_model, part_logits_loss

#: Re-exported from the torch-free :mod:`.config` (docs/reference.md names them here).
TrainConfig = config.TrainConfig
default_decay_epoch = config.default_decay_epoch

LAST = "last.pt"
#: What a finished ``last.pt`` no longer holds: needed only to resume an unfinished run.
_RESUME_ONLY = ("optimizer_state", "rng")
#: Config fields that may differ between a checkpoint and the run that resumes it (how, not what, is computed).
_FREE_ON_RESUME = {"compile", "cuda_graph", "checkpoint_every", "keep_checkpoints", "workers"}


class TrainError(StreidError):
    """A training request that cannot be run (bad option, incompatible or unreadable checkpoint)."""


def lr_factor(epoch: int, decay_epoch: int) -> float:
    """Learning-rate multiplier of 0-based ``epoch``: 1 before ``decay_epoch``, 0.1 from it on."""
    return 0.1 if epoch >= decay_epoch else 1.0


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → this process's CUDA device (``LOCAL_RANK``, set by torchrun) when available, else CPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if str(device) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise TrainError(f"device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool | None = None) -> torch.optim.SGD:
    """SGD with two groups: new layers at ``cfg.lr`` (0.1), backbone at ``cfg.lr_backbone`` (0.01).

    ``fused``: None = PyTorch's fused kernel (same rule, fewer launches; §13.8) exactly when every parameter is on a
    CUDA device; False = PyTorch's default loop.
    """
    backbone, new = list(model.backbone_parameters()), list(model.new_parameters())
    groups = [
        {"params": backbone, "lr": cfg.lr_backbone, "initial_lr": cfg.lr_backbone},
        {"params": new, "lr": cfg.lr, "initial_lr": cfg.lr},
    ]
    if fused is None:
        fused = all(p.is_cuda and p.is_floating_point() for p in backbone + new)
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0,
        fused=fused or None,
    )  # fmt: skip


def _set_lr(opt: torch.optim.Optimizer, epoch: int, decay_epoch: int) -> None:
    for g in opt.param_groups:
        g["lr"] = g["initial_lr"] * lr_factor(epoch, decay_epoch)


class EpochRunner:
    """One training epoch of ``net`` (possibly DDP-wrapped or compiled) over either loader, shared by
    :func:`train_model` and the GPU benchmark. ``amp``: bf16 autocast (CUDA only). ``cuda_graph``: replay each step
    as one CUDA graph (CUDA only, no DDP or compile; §13.8), captured after :attr:`GRAPH_WARMUP` eager steps."""

    GRAPH_WARMUP = 3

    def __init__(self, net, optimizer, device: torch.device, amp: bool, cuda_graph=False, graph_batch=None):
        self.net, self.optimizer, self.device, self.graph_batch = net, optimizer, device, graph_batch
        self.amp = self.channels_last = amp and device.type == "cuda"
        self.cuda_graph = cuda_graph and device.type == "cuda"
        self._eager_steps = 0
        self._side: torch.cuda.Stream | None = None
        self._graph: tuple | None = None  # (key, graph, static x, static y, static loss, static correct)

    def _compute(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # No autocast weight cache: cached casts made during a graph capture would outlive it.
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp, cache_enabled=False):
            logits = self.net(x)
        loss, pred = part_logits_loss(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), (pred == y).sum()

    def _graph_key(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        lrs = tuple(float(g["lr"]) for g in self.optimizer.param_groups)
        return tuple(x.shape), x.stride(), tuple(y.shape), lrs

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step; returns (loss, number correct) as device tensors (no host synchronisation)."""
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.cuda_graph:
            return self._compute(x, y)
        key = self._graph_key(x, y)
        if self._graph is not None and self._graph[0] == key:
            _, graph, sx, sy, loss, correct = self._graph
            sx.copy_(x)
            sy.copy_(y)
            graph.replay()
            # Copies: the static outputs are overwritten by the next replay.
            return loss.clone(), correct.clone()
        if (self._graph is not None and self._graph[0][:3] != key[:3]) or (
            self.graph_batch is not None and x.shape[0] != self.graph_batch
        ):
            return self._compute(x, y)  # another batch shape: eager
        if self._eager_steps < self.GRAPH_WARMUP:
            self._eager_steps += 1
            # Warm-up on a side stream, as CUDA graph capture expects (lazy initialisation off the capture stream).
            main = torch.cuda.current_stream(self.device)
            if self._side is None:
                self._side = torch.cuda.Stream(self.device)
            self._side.wait_stream(main)
            with torch.cuda.stream(self._side):
                out = self._compute(x, y)
            main.wait_stream(self._side)
            return out
        self._graph = None  # a new learning rate: drop the old graph (and its memory pool) first
        sx, sy = x.clone(memory_format=torch.preserve_format), y.clone()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # records this step without running it...
            loss, correct = self._compute(sx, sy)
        graph.replay()  # ...which this replay does
        self._graph = (key, graph, sx, sy, loss, correct)
        return loss.clone(), correct.clone()

    def run(self, batches, n_batches: int, *, bar=None, log_every=50, world_size=1, max_steps=None) -> dict:
        """Run the batches; returns this process's {"loss_sum", "correct", "seen", "steps", "seconds"}.

        ``bar`` advances one per step; its postfix shows loss, accuracy and images/s every ``log_every`` steps.
        """
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = steps = 0
        t0 = time.perf_counter()
        show = bar is not None and not bar.disable
        for x, y in batches:
            loss, ok = self.step(x, y)
            b = int(y.shape[0])
            loss_sum += loss * b
            correct += ok
            seen += b
            steps += 1
            if show and (steps % log_every == 0 or steps == n_batches):
                # The only host synchronisation: once every `log_every` steps, for the progress bar.
                bar.set_postfix(
                    loss=f"{loss_sum.item() / seen:.4f}",
                    acc=f"{correct.item() / seen:.3f}",
                    img_s=f"{seen * world_size / max(time.perf_counter() - t0, 1e-9):.0f}",
                    refresh=False,
                )
            if bar is not None:
                bar.update(1)
            if max_steps is not None and steps >= max_steps:
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return dict(loss_sum=loss_sum, correct=correct, seen=seen, steps=steps, seconds=time.perf_counter() - t0)


def train_model(
    config: TrainConfig,
    *,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    device: str | torch.device = "auto",
    resume: bool = True,
    download_weights: bool = False,
    progress: bool = True,
    label: str | None = None,
) -> Path:
    """Train ``config`` on ``data_root/bounding_box_train``; return ``out_dir/last.pt`` (weights, config, history).

    ``out_dir`` (module doc) is checked before any work and nothing is written before the first checkpoint;
    ``resume`` continues from its ``last.pt`` (same configuration). ``device``: ``"auto"``, ``"cpu"``, ``"cuda:1"``...
    ``download_weights`` allows downloading ImageNet weights; ``progress`` shows a bar (rank 0) named ``label``.
    A request that cannot run here, an unreadable or incompatible ``last.pt`` raise :class:`TrainError`.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    try:
        check_output_path(out_dir, kind="folder", what="run directory")
        dev = resolve_device(device)
        cfg = resolve_train_config(config, dev, int(os.environ.get("WORLD_SIZE", "1")))
    except StreidError as exc:  # a bad folder, device or option: reported as this function's error
        raise TrainError(str(exc)) from None
    if (out_dir / LAST).is_dir():
        raise TrainError(f"{out_dir / LAST}: is a folder; expected the run's checkpoint file (or nothing)")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    # Launched by torchrun (WORLD_SIZE > 1): join the process group (and leave it at the end if we created it).
    created_pg = cfg.world_size > 1 and not dist.is_initialized()
    if created_pg:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if cfg.world_size > 1 else (0, 1)
    try:
        return _train(
            cfg, data_root=Path(data_root), out_dir=out_dir, dev=dev, rank=rank, world=world, resume=resume,
            download_weights=download_weights, progress=progress and rank == 0, label=label or cfg.model,
        )  # fmt: skip
    finally:
        if created_pg:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, *, data_root, out_dir, dev, rank, world, resume, download_weights, progress, label):
    last = out_dir / LAST
    if rank == 0:
        remove_stale_leftovers(out_dir)  # temp files of killed writers (never anything else)
    ckpt = _resumable_checkpoint(last, cfg) if resume and last.exists() else None
    if ckpt is not None and ckpt["epoch"] >= cfg.epochs:
        progress_message(f"{label}: {last} already trained for {ckpt['epoch']} epochs; nothing to do", progress)
        return last

    paths, labels_np, class_pids = vdata.training_split(data_root)
    n_classes = len(class_pids)
    torch.manual_seed(cfg.seed)
    # On resume the checkpoint holds the weights: no need for the ImageNet file again.
    model = build_model(cfg.model, n_classes, "none" if ckpt is not None else cfg.weights, download=download_weights)
    weights_info = model.weights_info
    model.to(dev)
    if cfg.loader == "memory" and dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    history: list[dict] = []
    start_epoch = 0
    if ckpt is not None:
        if [int(p) for p in ckpt["class_pids"]] != class_pids.tolist():
            raise TrainError(f"{last}: its classes (person ids) differ from those in {data_root}")
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        weights_info = ckpt["provenance"]["weights"]
        del ckpt

    provenance = {
        "kind": "visual-training",
        "model": cfg.model,
        "num_classes": n_classes,
        "n_train_images": len(paths),
        "data_root": str(data_root.resolve()),
        "weights": weights_info,
        "input_size": [cfg.height, cfg.width],
        "train_resize": list(cfg.resize),
        "decay_epoch": cfg.decay_epoch,
        "config": cfg.to_dict(),
        "torch": str(torch.__version__),
        "torchvision": str(__import__("torchvision").__version__),
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "cpu_kernels": kernels_in_use(),
    }

    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    if cfg.loader == "memory":
        t0 = time.perf_counter()
        images = vdata.decode_images(paths, *cfg.resize, workers=cfg.workers)
        trainset = vdata.MemoryTrainSet(images, torch.from_numpy(labels_np), dev)
        where = "device" if trainset.images_on_device else "pinned host memory"
        progress_message(
            f"{label}: decoded {len(paths)} training images at {cfg.resize[0]}x{cfg.resize[1]} in "
            f"{time.perf_counter() - t0:.1f} s ({images.numel() / 2**20:.0f} MiB uint8, on {where})",
            progress,
        )
        plain = None
        n_batches = len(vdata.batch_slices(math.ceil(len(paths) / world), cfg.batch_size))  # this rank's shard
    else:
        trainset = None
        plain = vdata.plain_loader(
            paths, labels_np, cfg.resize, (cfg.height, cfg.width), cfg.erasing, cfg.batch_size, cfg.workers,
            cfg.seed, rank, world,
        )  # fmt: skip
        n_batches = len(plain)

    runner = EpochRunner(
        net, optimizer, dev, amp=cfg.precision == "bf16", cuda_graph=cfg.cuda_graph, graph_batch=cfg.batch_size
    )
    name = label if label == cfg.model else f"{label} ({cfg.model})"
    bar = progress_bar(
        total=cfg.epochs * n_batches, desc=f"train {name} epoch {start_epoch + 1}/{cfg.epochs}", enabled=progress,
        initial=start_epoch * n_batches, unit="step",
    )  # fmt: skip
    with bar:
        for epoch in range(start_epoch, cfg.epochs):
            bar.set_description_str(f"train {name} epoch {epoch + 1}/{cfg.epochs}", refresh=False)
            model.train()
            _set_lr(optimizer, epoch, cfg.decay_epoch)
            # Every random stream restarts from (seed, epoch, rank): resuming at an epoch boundary is exact.
            torch.manual_seed(vdata.derive_seed(cfg.seed, epoch, rank, 1))
            if trainset is not None:
                order = vdata.shard_indices(len(paths), vdata.derive_seed(cfg.seed, epoch, 0), rank, world)
                gen = torch.Generator(dev).manual_seed(vdata.derive_seed(cfg.seed, epoch, rank, 2))
                batches = trainset.batches(order, cfg.batch_size, (cfg.height, cfg.width), cfg.erasing, gen)
            else:
                if world > 1:
                    plain.sampler.set_epoch(epoch)
                plain.generator.manual_seed(vdata.derive_seed(cfg.seed, epoch, 0))
                batches = plain
            stats = runner.run(batches, n_batches, bar=bar, world_size=world)
            n_seen = torch.tensor(float(stats["seen"]), dtype=torch.float64, device=dev)
            totals = torch.stack([stats["loss_sum"].double(), stats["correct"].double(), n_seen])
            if world > 1:
                dist.all_reduce(totals)
            totals = totals.cpu()
            seen, secs = float(totals[2]), stats["seconds"]
            history.append(
                dict(
                    epoch=epoch + 1, lr_factor=lr_factor(epoch, cfg.decay_epoch), loss=float(totals[0]) / seen,
                    accuracy=float(totals[1]) / seen, images=int(seen), seconds=round(secs, 3),
                    images_per_s=round(seen / max(secs, 1e-9), 1),
                )
            )  # fmt: skip
            done = epoch + 1
            if done % cfg.checkpoint_every == 0 or done == cfg.epochs:
                extra = {}
                if done == cfg.epochs and world > 1:
                    extra["ddp_param_checksums"] = _param_checksums(model, world)
                if rank == 0:
                    _write_run(out_dir, model, optimizer, cfg, done, history, class_pids, provenance, extra)
                if world > 1:
                    dist.barrier()
    return last


def _param_checksums(model: torch.nn.Module, world: int) -> list[float]:
    """Sum of every parameter of this replica, gathered from all ranks (DDP replicas must agree)."""
    local = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    dev = next(model.parameters()).device
    out = [torch.zeros(1, dtype=torch.float64, device=dev) for _ in range(world)]
    dist.all_gather(out, local.to(dev))
    return [float(t.item()) for t in out]


def _write_run(out_dir: Path, model, optimizer, cfg: TrainConfig, epoch: int, history, class_pids, provenance, extra):
    """Write one checkpoint atomically: kept copy, ``last.pt`` (slimmed when finished), then history, provenance."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_name": cfg.model,
        "num_classes": int(len(class_pids)),
        "class_pids": [int(p) for p in class_pids],
        "epoch": int(epoch),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "config": cfg.to_dict(),
        "history": list(history),
        "provenance": provenance,
        "rng": {"torch": torch.get_rng_state(), **({"cuda": cuda.get_rng_state_all()} if cuda.is_available() else {})},
        **extra,
    }
    if cfg.keep_checkpoints:
        _torch_save(out_dir / f"epoch_{epoch:03d}.pt", state)
    finished = epoch >= cfg.epochs
    _torch_save(out_dir / LAST, {k: v for k, v in state.items() if not (finished and k in _RESUME_ONLY)})
    write_json_atomic(out_dir / "history.json", history)
    write_json_atomic(out_dir / "provenance.json", provenance)


def _torch_save(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _resumable_checkpoint(path: Path, cfg: TrainConfig) -> dict:
    """``path`` read and checked: a checkpoint of this project, of the same configuration, that can be resumed."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        fmt = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise TrainError(
            f"{path}: not a training checkpoint of this project (format {fmt!r}); "
            "use another --out directory, or pass --no-resume (resume=False) to replace it"
        )
    saved = ckpt["config"]
    now = cfg.to_dict()
    diff = {k: (saved.get(k), v) for k, v in now.items() if k not in _FREE_ON_RESUME and saved.get(k) != v}
    if diff:
        raise TrainError(
            f"{path}: cannot resume, the configuration differs (saved, requested): {diff}; "
            "use another --out directory or the same options"
        )
    if ckpt["epoch"] < cfg.epochs and not all(k in ckpt for k in _RESUME_ONLY):
        raise TrainError(f"{path}: holds no optimizer state to resume from; pass --no-resume to start afresh")
    return ckpt


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint (``last.pt``) on the CPU; an unreadable file is a :class:`TrainError`."""
    path = Path(path)
    if not path.exists():
        raise TrainError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated zip, pickle errors, a folder...: several exception types
        raise TrainError(
            f"not a streid checkpoint: {path} (unreadable, truncated?); "
            "delete it or pass --no-resume (resume=False) to start afresh"
        ) from None
