"""Training the visual baselines with the reference recipe (reference §2.5), fast on a GPU, resumable.

Recipe (faithful defaults): SGD, Nesterov momentum 0.9, weight decay 5e-4; lr 0.1 for the new layers and
0.01 for the backbone; ×0.1 from epoch index ``decay_epoch`` on (the reference's StepLR(40) stepped at the
start of each epoch decays from index 39 of 60; for other epoch counts the default is
``round(39/60·epochs)``); batch 32; PCB at 384×192 (resize only), the others resized to 288×144 and
randomly cropped to 256×128; horizontal flip; random erasing with probability ``erasing`` (0.5 = "+RE").
A trailing batch of a single image is dropped (BatchNorm needs two).

Fast path (``loader="memory"``): the training set is decoded once into a uint8 tensor on the device, the
augmentation runs there in batch, bf16 autocast, channels-last and fused SGD on CUDA, each step replayed as
one CUDA graph (single process, default on), optional ``torch.compile``.
``loader="plain"`` is a reference-style torchvision DataLoader loop in fp32, kept for comparison.

Multi-GPU: run the same entry point under ``torchrun``; each process trains a DistributedDataParallel
replica on its shard of every epoch's permutation (``DistributedSampler`` semantics) with ``batch_size``
images per process. BatchNorm statistics stay per process.

Reproducibility: every random stream (shuffle, augmentation, dropout) is re-derived at the start of each
epoch from (seed, epoch, rank), and checkpoints are written at epoch boundaries, so a killed run that resumes
from its last checkpoint ends in the same state as an uninterrupted one. The checkpoint also stores the
torch RNG states, the full configuration and the provenance.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from .._io import atomic_path, write_json_atomic
from . import data as vdata
from .models import MODEL_NAMES, TRAIN_RESIZE, TRAIN_SIZE, build_model, part_logits_loss

CHECKPOINT_FORMAT = "streid-visual-checkpoint/1"
LAST = "last.pt"
#: Reference schedule: decay from epoch index 39 of 60 (StepLR step 40, stepped at each epoch's start).
REFERENCE_DECAY = (39, 60)

#: Config fields that must agree for a checkpoint to be resumed.
_RESUME_KEYS = (
    "model",
    "epochs",
    "batch_size",
    "erasing",
    "height",
    "width",
    "resize",
    "weights",
    "seed",
    "lr",
    "lr_backbone",
    "momentum",
    "weight_decay",
    "decay_epoch",
    "loader",
    "precision",
    "world_size",
)


class TrainError(ValueError):
    """A training request that cannot be run (bad option, incompatible checkpoint)."""


class _SimulatedKill(RuntimeError):
    """Raised by the test hook that stops a run as if it had been killed."""


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in every checkpoint).

    Sizes are in pixels; ``decay_epoch`` is a 0-based epoch index; lrs are per parameter group.
    """

    model: str = "pcb"
    epochs: int = 60
    batch_size: int = 32
    erasing: float = 0.0
    height: int = 384
    width: int = 192
    resize: tuple[int, int] = (384, 192)
    weights: str = "imagenet"
    seed: int = 0
    lr: float = 0.1
    lr_backbone: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_epoch: int = 39
    loader: str = "memory"
    precision: str = "fp32"
    compile: bool = False
    cuda_graph: bool = False
    checkpoint_every: int = 5
    workers: int = 1
    world_size: int = 1
    extra: dict = field(default_factory=dict)


def default_decay_epoch(epochs: int) -> int:
    """The reference's decay epoch index scaled to ``epochs``: round(39/60·epochs) (39 for 60 epochs)."""
    return int(round(REFERENCE_DECAY[0] / REFERENCE_DECAY[1] * epochs))


