"""Pseudo-identities (docs/reference.md §14): the label-free choice, diagnostics, unlabelled inputs, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_error, run

from streid_lib.features import FeaturesError, FeatureSet, load_features, save_features
from streid_lib.metadata import UNKNOWN_PID, Metadata, MetadataError, read_manifest
from streid_lib.pseudo import (
    PseudoIdentities,
    PseudoLabelError,
    apply_pseudo_labels,
    consistency,
    diagnostics,
    with_singletons,
)
from streid_lib.st_model import SpatialTemporalModel, STModelError


def world(n_ids: int = 30, crops: int = 4, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, Metadata]:
    """Each identity walks camera 1 → 2 (300 frames later), ``crops`` crops within 20 frames per camera.

    Identities appear at distinct times, far apart, so merging two of them breaks the one-place rule.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim)) * 3
    pids, cams, frames, feats = [], [], [], []
    for i in range(n_ids):
        t0 = 10_000 * i
        for cam, t in ((1, t0), (2, t0 + 300)):
            pids += [i + 1] * crops
            cams += [cam] * crops
            frames += list(t + rng.integers(0, 20, crops))
            feats.append(centres[i] + 0.2 * rng.standard_normal((crops, dim)))
    return np.vstack(feats).astype(np.float32), Metadata(np.array(pids), np.array(cams), np.array(frames))


def test_fit_recovers_identities_without_reading_labels():
    f, meta = world()
    hidden = Metadata(np.full(len(meta), UNKNOWN_PID), meta.cams, meta.frames)
    est = PseudoIdentities(eps_grid=(0.02, 0.1, 0.5, 1.5), fps=60).fit(f, hidden)
    again = PseudoIdentities(eps_grid=(0.02, 0.1, 0.5, 1.5), fps=60).fit(f, meta)
    assert np.array_equal(est.labels_, again.labels_)  # labels never change the choice
    assert diagnostics(meta.pids, est.labels_)["ari"] > 0.95
    # eps 1.5 merges everything: one cluster with impossible cells, so it is not chosen
    crit = {c["eps"]: c for c in est.criteria_}
    assert crit[1.5]["conflict_share"] > 0.5 and crit[1.5]["consistent_cross"] < crit[est.eps_]["consistent_cross"]
    assert est.eps_ != 1.5 and est.pids_.min() >= 1


def test_consistency_and_singletons_by_hand():
    labels = np.array([0, 0, 0, 1, 1, -1])
    cams = np.array([1, 2, 1, 3, 3, 1])
    frames = np.array([0, 50, 10_000, 5, 8, 0])
    c, bad = consistency(labels, cams, frames, max_dwell=100)
    # cluster 0: cam 1 spans 10,000 frames (impossible), cam 2 fine; cluster 1: one camera only
    assert c == {
        "n_clusters": 2,
        "noise_share": 1 / 6,
        "cross_camera": 1,
        "conflict_share": 1 / 3,
        "consistent_cross": 0,
    }
    assert bad.tolist() == [True, False]
    assert with_singletons(np.array([0, -1, 1, -1])).tolist() == [1, 3, 2, 4]


def test_diagnostics_perfect_and_split():
    truth = np.array([1, 1, 2, 2])
    assert diagnostics(truth, np.array([0, 0, 1, 1])) == {"ari": 1.0, "pair_precision": 1.0, "pair_recall": 1.0}
    d = diagnostics(truth, np.array([0, -1, 1, -1]))  # noise points are singletons: no pair found
    assert d["pair_recall"] == 0.0


def test_bad_parameters_are_one_line_errors():
    f, meta = world(n_ids=3)
    with pytest.raises(PseudoLabelError, match="eps"):
        PseudoIdentities(eps=3.0).fit(f, meta)
    with pytest.raises(PseudoLabelError, match="rows"):
        PseudoIdentities(eps=0.1).fit(f[:-1], meta)


def feature_set(train_labelled: bool = True) -> FeatureSet:
    f, meta = world(seed=1)
    q = np.arange(0, len(meta), 8)  # camera 1 crops as queries, the rest gallery
    g = np.setdiff1d(np.arange(len(meta)), q)
    tf, tm = world(seed=2)
    if not train_labelled:
        tm = Metadata(np.full(len(tm), UNKNOWN_PID), tm.cams, tm.frames)
    return FeatureSet(f[q], f[g], meta.take(q), meta.take(g), {"source": "test world"}, train_f=tf, train=tm)


