"""Ablations, paired bootstraps and the noise check of the improved mode; notebook 07's report; the campus."""

from __future__ import annotations

import re

import numpy as np
import pytest
from improved_world import synthetic_world

from streid_lib import improved, study
from streid_lib.colour_histogram import colour_histogram_features
from streid_lib.improved import ImprovedError, SelectionConfig
from streid_lib.improved.analysis import ablation_table, bootstrap_difference, noise_check
from streid_lib.improved.scoring import fit_improved, improved_results, st_params_from
from streid_lib.joint import cosine_similarity
from streid_lib.metrics import evaluate_scores
from streid_lib.uncertainty import cluster_means

#: The smoke profile's search, as notebook 07 runs it under CI (one home for the smoke sizes: the profiles).
SMOKE = study.PROFILE_SETTINGS["smoke"].sizes.selection
SMALL = SelectionConfig(sigmas=(3.0, 12.0), sigma0=12.0, w_scales=(1.0, 2.0), rerank_b=(1.0, 4.0))


def test_bootstrap_difference() -> None:
    fs = synthetic_world(seed=6, n_ids=60)
    s = cosine_similarity(fs.query_f, fs.gallery_f)
    a = evaluate_scores(s, fs.query, fs.gallery)
    same = bootstrap_difference(a, a, n_boot=200)
    assert list(same["metric"]) == ["R1", "mAP", "mINP"]
    np.testing.assert_array_equal(same[["diff", "ci_low", "ci_high"]].to_numpy(), 0.0)
    rng = np.random.default_rng(0)
    b = evaluate_scores(s + 0.3 * rng.standard_normal(s.shape), fs.query, fs.gallery)  # a noisier ranking
    df = bootstrap_difference(a, b, n_boot=500, seed=1, metrics=("R1", "mAP", "R1+mAP")).set_index("metric")
    assert df.loc["mAP", "diff"] == pytest.approx(100 * (b.ap.mean() - a.ap.mean()))
    assert df.loc["R1+mAP", "diff"] == pytest.approx(df.loc["R1", "diff"] + df.loc["mAP", "diff"])
    assert df.loc["mAP", "ci_low"] <= df.loc["mAP", "diff"] <= df.loc["mAP", "ci_high"]
    assert df.loc["mAP", "ci_high"] < 0  # clearly worse
    again = bootstrap_difference(a, b, n_boot=500, seed=1, metrics=("R1", "mAP", "R1+mAP"))
    assert again.equals(df.reset_index())
    with pytest.raises(ImprovedError, match="same query"):
        bootstrap_difference(a, evaluate_scores(s[:5], fs.query.take(slice(0, 5)), fs.gallery))
    with pytest.raises(ImprovedError, match="metrics"):
        bootstrap_difference(a, a, metrics=("R5",))
    # One resampling rule with the study's intervals: identities are the clusters (streid_lib.uncertainty).
    by_id = bootstrap_difference(a, b, n_boot=500, seed=1, metrics=("mAP",), ids=fs.query.pids).iloc[0]
    d = 100 * (b.ap - a.ap)
    expected = np.percentile(cluster_means(d, fs.query.pids, 500, 1)[:, 0], [2.5, 97.5])
    np.testing.assert_allclose([by_id["ci_low"], by_id["ci_high"]], expected)
    assert by_id["diff"] == pytest.approx(d.mean())
    with pytest.raises(ImprovedError, match="ids"):
        bootstrap_difference(a, b, ids=fs.query.pids[:-1])
    # The noise check: b is clearly worse than a, a clearly better than b; a is not beyond noise of itself.
    noise = noise_check({"a": a, "b": b, "a2": a}, "b", ["a", "a2"], n_boot=300)
    assert noise.loc["a", "beats_beyond_noise"] and noise.loc["a", "ci_low"] > 0
    assert not noise_check({"a": a, "a2": a}, "a", ["a2"], n_boot=300).loc["a2", "beats_beyond_noise"]


def test_ablation_rows_are_consistent_and_none_beats_the_chosen_row_beyond_noise() -> None:
    fs = synthetic_world(seed=7, n_ids=80)
    abl = ablation_table(fs, rerank=True, config=SMALL, n_boot=500)
    df = abl.table
    names = list(df["variant"])
    for want in ("VIS", "faithful", "improved", "w=1", "ST evidence only", "faithful+re-rank", "improved+re-rank",
                 "per-direction smoothing"):  # fmt: skip
        assert want in names
    assert sum(n.startswith("counting=") for n in names) == 2
    assert len(set(names)) == len(names)
    row = df.set_index("variant")
    assert row.loc["faithful", "dR1"] == 0.0 and row.loc["faithful", "dmAP"] == 0.0
    assert row.loc["improved", "dmAP"] == pytest.approx(row.loc["improved", "mAP"] - row.loc["faithful", "mAP"])
    # The rows agree with the stand-alone functions.
    alone = improved_results(fs, abl.fitted)["improved"].summary()
    assert row.loc["improved", "mAP"] == pytest.approx(alone["mAP"])
    assert set(abl.results) == set(names) | {"re-rank variant visual_then_st", "re-rank variant rescaled"}
    # The noise check covers every variant of the chosen row, and none beats it beyond noise.
    checked = df[df["beats_beyond_noise"].notna()]
    assert "w=1" in set(checked["variant"]) and "improved" not in set(checked["variant"])
    assert not checked["beats_beyond_noise"].astype(bool).any(), checked[["variant", "d_crit", "ci_low"]]


