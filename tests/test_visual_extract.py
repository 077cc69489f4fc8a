"""Feature extraction (docs/reference.md §2.6) on a tiny generated dataset: flip-sum, normalisation, metadata, and the
round trip through the features file (.npz and .mat), by the library and by the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from streid_lib.features import load_features, save_features  # noqa: E402
from streid_lib.metadata import read_dataset_root  # noqa: E402
from streid_lib.visual import data as vdata  # noqa: E402
from streid_lib.visual.config import ExtractConfig  # noqa: E402
from streid_lib.visual.extract import extract_features, features_from_arrays  # noqa: E402
from streid_lib.visual.models import IMAGENET_MEAN, IMAGENET_STD, WeightsError, build_model  # noqa: E402
from streid_lib.visual.train import TrainConfig, train_model  # noqa: E402

SIZE = (32, 16)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_visual_train: avoids oversubscription on small shared CPUs
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return vdata.write_toy_dataset(tmp_path_factory.mktemp("toy"), n_ids=3, per_id=2, n_query_ids=2, seed=2)


@pytest.fixture(scope="module")
def pcb_checkpoint(toy, tmp_path_factory) -> Path:
    """Our checkpoint format, from a one-epoch run."""
    config = TrainConfig(
        model="pcb", epochs=1, height=SIZE[0], width=SIZE[1], weights="none", batch_size=6, workers=1, lr=0.01,
        lr_backbone=0.001,
    )  # fmt: skip
    return train_model(config, data_root=toy, out_dir=tmp_path_factory.mktemp("run"), device="cpu", progress=False)


def _extract(model: str, checkpoint, root, **kw):
    """Extraction on the CPU without a progress bar; ``kw`` are ExtractConfig fields (size 32×16 by default)."""
    cfg = ExtractConfig(model=model, **{"height": SIZE[0], "width": SIZE[1], **kw})
    return extract_features(cfg, checkpoint=checkpoint, data_root=root, device="cpu", progress=False)


@pytest.fixture(scope="module")
def resnet_state_file(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A bare state dict in the reference's layout (with its unused ImageNet ``model.fc``)."""
    torch.manual_seed(5)
    model = build_model("resnet50", 7, weights="none").eval()
    state = dict(model.state_dict())
    state["model.fc.weight"] = torch.zeros(1000, 2048)
    state["model.fc.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("sd") / "net_last.pth"
    torch.save(state, path)
    return path, model


@pytest.mark.slow
def test_pcb_features_round_trip_through_npz_and_mat(toy, pcb_checkpoint, tmp_path) -> None:
    fs = _extract("pcb", pcb_checkpoint, toy, batch_size=3)
    assert fs.query_f.shape == (2, 12288) and fs.gallery_f.shape == (4, 12288)
    assert fs.has_train and fs.train_f.shape == (6, 12288)  # the training side, from bounding_box_train
    stripes = fs.gallery_f.reshape(4, 2048, 6)  # channel-major: index c*6 + stripe
    assert np.allclose(np.linalg.norm(stripes, axis=1), 1.0, atol=1e-5)
    splits = read_dataset_root(toy)
    assert np.array_equal(fs.query.pids, splits.query.pids) and np.array_equal(fs.gallery.frames, splits.gallery.frames)
    assert np.array_equal(fs.train.names, splits.train.names) and np.array_equal(fs.train.pids, [1, 1, 2, 2, 3, 3])
    assert np.array_equal(fs.query.cams, [4, 4])
    prov = fs.provenance
    assert prov["model"] == "pcb" and prov["input_size"] == [32, 16] and prov["checkpoint_epoch"] == 1
    assert prov["weights"]["request"] == "none" and len(prov["checkpoint_sha256"]) == 64
    assert prov["train_side"] is True and prov["images"] == {"query": 2, "gallery": 4, "train": 6}
    for suffix in (".npz", ".mat"):
        back = load_features(save_features(tmp_path / f"pytorch_result{suffix}", fs))
        assert back.has_train
        for side in ("query", "gallery", "train"):
            assert np.array_equal(getattr(back, f"{side}_f"), getattr(fs, f"{side}_f"))
            a, b = getattr(fs, side), getattr(back, side)
            assert np.array_equal(a.pids, b.pids) and np.array_equal(a.cams, b.cams)
            assert np.array_equal(a.frames, b.frames)
    assert load_features(tmp_path / "pytorch_result.npz").provenance["checkpoint"] == prov["checkpoint"]
    # The same rows without the training side: the query and gallery features do not depend on it.
    without = _extract("pcb", pcb_checkpoint, toy, batch_size=3, train=False)
    assert not without.has_train and without.provenance["train_side"] is False
    assert np.array_equal(without.query_f, fs.query_f) and np.array_equal(without.gallery_f, fs.gallery_f)
    # Same model, checkpoint with another architecture's name: refused, naming both.
    with pytest.raises(WeightsError, match="'pcb'"):
        _extract("resnet50", pcb_checkpoint, toy)


@pytest.mark.slow
def test_features_equal_an_independent_torchvision_computation(toy, resnet_state_file) -> None:
    from PIL import Image
    from torchvision import transforms as T

    path, model = resnet_state_file
    fs = _extract("resnet50", path, toy, batch_size=4)
    assert fs.gallery_f.shape == (4, 2048)
    assert fs.provenance["weights"]["request"] == "state-dict file"
    tf = T.Compose(
        [
            T.Resize(SIZE, interpolation=T.InterpolationMode.BICUBIC),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    names = read_dataset_root(toy).gallery.names
    x = torch.stack([tf(Image.open(toy / "bounding_box_test" / n).convert("RGB")) for n in names])
    with torch.no_grad():
        f = model.embed(x) + model.embed(torch.flip(x, dims=[3]))
    f = f / f.norm(dim=1, keepdim=True)
    assert np.allclose(fs.gallery_f, f.numpy(), atol=2e-5)
    # Without the flip the features differ: the flip is really used.
    with torch.no_grad():
        g = model.embed(x)
    assert not np.allclose(fs.gallery_f, (g / g.norm(dim=1, keepdim=True)).numpy(), atol=1e-3)


def _cli_extract(checkpoint, toy, out, *extra: str) -> list[str]:
    return [
        "extract", "--model", "resnet50", "--checkpoint", str(checkpoint), "--data", str(toy), "--out", str(out),
        "--device", "cpu", "--height", "32", "--width", "16", "--workers", "1", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_cli_extract_writes_a_mat_file_with_its_training_side(toy, resnet_state_file, tmp_path, capsys) -> None:
    from streid_lib.cli import main

    path, _ = resnet_state_file
    out = tmp_path / "pytorch_result.mat"
    assert main(_cli_extract(path, toy, out)) == 0
    import scipy.io

    raw = scipy.io.loadmat(out)
    assert raw["query_f"].shape == (2, 2048) and raw["gallery_label"].shape == (1, 4)  # authors' 1×N rows
    assert raw["train_f"].shape == (6, 2048) and raw["train_cam"].shape == (1, 6)
    assert load_features(out).dim == 2048
    captured = capsys.readouterr()
    # progress on stderr over all images: model, side, count
    assert "extract resnet50 train: 100%" in captured.err and "12/12" in captured.err
    assert "IProgress" not in captured.err
    assert captured.out == f"wrote {out}: query (2, 2048), gallery (4, 2048), train (6, 2048)\n"
    # --no-train: query and gallery only
    out2 = tmp_path / "no_train.npz"
    assert main(_cli_extract(path, toy, out2, "--no-train", "--no-progress")) == 0
    back = load_features(out2)
    assert not back.has_train and back.provenance["train_side"] is False
    assert "train_f" not in np.load(out2).files
    assert capsys.readouterr().err == ""


def test_extract_options_and_destination_are_checked_before_any_work(toy, tmp_path, capsys) -> None:
    from streid_lib.cli import main

    missing = tmp_path / "no-checkpoint.pt"  # any work would stop on it: the errors below come first
    a_dir = tmp_path / "feats.npz"
    a_dir.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
        (ro / "probe").unlink()
        ro = Path("/sys/kernel")  # root ignores permission bits: a sysfs folder refuses new files
    except PermissionError:
        pass
    f_npz, f_txt = str(tmp_path / "f.npz"), tmp_path / "f.txt"
    pixels = "a positive number of pixels (leave it unset for the model's default)"
    cases = [
        (["--out", str(f_txt)], f"features file {f_txt}: expected a name ending in .npz or .mat\n"),
        (["--out", str(a_dir)], f"features file {a_dir}: is a folder; expected a file path\n"),
        (["--out", str(ro / "f.npz")], f"features file {ro / 'f.npz'}: cannot write in {ro} ("),
        (["--out", f_npz, "--height", "0"], f"--height 0: expected {pixels}\n"),
        (["--out", f_npz, "--width", "-5"], f"--width -5: expected {pixels}\n"),
        (["--out", f_npz, "--batch-size", "0"], "--batch-size 0: expected at least 1 image\n"),
    ]  # fmt: skip
    for extra, words in cases:
        args = _cli_extract(missing, toy, "unused")
        args[args.index("--out") : args.index("--out") + 2] = extra[:2]
        assert main([*args, *extra[2:]]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: " + words) and err.count("\n") == 1, err
    assert not (tmp_path / "f.npz").exists()


def test_interrupted_extraction_leaves_no_file_and_stale_temps_go(toy, resnet_state_file, tmp_path, monkeypatch):
    import subprocess
    import sys

    import streid_lib.visual.extract as vextract
    from streid_lib.cli import main

    path, _ = resnet_state_file
    out = tmp_path / "feats.npz"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = tmp_path / f".feats.npz.tmp-{proc.pid}-q9w8.npz"  # a killed extraction's temp file
    stale.write_bytes(b"\0" * 100)
    other = tmp_path / f".other.npz.tmp-{proc.pid}-q9w8.npz"  # another target's: left alone
    other.write_bytes(b"\0")
    calls = []
    real = vextract.embed_batch

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(vextract, "embed_batch", interrupted)
    assert main(_cli_extract(path, toy, out, "--batch-size", "2", "--no-progress")) == 130  # Ctrl-C: one line
    assert not out.exists() and not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]


def test_other_features_enter_through_the_same_file(toy, tmp_path) -> None:
    rng = np.random.default_rng(0)
    fs = features_from_arrays(rng.normal(size=(2, 5)), rng.normal(size=(4, 5)), toy, {"source": "test embeddings"})
    back = load_features(save_features(tmp_path / "other.npz", fs))
    assert back.provenance["source"] == "test embeddings" and back.dim == 5 and not back.has_train
    with_train = features_from_arrays(
        rng.normal(size=(2, 5)), rng.normal(size=(4, 5)), toy, train_f=rng.normal(size=(6, 5))
    )
    assert with_train.has_train and with_train.provenance["train_side"] is True
    assert np.array_equal(with_train.train.pids, read_dataset_root(toy).train.pids)
    assert np.array_equal(back.gallery.pids, read_dataset_root(toy).gallery.pids)
    with pytest.raises(ValueError, match="query"):
        features_from_arrays(rng.normal(size=(3, 5)), rng.normal(size=(4, 5)), toy)


def test_missing_checkpoint_is_named(toy, tmp_path) -> None:
    with pytest.raises(WeightsError, match="nope.pt"):
        _extract("pcb", tmp_path / "nope.pt", toy)


@pytest.mark.slow
def test_extraction_on_the_tiny_campus(resnet_state_file, tmp_path) -> None:
    """The synthetic campus (Market-style names + sequence_lengths.json): frames come out on its own timeline."""
    campus = pytest.importorskip("streid_lib.campus")
    root = tmp_path / "campus"
    campus.generate_campus(root, "tiny", seed=0, progress=False)
    path, _ = resnet_state_file
    fs = _extract("resnet50", path, root, batch_size=64, train=False)
    splits = read_dataset_root(root)
    assert (root / "sequence_lengths.json").is_file()
    assert fs.query_f.shape == (len(splits.query), 2048) and fs.gallery_f.shape == (len(splits.gallery), 2048)
    assert np.array_equal(fs.gallery.frames, splits.gallery.frames) and np.array_equal(fs.query.cams, splits.query.cams)
    assert np.allclose(np.linalg.norm(fs.query_f, axis=1), 1.0, atol=1e-5)