def test_apply_train_and_test_modes():
    fs = feature_set()
    out, rec = apply_pseudo_labels(fs, "train", eps=0.1)
    assert rec["mode"] == "train" and rec["eps_chosen"] == 0.1 and rec["diagnostics"]["ari"] > 0.95
    assert np.array_equal(out.train_f, fs.train_f) and out.train.has_labels
    out, rec = apply_pseudo_labels(fs.without_train(), "test", eps=0.1)
    assert len(out.train) == len(fs.query) + len(fs.gallery) and "transductive" in rec["note"]
    with pytest.raises(PseudoLabelError, match="no training side"):
        apply_pseudo_labels(fs.without_train(), "train")
    with pytest.raises(PseudoLabelError, match="expected one of"):
        apply_pseudo_labels(fs, "both")


def test_unlabelled_training_side_round_trip_and_refusals(tmp_path):
    fs = feature_set(train_labelled=False)
    path = save_features(tmp_path / "f.npz", fs)
    with np.load(path) as z:
        assert "train_label" not in z.files
    back = load_features(path)
    assert not back.train.has_labels and back.query.has_labels
    with pytest.raises(STModelError, match="pseudo-labels"):
        SpatialTemporalModel().fit(back.train)
    # a -2 written into a file is not an unknown identity: it is refused
    with np.load(path) as z:
        arrays = dict(z)
    np.savez(tmp_path / "bad.npz", **arrays, train_label=np.full(len(fs.train), -2))
    with pytest.raises(FeaturesError, match="train_label"):
        load_features(tmp_path / "bad.npz")
    # a mixed side cannot be built: unknown is a whole side
    with pytest.raises(MetadataError):
        Metadata(np.array([UNKNOWN_PID, 3]), np.array([1, 1]), np.array([0, 1]))


def test_manifest_without_pid_and_with_timestamps(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("path,camera,timestamp\na.jpg,1,0.5\nb.jpg,2,10\n", encoding="utf-8")
    meta = read_manifest(m, fps=60)
    assert meta.frames.tolist() == [30, 600] and not meta.has_labels
    with pytest.raises(MetadataError, match="fps"):
        read_manifest(m)
    m.write_text("path,camera,frame\na.jpg,1,5\n", encoding="utf-8")
    assert read_manifest(m).pids.tolist() == [UNKNOWN_PID]
    m.write_text("path,camera,timestamp\na.jpg,1,soon\n", encoding="utf-8")
    with pytest.raises(MetadataError, match="line 2"):
        read_manifest(m, fps=25)


def test_cli_pseudo_labels(tmp_path, capsys):
    fs = feature_set(train_labelled=False)
    feats = save_features(tmp_path / "f.npz", fs)
    base = ("evaluate", "--features", str(feats), "--dataset", "duke", "--rows", "st-ReID")
    assert_error(run(capsys, *base), "pseudo-labels")
    out = tmp_path / "r.json"
    rc, text, _ = run(capsys, *base, "--pseudo-labels", "train", "--pseudo-eps", "0.1", "--json", str(out))
    assert rc == 0 and "pseudo-identities: 30 clusters" in text
    rec = json.loads(out.read_text())["pseudo_labels"]
    assert rec["n_clusters"] == 30 and rec["params"]["eps"] == 0.1 and "diagnostics" not in rec
    rc, text, _ = run(
        capsys, *base, "--pseudo-labels", "test", "--pseudo-eps", "0.1", "--pseudo-rounds", "1", "--json", str(out)
    )
    assert rc == 0 and "transductive" in text
    assert "diagnostics" in json.loads(out.read_text())["pseudo_labels"]
    assert [r["round"] for r in json.loads(out.read_text())["pseudo_labels"]["rounds"]] == [1]
    assert_error(run(capsys, *base, "--pseudo-labels", "train", "--train-names", str(feats)), "--pseudo-labels")


def test_refine_with_st_cuts_impossible_pairs_and_reports_rounds():
    from streid_lib.pseudo import refine_with_st

    f, meta = world()
    # two look-alikes: identity 2 wears identity 1's clothes but walks 10,000 frames later
    f[meta.pids == 2] = f[meta.pids == 1]
    est = PseudoIdentities(eps=0.1, fps=60).fit(f, meta)
    assert est.n_dropped_ == 1  # merged, the pair breaks the one-place rule, so it casts no ST vote
    recs = refine_with_st(est, f, meta, lambda m: SpatialTemporalModel(n_bins=400, n_cams=2).fit(m), rounds=2)
    assert [r["round"] for r in recs] == [1, 2]
    assert diagnostics(meta.pids, est.labels_)["ari"] > 0.95  # the ST evidence split them again
    with pytest.raises(PseudoLabelError, match="rounds"):
        apply_pseudo_labels(feature_set(), "train", eps=0.1, rounds=1)


def test_cli_improved_mode_on_pseudo_identities_uses_the_spread_rule(tmp_path, capsys):
    feats = save_features(tmp_path / "f.npz", feature_set(train_labelled=False))
    out = tmp_path / "r.json"
    argv = ("evaluate", "--features", str(feats), "--dataset", "duke", "--rows", "st-ReID", "--mode", "improved")
    rc, _, _ = run(capsys, *argv, "--pseudo-labels", "train", "--pseudo-eps", "0.1", "--json", str(out))
    result = json.loads(out.read_text())
    improved = result["params"]["improved"]
    assert rc == 0 and improved["w_source"] == "spread" and not improved["train_features"]["used"]
    guard = result["pseudo_labels"]["improved_guard"]  # clean pseudo-identities: a reproducible ST density
    assert guard["use_improved"] and guard["split_half_tv"] < 0.2 and "improved" in result["rows"]
    # transit times at random: the two halves of the identities disagree, so the faithful fusion ranks
    fs = feature_set()
    rng = np.random.default_rng(3)
    lag = rng.integers(0, 250_000, fs.train.pids.max() + 1)[fs.train.pids]  # one transit per identity, at random
    frames = fs.train.frames + np.where(fs.train.cams == 2, lag, 0)
    hidden = Metadata(np.full(len(frames), UNKNOWN_PID), fs.train.cams, frames)
    noisy = FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, {}, train_f=fs.train_f, train=hidden)
    feats = save_features(tmp_path / "noisy.npz", noisy)
    argv = ("evaluate", "--features", str(feats), "--dataset", "duke", "--rows", "st-ReID", "--mode", "improved")
    rc, _, _ = run(capsys, *argv, "--sigma", "2", "--pseudo-labels", "train", "--pseudo-eps", "0.1", "--json", str(out))
    result = json.loads(out.read_text())
    guard = result["pseudo_labels"]["improved_guard"]
    assert rc == 0 and not guard["use_improved"] and guard["split_half_tv"] > guard["max_split_tv"]
    assert "improved" not in result["rows"] and any("falls back" in w for w in result["warnings"])


