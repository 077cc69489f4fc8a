"""The synthetic campus: determinism, on-disk layout read back by the core parsers, ground truth,
HP-vs-truth convergence, the visual-vs-st-ReID acceptance check on ``small``, and bad parameters."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streid_lib.campus import (
    INFO_FILE,
    CampusError,
    TransitTruth,
    campus_preset,
    generate_campus,
    hp_distance,
    load_truth,
    mean_hp_distance,
)
from streid_lib.campus.dataset import compute_truth, recommended_st_params
from streid_lib.campus.simulate import build_network, simulate_walkers, take, truth_histogram
from streid_lib.campus.truth import TRUTH_FILE
from streid_lib.metadata import SEQ_LENGTHS_FILE, read_dataset_root, read_manifest, read_name_lists, split_report


def tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("campus") / "tiny"
    generate_campus(root, "tiny", seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("campus_small") / "small"
    generate_campus(root, "small", seed=0, progress=False)
    return root


# -- determinism ------------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    again = generate_campus(tmp_path / "again", "tiny", seed=0, progress=False)
    a, b = tree_hash(tiny), tree_hash(again.root)
    assert a == b
    assert any(k.endswith(".jpg") for k in a) and TRUTH_FILE in a and INFO_FILE in a
    other = tree_hash(generate_campus(tmp_path / "other", "tiny", seed=1, progress=False).root)
    assert other != a
    assert other[SEQ_LENGTHS_FILE] == a[SEQ_LENGTHS_FILE]  # the network/recording layout is not seed-dependent


def test_metadata_only_writes_the_same_names_and_truth(tiny, tmp_path):
    info = generate_campus(tmp_path / "meta", "tiny", seed=0, images=False, progress=False)
    assert not (info.root / "query").exists()
    full, meta = tree_hash(tiny), tree_hash(info.root)
    for name in ("train.txt", "gallery.txt", "query.txt", "manifest.csv", TRUTH_FILE, SEQ_LENGTHS_FILE):
        assert full[name] == meta[name], name
    splits = read_name_lists(info.root)
    assert split_report(splits)["images"].tolist() == split_report(read_dataset_root(tiny))["images"].tolist()


# -- layout read back by the core parsers ---------------------------------------------------------------------


def test_parsers_read_back_sizes_and_global_frames(tiny):
    splits = read_dataset_root(tiny)
    info = json.loads((tiny / INFO_FILE).read_text())
    assert splits.naming == "market"
    report = split_report(splits)
    assert report["images"].tolist() == [info["counts"][s]["images"] for s in ("train", "gallery", "query")]
    rows = report.to_dict("index")
    cfg = campus_preset("tiny")
    assert rows["train"]["ids"] == cfg.n_people - cfg.n_query_ids
    assert rows["query"]["ids"] == rows["gallery"]["ids"] == cfg.n_query_ids
    assert rows["gallery"]["junk"] > 0 and rows["gallery"]["distractors"] > 0
    assert rows["train"]["junk"] == rows["train"]["distractors"] == 0
    # Names carry per-sequence frames; with sequence_lengths.json they parse to the manifest's global frames.
    man = read_manifest(tiny / "manifest.csv")
    by_path = {n: (p, c, f) for n, p, c, f in zip(man.names, man.pids, man.cams, man.frames)}
    seqs = set()
    for folder, meta in (("bounding_box_train", splits.train), ("bounding_box_test", splits.gallery)):
        for n, p, c, f in zip(meta.names, meta.pids, meta.cams, meta.frames):
            assert by_path[f"{folder}/{n}"] == (p, c, f)
            seqs.add((c, int(n.split("_")[1].split("s")[1])))
    assert len(seqs) > cfg.n_cams  # several sequences per camera are exercised
    table = json.loads((tiny / SEQ_LENGTHS_FILE).read_text())
    assert all(sum(v) == cfg.recording_frames for v in table.values())
    assert man.frames.max() < cfg.recording_frames


def test_protocol_splits(tiny):
    s = read_dataset_root(tiny)
    train_ids = set(s.train.pids.tolist())
    test_ids = set(s.query.pids.tolist())
    assert not train_ids & test_ids
    assert set(s.gallery.pids[s.gallery.pids > 0].tolist()) == test_ids
    # One query per identity and camera, each with a true match in another camera of the gallery.
    pairs = list(zip(s.query.pids.tolist(), s.query.cams.tolist()))
    assert len(pairs) == len(set(pairs))
    for p, c in pairs:
        assert np.any((s.gallery.pids == p) & (s.gallery.cams != c))
    # Distractors (pid 0000) and junk (pid -1) are in the gallery only.
    assert (s.gallery.pids == 0).sum() > 0 and (s.gallery.pids == -1).sum() > 0
    # Every trained identity is seen by at least two cameras.
    for p in train_ids:
        assert np.unique(s.train.cams[s.train.pids == p]).size >= 2


def test_duke_naming(tmp_path):
    info = generate_campus(tmp_path / "duke", "tiny", seed=2, naming="duke", images=True, progress=False)
    splits = read_dataset_root(info.root)
    assert splits.naming == "duke"
    assert not (info.root / SEQ_LENGTHS_FILE).exists()
    man = read_manifest(info.root / "manifest_gallery.csv")
    np.testing.assert_array_equal(man.frames, splits.gallery.frames)
    assert (splits.gallery.pids == 0).sum() == 0  # Duke's distractors carry ordinary ids
    assert info.counts["gallery"]["ids"] > info.counts["query"]["ids"]


def test_images_are_128x64_rgb(tiny):
    from PIL import Image

    some = sorted((tiny / "query").glob("*.jpg"))[:3] + sorted((tiny / "bounding_box_test").glob("-1_*.jpg"))[:2]
    assert len(some) == 5
    for p in some:
        with Image.open(p) as im:
            assert im.size == (64, 128) and im.mode == "RGB"


# -- ground truth -----------------------------------------------------------------------------------------------


def test_truth_file_format_and_meaning(tiny):
    truth = load_truth(tiny)
    cfg = campus_preset("tiny")
    assert truth.n_cams == cfg.n_cams and truth.base_bin_width == cfg.truth_bin_width
    assert truth.fps == cfg.fps and truth.recording_frames == cfg.recording_frames
    d = truth.density(100)
    sums = d.sum(axis=2)
    nonempty = truth.pair_n > 0
    np.testing.assert_allclose(sums[nonempty], 1.0)
    assert np.all(sums[~nonempty] == 0) and np.all(np.diag(truth.pair_n) == 0)
    # Multi-modal pairs exist (two routes between cameras 1 and 2), and far pairs are rare.
    p12 = np.convolve(truth.density(1000)[0, 1], np.ones(3) / 3, mode="same")
    peaks = np.flatnonzero((p12[1:-1] > p12[:-2]) & (p12[1:-1] >= p12[2:]) & (p12[1:-1] > 0.02)) + 1
    assert len(peaks) >= 2, p12[:40]
    assert truth.pair_n[0, 5] + truth.pair_n[5, 0] < 0.2 * (truth.pair_n[0, 1] + truth.pair_n[1, 0])
    # Re-binning is exact: 100-frame counts are sums of 10-frame counts.
    assert truth.rebinned(100).sum() == truth.counts.sum()
    with pytest.raises(CampusError, match="multiple of 10"):
        truth.density(25)


def test_truth_is_the_hp_histogram_of_the_same_model():
    """The truth's counting rule equals the faithful HP counting of the same walkers' crops."""
    from streid_lib.metadata import Metadata
    from streid_lib.st_model import SpatialTemporalModel

    cfg = campus_preset("tiny")
    net = build_network(cfg.n_cams)
    walkers = simulate_walkers(net, cfg, 3000, np.random.default_rng(3))
    hist, _ = truth_histogram(walkers, cfg.n_cams, 100, cfg.recording_frames)
    w, s, j = np.nonzero(walkers.crop_frames >= 0)
    meta = Metadata(w + 1, walkers.cams[w, s] + 1, walkers.crop_frames[w, s, j])
    model = SpatialTemporalModel(bin_width=100, n_bins=hist.shape[2], n_cams=cfg.n_cams, sigma=0.0).fit(meta)
    np.testing.assert_array_equal(model.counts_, hist)


def test_hp_distance_exact_cases(tiny):
    truth = load_truth(tiny)

    class Fake:
        bin_width = 100

    exact = Fake()
    exact.smoothed_ = np.zeros((8, 8, 300))
    exact.smoothed_[:6, :6] = truth.density(100, 300)
    d = hp_distance(exact, truth)
    assert set(d) == set(truth.pairs()) and len(d) >= 20
    overflow = truth.overflow(100, 300)
    for (a, b), v in d.items():
        assert v == pytest.approx(0.5 * 2 * overflow[a - 1, b - 1], abs=1e-9)
    blank = Fake()
    blank.smoothed_ = np.zeros((8, 8, 300))
    assert set(hp_distance(blank, truth).values()) == {1.0}
    with pytest.raises(CampusError, match="cameras"):
        small_model = Fake()
        small_model.smoothed_ = np.zeros((3, 3, 300))
        hp_distance(small_model, truth)


def test_hp_distance_shrinks_with_more_training_identities():
    from streid_lib.metadata import Metadata
    from streid_lib.st_model import SpatialTemporalModel

    cfg = campus_preset("small")
    net = build_network(cfg.n_cams)
    truth = compute_truth(cfg, net, np.random.default_rng(11), n=100_000)
    st = recommended_st_params(cfg)
    walkers = simulate_walkers(net, cfg, 6000, np.random.default_rng(4))
    seen_twice = take(walkers, np.flatnonzero(walkers.recorded.sum(axis=1) >= 2))  # training-like identities
    tv = []
    for n in (30, 300, 3000):
        w, s, j = np.nonzero(seen_twice.crop_frames[:n] >= 0)
        train = Metadata(w + 1, seen_twice.cams[w, s] + 1, seen_twice.crop_frames[w, s, j])
        assert np.unique(train.pids).size == n
        model = SpatialTemporalModel(bin_width=st["bin_width"], n_bins=st["n_bins"], sigma=st["sigma"]).fit(train)
        tv.append(mean_hp_distance(model, truth))
    assert tv[0] > tv[1] > tv[2], tv
    assert tv[0] - tv[2] > 0.05, tv


# -- the acceptance check on small --------------------------------------------------------------------------------


def test_small_visual_baseline_is_imperfect_and_st_reid_improves_it(small):
    from streid_lib.colour_histogram import colour_histogram_features
    from streid_lib.joint import JointMetric, cosine_similarity
    from streid_lib.metrics import evaluate_scores
    from streid_lib.st_model import SpatialTemporalModel

    info = json.loads((small / INFO_FILE).read_text())
    cfg = campus_preset("small")
    assert 100 <= info["counts"]["train"]["ids"] + info["counts"]["query"]["ids"] <= 300
    assert sum(v["images"] for v in info["counts"].values()) >= 1500
    splits = read_dataset_root(small)
    fs = colour_histogram_features(small)
    st = info["st_params"]
    model = SpatialTemporalModel(bin_width=st["bin_width"], n_bins=st["n_bins"], sigma=st["sigma"]).fit(splits.train)
    s = cosine_similarity(fs.query_f, fs.gallery_f)
    p = model.probability(fs.query.cams[:, None], fs.query.frames[:, None], fs.gallery.cams, fs.gallery.frames)
    vis = evaluate_scores(s, fs.query, fs.gallery).summary()
    joint = evaluate_scores(JointMetric()(s, p), fs.query, fs.gallery).summary()
    # Measured (seeds 0-3): VIS R1 33-38%, st-ReID R1 44-59%.
    assert 10.0 < vis["R1"] < 80.0, vis
    assert joint["R1"] > vis["R1"] + 5.0, (vis, joint)
    assert joint["mAP"] > vis["mAP"], (vis, joint)
    # The fitted HP is a fair estimate of the truth on the frequently travelled pairs.
    d = hp_distance(model, small)
    busy = [v for (a, b), v in d.items() if load_truth(small).pair_n[a - 1, b - 1] > 0.05 * cfg.truth_mc]
    assert busy and max(busy) < 0.6


# -- errors and CLI -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_cams": 0}, "n_cams=0"),
        ({"n_query_ids": 60}, "more query identities than people"),
        ({"junk_rate": -0.5}, "junk_rate=-0.5.*negative"),
        ({"detect_prob": 1.5}, "detect_prob"),
        ({"fps": 0}, "fps=0"),
        ({"n_colours": 3}, "unknown campus parameter"),
    ],
)
def test_bad_parameters_are_clear_errors(tmp_path, kwargs, match):
    with pytest.raises(CampusError, match=match):
        generate_campus(tmp_path / "x", "tiny", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_bad_preset_naming_and_foreign_folder(tmp_path):
    with pytest.raises(CampusError, match="preset.*'huge'"):
        generate_campus(tmp_path / "x", "huge")
    with pytest.raises(CampusError, match="naming"):
        generate_campus(tmp_path / "x", "tiny", naming="cuhk")
    foreign = tmp_path / "market"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not a campus")
    with pytest.raises(CampusError, match="not a campus"):
        generate_campus(foreign, "tiny", progress=False)
    assert (foreign / "keep.txt").read_text() == "not a campus"
    with pytest.raises(CampusError, match="transit truth file not found"):
        load_truth(foreign)


def test_regenerating_replaces_an_earlier_campus(tiny, tmp_path):
    root = tmp_path / "c"
    generate_campus(root, "tiny", seed=5, images=False, progress=False)
    generate_campus(root, "tiny", seed=0, images=False, progress=False)
    assert (root / "train.txt").read_text() == (tiny / "train.txt").read_text()
    assert not list(tmp_path.glob(".c.*"))  # no staging leftovers


def test_cli_synth(tmp_path, capsys):
    from streid_lib.cli import main

    out = tmp_path / "cli"
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--seed", "3", "--metadata-only"]) == 0
    text = capsys.readouterr().out
    assert "train" in text and "gallery" in text and "HP layout" in text
    with (out / "manifest.csv").open() as fh:
        assert next(csv.reader(fh)) == ["path", "pid", "camera", "frame"]
    assert isinstance(load_truth(out), TransitTruth)
    assert main(["synth", "--out", str(tmp_path / "bad"), "--preset", "tiny", "--seed", "-1"]) == 2


# -- replacing a folder: only the generator's own files ---------------------------------------------------------


def test_synth_refuses_to_replace_a_campus_holding_user_files(tmp_path, capsys):
    from streid_lib.cli import main

    out = tmp_path / "campus"
    assert main(["synth", "--out", str(out), "--preset", "tiny"]) == 0
    (out / "runs").mkdir()
    (out / "runs" / "table.csv").write_text("mine")
    (out / "my_features.npz").write_bytes(b"mine")
    (out / "bounding_box_train" / "0001_c9s1_000001_01.jpg").write_bytes(b"mine")
    (out / "notes.md").write_text("mine")
    before = tree_hash(out)
    capsys.readouterr()
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--seed", "1"]) == 2
    assert capsys.readouterr().err == (
        f"error: {out}: holds 4 file(s) the campus generator did not write "
        "(bounding_box_train/0001_c9s1_000001_01.jpg, my_features.npz, notes.md, ...); "
        "refusing to replace it (move them elsewhere or choose another --out)\n"
    )
    assert tree_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campus"]  # nothing staged beside it


def test_a_campus_of_only_its_own_files_is_replaced(tmp_path):
    out = tmp_path / "campus"
    info = generate_campus(out, "tiny", seed=5, progress=False)
    rec = json.loads((out / INFO_FILE).read_text())
    assert rec["written_files"] == sorted(p.name for p in info.files.values())
    assert all((out / name).is_file() for name in rec["written_files"])
    generate_campus(out, "tiny", seed=0, progress=False)
    assert json.loads((out / INFO_FILE).read_text())["seed"] == 0
    # A campus from before campus.json listed its files: its fixed set of files is known.
    del rec["written_files"]
    (out / INFO_FILE).write_text(json.dumps(rec))
    generate_campus(out, "tiny", seed=1, images=False, progress=False)
    assert not (out / "bounding_box_train").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campus"]


def test_a_killed_synth_leaves_a_partial_folder_that_the_next_run_removes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".campus.partial-{dead.pid}"
    (stale / "bounding_box_train").mkdir(parents=True)
    (stale / "train.txt").write_text("half written")
    other = tmp_path / f".other.partial-{dead.pid}"  # another target's leftover: not this run's business
    other.mkdir()
    generate_campus(tmp_path / "campus", "tiny", images=False, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "campus"]


def test_synth_checks_its_destination_before_any_work(tmp_path, capsys, monkeypatch):
    from streid_lib.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr("streid_lib.campus.dataset.build_network", _no_work)
    assert main(["synth", "--out", str(blocker / "campus"), "--preset", "tiny"]) == 2
    msg = f"error: campus folder {blocker / 'campus'}: cannot be created, {blocker} is a file\n"
    assert capsys.readouterr().err == msg
    assert main(["synth", "--out", str(blocker), "--preset", "tiny"]) == 2
    assert capsys.readouterr().err == f"error: {blocker}: exists and is not a folder\n"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="no /sys here (a place that refuses new files, even to root)")
def test_synth_refuses_a_destination_where_nothing_can_be_written(capsys, monkeypatch):
    from streid_lib.cli import main

    monkeypatch.setattr("streid_lib.campus.dataset.build_network", _no_work)
    assert main(["synth", "--out", "/sys/streid-campus", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: campus folder /sys/streid-campus: cannot write in /sys (")
    assert err.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (see the /sys test)")
def test_synth_refuses_a_read_only_destination(tmp_path, capsys, monkeypatch):
    from streid_lib.cli import main

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setattr("streid_lib.campus.dataset.build_network", _no_work)
    try:
        assert main(["synth", "--out", str(ro / "campus"), "--preset", "tiny"]) == 2
        msg = f"error: campus folder {ro / 'campus'}: cannot write in {ro} (Permission denied)\n"
        assert capsys.readouterr().err == msg
    finally:
        ro.chmod(0o700)


def _no_work(*args, **kwargs):
    raise AssertionError("the destination must be checked before any work")
