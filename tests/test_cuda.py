"""The visual stream's CUDA paths: skipped on machines without a CUDA GPU.

CI has no GPU, so these run in ``benchmarks/gpu_checks.sh`` on a lent one (figures in benchmarks/README.md).
They cover what the CPU tests cannot reach: the training set held in device memory with on-device augmentation,
bf16 autocast, channels-last, fused SGD, resuming on the GPU, and extraction on the GPU against the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import SimulatedKill, kill_at_epoch

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (run benchmarks/gpu_checks.sh on a machine with one)"
)

from streid_lib.visual import data as vdata  # noqa: E402
from streid_lib.visual.config import ExtractConfig, TrainConfig  # noqa: E402
from streid_lib.visual.extract import extract_features  # noqa: E402
from streid_lib.visual.train import build_optimizer, load_checkpoint, train_model  # noqa: E402

SIZE = (64, 32)
LR = {"lr": 0.01, "lr_backbone": 0.001}  # from scratch on a few identities (see test_visual_train)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return vdata.write_toy_dataset(tmp_path_factory.mktemp("toy"), n_ids=4, per_id=4, n_query_ids=3, seed=3)


def _run(toy: Path, out: Path, kill_at: int | None = None, **kw) -> Path:
    args = dict(
        model="pcb", epochs=4, height=SIZE[0], width=SIZE[1], weights="none", seed=0, batch_size=8, erasing=0.5,
        checkpoint_every=2, workers=2, **LR,
    )  # fmt: skip
    with kill_at_epoch(kill_at):
        return train_model(TrainConfig(**{**args, **kw}), data_root=toy, out_dir=out, device="cuda", progress=False)


@pytest.fixture(scope="module")
def full_run(toy, tmp_path_factory) -> Path:
    return _run(toy, tmp_path_factory.mktemp("full"))


def _max_rel_diff(a: dict, b: dict) -> float:
    """Largest ‖a_k − b_k‖ / ‖a_k‖ over the floating-point tensors of two state dicts."""
    out = 0.0
    for k, v in a.items():
        if v.is_floating_point() and v.norm() > 0:
            out = max(out, float((v - b[k]).norm() / v.norm()))
    return out


def test_fast_path_trains_in_bf16_on_the_device(full_run: Path) -> None:
    ck = load_checkpoint(full_run)
    cfg = ck["config"]
    assert cfg["precision"] == "bf16" and cfg["loader"] == "memory" and cfg["cuda_graph"] is True
    assert ck["provenance"]["device"] == torch.cuda.get_device_name(0)
    assert [h["epoch"] for h in ck["history"]] == [1, 2, 3, 4]
    assert all(np.isfinite(h["loss"]) and h["images"] == 16 for h in ck["history"])
    assert all(v.device.type == "cpu" for v in ck["model_state"].values())  # checkpoints load anywhere


def _batches(toy: Path, n: int, batch: int = 8):
    paths, labels, _ = vdata.training_split(toy)
    ts = vdata.MemoryTrainSet(vdata.decode_images(paths, *SIZE, workers=2), torch.from_numpy(labels), "cuda")
    gen = torch.Generator("cuda").manual_seed(0)
    out = []
    while len(out) < n:
        out += list(ts.batches(torch.randperm(len(ts)), batch, SIZE, 0.5, gen))
    return out[:n]


def _runner(graph: bool, seed: int = 0, dropout: float | None = None):
    from streid_lib.visual.models import build_model
    from streid_lib.visual.train import EpochRunner

    torch.manual_seed(seed)
    model = build_model("pcb", 4, weights="none").cuda().to(memory_format=torch.channels_last).train()
    if dropout is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = dropout
    opt = build_optimizer(model, TrainConfig(**LR))
    return model, opt, EpochRunner(model, opt, torch.device("cuda"), amp=True, cuda_graph=graph, graph_batch=8)


@pytest.mark.parametrize("dropout", [0.0, None], ids=["no-dropout", "reference-dropout"])
def test_cuda_graph_steps_equal_eager_steps(toy: Path, dropout: float | None) -> None:
    """Same batches, same dropout seeds: the graph replays (and their re-capture at a new learning rate, and the
    eager step of a short batch between them) give the eager loop's losses and weights. Without dropout this is
    the graph's arithmetic alone; with it, also that a replay draws the masks of the seed set before it."""
    batches = _batches(toy, 10)
    short = (batches[0][0][:5], batches[0][1][:5])
    results = []
    for graph in (False, True):
        model, opt, runner = _runner(graph, dropout=dropout)
        losses = []
        for i, (x, y) in enumerate(batches):
            if i == 6:
                for g in opt.param_groups:  # the decay epoch
                    g["lr"] *= 0.1
            torch.manual_seed(100 + i)
            losses.append(runner.step(x, y)[0].item())
            if i == 7:
                torch.manual_seed(999)
                losses.append(runner.step(*short)[0].item())
        results.append((losses, {k: v.detach().clone() for k, v in model.state_dict().items()}))
        if graph:
            assert runner._graph is not None and runner._graph[0][3] == pytest.approx(
                (1e-4, 1e-3)
            )  # new lr: re-captured
    (l_eager, w_eager), (l_graph, w_graph) = results
    np.testing.assert_allclose(l_graph, l_eager, rtol=2e-3)
    init, _, _ = _runner(False)
    moved = _max_rel_diff(w_eager, init.state_dict())
    assert _max_rel_diff(w_eager, w_graph) < 1e-2 * moved, (_max_rel_diff(w_eager, w_graph), moved)


