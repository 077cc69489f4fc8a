"""What a visual-stream run is asked to do: :class:`TrainConfig` and :class:`ExtractConfig` (torch-free).

Keyword-only, frozen, every value checked when built (:class:`ConfigError`); ``None`` means the model's default.
:func:`resolve_train_config` fills in the machine- and model-dependent values (what a checkpoint stores).
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import StreidError

MODEL_NAMES = ("pcb", "resnet50", "densenet121")

#: Reference input sizes (height, width) in pixels: training crop / test resize (docs/reference.md §2.5-2.6).
TRAIN_SIZE = {"pcb": (384, 192), "resnet50": (256, 128), "densenet121": (256, 128)}
#: Size the training images are resized to before the random crop (no crop for PCB).
TRAIN_RESIZE = {"pcb": (384, 192), "resnet50": (288, 144), "densenet121": (288, 144)}
TEST_SIZE = {"pcb": (384, 192), "resnet50": (288, 144), "densenet121": (288, 144)}
#: DenseNet-121's four /2 transitions leave no pixel below this input size (PCB and ResNet-50 pool adaptively).
DENSENET_MIN_SIZE = 32
#: Largest input side in pixels: ten times the reference's largest (384), far beyond any person crop.
MAX_SIDE = 4096
#: Memory per input pixel per image, estimated before anything is allocated: a training step keeps every
#: activation for the backward pass (ResNet-50 in fp32: about 1 KiB per input pixel), a test pass only a few layers.
BYTES_PER_PIXEL = {"train": 1024, "test": 128}


#: CPU kernels that every x86-64 CPU runs alike (docs/reference.md §13.13): PyTorch's unvectorised ATen kernels,
#: oneDNN's SSE4.1 convolutions and MKL's conditional-numerical-reproducibility path.
PORTABLE_CPU = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}


def use_portable_cpu(threads: int) -> bool:
    """Make this process train and extract on the CPU with :data:`PORTABLE_CPU` kernels and ``threads`` threads,
    so that the weights and features are the same bits on any x86-64 CPU (about 2x slower than AVX2 kernels).

    Works only before torch is loaded (it sets the environment torch reads when it starts); returns whether the
    portable kernels are in effect (False when torch was already loaded with other kernels).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ.update(PORTABLE_CPU, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        return True
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT" or not portable_environment():
        return False
    torch.set_num_threads(threads)
    return True


def portable_environment() -> bool:
    """Whether this process's environment asks for the :data:`PORTABLE_CPU` kernels."""
    return all(os.environ.get(k) == v for k, v in PORTABLE_CPU.items())


def kernels_in_use() -> str:
    """The CPU kernels and threads of torch in this process (``"DEFAULT, 2 threads"``: the portable ones)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "torch not loaded"
    return f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"


class ConfigError(StreidError):
    """An option value outside its range: ``str(err)`` reads ``field=value: expected ...`` (or ``--field value:
    expected ...`` for a command-line option, :func:`streid_lib.cli.from_options`)."""

    def __init__(self, field: str, value: Any, expected: str, *, option: bool = False) -> None:
        where = f"--{field.replace('_', '-')} {value}" if option else f"{field}={value!r}"
        super().__init__(f"{where}: expected {expected}")
        self.field, self.value, self.expected = field, value, expected


def default_workers() -> int:
    """Decoding threads / DataLoader workers: the CPU count, at most 16 (the reference's worker count)."""
    return max(1, min(16, os.cpu_count() or 1))


def default_decay_epoch(epochs: int) -> int:
    """The reference's decay epoch index (39 of 60: StepLR step 40, stepped at each epoch's start) scaled to
    ``epochs``: round(39/60·epochs) (docs/reference.md §13.7)."""
    return int(round(39 / 60 * epochs))


_PIXELS = "a positive number of pixels (leave it unset for the model's default)"


def _check(name: str, value: Any, rule: tuple) -> Any:
    """One field checked by its rule ``(kind, bound, expected)``, returned normalised. Kinds: ``int`` (≥ bound),
    ``int?``/``side`` (or ``None``; a side ≤ :data:`MAX_SIDE`), ``real`` (finite, bound(v)), ``flag``, ``choice``."""
    kind, bound, expected = rule
    if value is None and kind in ("int?", "side"):
        return None
    if kind == "choice":
        if value not in bound:
            raise ConfigError(name, value, "one of " + ", ".join(repr(c) for c in bound))
        return value
    if kind == "flag":
        if not isinstance(value, bool):
            raise ConfigError(name, value, "True or False")
        return value
    number = not isinstance(value, bool) and isinstance(value, numbers.Real if kind == "real" else numbers.Integral)
    if kind == "real":
        if not (number and math.isfinite(value) and bound(value)):
            raise ConfigError(name, value, expected)
        return float(value)
    if not number or int(value) < bound:
        raise ConfigError(name, value, expected)
    if kind == "side" and value > MAX_SIDE:
        raise ConfigError(name, value, f"at most {MAX_SIDE} pixels (the reference's inputs are 256x128 to 384x192)")
    return int(value)


def _check_all(obj: Any, rules: dict[str, tuple]) -> None:
    for name, rule in rules.items():
        object.__setattr__(obj, name, _check(name, getattr(obj, name), rule))


def _check_memory(kind: str, h: int, w: int, batch_size: int) -> None:
    """Refuse an input size and batch whose estimated memory exceeds this machine's (before allocating)."""
    need = batch_size * h * w * BYTES_PER_PIXEL[kind]
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > have:
        raise ConfigError(
            "batch_size",
            batch_size,
            f"a batch that fits in memory: {batch_size} images of {h}x{w} need about {need / 2**30:.1f} GiB "
            f"({BYTES_PER_PIXEL[kind]} bytes per pixel), more than this machine's {have / 2**30:.1f} GiB; "
            "lower --height/--width or --batch-size",
        )


_RATE = ("real", lambda v: v > 0, "a learning rate > 0")
_TRAIN_RULES = {
    "model": ("choice", MODEL_NAMES, ""),
    "epochs": ("int", 1, "a whole number of epochs >= 1"),
    "height": ("side", 1, _PIXELS),
    "width": ("side", 1, _PIXELS),
    "batch_size": ("int", 2, "at least 2 images (BatchNorm needs two)"),
    "erasing": ("real", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    "seed": ("int", 0, "an integer >= 0"),
    "lr": _RATE,
    "lr_backbone": _RATE,
    "momentum": ("real", lambda v: 0 <= v < 1, "a momentum in [0, 1)"),
    "weight_decay": ("real", lambda v: v >= 0, "a weight decay >= 0"),
    "loader": ("choice", ("memory", "plain"), ""),
    "precision": ("choice", ("auto", "bf16", "fp32"), ""),
    "compile": ("flag", None, ""),
    "cuda_graph": ("choice", ("auto", "on", "off", True, False), ""),
    "checkpoint_every": ("int", 1, "a number of epochs >= 1"),
    "keep_checkpoints": ("flag", None, ""),
    "workers": ("int?", 0, "a number of workers >= 0"),
    "world_size": ("int", 1, "a number of processes >= 1"),
}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that determines a training run (docs/reference.md §2.5); stored in every checkpoint.

    Attributes:
        model: ``"pcb"``, ``"resnet50"`` or ``"densenet121"``; epochs (reference 60); batch_size per process (32).
        erasing: random-erasing probability (0.5 for the paper's "+RE" rows).
        height, width: training input in pixels; ``None``: 384×192 PCB, 256×128 crops otherwise.
        resize: (h, w) pixels before the random crop, at least the input; ``None``: the reference's ratio.
        weights: ``"imagenet"`` (torch hub cache), ``"none"`` (from scratch) or a backbone weights file.
        seed: seeds initialisation, shuffling, augmentation and dropout.
        lr, lr_backbone, momentum, weight_decay: SGD of the new layers / backbone (0.1, 0.01, Nesterov 0.9, 5e-4).
        decay_epoch: 0-based epoch from which the rates are ×0.1 (``epochs``: never; ``None``: round(39/60·epochs)).
        loader: ``"memory"`` (fast path) or ``"plain"`` (torchvision DataLoader, fp32).
        precision: ``"auto"`` (bf16 on CUDA with the memory loader, else fp32), ``"bf16"`` or ``"fp32"``.
        compile: ``torch.compile``; cuda_graph: ``"auto"`` (memory loader, one CUDA device, no compile), on, off.
        checkpoint_every: epochs between checkpoints (the last is always saved); keep_checkpoints: ``epoch_NNN.pt``.
        workers: decoding threads / DataLoader workers (``None``: min(16, CPUs)).
        world_size: number of training processes; set by :func:`resolve_train_config` from the launcher.
    """

    model: str = "pcb"
    epochs: int = 60
    batch_size: int = 32
    erasing: float = 0.0
    height: int | None = None
    width: int | None = None
    resize: tuple[int, int] | None = None
    weights: str = "imagenet"
    seed: int = 0
    lr: float = 0.1
    lr_backbone: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    decay_epoch: int | None = None
    loader: str = "memory"
    precision: str = "auto"
    compile: bool = False
    cuda_graph: str | bool = "auto"
    checkpoint_every: int = 5
    keep_checkpoints: bool = False
    workers: int | None = None
    world_size: int = 1

    def __post_init__(self) -> None:
        _check_all(self, _TRAIN_RULES)
        h, w = self.input_size
        if self.model == "densenet121" and min(h, w) < DENSENET_MIN_SIZE:
            field, value = ("height", h) if h < DENSENET_MIN_SIZE else ("width", w)
            raise ConfigError(field, value, f"at least {DENSENET_MIN_SIZE} pixels for densenet121 (input {h}x{w})")
        if self.resize is not None:
            if len(self.resize) != 2:
                raise ConfigError("resize", self.resize, "(height, width) in pixels")
            resize = tuple(_check("resize", v, ("int", 1, _PIXELS)) for v in self.resize)
            if resize[0] < h or resize[1] < w:
                raise ConfigError("resize", resize, f"at least the input size {h}x{w} (the crop must fit)")
            object.__setattr__(self, "resize", resize)
        epochs = f"an epoch index in [0, {self.epochs}] (epochs: no decay)"
        decay = _check("decay_epoch", self.decay_epoch, ("int?", 0, epochs))
        if decay is not None and decay > self.epochs:
            raise ConfigError("decay_epoch", decay, epochs)
        if self.weights == "":
            raise ConfigError("weights", self.weights, "'imagenet', 'none' or a weights file")
        graph = {"on": True, "off": False}.get(self.cuda_graph, self.cuda_graph)  # "auto", True or False
        for name, value in (("decay_epoch", decay), ("weights", str(self.weights)), ("cuda_graph", graph)):
            object.__setattr__(self, name, value)
        _check_memory("train", *self.input_size, self.batch_size)

    @property
    def input_size(self) -> tuple[int, int]:
        """Training input (height, width) in pixels, the model's default where unset."""
        h0, w0 = TRAIN_SIZE[self.model]
        return self.height or h0, self.width or w0

    def to_dict(self) -> dict:
        """Plain JSON-able dict (as stored in checkpoints and provenance)."""
        return {**asdict(self), "resize": None if self.resize is None else list(self.resize)}


def resolve_train_config(config: TrainConfig, device: Any = "cpu", world_size: int = 1) -> TrainConfig:
    """The complete configuration of a run on ``device`` (``torch.device`` or ``"cuda:0"``...) with ``world_size``
    processes: input size, resize, decay epoch, precision, CUDA graphs and workers filled in; checks what needs
    CUDA. Resolving twice gives the same object."""
    dev_type = getattr(device, "type", str(device).split(":")[0])
    cfg = replace(config, world_size=int(world_size))
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if dev_type == "cuda" and cfg.loader == "memory" else "fp32"
    if precision == "bf16" and dev_type != "cuda":
        raise ConfigError("precision", "bf16", "'fp32' on this device: bf16 needs CUDA (CPU training runs in fp32)")
    graph_ok = dev_type == "cuda" and cfg.loader == "memory" and not cfg.compile and cfg.world_size == 1
    if cfg.cuda_graph is True and not graph_ok:
        raise ConfigError(
            "cuda_graph",
            "on",
            "a CUDA device, loader='memory', no torch.compile and a single process "
            f"(got device {device}, loader {cfg.loader!r}, compile={cfg.compile}, {cfg.world_size} processes)",
        )
    h, w = cfg.input_size
    h0, w0 = TRAIN_SIZE[cfg.model]
    rh, rw = TRAIN_RESIZE[cfg.model]
    # The reference resizes to 288×144 before a 256×128 crop (×1.125); PCB is resized only.
    resize = cfg.resize or (round(h * rh / h0), round(w * rw / w0))
    return replace(
        cfg,
        height=h,
        width=w,
        resize=resize,
        decay_epoch=default_decay_epoch(cfg.epochs) if cfg.decay_epoch is None else cfg.decay_epoch,
        precision=precision,
        cuda_graph=graph_ok if cfg.cuda_graph == "auto" else cfg.cuda_graph,
        workers=default_workers() if cfg.workers is None else cfg.workers,
    )


@dataclass(frozen=True, kw_only=True)
class ExtractConfig:
    """How features are extracted (docs/reference.md §2.6).

    Attributes:
        model: ``"pcb"``, ``"resnet50"`` or ``"densenet121"`` (the checkpoint's architecture).
        batch_size: images per forward pass; height, width: test resize in pixels (``None``: the reference's).
        precision: ``"fp32"`` (faithful) or ``"bf16"`` (CUDA autocast, faster).
        workers: decoding threads (``None``: min(16, CPUs)).
        train: also extract the training images (``bounding_box_train``) into the file's training side.
    """

    model: str = "pcb"
    batch_size: int = 128
    height: int | None = None
    width: int | None = None
    precision: str = "fp32"
    workers: int | None = None
    train: bool = True

    def __post_init__(self) -> None:
        _check_all(self, _EXTRACT_RULES)
        _check_memory("test", *self.input_size, self.batch_size)

    @property
    def input_size(self) -> tuple[int, int]:
        """Test resize (height, width) in pixels, the model's default where unset."""
        h0, w0 = TEST_SIZE[self.model]
        return self.height or h0, self.width or w0


_EXTRACT_RULES = {
    "model": _TRAIN_RULES["model"],
    "batch_size": ("int", 1, "at least 1 image"),
    "height": _TRAIN_RULES["height"],
    "width": _TRAIN_RULES["width"],
    "precision": ("choice", ("fp32", "bf16"), ""),
    "workers": ("int?", 1, "a number of threads >= 1"),
    "train": ("flag", None, ""),
}


def defaults(cls: type) -> dict[str, Any]:
    """``{field: default}`` of a config dataclass (for the command line's option defaults)."""
    return {f.name: f.default for f in fields(cls)}