def test_split_half_tv_reads_no_labels():
    from streid_lib.pseudo import guarded_mode, split_half_tv

    _, meta = world()
    fit = lambda m: SpatialTemporalModel(n_bins=400, n_cams=2, sigma=2).fit(m)  # noqa: E731
    assert split_half_tv(meta, fit) < 0.2
    lag = np.random.default_rng(0).integers(0, 30_000, meta.pids.max() + 1)[meta.pids]  # a transit per identity
    shuffled = Metadata(meta.pids, meta.cams, meta.frames + np.where(meta.cams == 2, lag, 0))
    assert split_half_tv(shuffled, fit) > 0.5
    assert guarded_mode("improved", {"improved_guard": {"use_improved": False}}) == "faithful"
    assert guarded_mode("improved", {}) == "improved" and guarded_mode("faithful", None) == "faithful"


def test_label_free_study_rows_rounds_and_verdicts():
    from streid_lib.study import label_free as lf

    sizes = lf.LabelFreeSizes(eps_grid=(0.1,), n_boot=50, rounds=1, improved=True)
    rep = lf.label_free_study(feature_set(), "duke", sizes=sizes)
    assert list(rep.table.index) == ["labelled", "label-free (train side)", "label-free (transductive)",
                                     lf.IMPROVED_ROW, lf.GUARDED_ROW]  # fmt: skip
    guard = rep.records[lf.GUARDED_ROW]  # clean clusters: the guard keeps the improved fusion
    assert guard["use_improved"] and rep.table.loc[lf.GUARDED_ROW, "R1"] == rep.table.loc[lf.IMPROVED_ROW, "R1"]
    assert any(c.endswith("never below label-free faithful") for c, _, _ in lf.verdicts(rep))
    assert rep.table.loc["label-free (train side)", "ARI"] > 0.95 and list(rep.refinement.index) == [0, 1]
    claims = [c for c, _, _ in lf.verdicts(rep)]
    assert claims[0].startswith("label-free (train side) st-ReID") and "| claim |" in lf.verdicts_markdown(rep)
    twin = repr(lf.Verdicts(rep)).splitlines()  # the plain-text twin that nbval compares
    assert len(twin) == len(claims) and all(line.split()[0] in ("MET", "NOT") for line in twin)
    assert rep.differences.index[0] == "label-free (train side) − labelled, R1"
    # without a training side: the labelled model from given metadata, the transductive route only
    fs = feature_set()
    rep = lf.label_free_study(fs.without_train(), "duke", train=fs.train, sizes=sizes)
    assert list(rep.table.index) == ["labelled", "label-free (transductive)"] and rep.refinement is None
    assert rep.main == "label-free (transductive)" and len(lf.verdicts(rep)) == 1
    assert "transductive" in lf.describe_label_free(rep)


