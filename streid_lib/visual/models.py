"""The three visual baselines of the paper: PCB, ResNet-50 and DenseNet-121 (docs/reference.md §2.1-2.4).

``forward(x)`` on (B, 3, H, W) ImageNet-normalised images → logits (B, P, C), P = 6 for PCB else 1; ``embed(x)`` → raw
test features (B, 2048, 6) PCB, (B, 2048) ResNet-50, (B, 1024) DenseNet-121. Module names follow the reference, so
its state dicts load as is (:func:`load_trained_model`: ours or theirs). ImageNet weights come from the torch hub cache
only (else :class:`WeightsUnavailableError`; ``weights="none"``: from scratch); the source is in ``model.weights_info``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from .._io import file_sha256
from ..errors import StreidError
from .config import MODEL_NAMES, TEST_SIZE, TRAIN_RESIZE, TRAIN_SIZE  # noqa: F401  (re-exported)

PCB_PARTS = 6
#: The ``format`` of our training checkpoints (``last.pt``, :mod:`.train`).
CHECKPOINT_FORMAT = "streid-visual-checkpoint/1"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Old-style DenseNet keys ('norm.1') in torchvision's released file (torchvision's own loader remaps them too).
_DENSE_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class WeightsError(StreidError):
    """A weights request or weights file that cannot be honoured."""


class WeightsUnavailableError(WeightsError):
    """ImageNet weights were requested but are not in the local torch hub cache."""


def _imagenet_enum(name: str) -> torchvision.models.WeightsEnum:
    if name not in MODEL_NAMES:
        raise WeightsError(f"model {name!r}: expected one of {MODEL_NAMES}")
    models = torchvision.models
    return models.DenseNet121_Weights.IMAGENET1K_V1 if name == "densenet121" else models.ResNet50_Weights.IMAGENET1K_V1


def hub_cache_file(name: str) -> Path:
    """Where torchvision keeps (or would download) the ImageNet weights of ``name``'s backbone."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_imagenet_enum(name).url)