def test_report_tables_and_sentences_come_from_the_numbers(tmp_path) -> None:
    fs = synthetic_world(seed=8, n_ids=80)
    rep = improved.beyond_the_paper(fs, dataset="duke", config=SMALL, n_boot=300)
    s = rep.summary
    assert {"faithful", "improved", "improved+re-rank", "improved (no training features)"} <= set(s.index)
    assert s.loc["improved", "dmAP vs faithful"] == pytest.approx(s.loc["improved", "mAP"] - s.loc["faithful", "mAP"])
    assert set(rep.targets.index) >= {"improved ≥ faithful + 6 R1", "improved+re-rank ≥ improved + 2 mAP"}
    t = rep.targets.loc["improved ≥ faithful + 12 mAP"]
    assert t["met"] == (t["difference"] >= 12)
    assert t["difference"] == pytest.approx(s.loc["improved", "dmAP vs faithful"])
    text = improved.interpretation(rep)
    assert f"{s.loc['improved', 'mAP']:.1f}" in text[0] and f"{s.loc['faithful', 'mAP']:.1f}" in text[0]
    assert any(t.startswith(f"Targets met: {int(rep.targets['met'].sum())} of {len(rep.targets)}") for t in text)
    assert f"{len(fs.query):,} queries against {len(fs.gallery):,} gallery images" in improved.describe_inputs(rep)
    # The tables as written and shown: named columns, counts as integers, p-values with three decimals.
    tables = {t.name: t for t in improved.report_tables(rep)}
    assert list(tables) == ["beyond_summary", "beyond_ablation", "beyond_bootstrap", "beyond_targets",
                            "beyond_validation", "rerank_variants"]  # fmt: skip
    boot = tables["beyond_bootstrap"]
    shown = study.write_table(boot.frame, boot.name, study.study_config(profile="smoke", out_dir=str(tmp_path)),
                              title=boot.title, decimals=boot.decimals)  # fmt: skip
    assert shown.index.name == "comparison (B − A)" and not {"a", "b", "diff"} & set(shown.columns)
    first = shown.loc["improved − faithful"].set_index("metric").loc["mAP"]
    assert first["A (reference row)"] == f"{s.loc['faithful', 'mAP']:.1f}"
    assert first["B (compared row)"] == f"{s.loc['improved', 'mAP']:.1f}"
    assert set(shown["resamples"]) == {"300"}
    assert all(re.fullmatch(r"[01]\.\d{3}", p) for p in shown["p (bootstrap, two-sided)"])
    assert "| 300 |" in (tmp_path / "figures" / "beyond_bootstrap.md").read_text()
    # Without a training side: the spread-rule rows only, and the sentences still render.
    plain = improved.beyond_the_paper(fs.without_train(), dataset="duke", train=fs.train, config=SMALL, n_boot=100)
    assert "improved (no training features)" not in plain.summary.index
    assert plain.choice["w_source"] == "spread" and improved.interpretation(plain)


# ----------------------------------------------------------------------------------------------------------------
# Acceptance on the campus (colour-histogram features with their training side)


@pytest.fixture(scope="module")
def campus_features(tmp_path_factory: pytest.TempPathFactory):
    from streid_lib.campus import generate_campus

    root = tmp_path_factory.mktemp("campus") / "small"
    generate_campus(root, "small", seed=0, progress=False)
    return colour_histogram_features(root, train=True)


@pytest.mark.slow
def test_campus_improved_beats_faithful_and_no_ablation_beats_it(campus_features) -> None:
    fs = campus_features
    assert fs.has_train and len(fs.train_f) == len(fs.train)
    abl = ablation_table(fs, rerank=False, config=SMOKE, n_boot=500)
    df = abl.table
    row = df.set_index("variant")
    assert row.loc["improved", "R1"] > row.loc["faithful", "R1"]
    assert row.loc["improved", "mAP"] > row.loc["faithful", "mAP"]
    checked = df[df["beats_beyond_noise"].notna()]
    assert not checked["beats_beyond_noise"].astype(bool).any(), checked[["variant", "d_crit", "ci_low"]]
    # The evaluate --mode improved path without training features (spread rule) beats faithful as well.
    spread = fit_improved(fs.train, None, config=SMOKE, st_params=st_params_from(abl.faithful))
    plain = improved_results(fs.without_train(), spread)["improved"].summary()
    assert plain["R1"] > row.loc["faithful", "R1"] and plain["mAP"] > row.loc["faithful", "mAP"]
