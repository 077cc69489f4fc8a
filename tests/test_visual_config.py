"""Configuration of the visual stream as objects (no torch needed): checks at the door, resolution, and the command
line's options derived from the dataclasses (one home for every default)."""

from __future__ import annotations

import dataclasses
import math
import sys

import pytest

from streid_lib.cli import build_parser, from_options
from streid_lib.visual.config import (
    ConfigError,
    ExtractConfig,
    TrainConfig,
    defaults,
    resolve_train_config,
)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("height", 0, "height=0: expected a positive number of pixels (leave it unset for the model's default)"),
        ("height", -5, "height=-5: expected a positive number of pixels"),
        ("width", 0, "width=0: expected a positive number of pixels"),
        ("epochs", 0, "epochs=0: expected a whole number of epochs >= 1"),
        ("epochs", 2.5, "epochs=2.5: expected a whole number of epochs >= 1"),
        ("epochs", True, "epochs=True: expected a whole number"),
        ("batch_size", 1, "batch_size=1: expected at least 2 images (BatchNorm needs two)"),
        ("lr", 0.0, "lr=0.0: expected a learning rate > 0"),
        ("lr_backbone", -0.01, "lr_backbone=-0.01: expected a learning rate > 0"),
        ("lr", math.nan, "lr=nan: expected a learning rate > 0"),
        ("erasing", 1.5, "erasing=1.5: expected a probability in [0, 1]"),
        ("momentum", 1.0, "momentum=1.0: expected a momentum in [0, 1)"),
        ("weight_decay", -1e-4, "weight_decay=-0.0001: expected a weight decay >= 0"),
        ("decay_epoch", 61, "decay_epoch=61: expected an epoch index in [0, 60] (epochs: no decay)"),
        ("decay_epoch", -1, "decay_epoch=-1: expected an epoch index in [0, 60]"),
        ("checkpoint_every", 0, "checkpoint_every=0: expected a number of epochs >= 1"),
        ("workers", -1, "workers=-1: expected a number of workers >= 0"),
        ("seed", -3, "seed=-3: expected an integer >= 0"),
        ("model", "vgg", "model='vgg': expected one of 'pcb', 'resnet50', 'densenet121'"),
        ("loader", "fast", "loader='fast': expected one of 'memory', 'plain'"),
        ("precision", "fp16", "precision='fp16': expected one of 'auto', 'bf16', 'fp32'"),
        ("cuda_graph", "yes", "cuda_graph='yes': expected one of 'auto', 'on', 'off', True, False"),
        ("resize", (10, 10), "resize=(10, 10): expected at least the input size 384x192 (the crop must fit)"),
    ],
)
def test_train_config_refuses_out_of_range_values(field, value, words) -> None:
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{field: value})
    assert str(err.value).startswith(words), str(err.value)
    assert err.value.field == field and "\n" not in str(err.value)


def test_densenet_minimum_input_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^height=24: expected at least 32 pixels for densenet121 \(input 24x16\)"):
        TrainConfig(model="densenet121", height=24, width=16)
    assert TrainConfig(model="densenet121", height=32, width=32).input_size == (32, 32)


def test_configs_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        TrainConfig("pcb")  # type: ignore[misc]
    cfg = TrainConfig(model="resnet50")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        ExtractConfig("pcb")  # type: ignore[misc]
    for field, value, words in [
        ("batch_size", 0, "batch_size=0: expected at least 1 image"),
        ("height", 0, "height=0: expected a positive number of pixels"),
        ("width", -2, "width=-2: expected a positive number of pixels"),
        ("workers", 0, "workers=0: expected a number of threads >= 1"),
        ("precision", "auto", "precision='auto': expected one of 'fp32', 'bf16'"),
    ]:
        with pytest.raises(ConfigError, match="^" + words.replace("(", r"\(").replace(")", r"\)")):
            ExtractConfig(**{field: value})


def test_resolution_fills_the_model_defaults_and_checks_the_device() -> None:
    pcb = resolve_train_config(TrainConfig(model="pcb"), "cpu")
    assert (pcb.height, pcb.width, pcb.resize) == (384, 192, (384, 192))
    assert pcb.decay_epoch == 39 and pcb.precision == "fp32" and pcb.cuda_graph is False and pcb.workers >= 1
    res = resolve_train_config(TrainConfig(model="resnet50", epochs=10, height=32, width=16), "cpu")
    assert (res.height, res.width, res.resize, res.decay_epoch) == (32, 16, (36, 18), 6)
    assert resolve_train_config(res, "cpu") == res  # idempotent: a resolved config is complete
    gpu = resolve_train_config(TrainConfig(model="pcb"), "cuda:0")
    assert gpu.precision == "bf16" and gpu.cuda_graph is True
    assert resolve_train_config(TrainConfig(model="pcb", compile=True), "cuda").cuda_graph is False
    assert resolve_train_config(TrainConfig(model="pcb"), "cuda", world_size=2).world_size == 2
    with pytest.raises(ConfigError, match="^precision='bf16': expected 'fp32' on this device: bf16 needs CUDA"):
        resolve_train_config(TrainConfig(precision="bf16"), "cpu")
    with pytest.raises(ConfigError, match="^cuda_graph='on': expected a CUDA device"):
        resolve_train_config(TrainConfig(cuda_graph="on"), "cpu")
    d = pcb.to_dict()
    assert d["resize"] == [384, 192] and set(d) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_command_line_defaults_are_the_dataclass_defaults() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--model", "resnet50", "--data", "d", "--out", "o"])
    assert from_options(TrainConfig, args) == TrainConfig(model="resnet50")
    for name, default in defaults(TrainConfig).items():
        if hasattr(args, name) and name != "model":
            assert getattr(args, name) == default, name
    args = parser.parse_args(["extract", "--model", "pcb", "--checkpoint", "c", "--data", "d", "--out", "o.npz"])
    assert from_options(ExtractConfig, args) == ExtractConfig(model="pcb")
    args = parser.parse_args(
        ["extract", "--model", "pcb", "--checkpoint", "c", "--data", "d", "--out", "o", "--no-train"]
    )
    assert from_options(ExtractConfig, args).train is False
    args = parser.parse_args(
        ["train", "--model", "pcb", "--data", "d", "--out", "o", "--cuda-graph", "off", "--keep-checkpoints"]
    )
    cfg = from_options(TrainConfig, args)
    assert cfg.cuda_graph is False and cfg.keep_checkpoints is True


def test_option_errors_are_worded_for_the_command_line() -> None:
    args = build_parser().parse_args(["train", "--model", "pcb", "--data", "d", "--out", "o", "--height", "0"])
    with pytest.raises(ConfigError) as err:
        from_options(TrainConfig, args)
    assert str(err.value) == "--height 0: expected a positive number of pixels (leave it unset for the model's default)"
    args = build_parser().parse_args(["train", "--model", "pcb", "--data", "d", "--out", "o", "--lr-backbone", "-1"])
    with pytest.raises(ConfigError, match=r"^--lr-backbone -1.0: expected a learning rate > 0$"):
        from_options(TrainConfig, args)


def test_the_configuration_imports_no_torch() -> None:
    import subprocess

    code = (
        "import sys, streid_lib.visual.config, streid_lib.visual, streid_lib.cli; streid_lib.cli.build_parser(); "
        "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