def test_graph_steps_lower_the_loss_on_their_batch(toy: Path) -> None:
    ((x, y),) = _batches(toy, 1)
    model, _, runner = _runner(True)

    def loss_now() -> float:
        torch.manual_seed(7)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            from streid_lib.visual.models import part_logits_loss

            return part_logits_loss(model(x), y)[0].item()

    before = loss_now()
    for _ in range(8):  # 3 eager warm-up steps, a capture, 4 replays
        torch.manual_seed(7)
        runner.step(x, y)
    assert runner._graph is not None
    assert loss_now() < before - 0.05, (before, loss_now())


def test_optimizer_is_fused_on_the_gpu() -> None:
    from streid_lib.visual.models import build_model

    model = build_model("resnet50", 5, weights="none").cuda()
    assert build_optimizer(model, TrainConfig()).defaults.get("fused") is True
    assert not build_optimizer(build_model("resnet50", 5, weights="none"), TrainConfig()).defaults.get("fused")


def test_killed_gpu_run_resumes_close_to_the_uninterrupted_one(full_run: Path, toy: Path, tmp_path: Path) -> None:
    """Every random stream is re-seeded per epoch, so a resume replays the same batches, erasing and dropout.

    cuDNN's autotuned and atomic-add kernels are not bit-reproducible, so the test asks for agreement far
    closer than a run with another seed, rather than for equality (which the CPU test checks).
    """
    out = tmp_path / "killed"
    with pytest.raises(SimulatedKill):
        _run(toy, out, kill_at=3)  # stopped after epoch 3: checkpoint at epoch 2; epoch 3 is lost
    resumed = _run(toy, out)
    other_seed = _run(toy, tmp_path / "seed1", seed=1)
    a, b, c = (load_checkpoint(p) for p in (full_run, resumed, other_seed))
    assert b["epoch"] == 4 and [h["epoch"] for h in b["history"]] == [1, 2, 3, 4]
    resume_diff = _max_rel_diff(a["model_state"], b["model_state"])
    seed_diff = _max_rel_diff(a["model_state"], c["model_state"])
    print(f"relative parameter difference: resumed {resume_diff:.2e}, other seed {seed_diff:.2e}")
    assert resume_diff < 0.1 * seed_diff, (resume_diff, seed_diff)


def test_gpu_extraction_matches_the_cpu(full_run: Path, toy: Path) -> None:
    cfg = ExtractConfig(model="pcb", batch_size=5, height=SIZE[0], width=SIZE[1], workers=2, train=False)
    cpu = extract_features(cfg, checkpoint=full_run, data_root=toy, device="cpu", progress=False)
    gpu = extract_features(cfg, checkpoint=full_run, data_root=toy, device="cuda", progress=False)
    assert gpu.query_f.shape == cpu.query_f.shape == (3, 12288) and gpu.query_f.dtype == np.float32
    # TF32 convolutions on the GPU: agreement to about 1e-3, far below the spread between identities.
    for a, b in ((cpu.query_f, gpu.query_f), (cpu.gallery_f, gpu.gallery_f)):
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cos.min() > 0.999, cos
    assert gpu.provenance["device"] == torch.cuda.get_device_name(0) and cpu.provenance["device"] == "cpu"