def test_cli_train_manifest_without_pid_describes_train_f(tmp_path, capsys):
    fs = feature_set(train_labelled=False)
    true = fs.train
    # the file's own training metadata is useless (one camera): only the manifest's can give cross-camera votes
    blind = Metadata(
        true.pids, np.ones(len(true), np.int64), true.frames, np.array([f"{i}.jpg" for i in range(len(true))])
    )
    feats = save_features(
        tmp_path / "f.npz",
        FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, {}, train_f=fs.train_f, train=blind),
    )
    rows = [f"crops/{i}.jpg,{c},{float(t) / 25!r}" for i, (c, t) in enumerate(zip(true.cams, true.frames))]
    m = tmp_path / "m.csv"
    m.write_text("path,camera,timestamp\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "r.json"
    base = ("evaluate", "--features", str(feats), "--dataset", "duke", "--rows", "st-ReID", "--pseudo-eps", "0.1")
    rc, text, _ = run(
        capsys, *base, "--pseudo-labels", "train", "--train-manifest", str(m), "--fps", "25", "--json", str(out)
    )
    result = json.loads(out.read_text())
    assert rc == 0 and "pseudo-identities: 30 clusters" in text
    assert result["provenance"]["train"]["kind"] == "manifest" and result["provenance"]["train"]["n_identities"] == 30
    assert result["pseudo_labels"]["candidates"][0]["consistent_cross"] == 30
    m.write_text("path,camera,timestamp\n" + "\n".join(rows[:-1]) + "\n", encoding="utf-8")
    assert_error(run(capsys, *base, "--pseudo-labels", "train", "--train-manifest", str(m), "--fps", "25"), "rows")
    m.write_text("path,camera,timestamp\n" + "\n".join(rows[1:] + rows[:1]) + "\n", encoding="utf-8")
    assert_error(run(capsys, *base, "--pseudo-labels", "train", "--train-manifest", str(m), "--fps", "25"), "row 1")
    assert_error(run(capsys, *base, "--pseudo-labels", "test", "--train-manifest", str(m)), "--train-manifest")


def test_truth_model_is_the_true_density_at_the_fitted_layout():
    from streid_lib.campus import TransitTruth, hp_distance
    from streid_lib.st_model import SpatialTemporalModel
    from streid_lib.study.label_free import truth_model

    counts = np.zeros((2, 2, 400), np.int64)
    counts[0, 1, [30, 35, 120]] = [4, 2, 1]  # base bins of 10 frames: gaps 300, 350 and 1200 frames
    counts[1, 0, 250] = 3
    truth = TransitTruth(counts, base_bin_width=10, fps=60.0, n_walkers=10, recording_frames=10_000)
    model = truth_model(truth, SpatialTemporalModel(n_cams=3, n_bins=30, bin_width=100, sigma=0.0))
    assert model.distribution_.shape == (3, 3, 30) and model.counts_ is None
    np.testing.assert_allclose(model.distribution_[0, 1, [3, 12]], [6 / 7, 1 / 7])
    assert model.distribution_[2].sum() == 0 and model.distribution_[1, 0, 25] == 1
    tv = hp_distance(model, truth)
    assert list(tv) == [(1, 2), (2, 1)] and max(tv.values()) < 1e-12  # unsmoothed: the truth itself
    wide = truth_model(truth, SpatialTemporalModel(n_cams=3, n_bins=30, bin_width=100, sigma=5.0))
    assert hp_distance(wide, truth)[(1, 2)] > 0.1  # smoothing is what the oracle's floor measures