def load_torch_file(path: Path, error: str) -> object:
    """``torch.load`` a file on the CPU (tensors only); any failure raises :class:`WeightsError` ``error`` followed
    by the exception's type and first line (torch raises several types for a bad file)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WeightsError(f"{error} ({type(exc).__name__}: {first})") from None


def load_backbone_state(name: str, weights: str | os.PathLike, download: bool = False) -> tuple[dict | None, dict]:
    """Resolve ``weights`` (``"imagenet"`` from the hub cache, ``"none"``, or a torchvision state-dict file) for
    ``name``'s backbone into (state dict or None, provenance ``request``, ``source``, file ``sha256``).

    Raises :class:`WeightsUnavailableError` when ImageNet weights are not cached and ``download`` is False, and
    :class:`WeightsError` for a missing or unreadable file.
    """
    enum = _imagenet_enum(name)
    w = str(weights)
    if w == "none":
        return None, {"request": "none", "source": "random initialisation (trained from scratch)"}
    if w == "imagenet":
        cached = hub_cache_file(name)
        if not cached.is_file() and not download:
            arch = "resnet50" if name != "densenet121" else "densenet121"
            raise WeightsUnavailableError(
                f"ImageNet weights for {name} (torchvision {type(enum).__name__}.{enum.name}, file {cached.name}) "
                f"are not in the torch hub cache {cached.parent} and are not downloaded automatically. "
                f"Either (1) on a machine with internet run "
                f"`python -c \"import torchvision; torchvision.models.{arch}(weights='{enum.name}')\"` and copy "
                f"~/.cache/torch/hub/checkpoints/{cached.name} to {cached} (or set TORCH_HOME); "
                f"(2) pass --weights /path/to/{cached.name} (weights='/path/to/{cached.name}'); "
                f"(3) pass --download-weights (download=True) where there is internet; or "
                f"(4) pass --weights none to train from scratch on purpose (recorded in the provenance)."
            )
        state = enum.get_state_dict(progress=False, check_hash=True)
        source = f"torchvision {type(enum).__name__}.{enum.name}"
        return state, {"request": "imagenet", "source": source, "url": enum.url, "file": str(cached)}
    path = Path(w)
    if not path.is_file():
        raise WeightsError(f"weights {w!r}: expected 'imagenet', 'none' or an existing weights file; {path} not found")
    state = load_torch_file(path, f"not a torch weights file: {path}")
    for key in ("state_dict", "model_state", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors (torchvision {name} backbone)")
    # A file saved from one of our models (keys 'model.*') is accepted too: keep its backbone part.
    if any(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return state, {"request": "file", "source": str(path.resolve()), "sha256": file_sha256(path)}


def _load_state(module: nn.Module, state: dict, ignore_prefixes: tuple[str, ...], source: str, what: str) -> None:
    """Load ``state`` into ``module``, ignoring keys with ``ignore_prefixes`` (an unused ImageNet head); every other
    key must fit, else a :class:`WeightsError` names ``source`` and ``what`` it should have fitted."""
    state = {_DENSE_OLD_KEY.sub(r"\1\2", k): v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    own = module.state_dict()
    # torchvision's released files predate BatchNorm's num_batches_tracked; BatchNorm fills it in itself.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    bad_shape = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or bad_shape:
        raise WeightsError(
            f"{source}: does not fit {what}: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}, "
            f"wrong shape {bad_shape[:3]}"
        )
    module.load_state_dict(state, strict=False)


class ClassBlock(nn.Module):
    """Linear(input_dim→bottleneck) → BN1d → [LeakyReLU 0.1] → Dropout 0.5 → Linear(bottleneck→C), initialised as
    the reference (docs/reference.md §2.1; every head of the paper uses its dropout)."""

    def __init__(self, input_dim: int, num_classes: int, relu: bool = True, bottleneck: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(input_dim, bottleneck), nn.BatchNorm1d(bottleneck)]
        if relu:
            layers.append(nn.LeakyReLU(0.1))
        layers.append(nn.Dropout(p=0.5))
        self.add_block = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(bottleneck, num_classes))
        nn.init.kaiming_normal_(self.add_block[0].weight, a=0, mode="fan_out")
        nn.init.zeros_(self.add_block[0].bias)
        nn.init.normal_(self.add_block[1].weight, 1.0, 0.02)
        nn.init.zeros_(self.add_block[1].bias)
        nn.init.normal_(self.classifier[0].weight, 0.0, 0.001)
        nn.init.zeros_(self.classifier[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.add_block(x))


class _ReIDModel(nn.Module):
    """Shared interface: ``forward`` → (B, P, C) logits, ``embed`` → raw test feature, ``new_parameters``.

    ResNet-50 and DenseNet-121: ``embed`` is the pooled feature before the bottleneck, (B, 2048) or (B, 1024).
    """

    name: str = ""
    weights_info: dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x)).unsqueeze(1)

    def new_parameters(self) -> list[nn.Parameter]:
        """Parameters of the new layers (lr 0.1 in the reference); the rest is the backbone (lr 0.01)."""
        return [p for n, p in self.named_parameters() if not n.startswith("model.")]

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.startswith("model.")]


class ResNet50Baseline(_ReIDModel):
    """``ft_net``: ResNet-50 to layer4, global average pool (2048-d), ClassBlock(2048, C) (docs/reference.md §2.2)."""

    name = "resnet50"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.model = torchvision.models.resnet50(weights=None)
        self.model.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.model.fc = nn.Identity()  # never called in the reference; dropped so DDP sees no unused parameters
        self.classifier = ClassBlock(2048, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.model.avgpool(_resnet_maps(self.model, x)), 1)


class DenseNet121Baseline(_ReIDModel):
    """``ft_net_dense``: DenseNet-121 features (ending at norm5, no final ReLU) + pool, ClassBlock(1024, C)."""

    name = "densenet121"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.model = torchvision.models.densenet121(weights=None)
        self.model.features.add_module("avgpool", nn.AdaptiveAvgPool2d((1, 1)))
        self.model.classifier = nn.Identity()
        self.classifier = ClassBlock(1024, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.model.features(x), 1)


class PCB(_ReIDModel):
    """PCB (docs/reference.md §2.4): ResNet-50, stride-1 layer4, 6 stripes, six ClassBlock(2048, C, relu=False, 256)."""

    name = "pcb"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.model = torchvision.models.resnet50(weights=None)
        self.model.fc = nn.Identity()
        # Stride 1 in layer4's first block (conv2 and the downsample conv): a 24×12 map at 384×192.
        self.model.layer4[0].conv2.stride = (1, 1)
        self.model.layer4[0].downsample[0].stride = (1, 1)
        self.avgpool = nn.AdaptiveAvgPool2d((PCB_PARTS, 1))
        self.dropout = nn.Dropout(p=0.5)
        for i in range(PCB_PARTS):
            setattr(self, f"classifier{i}", ClassBlock(2048, num_classes, relu=False, bottleneck=256))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.dropout(self.embed(x))  # dropout is the identity in eval mode
        return torch.stack([getattr(self, f"classifier{i}")(parts[:, :, i]) for i in range(PCB_PARTS)], dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2048, 6) raw pooled stripes (the bottlenecks and classifiers are not used at test time)."""
        return self.avgpool(_resnet_maps(self.model, x)).flatten(2)


