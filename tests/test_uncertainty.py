"""Intervals from a bootstrap over query identities, verdicts read from them, and provenance a stranger can check."""

from __future__ import annotations

import numpy as np
import pytest

from streid_lib import study
from streid_lib.uncertainty import (
    HELD,
    INCONCLUSIVE,
    NOT_HELD,
    TRAINED_TOLERANCE,
    PerQuery,
    RowSummary,
    UncertaintyError,
    boot_means,
    difference,
    interval,
    row_interval,
    verdict,
)


def rows_of(hit, ids):
    hit = np.asarray(hit, float)
    return RowSummary({"R1": 100 * hit.mean(), "mAP": 100 * hit.mean()}, PerQuery(hit, hit, np.asarray(ids)))


def test_verdict_reads_the_interval_against_the_threshold():
    assert verdict(0.5, 3.0) == HELD
    assert verdict(-3.0, 0.0) == NOT_HELD
    assert verdict(-1.0, 1.0) == INCONCLUSIVE
    assert verdict(9.0, 12.0, threshold=10.0) == INCONCLUSIVE


def test_queries_of_one_identity_are_resampled_together():
    rng = np.random.default_rng(1)
    per_id = rng.random(100) < 0.4  # every query of an identity has the same outcome: 10 queries per identity
    hit = np.repeat(per_id, 10)
    clustered = row_interval(rows_of(hit, np.repeat(np.arange(100), 10)), "R1")
    independent = row_interval(rows_of(hit, np.arange(1000)), "R1")
    assert clustered[0] < 100 * hit.mean() < clustered[1]
    # 100 independent identities, not 1,000 queries: the interval is about sqrt(10) times wider.
    assert (clustered[1] - clustered[0]) > 2.5 * (independent[1] - independent[0])


def test_paired_difference_and_its_interval():
    n = 400
    a = rows_of(np.arange(n) < 100, np.arange(n))
    b = rows_of(np.arange(n) < 140, np.arange(n))  # b = a plus 40 queries: +10 points
    est = difference(a, b, "R1")
    assert est.value == pytest.approx(10.0) and est.lo > 0 and est.status == HELD
    assert difference(a, b, "R1", threshold=10.0).status == INCONCLUSIVE
    assert difference(b, a, "R1").status == NOT_HELD
    means = boot_means([a.per_query, b.per_query], "R1")
    assert means.shape == (1000, 2) and np.all(means[:, 1] >= means[:, 0])  # paired: same resamples
    assert interval(means[:, 1] - means[:, 0])[0] == pytest.approx(est.lo)


def test_rows_of_other_queries_cannot_be_paired():
    a, b = rows_of([1, 0, 1], [1, 2, 3]), rows_of([1, 0], [1, 2])
    with pytest.raises(UncertaintyError, match="different queries"):
        difference(a, b, "R1")


def test_faithful_rows_keep_their_numbers_and_gain_intervals():
    from streid_lib.evaluation import evaluate_features
    from streid_lib.features import FeatureSet
    from streid_lib.metadata import Metadata
    from streid_lib.st_model import fit_st_model

    rng = np.random.default_rng(0)
    q = Metadata(np.repeat(np.arange(1, 11), 2), np.tile([1, 2], 10), np.arange(20) * 50)
    g = Metadata(np.repeat(np.arange(1, 11), 3), np.tile([2, 1, 2], 10), np.arange(30) * 40)
    fs = FeatureSet(rng.normal(size=(20, 8)), rng.normal(size=(30, 8)), q, g)
    model = fit_st_model(g, "market", n_cams=2)
    rows = study.evaluate_rows(fs, model)
    ref = evaluate_features(fs, model)["rows"]
    assert {k: dict(v) for k, v in rows.items()} == ref  # the same numbers, bit for bit
    df = study.results_frame(rows)
    assert {"R1_lo", "R1_hi", "mAP_lo", "mAP_hi"} <= set(df.columns)
    assert (df["R1_lo"] <= df["R1"]).all() and (df["R1"] <= df["R1_hi"]).all()
    assert all(v.per_query.tolerance == 0.0 for v in rows.values())  # a features file reproduces exactly
    fs.provenance["trained_in_run"] = True  # as study.visual_features marks a CNN trained in the run
    trained = study.evaluate_rows(fs, model)
    assert {k: dict(v) for k, v in trained.items()} == ref
    assert all(v.per_query.tolerance == TRAINED_TOLERANCE for v in trained.values())


def test_trained_rows_widen_the_interval_of_a_verdict_by_the_cpu_tolerance():
    n = 200
    a, b = rows_of(np.arange(n) < 50, np.arange(n)), rows_of(np.arange(n) < 70, np.arange(n))  # +10 points
    exact = difference(a, b, "R1")
    moved = RowSummary(b, PerQuery(b.per_query.hit, b.per_query.ap, b.per_query.ids, TRAINED_TOLERANCE))
    wide = difference(a, moved, "R1")
    assert exact.status == HELD and exact.lo < TRAINED_TOLERANCE  # held on the queries, within the training noise
    assert wide.status == INCONCLUSIVE and wide.value == exact.value
    assert (wide.lo, wide.hi) == pytest.approx((exact.lo - TRAINED_TOLERANCE, exact.hi + TRAINED_TOLERANCE))


def test_provenance_records_the_hash_of_every_input_and_sees_a_change(tmp_path):
    from streid_lib.features import FeatureSet, save_features
    from streid_lib.metadata import Metadata
    from streid_lib.study.outputs import provenance

    m = Metadata([1, 2], [1, 2], [10, 20])
    f = tmp_path / "feats.npz"
    save_features(f, FeatureSet([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], m, m))
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(f), out_dir=str(tmp_path / "run"))
    rec = provenance(cfg)
    assert set(rec["versions"]) >= {"torch", "numpy", "scikit-learn", "matplotlib"} and rec["python"]
    assert rec["cpu_capability"] and rec["command"] and isinstance(rec["uncommitted_changes"], bool)
    assert "train_settings" not in rec  # nothing is trained on a features route
    before = rec["inputs_sha256"][str(f.resolve())]
    save_features(f, FeatureSet([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.5]], m, m))  # one value changed
    assert provenance(cfg)["inputs_sha256"][str(f.resolve())] != before
