"""Visual training (docs/reference.md §2.5) on a tiny generated dataset, on the CPU: augmentation semantics, schedule,
loss going down, exact resume after a kill, the plain loader via the CLI, and DDP on gloo with two processes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import SimulatedKill, kill_at_epoch

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from streid_lib.visual import data as vdata  # noqa: E402
from streid_lib.visual.config import ConfigError, default_decay_epoch  # noqa: E402
from streid_lib.visual.models import IMAGENET_MEAN, IMAGENET_STD, build_model, part_logits_loss  # noqa: E402
from streid_lib.visual.train import (  # noqa: E402
    EpochRunner,
    TrainConfig,
    TrainError,
    build_optimizer,
    load_checkpoint,
    lr_factor,
    train_model,
)

SIZE = (32, 16)  # tiny training input (pixels): the code path is the same as at 384×192
# Reduced learning rates: the reference's 0.1/0.01 assume an ImageNet backbone and hundreds of classes;
# from scratch on 3 identities they make the weights blow up.
LR = {"lr": 0.01, "lr_backbone": 0.001}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # One intra-op thread: on a small shared CPU, oversubscribed OpenMP threads make ResNet steps 5-10x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return vdata.write_toy_dataset(tmp_path_factory.mktemp("toy"), n_ids=3, per_id=2, n_query_ids=2, seed=1)


def _config(**kw) -> TrainConfig:
    args = dict(
        model="pcb", epochs=5, height=SIZE[0], width=SIZE[1], weights="none", seed=0, batch_size=6, erasing=0.5,
        checkpoint_every=2, workers=2, **LR,
    )  # fmt: skip
    return TrainConfig(**{**args, **kw})


def _run(toy: Path, out: Path, kill_at: int | None = None, **kw):
    with kill_at_epoch(kill_at):
        return train_model(_config(**kw), data_root=toy, out_dir=out, device="cpu", progress=False)


@pytest.fixture(scope="module")
def full_run(toy, tmp_path_factory) -> Path:
    """An uninterrupted 5-epoch PCB run (checkpoints at epochs 2, 4 and 5, all kept)."""
    return _run(toy, tmp_path_factory.mktemp("full"), keep_checkpoints=True)


def _cli_train(toy: Path, out: Path, *extra: str) -> list[str]:
    """``train`` arguments of a tiny 1-epoch ResNet-50 run on the CPU."""
    return [
        "train", "--model", "resnet50", "--data", str(toy), "--out", str(out), "--epochs", "1", "--height", "32",
        "--width", "16", "--weights", "none", "--device", "cpu", "--batch-size", "6", "--workers", "1",
        "--lr", "0.01", "--lr-backbone", "0.001", *extra,
    ]  # fmt: skip


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*tmp*"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- augmentation, sharding, schedule


def test_schedule_matches_reference() -> None:
    assert default_decay_epoch(60) == 39  # StepLR(40) stepped at each epoch's start
    assert [lr_factor(e, 39) for e in (0, 38, 39, 59)] == [1.0, 1.0, 0.1, 0.1]
    assert default_decay_epoch(10) == 6 and default_decay_epoch(1) == 1


def test_shards_cover_every_image_like_distributed_sampler() -> None:
    a = vdata.shard_indices(11, 5, rank=0, world_size=2)
    b = vdata.shard_indices(11, 5, rank=1, world_size=2)
    assert len(a) == len(b) == 6
    assert set(a.tolist()) | set(b.tolist()) == set(range(11))
    single = vdata.shard_indices(11, 5, 0, 1)
    assert sorted(single.tolist()) == list(range(11)) and torch.equal(single[0::2], a)
    assert not torch.equal(single, vdata.shard_indices(11, 6, 0, 1))  # a new permutation per epoch seed
    assert [s.stop - s.start for s in vdata.batch_slices(9, 4)] == [4, 4]  # a lone last image is dropped
    assert [s.stop - s.start for s in vdata.batch_slices(10, 4)] == [4, 4, 2]


def test_device_augmentation_crop_flip_normalise() -> None:
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (5, 12, 10, 3), dtype=torch.uint8, generator=g)
    idx = torch.tensor([4, 0, 4, 2, 1, 3, 0, 2])
    x = vdata.augment_batch(imgs, idx, (8, 6), erasing=0.0, generator=torch.Generator().manual_seed(1))
    assert x.shape == (8, 3, 8, 6) and x.is_contiguous(memory_format=torch.channels_last)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    flips = 0
    for k, i in enumerate(idx.tolist()):
        full = (imgs[i].permute(2, 0, 1).float() / 255 - mean) / std
        # The output must be one of the crops of image i, possibly mirrored.
        hits = [
            (flip, t, l)
            for t in range(12 - 8 + 1)
            for l in range(10 - 6 + 1)
            for flip in (False, True)
            if torch.allclose(x[k], full[:, t : t + 8, l : l + 6].flip(2) if flip else full[:, t : t + 8, l : l + 6])
        ]
        assert hits, f"sample {k} is not a crop of image {i}"
        flips += hits[0][0]
    assert 0 < flips < 8
    # No crop when the output size is the stored size (PCB): exactly ToTensor + Normalize, maybe mirrored.
    y = vdata.augment_batch(imgs, torch.arange(5), (12, 10), 0.0, torch.Generator().manual_seed(2), flip=False)
    ref = (imgs.permute(0, 3, 1, 2).float() / 255 - mean) / std
    assert torch.allclose(y, ref, atol=1e-6)


def test_random_erasing_boxes_follow_reference_ranges() -> None:
    h, w = 64, 32
    apply, top, left, eh, ew = vdata.erasing_boxes(4000, h, w, 0.5, torch.Generator().manual_seed(0), "cpu")
    assert 0.45 < apply.float().mean().item() < 0.55
    area = (eh * ew).float()[apply] / (h * w)
    assert area.min() > 0.015 and area.max() < 0.42  # U[0.02, 0.4] up to rounding
    assert (eh < h).all() and (ew < w).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + eh <= h).all() and (left + ew <= w).all()
    aspect = (eh.float() / ew.float())[apply]
    assert aspect.min() > 0.2 and aspect.max() < 4.0  # U[0.3, 1/0.3] up to rounding
    # Applied to a batch: erased pixels are exactly 0 (the mean after normalisation), one rectangle per image.
    imgs = torch.full((6, h, w, 3), 200, dtype=torch.uint8)
    x = vdata.augment_batch(imgs, torch.arange(6), (h, w), 1.0, torch.Generator().manual_seed(3), flip=False)
    zero = (x == 0).all(1)
    assert zero.any((1, 2)).all()
    for z in zero:
        rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
        assert z[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # a filled rectangle


# ---------------------------------------------------------------- training


@pytest.mark.slow
def test_training_steps_lower_the_loss_on_their_batch(toy: Path) -> None:
    """Three SGD steps of the training loop on one augmented batch, each evaluated with the same dropout masks."""
    paths, labels, _ = vdata.training_split(toy)
    images = vdata.decode_images(paths, *SIZE, workers=1)
    ts = vdata.MemoryTrainSet(images, torch.from_numpy(labels), torch.device("cpu"))
    x, y = next(ts.batches(torch.arange(len(ts)), 6, SIZE, 0.5, torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    model = build_model("pcb", 3, weights="none").train()
    runner = EpochRunner(
        model, build_optimizer(model, TrainConfig(lr=1e-3, lr_backbone=1e-4)), torch.device("cpu"), False
    )

    def loss_now() -> float:
        torch.manual_seed(7)
        with torch.no_grad():
            return part_logits_loss(model(x), y)[0].item()

    losses = [loss_now()]
    for _ in range(3):
        torch.manual_seed(7)  # the step's forward draws the same dropout masks as loss_now()
        step_loss, correct = runner.step(x, y)
        assert step_loss.item() == pytest.approx(losses[-1], rel=1e-5)
        assert 0 <= correct.item() <= 6
        losses.append(loss_now())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.slow
def test_training_run_records_history_and_provenance(full_run: Path) -> None:
    ck = load_checkpoint(full_run)
    assert ck["epoch"] == 5 and [h["epoch"] for h in ck["history"]] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(h["loss"]) and h["images"] == 6 for h in ck["history"])
    assert [h["lr_factor"] for h in ck["history"]] == [1.0, 1.0, 1.0, 0.1, 0.1]  # decay_epoch = round(39/60*5) = 3
    assert ck["provenance"]["weights"]["request"] == "none"
    assert ck["provenance"]["input_size"] == list(SIZE) and ck["config"]["decay_epoch"] == 3
    assert ck["config"]["erasing"] == 0.5 and ck["config"]["precision"] == "fp32"
    assert ck["class_pids"] == [1, 2, 3]
    assert json.loads((full_run.parent / "provenance.json").read_text())["model"] == "pcb"
    assert json.loads((full_run.parent / "history.json").read_text()) == ck["history"]
    assert not _leftovers(full_run.parent)  # atomic writes leave no temporaries
    # keep_checkpoints: every checkpoint in full; the finished last.pt without the resume-only states.
    files = sorted(p.name for p in full_run.parent.iterdir())
    assert files == ["epoch_002.pt", "epoch_004.pt", "epoch_005.pt", "history.json", "last.pt", "provenance.json"]
    kept = load_checkpoint(full_run.parent / "epoch_005.pt")
    assert "optimizer_state" in kept and "rng" in kept and "optimizer_state" not in ck and "rng" not in ck
    assert all(torch.equal(v, ck["model_state"][k]) for k, v in kept["model_state"].items())
    assert full_run.stat().st_size < 0.6 * (full_run.parent / "epoch_005.pt").stat().st_size


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_state(full_run: Path, toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    with pytest.raises(SimulatedKill):
        _run(toy, out, kill_at=3)  # stopped after epoch 3: checkpoint at epoch 2; epoch 3 is lost
    at2, ref2 = load_checkpoint(out / "last.pt"), load_checkpoint(full_run.parent / "epoch_002.pt")
    assert at2["epoch"] == 2 and sorted(p.name for p in out.iterdir()) == ["history.json", "last.pt", "provenance.json"]
    for sa, sb in zip(ref2["optimizer_state"]["state"].values(), at2["optimizer_state"]["state"].values(), strict=True):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    # A resume with different options is refused rather than mixed.
    with pytest.raises(TrainError, match="erasing"):
        _run(toy, out, erasing=0.0)
    resumed = _run(toy, out)
    a, b = load_checkpoint(full_run), load_checkpoint(resumed)
    assert b["epoch"] == 5
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    # A finished run is not trained again.
    assert _run(toy, out) == resumed and load_checkpoint(resumed)["epoch"] == 5


@pytest.mark.slow
def test_ctrl_c_leaves_a_resumable_run_and_no_temp_files(toy: Path, tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C during the second checkpoint's write: the temp file goes, the first checkpoint stays, and the
    run resumes from it; Ctrl-C during a step leaves the last checkpoint as it was."""
    import streid_lib.visual.train as vtrain

    out = tmp_path / "interrupted"
    real_save = torch.save
    saves = []

    def interrupted_save(obj, f, *a, **k):
        saves.append(Path(f).name)
        if len(saves) == 2:
            Path(f).write_bytes(b"half a checkpoint")
            raise KeyboardInterrupt
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(vtrain.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        _run(toy, out, epochs=3, checkpoint_every=1)
    assert saves[1].startswith(".last.pt.tmp-") and not _leftovers(out)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert len(json.loads((out / "history.json").read_text())) == 1
    monkeypatch.setattr(vtrain.torch, "save", real_save)

    steps = []
    real_step = vtrain.EpochRunner.step

    def interrupted_step(self, x, y):
        steps.append(1)
        if len(steps) == 2:  # epoch 3's step (one step per epoch of 6 images)
            raise KeyboardInterrupt
        return real_step(self, x, y)

    monkeypatch.setattr(vtrain.EpochRunner, "step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        _run(toy, out, epochs=3, checkpoint_every=1)
    assert load_checkpoint(out / "last.pt")["epoch"] == 2 and not _leftovers(out)
    monkeypatch.setattr(vtrain.EpochRunner, "step", real_step)
    assert load_checkpoint(_run(toy, out, epochs=3, checkpoint_every=1))["epoch"] == 3


@pytest.mark.slow
def test_run_stopped_before_its_first_checkpoint_leaves_nothing(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "early"
    with pytest.raises(SimulatedKill):
        _run(toy, out, kill_at=1)  # stopped after epoch 1: checkpoints every 2 epochs, none yet
    assert not out.exists()  # no provenance.json, history or folder that looks like a result


@pytest.mark.slow
def test_plain_loader_through_the_cli_with_progress(toy: Path, tmp_path: Path, capsys) -> None:
    from streid_lib.cli import main

    out = tmp_path / "plain"
    rc = main(_cli_train(toy, out, "--loader", "plain", "--workers", "0"))
    assert rc == 0
    ck = load_checkpoint(out / "last.pt")
    assert ck["config"]["loader"] == "plain" and ck["config"]["precision"] == "fp32"
    assert ck["config"]["resize"] == [36, 18]  # 288×144 → 256×128 ratio, scaled
    assert ck["history"][0]["images"] == 6
    # Progress on stderr (what a terminal and `reproduce` show): the model, epoch, steps, ETA and loss.
    captured = capsys.readouterr()
    assert "train resnet50 epoch 1/1: 100%" in captured.err and "1/1 [" in captured.err and "loss=" in captured.err
    assert "IProgress" not in captured.err and f"checkpoint: {out / 'last.pt'}" in captured.out


def test_weights_unavailable_stops_training_and_leaves_nothing(toy: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from streid_lib.cli import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    rc = main(["train", "--model", "pcb", "--data", str(toy), "--out", str(tmp_path / "x"), "--device", "cpu"])
    assert rc == 2  # the CLI prints the library's message (how to get the weights) and exits
    assert "ImageNet" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # a failed start leaves no provenance.json, nor a folder


def test_undecodable_training_image_stops_the_start_and_leaves_nothing(tmp_path: Path) -> None:
    toy = vdata.write_toy_dataset(tmp_path / "toy", n_ids=3, per_id=2, n_query_ids=1, seed=4)
    bad = sorted((toy / "bounding_box_train").iterdir())[2]
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(vdata.ImageDataError, match=f"{bad}: cannot decode image"):
        _run(toy, tmp_path / "run", epochs=1)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "option, value",
    [("--height", "0"), ("--height", "-5"), ("--width", "0"), ("--epochs", "0"), ("--batch-size", "1"),
     ("--lr", "0"), ("--decay-epoch", "2")],
)  # fmt: skip
def test_train_options_out_of_range_are_one_line_errors(toy, tmp_path, capsys, option, value) -> None:
    from streid_lib.cli import main

    out = tmp_path / "run"
    assert main(_cli_train(toy, out, option, value)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option} {float(value) if option == '--lr' else value}: expected ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_train_height_zero_message(toy, tmp_path, capsys) -> None:
    from streid_lib.cli import main

    assert main(_cli_train(toy, tmp_path / "run", "--height", "0")) == 2
    assert capsys.readouterr().err == (
        "error: --height 0: expected a positive number of pixels (leave it unset for the model's default)\n"
    )


def test_truncated_checkpoint_names_the_path_and_the_way_out(toy, tmp_path, capsys) -> None:
    from streid_lib.cli import main

    out = tmp_path / "run"
    out.mkdir()
    whole = io.BytesIO()
    torch.save({"format": "streid-visual-checkpoint/1", "model_state": {"w": torch.ones(5000)}}, whole)
    truncated = whole.getvalue()[: len(whole.getvalue()) // 2]  # as a kill during a plain write would leave it
    (out / "last.pt").write_bytes(truncated)
    assert main(_cli_train(toy, out)) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: not a streid checkpoint: {out / 'last.pt'} (unreadable, truncated?); "
        "delete it or pass --no-resume (resume=False) to start afresh\n"
    )
    assert (out / "last.pt").read_bytes() == truncated  # never deleted
    with pytest.raises(TrainError, match="not a streid checkpoint"):
        load_checkpoint(out / "last.pt")


@pytest.mark.slow
def test_no_resume_starts_afresh_and_stale_temp_files_are_removed(toy, tmp_path, capsys) -> None:
    """The way out of a truncated last.pt; a killed writer's temp files go, anything else in the folder stays."""
    from streid_lib.cli import main

    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    dead = _dead_pid()
    stale = [f".last.pt.tmp-{dead}-k2j4.pt", f".history.json.tmp-{dead}-x81z.json"]
    for name in stale:
        (out / name).write_bytes(b"\0" * 1000)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = f".last.pt.tmp-{sleeper.pid}-abcd.pt"  # a writer still running: not ours to remove
        mine = [".last.pt.tmp.notes", "notes.txt", live]
        for name in mine:
            (out / name).write_text("keep me")
        assert main(_cli_train(toy, out, "--no-resume", "--no-progress")) == 0
        left = sorted(p.name for p in out.iterdir())
    finally:
        sleeper.kill()
        sleeper.wait()
    assert left == sorted([*mine, "history.json", "last.pt", "provenance.json"])
    assert load_checkpoint(out / "last.pt")["epoch"] == 1


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores permission bits: then a sysfs folder)."""
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except PermissionError:
        return ro
    (ro / "probe").unlink()
    if Path("/sys/kernel").is_dir():
        return Path("/sys/kernel")
    pytest.skip("cannot make an unwritable folder as this user on this system")


def test_train_destination_is_checked_before_any_work(toy, tmp_path, capsys) -> None:
    from streid_lib.cli import main

    a_file = tmp_path / "file"
    a_file.write_text("x")
    ro = _unwritable_folder(tmp_path)
    (tmp_path / "lastdir" / "last.pt").mkdir(parents=True)
    cases = [
        (a_file, f"error: run directory {a_file}: is a file; expected a folder"),
        (a_file / "sub", f"error: run directory {a_file / 'sub'}: cannot be created, {a_file} is a file"),
        (ro / "run", f"error: run directory {ro / 'run'}: cannot write in {ro} ("),
        (tmp_path / "lastdir", f"error: {tmp_path / 'lastdir' / 'last.pt'}: is a folder; expected the run's"),
    ]
    for out, words in cases:
        # --data points nowhere: the destination is checked first, so its error is the one reported
        args = _cli_train(tmp_path / "no-data", out)
        assert main(args) == 2, out
        err = capsys.readouterr().err
        assert err.startswith(words) and err.count("\n") == 1, err


def test_too_small_input_for_densenet_is_refused(toy: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"height=24: expected at least 32 pixels for densenet121 \(input 24x16\)"):
        _run(toy, tmp_path / "d", model="densenet121", height=24, width=16)


def test_cuda_graph_is_refused_where_it_cannot_run(toy: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="cuda_graph='on': expected a CUDA device, loader='memory'"):
        _run(toy, tmp_path / "g", cuda_graph=True)
    with pytest.raises(ConfigError, match="cuda_graph='yes': expected one of"):
        _run(toy, tmp_path / "g", cuda_graph="yes")
    assert not (tmp_path / "g").exists()
    # on the CPU the optimizer keeps PyTorch's default (non-fused) update
    model = build_model("resnet50", 3, weights="none")
    assert not build_optimizer(model, TrainConfig()).defaults["fused"]


def test_progress_bar_rule() -> None:
    from streid_lib import _progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    old = sys.stderr
    try:
        sys.stderr = io.StringIO()
        bar = _progress.progress_bar(10, "x")
        assert bar.mininterval == _progress.NON_TTY_INTERVAL_S and type(bar).__module__ == "tqdm.std"
        bar.close()
        sys.stderr = Tty()
        bar = _progress.progress_bar(10, "x")
        assert bar.mininterval == 0.1
        bar.close()
    finally:
        sys.stderr = old


@pytest.mark.slow
def test_ddp_on_gloo_with_two_processes(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "streid_lib",
        "train", "--model", "resnet50", "--data", str(toy), "--out", str(out), "--epochs", "2", "--height", "32",
        "--width", "16", "--weights", "none", "--device", "cpu", "--batch-size", "3", "--workers", "1",
        "--checkpoint-every", "1", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ck = load_checkpoint(out / "last.pt")
    assert ck["config"]["world_size"] == 2 and ck["epoch"] == 2
    sums = ck["ddp_param_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]  # the replicas stayed identical
    # Each epoch's 6 images were split over the two processes (3 each), none seen twice.
    assert [h["images"] for h in ck["history"]] == [6, 6]