def _resnet_maps(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A torchvision ResNet's layer4 feature maps (its avgpool and fc are not applied)."""
    return m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))


_CLASSES = {"pcb": PCB, "resnet50": ResNet50Baseline, "densenet121": DenseNet121Baseline}


def build_model(
    name: str, num_classes: int, weights: str | os.PathLike = "imagenet", download: bool = False
) -> _ReIDModel:
    """Build baseline ``name`` for ``num_classes`` identities, its backbone initialised from ``weights``
    (:func:`load_backbone_state`); the resolved source is in ``model.weights_info`` (for provenance)."""
    state, info = load_backbone_state(name, weights, download=download)  # checks the name first
    if int(num_classes) < 1:
        raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
    model = _CLASSES[name](int(num_classes))
    if state is not None:
        head = ("classifier.",) if name == "densenet121" else ("fc.",)
        _load_state(model.model, state, head, info["source"], "the backbone")
    model.weights_info = info
    return model


def load_model_state(model: _ReIDModel, state: dict, source: str) -> None:
    """Load a full model state dict (ours or the authors' ``net_last.pth``, whose unused ImageNet head is ignored)
    into ``model``; anything else that does not fit is an error naming ``source``."""
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    _load_state(model, state, ("model.fc.", "model.classifier."), source, f"a {model.name} model")


def num_classes_in_state(name: str, state: dict) -> int:
    """Number of classes of a saved model, from its (first) classifier's output layer."""
    key = "classifier0.classifier.0.weight" if name == "pcb" else "classifier.classifier.0.weight"
    for k, v in state.items():
        if k.removeprefix("module.").removeprefix("_orig_mod.") == key:
            return int(v.shape[0])
    raise WeightsError(f"state dict has no {key!r}: not a {name} model of this project or of the reference")


def load_trained_model(model_name: str, checkpoint: str | Path) -> tuple[torch.nn.Module, dict]:
    """Build ``model_name`` and load a checkpoint into it: ours (``last.pt``) or a bare state dict
    (e.g. the authors' ``net_last.pth``). Returns (model on CPU in eval mode, checkpoint provenance)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint not found")
    obj = load_torch_file(path, f"not a streid checkpoint: {path}")
    info: dict = {"checkpoint": str(path.resolve()), "checkpoint_sha256": file_sha256(path)}
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if obj["model_name"] != model_name:
            raise WeightsError(f"{path}: holds a {obj['model_name']!r} model, not {model_name!r}")
        state = obj["model_state"]
        prov = obj["provenance"]
        info |= dict(checkpoint_epoch=int(obj["epoch"]), weights=prov.get("weights"))
        info |= dict(training_data_root=prov.get("data_root"), training_config=obj["config"])
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
        info["weights"] = {"request": "state-dict file", "source": str(path.resolve())}
    else:
        raise WeightsError(f"not a streid checkpoint: {path} (expected {CHECKPOINT_FORMAT} or a state dict)")
    model = build_model(model_name, num_classes_in_state(model_name, state), weights="none")
    load_model_state(model, state, str(path))
    return model.eval(), info


def part_logits_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scalar loss, (B,) predicted classes) from (B, P, C) logits: sum over parts of the mean cross-entropy; argmax
    of the summed softmax."""
    logits = logits.float()
    p = logits.shape[1]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.repeat_interleave(p), reduction="sum")
    loss = loss / labels.shape[0]  # = Σ_parts mean-CE(part)
    pred = logits[:, 0].argmax(1) if p == 1 else logits.softmax(-1).sum(1).argmax(1)
    return loss, pred


def normalise_features(raw: torch.Tensor) -> torch.Tensor:
    """Test-feature normalisation (docs/reference.md §2.6): (B, 2048, 6) PCB stripes each L2-normalised, flattened
    channel-major (index c·6 + stripe) → (B, 12288); (B, D): the whole vector L2-normalised."""
    return F.normalize(raw.float(), p=2, dim=1).flatten(1)
