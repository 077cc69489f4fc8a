"""Feature extraction (reference §2.6) on a tiny generated dataset: flip-sum, normalisation, metadata, and the
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
from streid_lib.visual.extract import extract_features, features_from_arrays  # noqa: E402
from streid_lib.visual.models import IMAGENET_MEAN, IMAGENET_STD, WeightsError, build_model  # noqa: E402
from streid_lib.visual.train import train_model  # noqa: E402

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
    return train_model(
        toy, "pcb", tmp_path_factory.mktemp("run"), epochs=1, height=SIZE[0], width=SIZE[1], weights="none",
        device="cpu", batch_size=6, progress=False, workers=1, lr=0.01, lr_backbone=0.001,
    )  # fmt: skip


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
    fs = extract_features("pcb", pcb_checkpoint, toy, device="cpu", batch_size=3, height=32, width=16, progress=False)
    assert fs.query_f.shape == (2, 12288) and fs.gallery_f.shape == (4, 12288)
    stripes = fs.gallery_f.reshape(4, 2048, 6)  # channel-major: index c*6 + stripe
    assert np.allclose(np.linalg.norm(stripes, axis=1), 1.0, atol=1e-5)
    splits = read_dataset_root(toy)
    assert np.array_equal(fs.query.pids, splits.query.pids) and np.array_equal(fs.gallery.frames, splits.gallery.frames)
    assert np.array_equal(fs.query.cams, [4, 4])
    prov = fs.provenance
    assert prov["model"] == "pcb" and prov["input_size"] == [32, 16] and prov["checkpoint_epoch"] == 1
    assert prov["weights"]["request"] == "none" and len(prov["checkpoint_sha256"]) == 64
    for suffix in (".npz", ".mat"):
        back = load_features(save_features(tmp_path / f"pytorch_result{suffix}", fs))
        assert np.array_equal(back.query_f, fs.query_f) and np.array_equal(back.gallery_f, fs.gallery_f)
        for side in ("query", "gallery"):
            a, b = getattr(fs, side), getattr(back, side)
            assert np.array_equal(a.pids, b.pids) and np.array_equal(a.cams, b.cams)
            assert np.array_equal(a.frames, b.frames)
    assert load_features(tmp_path / "pytorch_result.npz").provenance["checkpoint"] == prov["checkpoint"]
    # Same model, checkpoint with another architecture's name: refused, naming both.
    with pytest.raises(WeightsError, match="'pcb'"):
        extract_features("resnet50", pcb_checkpoint, toy, device="cpu", progress=False)


@pytest.mark.slow
def test_features_equal_an_independent_torchvision_computation(toy, resnet_state_file) -> None:
    from PIL import Image
    from torchvision import transforms as T

    path, model = resnet_state_file
    fs = extract_features("resnet50", path, toy, device="cpu", batch_size=4, height=32, width=16, progress=False)
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


@pytest.mark.slow
def test_cli_extract_writes_a_mat_file(toy, resnet_state_file, tmp_path) -> None:
    from streid_lib.cli import main

    path, _ = resnet_state_file
    out = tmp_path / "pytorch_result.mat"
    rc = main(
        ["extract", "--model", "resnet50", "--checkpoint", str(path), "--data", str(toy), "--out", str(out),
         "--device", "cpu", "--height", "32", "--width", "16", "--no-progress", "--workers", "1"]
    )  # fmt: skip
    assert rc == 0
    import scipy.io

    raw = scipy.io.loadmat(out)
    assert raw["query_f"].shape == (2, 2048) and raw["gallery_label"].shape == (1, 4)  # authors' 1×N rows
    assert load_features(out).dim == 2048


def test_other_features_enter_through_the_same_file(toy, tmp_path) -> None:
    rng = np.random.default_rng(0)
    fs = features_from_arrays(rng.normal(size=(2, 5)), rng.normal(size=(4, 5)), toy, {"source": "test embeddings"})
    back = load_features(save_features(tmp_path / "other.npz", fs))
    assert back.provenance["source"] == "test embeddings" and back.dim == 5
    assert np.array_equal(back.gallery.pids, read_dataset_root(toy).gallery.pids)
    with pytest.raises(ValueError, match="query"):
        features_from_arrays(rng.normal(size=(3, 5)), rng.normal(size=(4, 5)), toy)


def test_missing_checkpoint_is_named(toy, tmp_path) -> None:
    with pytest.raises(WeightsError, match="nope.pt"):
        extract_features("pcb", tmp_path / "nope.pt", toy, device="cpu", progress=False)


@pytest.mark.slow
def test_extraction_on_the_tiny_campus(resnet_state_file, tmp_path) -> None:
    """The synthetic campus (Market-style names + sequence_lengths.json): frames come out on its own timeline."""
    campus = pytest.importorskip("streid_lib.campus")
    root = tmp_path / "campus"
    campus.generate_campus(root, "tiny", seed=0, progress=False)
    path, _ = resnet_state_file
    fs = extract_features("resnet50", path, root, device="cpu", batch_size=64, height=32, width=16, progress=False)
    splits = read_dataset_root(root)
    assert (root / "sequence_lengths.json").is_file()
    assert fs.query_f.shape == (len(splits.query), 2048) and fs.gallery_f.shape == (len(splits.gallery), 2048)
    assert np.array_equal(fs.gallery.frames, splits.gallery.frames) and np.array_equal(fs.query.cams, splits.query.cams)
    assert np.allclose(np.linalg.norm(fs.query_f, axis=1), 1.0, atol=1e-5)
