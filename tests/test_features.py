"""Features files: .mat (authors' layout) and .npz round trips, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from streid_lib.features import FeaturesError, FeatureSet, load_features, save_features
from streid_lib.metadata import Metadata


def make_fs(nq: int = 3, ng: int = 5, d: int = 4, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    q = Metadata(np.arange(1, nq + 1), np.ones(nq, int), np.arange(nq) * 100, [f"q{i}.jpg" for i in range(nq)])
    g = Metadata(
        np.array([-1, 0, 1, 2, 3][:ng]),
        np.arange(ng) % 6 + 1,
        np.arange(ng) * 7 + 400_000,
        [f"g{i}.jpg" for i in range(ng)],
    )
    return FeatureSet(
        rng.standard_normal((nq, d)).astype(np.float32),
        rng.standard_normal((ng, d)).astype(np.float32),
        q,
        g,
        {"model": "test", "seed": seed},
    )


def assert_same(a: FeatureSet, b: FeatureSet) -> None:
    for side in ("query", "gallery"):
        np.testing.assert_array_equal(getattr(a, f"{side}_f"), getattr(b, f"{side}_f"))
        assert getattr(b, f"{side}_f").dtype == np.float32
        for key in ("pids", "cams", "frames"):
            np.testing.assert_array_equal(getattr(getattr(a, side), key), getattr(getattr(b, side), key))


def test_mat_round_trip_authors_layout(tmp_path: Path) -> None:
    fs = make_fs()
    path = save_features(tmp_path / "pytorch_result.mat", fs)
    raw = scipy.io.loadmat(path)
    for side, n in (("query", 3), ("gallery", 5)):
        assert raw[f"{side}_f"].shape == (n, 4)
        for key in ("label", "cam", "frames"):
            assert raw[f"{side}_{key}"].shape == (1, n)  # lists saved as 1×N rows, as the authors' code does
    back = load_features(path)
    assert_same(fs, back)
    assert back.gallery.pids.tolist() == [-1, 0, 1, 2, 3]
    assert back.provenance["features_file"] == str(path)


def test_reads_a_file_written_like_the_authors(tmp_path: Path) -> None:
    # Python lists of ints and float32 feature matrices, saved directly with scipy (no helper of ours).
    fs = make_fs()
    raw = {
        "query_f": fs.query_f,
        "query_label": fs.query.pids.tolist(),
        "query_cam": fs.query.cams.tolist(),
        "query_frames": fs.query.frames.tolist(),
        "gallery_f": fs.gallery_f,
        "gallery_label": fs.gallery.pids.tolist(),
        "gallery_cam": fs.gallery.cams.tolist(),
        "gallery_frames": fs.gallery.frames.tolist(),
    }
    scipy.io.savemat(tmp_path / "r.mat", raw)
    assert_same(fs, load_features(tmp_path / "r.mat"))


def test_npz_round_trip_with_names_and_provenance(tmp_path: Path) -> None:
    fs = make_fs()
    back = load_features(save_features(tmp_path / "f.npz", fs))
    assert_same(fs, back)
    assert back.query.names.tolist() == ["q0.jpg", "q1.jpg", "q2.jpg"]
    assert back.provenance["model"] == "test" and back.provenance["seed"] == 0
    assert back.dim == 4


def test_save_is_atomic_and_checks_suffix(tmp_path: Path) -> None:
    with pytest.raises(FeaturesError, match=r"unknown features format '\.h5'"):
        save_features(tmp_path / "f.h5", make_fs())
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


# -- bad input -----------------------------------------------------------------------------------------------


def test_lengths_disagree() -> None:
    fs = make_fs()
    with pytest.raises(
        FeaturesError, match="lengths disagree: gallery_f has 4 rows but gallery_label/cam/frames have 5"
    ):
        FeatureSet(fs.query_f, fs.gallery_f[:4], fs.query, fs.gallery)


def test_nan_and_inf_rows() -> None:
    fs = make_fs()
    g = fs.gallery_f.copy()
    g[2, 1] = np.nan
    with pytest.raises(FeaturesError, match="gallery_f row 2 contains NaN or inf"):
        FeatureSet(fs.query_f, g, fs.query, fs.gallery)
    q = fs.query_f.copy()
    q[1, 0] = np.inf
    with pytest.raises(FeaturesError, match="query_f row 1 contains NaN or inf"):
        FeatureSet(q, fs.gallery_f, fs.query, fs.gallery)


def test_all_zero_row() -> None:
    fs = make_fs()
    q = fs.query_f.copy()
    q[2] = 0
    with pytest.raises(FeaturesError, match="query_f row 2 is all zeros"):
        FeatureSet(q, fs.gallery_f, fs.query, fs.gallery)


def test_empty_query_or_gallery() -> None:
    fs = make_fs()
    empty = Metadata([], [], [])
    with pytest.raises(FeaturesError, match="query is empty"):
        FeatureSet(np.zeros((0, 4), np.float32), fs.gallery_f, empty, fs.gallery)
    with pytest.raises(FeaturesError, match="gallery is empty"):
        FeatureSet(fs.query_f, np.zeros((0, 4), np.float32), fs.query, empty)


def test_dimensions_and_shapes() -> None:
    fs = make_fs()
    with pytest.raises(FeaturesError, match="feature dimensions disagree: query_f has D=4, gallery_f has D=3"):
        FeatureSet(fs.query_f, fs.gallery_f[:, :3], fs.query, fs.gallery)
    with pytest.raises(FeaturesError, match=r"query_f: expected a 2-D \(N, D\) array"):
        FeatureSet(fs.query_f[0], fs.gallery_f, fs.query, fs.gallery)


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
def test_file_missing_a_key(tmp_path: Path, suffix: str) -> None:
    path = save_features(tmp_path / f"f{suffix}", make_fs())
    raw = dict(scipy.io.loadmat(path)) if suffix == ".mat" else dict(np.load(path))
    del raw["gallery_cam"]
    raw = {k: v for k, v in raw.items() if not k.startswith("__")}
    bad = tmp_path / f"bad{suffix}"
    if suffix == ".mat":
        scipy.io.savemat(bad, raw)
    else:
        np.savez(bad, **raw)
    with pytest.raises(FeaturesError, match=r"bad\.(mat|npz): missing key\(s\) \['gallery_cam'\]"):
        load_features(bad)


def test_st_model_file_given_as_features(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "pytorch_result2.mat", {"distribution": np.zeros((8, 8, 10))})
    with pytest.raises(FeaturesError, match="pytorch_result2.mat.*issue #26"):
        load_features(tmp_path / "pytorch_result2.mat")


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(FeaturesError, match="features file not found"):
        load_features(tmp_path / "none.mat")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(FeaturesError, match="unknown features format"):
        load_features(tmp_path / "x.txt")


def test_file_with_bad_rows_names_the_file(tmp_path: Path) -> None:
    fs = make_fs()
    raw = {k: v for k, v in np.load(save_features(tmp_path / "f.npz", fs)).items()}
    raw["query_f"] = raw["query_f"].copy()
    raw["query_f"][0] = np.nan
    np.savez(tmp_path / "nan.npz", **raw)
    with pytest.raises(FeaturesError, match=r"nan\.npz: query_f row 0 contains NaN"):
        load_features(tmp_path / "nan.npz")
    raw = {k: v for k, v in np.load(tmp_path / "f.npz").items()}
    raw["gallery_frames"] = raw["gallery_frames"][:-1]
    np.savez(tmp_path / "short.npz", **raw)
    with pytest.raises(FeaturesError, match=r"short\.npz: gallery: lengths disagree"):
        load_features(tmp_path / "short.npz")
    raw = {k: v for k, v in np.load(tmp_path / "f.npz").items()}
    raw["query_cam"] = np.zeros_like(raw["query_cam"])
    np.savez(tmp_path / "cam0.npz", **raw)
    with pytest.raises(FeaturesError, match=r"cam0\.npz: query_cam: camera ids are 1-based"):
        load_features(tmp_path / "cam0.npz")
    raw = {k: v for k, v in np.load(tmp_path / "f.npz").items()}
    raw["gallery_f"] = raw["gallery_f"][0]
    np.savez(tmp_path / "flat.npz", **raw)
    with pytest.raises(FeaturesError, match=r"flat\.npz: gallery_f: expected a 2-D"):
        load_features(tmp_path / "flat.npz")


# ---------------------------------------------------------------------------------------------------------------
# The optional training side (train_f, train_label, train_cam, train_frames, train_names)


def with_train(fs: FeatureSet, nt: int = 6, seed: int = 1) -> FeatureSet:
    rng = np.random.default_rng(seed)
    t = Metadata(np.arange(nt) // 2 + 1, np.arange(nt) % 2 + 1, np.arange(nt) * 50, [f"t{i}.jpg" for i in range(nt)])
    tf = rng.standard_normal((nt, fs.dim)).astype(np.float32)
    return FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, fs.provenance, train_f=tf, train=t)


@pytest.mark.parametrize("suffix", [".mat", ".npz"])
def test_training_side_round_trip(tmp_path: Path, suffix: str) -> None:
    fs = with_train(make_fs())
    back = load_features(save_features(tmp_path / f"f{suffix}", fs))
    assert back.has_train and back.sides == ("query", "gallery", "train")
    np.testing.assert_array_equal(back.train_f, fs.train_f)
    for key in ("pids", "cams", "frames"):
        np.testing.assert_array_equal(getattr(back.train, key), getattr(fs.train, key))
    if suffix == ".npz":
        assert back.train.names.tolist() == fs.train.names.tolist()
    assert_same(fs, back)
    assert not back.without_train().has_train


def test_no_training_side_is_the_default(tmp_path: Path) -> None:
    back = load_features(save_features(tmp_path / "f.npz", make_fs()))
    assert not back.has_train and back.train is None and back.train_f is None
    assert "train_f" not in np.load(tmp_path / "f.npz").files


def test_incomplete_training_side_is_refused(tmp_path: Path) -> None:
    fs = make_fs()
    data = {f"{s}_{k}": v for s in ("query", "gallery") for k, v in _raw(fs, s).items()}
    data["train_f"] = np.ones((2, fs.dim), np.float32)
    data["train_label"] = np.array([1, 2])
    np.savez(tmp_path / "half.npz", **data)
    with pytest.raises(FeaturesError, match=r"half\.npz: incomplete training side.*train_cam"):
        load_features(tmp_path / "half.npz")


def test_training_side_must_agree(tmp_path: Path) -> None:
    fs = with_train(make_fs())
    with pytest.raises(FeaturesError, match="train_f has D=3"):
        FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, train_f=fs.train_f[:, :3], train=fs.train)
    with pytest.raises(FeaturesError, match="train_f has 5 rows"):
        FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, train_f=fs.train_f[:5], train=fs.train)
    with pytest.raises(FeaturesError, match="give both train_f and train"):
        FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, train_f=fs.train_f)


def _raw(fs: FeatureSet, side: str) -> dict:
    meta = getattr(fs, side)
    return {"f": getattr(fs, f"{side}_f"), "label": meta.pids, "cam": meta.cams, "frames": meta.frames}


# ---------------------------------------------------------------------------------------------------------------
# File-format errors name the file and say what was expected; ranges are checked per key


def test_text_file_named_mat_or_npz(tmp_path: Path) -> None:
    (tmp_path / "notes.mat").write_text("query_f = [1, 2, 3]\n")
    with pytest.raises(
        FeaturesError, match=r"notes\.mat: not a readable MATLAB \.mat file .*expected MATLAB v5 holding"
    ):
        load_features(tmp_path / "notes.mat")
    (tmp_path / "empty.mat").write_bytes(b"")
    with pytest.raises(FeaturesError, match=r"empty\.mat: not a readable MATLAB \.mat file"):
        load_features(tmp_path / "empty.mat")
    (tmp_path / "notes.npz").write_text("query_f,query_label\n1,2\n")
    with pytest.raises(FeaturesError, match=r"notes\.npz: not an \.npz archive of plain arrays"):
        load_features(tmp_path / "notes.npz")
    np.save(tmp_path / "single.npy", np.zeros((2, 2)))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(FeaturesError, match=r"single\.npz: a single \.npy array, not an \.npz archive"):
        load_features(tmp_path / "single.npz")
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(FeaturesError, match=r"folder\.npz: features file not found \(that path is a folder\)"):
        load_features(tmp_path / "folder.npz")


def test_matlab_v73_file(tmp_path: Path) -> None:
    # MATLAB v7.3 files are HDF5 with a MATLAB header; scipy refuses them with NotImplementedError.
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    (tmp_path / "v73.mat").write_bytes(header.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM" + b"\x00" * 400)
    with pytest.raises(FeaturesError, match=r"v73\.mat: a MATLAB v7\.3 \(HDF5\) file"):
        load_features(tmp_path / "v73.mat")


def test_truncated_npz(tmp_path: Path) -> None:
    data = save_features(tmp_path / "f.npz", make_fs()).read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FeaturesError, match=r"cut\.npz: not a readable \.npz file \(BadZipFile"):
        load_features(tmp_path / "cut.npz")


def _npz_with(tmp_path: Path, name: str, **changes) -> Path:
    raw = dict(np.load(save_features(tmp_path / "clean.npz", with_train(make_fs()))))
    for k, v in changes.items():
        if v is None:
            del raw[k]
        else:
            raw[k] = v
    np.savez(tmp_path / name, **raw)
    return tmp_path / name


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("query_frames", np.array([0, -5, 200]), r"query_frames: frame numbers must be integers >= 0; got -5 at pos"),
        ("train_frames", -np.arange(1, 7), r"train_frames: frame numbers must be integers >= 0; got -1 at position 0"),
        ("gallery_cam", np.array([1, 2, 3, 4, -1]), r"gallery_cam: camera ids are 1-based \(>= 1\); got -1"),
        ("gallery_label", np.array([-1, 0, -3, 2, 3]), r"gallery_label: person ids must be >= -1"),
        ("train_label", np.arange(6) + 0.5, r"train_label: expected whole numbers, got non-integer value 0\.5"),
        ("query_frames", np.array([0.0, 1e300, 2.0]), r"query_frames: value 1e\+300 at position 1 is out of range"),
        ("query_cam", np.array(["1", "1", "1"]), r"query_cam: expected integers, got dtype <U1"),
        ("query_f", np.ones((3, 4), np.complex64), r"query_f: expected real numbers, got dtype complex64"),
        ("gallery_f", np.full((5, 4), 1e39), r"gallery_f row 0: a value beyond float32's range"),
        ("train_f", np.full((6, 4), 1e-30), r"train_f row 0: its float32 norm is 0\.0"),  # squares underflow
        ("gallery_names", np.array(["a.jpg"]), r"gallery: lengths disagree: .*'gallery_names': 1"),
        ("provenance", np.asarray("{not json"), r"provenance: expected a JSON object string"),
        ("provenance", np.asarray("[1, 2]"), r"provenance: expected a JSON object, got list"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path: Path, key, value, match) -> None:
    path = _npz_with(tmp_path, "bad.npz", **{key: value})
    with pytest.raises(FeaturesError, match=rf"bad\.npz: {match}") as info:
        load_features(path)
    assert "\n" not in str(info.value)


def test_negative_frames_in_a_mat_file(tmp_path: Path) -> None:
    fs = make_fs()
    path = save_features(tmp_path / "f.mat", fs)
    raw = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    raw["gallery_frames"] = raw["gallery_frames"].astype(np.float64) - 500_000.0  # doubles, as MATLAB stores them
    scipy.io.savemat(tmp_path / "neg.mat", raw)
    with pytest.raises(FeaturesError, match=r"neg\.mat: gallery_frames: frame numbers must be integers >= 0"):
        load_features(tmp_path / "neg.mat")


def test_valid_variants_load_the_same(tmp_path: Path) -> None:
    clean = load_features(save_features(tmp_path / "clean.npz", with_train(make_fs())))
    raw = dict(np.load(tmp_path / "clean.npz"))
    variants = {
        "float_metadata": {k: raw[k].astype(np.float64) for k in raw if k.endswith(("_label", "_cam", "_frames"))},
        "row_metadata": {k: raw[k][None, :] for k in raw if k.endswith(("_label", "_cam", "_frames"))},
        "float64_features": {k: raw[k].astype(np.float64) for k in raw if k.endswith("_f")},
        "no_names": {k: None for k in raw if k.endswith("_names")},
    }
    for name, changes in variants.items():
        back = load_features(_npz_with(tmp_path, f"{name}.npz", **changes))
        assert_same(clean, back)
        np.testing.assert_array_equal(back.train_f, clean.train_f)