def lr_factor(epoch: int, decay_epoch: int) -> float:
    """Learning-rate multiplier of 0-based ``epoch``: 1 before ``decay_epoch``, 0.1 from it on."""
    return 0.1 if epoch >= decay_epoch else 1.0


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` → this process's CUDA device when available, else CPU."""
    if str(device) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def _setup_distributed(device: torch.device) -> tuple[int, int, bool]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1). Returns (rank, world, we_initialised)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    created = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    return dist.get_rank(), dist.get_world_size(), created


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool | None = None) -> torch.optim.SGD:
    """SGD with two groups: new layers at ``cfg.lr`` (0.1), backbone at ``cfg.lr_backbone`` (0.01).

    On CUDA the fused kernel updates every parameter in a few launches (the per-tensor loop of ~300 ResNet
    parameters costs more host time than a batch-32 step's compute); the update is the same rule.
    ``fused``: None = fused exactly when every parameter is on a CUDA device; False = PyTorch's default loop.
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


def _set_lr(opt: torch.optim.Optimizer, epoch: int, decay_epoch: int) -> float:
    f = lr_factor(epoch, decay_epoch)
    for g in opt.param_groups:
        g["lr"] = g["initial_lr"] * f
    return f


def _rng_states() -> dict:
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def _restore_rng(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class EpochRunner:
    """One training epoch over either loader, shared by :func:`train_model` and the GPU benchmark.

    Args:
        net: the (possibly DDP-wrapped / compiled) model called in the loop.
        optimizer: its optimizer.
        device: compute device.
        amp: bf16 autocast (CUDA only).
        cuda_graph: replay the whole step (forward, loss, backward, SGD update) as one CUDA graph (CUDA only;
            not with DDP or ``torch.compile``). At the reference batch of 32 an eager step spends more time
            issuing its ~1,000 kernels from Python than the GPU spends running them; a graph issues them at
            once. The first :attr:`GRAPH_WARMUP` steps run eagerly (cuDNN autotuning, optimizer state), the
            next is captured; a batch of another size (an epoch's short last batch) runs eagerly, and a new
            learning rate (the decay epoch) is captured anew, since the graph holds the rate as a constant.
    """

    #: Eager steps before the graph is captured.
    GRAPH_WARMUP = 3

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        amp: bool,
        cuda_graph: bool = False,
        graph_batch: int | None = None,
    ):
        self.net = net
        self.optimizer = optimizer
        self.device = device
        self.amp = amp and device.type == "cuda"
        self.channels_last = self.amp
        self.cuda_graph = cuda_graph and device.type == "cuda"
        self.graph_batch = graph_batch
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

    def run(
        self,
        batches,
        n_batches: int,
        desc: str = "",
        progress: bool = True,
        log_every: int = 50,
        world_size: int = 1,
        max_steps: int | None = None,
    ) -> dict:
        """Run the batches; returns this process's {"loss_sum", "correct", "seen", "steps", "seconds"}."""
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        steps = 0
        t0 = time.perf_counter()
        bar = tqdm(total=n_batches if max_steps is None else min(n_batches, max_steps), desc=desc, disable=not progress)
        with bar:
            for x, y in batches:
                loss, ok = self.step(x, y)
                b = int(y.shape[0])
                loss_sum += loss * b
                correct += ok
                seen += b
                steps += 1
                if progress and (steps % log_every == 0 or steps == n_batches):
                    # The only host synchronisation: once every `log_every` steps, for the progress bar.
                    el = time.perf_counter() - t0
                    bar.set_postfix(
                        loss=f"{loss_sum.item() / seen:.4f}",
                        acc=f"{correct.item() / seen:.3f}",
                        img_s=f"{seen * world_size / max(el, 1e-9):.0f}",
                    )
                bar.update(1)
                if max_steps is not None and steps >= max_steps:
                    break
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return {
            "loss_sum": loss_sum,
            "correct": correct,
            "seen": seen,
            "steps": steps,
            "seconds": time.perf_counter() - t0,
        }


def _resolve_config(
    model: str,
    epochs: int,
    batch_size: int,
    erasing: float,
    height: int | None,
    width: int | None,
    weights: str,
    seed: int,
    lr: float,
    lr_backbone: float,
    decay_epoch: int | None,
    loader: str,
    precision: str,
    compile: bool,
    checkpoint_every: int,
    workers: int | None,
    device: torch.device,
    world_size: int,
    cuda_graph: str | bool = "auto",
) -> TrainConfig:
    if model not in MODEL_NAMES:
        raise TrainError(f"model {model!r}: expected one of {MODEL_NAMES}")
    if epochs < 1 or batch_size < 2 or checkpoint_every < 1:
        raise TrainError(
            f"epochs={epochs}, batch_size={batch_size}, checkpoint_every={checkpoint_every}: "
            "expected epochs >= 1, batch_size >= 2, checkpoint_every >= 1"
        )
    if not 0.0 <= erasing <= 1.0:
        raise TrainError(f"erasing={erasing}: expected a probability in [0, 1]")
    if loader not in ("memory", "plain"):
        raise TrainError(f"loader={loader!r}: expected 'memory' (fast path) or 'plain' (torchvision DataLoader)")
    if precision not in ("auto", "bf16", "fp32"):
        raise TrainError(f"precision={precision!r}: expected 'auto', 'bf16' or 'fp32'")
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and loader == "memory" else "fp32"
    if precision == "bf16" and device.type != "cuda":
        raise TrainError("precision='bf16' needs a CUDA device; CPU training runs in fp32")
    if cuda_graph not in ("auto", True, False):
        raise TrainError(f"cuda_graph={cuda_graph!r}: expected 'auto', True or False")
    graph_ok = device.type == "cuda" and loader == "memory" and not compile and world_size == 1
    if cuda_graph is True and not graph_ok:
        raise TrainError(
            "cuda_graph=True needs a CUDA device, loader='memory', no torch.compile and a single process "
            f"(got device {device}, loader {loader!r}, compile={compile}, {world_size} processes)"
        )
    cuda_graph = graph_ok if cuda_graph == "auto" else bool(cuda_graph)
    h0, w0 = TRAIN_SIZE[model]
    height = int(height or h0)
    width = int(width or w0)
    if model == "densenet121" and min(height, width) < 32:
        # its four /2 transitions leave no pixel below 32 px (PCB and ResNet-50 pool adaptively)
        raise TrainError(f"input {height}x{width}: densenet121 needs at least 32 pixels in height and width")
    # The reference resizes to 288×144 before a 256×128 crop (×1.125); PCB is resized only.
    rh, rw = TRAIN_RESIZE[model]
    resize = (round(height * rh / h0), round(width * rw / w0))
    decay = default_decay_epoch(epochs) if decay_epoch is None else int(decay_epoch)
    return TrainConfig(
        model=model,
        epochs=int(epochs),
        batch_size=int(batch_size),
        erasing=float(erasing),
        height=height,
        width=width,
        resize=resize,
        weights=str(weights),
        seed=int(seed),
        lr=float(lr),
        lr_backbone=float(lr_backbone),
        decay_epoch=decay,
        loader=loader,
        precision=precision,
        compile=bool(compile),
        cuda_graph=bool(cuda_graph),
        checkpoint_every=int(checkpoint_every),
        workers=int(vdata.default_workers() if workers is None else workers),
        world_size=int(world_size),
    )


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["resize"] = list(cfg.resize)
    return d


def train_model(
    data_root: str | Path,
    model: str = "pcb",
    out_dir: str | Path = "runs/visual",
    epochs: int = 60,
    erasing: float = 0.0,
    height: int | None = None,
    width: int | None = None,
    weights: str | os.PathLike = "imagenet",
    device: str | torch.device = "auto",
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 0.1,
    lr_backbone: float = 0.01,
    decay_epoch: int | None = None,
    loader: str = "memory",
    precision: str = "auto",
    compile: bool = False,
    checkpoint_every: int = 5,
    workers: int | None = None,
    download_weights: bool = False,
    cuda_graph: str | bool = "auto",
    resume: bool = True,
    progress: bool = True,
    _kill_after_epochs: int | None = None,
) -> Path:
    """Train a visual baseline on ``data_root/bounding_box_train`` and return the final checkpoint path.

    Args:
        data_root: dataset root (Market-style or Duke-style names; ``sequence_lengths.json`` honoured).
        model: ``"pcb"``, ``"resnet50"`` or ``"densenet121"``.
        out_dir: run directory: ``last.pt`` (resumable checkpoint), ``history.json``, ``provenance.json``.
        epochs: number of epochs (reference 60).
        erasing: random-erasing probability (0.5 for the paper's "+RE" rows).
        height, width: training input in pixels (default 384×192 PCB, 256×128 crops otherwise).
        weights: ``"imagenet"`` (torch hub cache only), ``"none"`` (from scratch) or a backbone weights file.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: seeds initialisation, shuffling, augmentation and dropout.
        batch_size: images per step per process (reference 32).
        lr, lr_backbone: learning rates of the new layers and of the backbone.
        decay_epoch: 0-based epoch index from which lr is ×0.1 (default round(39/60·epochs)).
        loader: ``"memory"`` (fast path) or ``"plain"`` (torchvision DataLoader, fp32).
        precision: ``"auto"`` (bf16 on CUDA with the memory loader, else fp32), ``"bf16"`` or ``"fp32"``.
        compile: wrap the model in ``torch.compile``.
        cuda_graph: replay each training step as a CUDA graph (:class:`EpochRunner`); ``"auto"``: on with
            the memory loader on one CUDA device without ``compile``.
        checkpoint_every: epochs between checkpoints (the last epoch is always saved).
        workers: decoding threads / DataLoader workers (default min(16, CPUs)).
        download_weights: allow downloading missing ImageNet weights (needs internet).
        resume: continue from ``out_dir/last.pt`` when it exists (its configuration must match).
        progress: show a tqdm bar (rank 0 only).

    Returns:
        Path of ``out_dir/last.pt``, holding the final weights, configuration, history and provenance.
    """
    out_dir = Path(out_dir)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    rank, world, created_pg = _setup_distributed(dev)
    try:
        return _train(
            data_root, out_dir, dev, rank, world, model, epochs, erasing, height, width, weights, seed, batch_size,
            lr, lr_backbone, decay_epoch, loader, precision, compile, checkpoint_every, workers, download_weights,
            resume, progress, _kill_after_epochs, cuda_graph,
        )  # fmt: skip
    finally:
        if created_pg:
            dist.destroy_process_group()


def _train(
    data_root, out_dir, dev, rank, world, model_name, epochs, erasing, height, width, weights, seed, batch_size,
    lr, lr_backbone, decay_epoch, loader, precision, compile, checkpoint_every, workers, download_weights,
    resume, progress, kill_after, cuda_graph="auto",
) -> Path:  # fmt: skip
    cfg = _resolve_config(
        model_name, epochs, batch_size, erasing, height, width, str(weights), seed, lr, lr_backbone, decay_epoch,
        loader, precision, compile, checkpoint_every, workers, dev, world, cuda_graph,
    )  # fmt: skip
    last = out_dir / LAST
    ckpt = None
    if resume and last.is_file():
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        _check_resumable(ckpt, cfg, last)
        if ckpt["epoch"] >= cfg.epochs:
            if rank == 0 and progress:
                print(f"{last}: already trained for {ckpt['epoch']} epochs; nothing to do")
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
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
        _restore_rng(ckpt["rng"])
        weights_info = ckpt["provenance"]["weights"]
        if [int(p) for p in ckpt["class_pids"]] != class_pids.tolist():
            raise TrainError(f"{last}: its classes (person ids) differ from those in {data_root}")

    provenance = {
        "kind": "visual-training",
        "model": cfg.model,
        "num_classes": n_classes,
        "n_train_images": len(paths),
        "data_root": str(Path(data_root).resolve()),
        "weights": weights_info,
        "input_size": [cfg.height, cfg.width],
        "train_resize": list(cfg.resize),
        "decay_epoch": cfg.decay_epoch,
        "config": _config_dict(cfg),
        "torch": str(torch.__version__),
        "torchvision": str(__import__("torchvision").__version__),
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
    }
    if rank == 0:
        write_json_atomic(out_dir / "provenance.json", provenance)

    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    labels = torch.from_numpy(labels_np)
    if cfg.loader == "memory":
        t0 = time.perf_counter()
        images = vdata.decode_images(paths, *cfg.resize, workers=cfg.workers)
        trainset = vdata.MemoryTrainSet(images, labels, dev)
        if rank == 0 and progress:
            where = "device" if trainset.images_on_device else "pinned host memory"
            print(
                f"decoded {len(paths)} training images at {cfg.resize[0]}x{cfg.resize[1]} in "
                f"{time.perf_counter() - t0:.1f} s ({images.numel() / 2**20:.0f} MiB uint8, on {where})"
            )
        plain = None
    else:
        trainset = None
        plain = vdata.plain_loader(
            paths, labels_np, cfg.resize, (cfg.height, cfg.width), cfg.erasing, cfg.batch_size, cfg.workers,
            cfg.seed, rank, world,
        )  # fmt: skip

    runner = EpochRunner(
        net, optimizer, dev, amp=cfg.precision == "bf16", cuda_graph=cfg.cuda_graph, graph_batch=cfg.batch_size
    )
    n = len(paths)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        _set_lr(optimizer, epoch, cfg.decay_epoch)
        # Every random stream restarts from (seed, epoch, rank): resuming at an epoch boundary is exact.
        torch.manual_seed(vdata.derive_seed(cfg.seed, epoch, rank, 1))
        if trainset is not None:
            order = vdata.shard_indices(n, vdata.derive_seed(cfg.seed, epoch, 0), rank, world)
            gen = torch.Generator(dev).manual_seed(vdata.derive_seed(cfg.seed, epoch, rank, 2))
            batches = trainset.batches(order, cfg.batch_size, (cfg.height, cfg.width), cfg.erasing, gen)
            n_batches = len(vdata.batch_slices(len(order), cfg.batch_size))
        else:
            if world > 1:
                plain.sampler.set_epoch(epoch)
            plain.generator.manual_seed(vdata.derive_seed(cfg.seed, epoch, 0))
            batches, n_batches = plain, len(plain)
        stats = runner.run(
            batches, n_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", progress=progress and rank == 0,
            world_size=world,
        )  # fmt: skip
        totals = torch.stack([stats["loss_sum"].double(), stats["correct"].double()]).cpu()
        totals = torch.cat([totals, torch.tensor([float(stats["seen"])], dtype=torch.float64)])
        if world > 1:
            totals = totals.to(dev)
            dist.all_reduce(totals)
            totals = totals.cpu()
        seen = float(totals[2])
        history.append(
            {
                "epoch": epoch + 1,
                "lr_factor": lr_factor(epoch, cfg.decay_epoch),
                "loss": float(totals[0]) / seen,
                "accuracy": float(totals[1]) / seen,
                "images": int(seen),
                "seconds": round(stats["seconds"], 3),
                "images_per_s": round(seen / max(stats["seconds"], 1e-9), 1),
            }
        )
        done = epoch + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.epochs:
            extra = {}
            if done == cfg.epochs and world > 1:
                extra["ddp_param_checksums"] = _param_checksums(model, world)
            if rank == 0:
                _save_checkpoint(last, model, optimizer, cfg, done, history, class_pids, provenance, extra)
                write_json_atomic(out_dir / "history.json", history)
            if world > 1:
                dist.barrier()
        if kill_after is not None and done - start_epoch >= kill_after and done < cfg.epochs:
            # Test hook: stop as a killed process would, after this epoch's (possible) checkpoint.
            raise _SimulatedKill(f"simulated kill after epoch {done}")
    return last


def _param_checksums(model: torch.nn.Module, world: int) -> list[float]:
    """Sum of every parameter of this replica, gathered from all ranks (DDP replicas must agree)."""
    local = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    dev = next(model.parameters()).device
    out = [torch.zeros(1, dtype=torch.float64, device=dev) for _ in range(world)]
    dist.all_gather(out, local.to(dev))
    return [float(t.item()) for t in out]


def _save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    epoch: int,
    history: list[dict],
    class_pids: np.ndarray,
    provenance: dict,
    extra: dict,
) -> None:
    ckpt: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "model_name": cfg.model,
        "num_classes": int(len(class_pids)),
        "class_pids": [int(p) for p in class_pids],
        "epoch": int(epoch),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer.state_dict(),
        "config": _config_dict(cfg),
        "history": history,
        "provenance": provenance,
        "rng": _rng_states(),
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def _check_resumable(ckpt: dict, cfg: TrainConfig, path: Path) -> None:
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a training checkpoint of this project (format {ckpt.get('format')!r})")
    saved = ckpt["config"]
    now = _config_dict(cfg)
    diff = {k: (saved.get(k), now[k]) for k in _RESUME_KEYS if saved.get(k) != now[k]}
    if diff:
        raise TrainError(
            f"{path}: cannot resume, the configuration differs (saved, requested): {diff}; "
            "use another --out directory or the same options"
        )


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint (``last.pt``) on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: checkpoint not found")
    return torch.load(path, map_location="cpu", weights_only=True)


def cli_train(args) -> int:
    """``python -m streid_lib train ...`` (also under ``torchrun``)."""
    path = train_model(
        data_root=args.data,
        model=args.model,
        out_dir=args.out,
        epochs=args.epochs,
        erasing=args.erasing,
        height=args.height,
        width=args.width,
        weights=args.weights,
        device=args.device,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=getattr(args, "lr", 0.1),
        lr_backbone=getattr(args, "lr_backbone", 0.01),
        decay_epoch=getattr(args, "decay_epoch", None),
        loader=getattr(args, "loader", "memory"),
        precision=getattr(args, "precision", "auto"),
        compile=args.compile,
        checkpoint_every=args.checkpoint_every,
        workers=getattr(args, "workers", None),
        download_weights=getattr(args, "download_weights", False),
        cuda_graph={"auto": "auto", "on": True, "off": False}[getattr(args, "cuda_graph", "auto")],
        resume=not getattr(args, "no_resume", False),
        progress=not getattr(args, "no_progress", False),
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {path}")
    return 0
