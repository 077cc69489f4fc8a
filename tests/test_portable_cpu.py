"""Portable CPU kernels (docs/reference.md §13.13): with them, training gives the same weights whatever CPU
capability, MKL instruction set or thread count the machine offers; without them it does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from streid_lib.study.steps import same_kernels  # noqa: E402
from streid_lib.visual import data as vdata  # noqa: E402

#: Trains a small ResNet-50 for one epoch in a fresh process and prints its kernels and a hash of its weights.
TRAIN = """
import hashlib, json, sys
from streid_lib.visual.config import use_portable_cpu
portable = sys.argv[2] == "portable" and use_portable_cpu(1)
import torch
from streid_lib.visual.config import TrainConfig, kernels_in_use
from streid_lib.visual.train import train_model
cfg = TrainConfig(model="resnet50", epochs=1, height=32, width=16, weights="none", batch_size=6, lr=0.01,
                  lr_backbone=0.001, workers=1)
ckpt = train_model(cfg, data_root=sys.argv[1], out_dir=sys.argv[3], device="cpu", progress=False)
state = torch.load(ckpt, weights_only=False)["model_state"]
digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in state.values())).hexdigest()
print(json.dumps({"portable": portable, "kernels": kernels_in_use(), "weights": digest}))
"""

#: Another CPU, simulated: no vector units beyond SSE, MKL as an older CPU runs it, and two cores.
OTHER_CPU = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
             "OMP_NUM_THREADS": "2"}  # fmt: skip


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return vdata.write_toy_dataset(tmp_path_factory.mktemp("toy"), n_ids=3, per_id=2, n_query_ids=1, seed=2)


def _train(toy: Path, out: Path, mode: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in (*OTHER_CPU, "MKL_CBWR")}
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, str(toy), mode, str(out)], env={**base, **env}, capture_output=True, text=True,
        check=True, timeout=600,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_portable_kernels_train_the_same_weights_on_another_cpu(toy, tmp_path):
    here = _train(toy, tmp_path / "a", "portable")
    other = _train(toy, tmp_path / "b", "portable", **OTHER_CPU)
    assert here["portable"] and other["portable"]
    assert here["kernels"] == other["kernels"] == "DEFAULT, 1 threads"
    assert here["weights"] == other["weights"]
    # Without them the simulated CPU trains other weights (what the portable kernels are for).
    native = _train(toy, tmp_path / "c", "native", OMP_NUM_THREADS="1")
    simulated = _train(toy, tmp_path / "d", "native", **OTHER_CPU)
    assert native["kernels"] != simulated["kernels"]
    assert native["weights"] != simulated["weights"]


def test_portable_kernels_are_refused_once_torch_runs_others():
    code = "import torch; from streid_lib.visual.config import use_portable_cpu; print(use_portable_cpu(1))"
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("True" if "avx" not in _capability(env) else "False")


def _capability(env: dict) -> str:
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.lower()


def test_cached_features_are_reused_only_with_the_run_s_kernels(monkeypatch):
    from streid_lib.visual.config import PORTABLE_CPU

    for k, v in PORTABLE_CPU.items():
        monkeypatch.setenv(k, v)

    class Cfg:
        cpu_threads = 2

    class Fs:
        def __init__(self, **provenance):
            self.provenance = provenance

    assert same_kernels(Fs(device="cpu", cpu_kernels="DEFAULT, 2 threads"), Cfg())
    assert not same_kernels(Fs(device="cpu", cpu_kernels="AVX2, 2 threads"), Cfg())
    assert not same_kernels(Fs(device="cpu"), Cfg())  # made before the portable kernels: made again
    assert same_kernels(Fs(device="NVIDIA H200"), Cfg())
    monkeypatch.delenv("MKL_CBWR")  # a process that does not run the portable kernels (torch loaded first)
    assert same_kernels(Fs(device="cpu", cpu_kernels="AVX2, 2 threads"), Cfg())
    Cfg.cpu_threads = None
    assert same_kernels(Fs(device="cpu", cpu_kernels="AVX2, 16 threads"), Cfg())
