"""The improved mode's likelihood-ratio model, calibration and validation folds (hand-made cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from improved_world import meta, one_way_train, synthetic_world

from streid_lib.improved import ImprovedError, LikelihoodRatioModel
from streid_lib.improved.calibration import calibrate_weight, score_spread
from streid_lib.improved.config import COUNTINGS, DEFAULT_OUTLIER
from streid_lib.improved.likelihood import _units, pair_histograms
from streid_lib.improved.selection import select_hyperparameters, validation_splits
from streid_lib.metadata import Metadata
from streid_lib.metrics import evaluate_scores
from streid_lib.st_model import SpatialTemporalModel

RHO = DEFAULT_OUTLIER


# ----------------------------------------------------------------------------------------------------------------
# Likelihood ratio on hand-made cases


def test_pair_seen_only_one_way() -> None:
    lr = LikelihoodRatioModel(n_bins=3000, sigma=2.0).fit(one_way_train())
    # cam 2 later than cam 1 by ~1000 frames: the training direction → positive evidence.
    seen = lr.log_lr(2, 101_000, 1, 100_000)
    # cam 1 later than cam 2 by 1000 frames: never seen; the kernel (±6 bins) cannot reach it → floor log ρ.
    unseen = lr.log_lr(1, 101_000, 2, 100_000)
    assert seen > 1.0
    assert unseen == pytest.approx(math.log(RHO))
    # Query/gallery roles do not matter, only which image is later.
    assert lr.log_lr(1, 100_000, 2, 101_000) == pytest.approx(seen)
    # Far from the observed gap, in the seen direction, the evidence is also at the floor.
    assert lr.log_lr(2, 150_000, 1, 100_000) == pytest.approx(math.log(RHO))
    # The direction prior is kept: all same-identity mass is in the seen direction.
    assert lr.p_same_[1, 0].sum() == pytest.approx(1.0)
    assert lr.p_same_[0, 1].sum() == 0.0


def test_direction_prior_matters_when_both_directions_seen() -> None:
    # 25 identities go 1 → 2, 5 go 2 → 1, with the same gap: with the direction prior the common direction gets
    # more evidence; without it (faithful's per-direction normalisation) both directions look alike.
    a, b = one_way_train(25, seed=1), one_way_train(5, seed=2)
    b = Metadata(b.pids + 100, np.where(b.cams == 1, 2, 1), b.frames)
    train = Metadata.concat([a, b])
    # A flat background isolates the same-identity side (with 30 identities the background is too sparse).
    lr = LikelihoodRatioModel(n_bins=3000, sigma=2.0, background=False).fit(train)
    assert lr.p_same_[1, 0].sum() == pytest.approx(25 / 30) and lr.p_same_[0, 1].sum() == pytest.approx(5 / 30)
    common, rare = lr.log_lr(2, 101_000, 1, 100_000), lr.log_lr(1, 101_000, 2, 100_000)
    assert common > rare > math.log(RHO)
    flat = lr.with_params(direction_prior=False)
    assert flat.log_lr(2, 101_000, 1, 100_000) < common
    assert flat.log_lr(1, 101_000, 2, 100_000) > rare


def test_empty_pair_same_camera_and_absent_camera_carry_no_evidence() -> None:
    rows = [(1, 1, 100), (1, 2, 1200), (2, 1, 5000), (2, 2, 6100), (3, 3, 700), (4, 4, 900), (5, 3, 50)]
    lr = LikelihoodRatioModel(n_bins=100, n_cams=6, sigma=1.0).fit(meta(rows))
    assert lr.observed_[0, 1] and lr.observed_[1, 0]
    assert not lr.observed_[2, 3] and not lr.observed_[3, 2]  # cams 3 and 4: no identity seen in both
    np.testing.assert_array_equal(lr.log_lr_[2, 3], 0.0)
    np.testing.assert_array_equal(lr.log_lr_[3, 2], 0.0)
    frames = np.arange(0, 9000, 37)
    assert np.all(lr.log_lr(3, frames, 4, 4000) == 0.0)
    assert np.all(lr.log_lr(1, frames, 1, 4000) == 0.0)  # same camera
    assert np.all(lr.log_lr(5, frames, 2, 4000) == 0.0)  # camera 5 absent from training
    assert np.all(lr.log_lr(6, frames, 6, 4000) == 0.0)
    # A gap beyond the last bin follows faithful's overflow policy: "zero" → no evidence, "error" → raises.
    assert lr.log_lr(1, 0, 2, 100 * 100 + 5) == 0.0
    strict = LikelihoodRatioModel(n_bins=100, n_cams=6, sigma=1.0, overflow="error").fit(meta(rows))
    with pytest.raises(ValueError, match="beyond the last bin"):
        strict.log_lr(1, 0, 2, 100 * 100 + 5)


def test_ties_follow_the_faithful_rule() -> None:
    # Identity 1 has equal mean frames in cams 1 and 3: its vote goes to [cam 3 later than cam 1, bin 0].
    rows = [(1, 1, 1000), (1, 3, 1000), (2, 1, 40_000), (2, 3, 90_000), (3, 1, 20_000), (3, 3, 70_000)]
    # No smoothing and a flat background, so bin 0 of each direction shows exactly its own votes.
    lr = LikelihoodRatioModel(n_bins=1000, sigma=0.0, across_zero=False, background=False).fit(meta(rows))
    assert lr.same_counts_[2, 0, 0] == 1 and lr.same_counts_[0, 2, 0] == 0
    # Lookup tie (fa == fb) reads [camera of b, camera of a, 0], like faithful (background ties: brute-force test).
    assert lr.log_lr(1, 5000, 3, 5000) == pytest.approx(lr.log_lr_[2, 0, 0])
    assert lr.log_lr(3, 5000, 1, 5000) == pytest.approx(lr.log_lr_[0, 2, 0])
    assert lr.log_lr_[2, 0, 0] > 0 > lr.log_lr_[0, 2, 0]
    # The same-identity votes are faithful's own counts.
    ref = SpatialTemporalModel(n_bins=1000, sigma=0.0).fit(meta(rows))
    np.testing.assert_array_equal(lr.same_counts_, ref.counts_)


def brute_force(train: Metadata, counting: str, n_bins: int, n_cams: int, overflow: str):
    """Pair histograms by a double loop over units (tiny data): (diff, same, overflowing different pairs)."""
    pid, cam, t, w = _units(train, counting, n_cams)
    w = np.ones(len(t)) if w is None else w
    diff, same = np.zeros((n_cams, n_cams, n_bins)), np.zeros((n_cams, n_cams, n_bins))
    over = 0
    for i in range(len(t)):
        for j in range(len(t)):
            if not cam[i] < cam[j]:
                continue
            d = t[i] - t[j]
            k = int(abs(d) / 100.0) if counting == "identity" else int(abs(d) // 100)
            if k >= n_bins:
                over += pid[i] != pid[j]
                if overflow == "zero":
                    continue
                k = n_bins - 1
            h = same if pid[i] == pid[j] else diff
            if d > 0:
                h[cam[i], cam[j], k] += w[i] * w[j]
            else:
                h[cam[j], cam[i], k] += w[i] * w[j]
    return diff, same, over


@pytest.mark.parametrize("overflow", ["zero", "clip"])
def test_pair_histograms_match_brute_force(overflow: str) -> None:
    rng = np.random.default_rng(3)
    n = 70
    train = Metadata(rng.integers(1, 9, n), rng.integers(1, 5, n), rng.integers(0, 30_000, n))
    ties = Metadata(np.array([20, 21, 20]), np.array([1, 2, 2]), np.array([777, 777, 777]))  # equal times
    train = Metadata.concat([train, ties])
    got = pair_histograms(train, countings=COUNTINGS, n_bins=200, n_cams=4, overflow=overflow, max_block=7)
    for counting in COUNTINGS:
        diff, same, over = brute_force(train, counting, 200, 4, overflow)
        np.testing.assert_allclose(got[counting].diff, diff, atol=1e-12)
        np.testing.assert_allclose(got[counting].same, same, atol=1e-12)
        assert got[counting].n_overflow_diff == over
        assert (got[counting].diff >= 0).all()
    assert over > 0
    # The identity and image-pair same-identity votes are exactly faithful's.
    for counting in ("identity", "image_pairs"):
        st = SpatialTemporalModel(n_bins=200, n_cams=4, overflow=overflow, counting=counting).fit(train)
        np.testing.assert_array_equal(got[counting].same, st.counts_)
    if overflow == "clip":  # nothing dropped: a weighted identity/camera pair carries one vote, as a mean-frame one
        assert got["weighted_pairs"].same.sum() == pytest.approx(got["identity"].same.sum())
    assert got["identity"].diff[1, 0, 0] + got["identity"].diff[0, 1, 0] >= 1  # the tie: cam 2 counted as later
    # The block size changes nothing.
    a = pair_histograms(train, countings=("image_pairs",), n_bins=200, n_cams=4, overflow=overflow, max_block=10**7)
    np.testing.assert_array_equal(a["image_pairs"].diff, got["image_pairs"].diff)


def test_weighted_pairs_spread_the_identity_vote_over_image_gaps() -> None:
    # One identity: 2 images in cam 1 (t = 0, 1000) and 1 in cam 2 (t = 5050): image gaps 5050 and 4050, mean gap
    # 4550. Identity counting puts one vote at bin 45; weighted pairs put 1/2 at bins 40 and 50.
    train = meta([(1, 1, 0), (1, 1, 1000), (1, 2, 5050), (2, 1, 90_000), (2, 2, 99_000)])
    h = pair_histograms(train, countings=("identity", "weighted_pairs"), n_bins=200, n_cams=2)
    assert h["identity"].same[1, 0, 45] == 1
    assert h["weighted_pairs"].same[1, 0, 40] == 0.5 and h["weighted_pairs"].same[1, 0, 50] == 0.5
    lr = LikelihoodRatioModel(n_bins=200, n_cams=2, sigma=0.0, counting="weighted_pairs").fit(train)
    np.testing.assert_array_equal(lr.same_counts_, h["weighted_pairs"].same)


def test_normalisation_priors() -> None:
    train = Metadata.concat([one_way_train(20, seed=4), meta([(99, 3, 10), (99, 1, 3000), (98, 3, 500)])])
    lr = LikelihoodRatioModel(n_bins=3000, sigma=5.0).fit(train)
    assert lr.p_same_.sum() == pytest.approx(1.0)  # both priors: one joint distribution over pairs and directions
    assert lr.p_diff_.sum() == pytest.approx(1.0)
    nopri = lr.with_params(direction_prior=False, pair_prior=False, across_zero=False)
    sums = nopri.p_same_.sum(axis=2)
    np.testing.assert_allclose(sums[sums > 0], 0.5)  # each observed direction on its own (× uniform 1/2)
    assert lr.fit_info()["n_observed_pairs"] == 4


@pytest.mark.parametrize("sigma", [0.0, 1.5, 6.0, 50.0])
def test_smoothing_keeps_mass_and_support(sigma: float) -> None:
    from streid_lib.improved.likelihood import _smooth_mass
    from streid_lib.st_model import gaussian_smooth

    rng = np.random.default_rng(0)
    X = np.zeros((5, 5, 3000))
    for _ in range(300):
        X[rng.integers(0, 5), rng.integers(0, 5), rng.integers(0, 400)] += 1
    X[np.arange(5), np.arange(5)] = 0  # same-camera pairs are never counted
    for across in (True, False):
        sm = _smooth_mass(X, sigma, 3.0, across)
        np.testing.assert_allclose(sm.sum(axis=2) + sm.transpose(1, 0, 2).sum(axis=2) * across,
                                   X.sum(axis=2) + X.transpose(1, 0, 2).sum(axis=2) * across)  # fmt: skip
        assert (sm >= 0).all()
        if not across and sigma > 0:
            # Per direction: faithful's smoothing (gaussian_smooth), rescaled to the counts' mass.
            ref = gaussian_smooth(X, sigma, 3.0)
            mass = X.sum(axis=2, keepdims=True)
            ref = ref * np.divide(mass, ref.sum(axis=2, keepdims=True), out=np.zeros_like(mass), where=mass > 0)
            np.testing.assert_allclose(sm, ref, atol=1e-12)
            assert ((sm > 0) == (ref > 0)).all()  # the FFT path keeps empty regions exactly empty


def test_bad_parameters_raise_clear_errors() -> None:
    with pytest.raises(ImprovedError, match="outlier"):
        LikelihoodRatioModel(outlier=0.0).fit(one_way_train())
    with pytest.raises(ImprovedError, match="counting"):
        LikelihoodRatioModel(counting="pairs").fit(one_way_train())
    with pytest.raises(ImprovedError, match="not fitted"):
        LikelihoodRatioModel().log_lr(1, 0, 2, 0)
    with pytest.raises(ImprovedError, match="refit"):
        LikelihoodRatioModel(n_bins=3000).fit(one_way_train()).with_params(counting="image_pairs")
    with pytest.raises(TypeError):
        LikelihoodRatioModel(100)  # keyword-only, scikit-learn style
    with pytest.raises(ImprovedError, match="train_features"):
        select_hyperparameters(one_way_train(), np.zeros((3, 4)))


def test_rank_table_orders_and_ties_like_the_evidence() -> None:
    from streid_lib.joint import st_rank_table

    fs = synthetic_world(seed=9, n_ids=50)
    for counting in COUNTINGS:
        lr = LikelihoodRatioModel(n_bins=4000, sigma=4.0, counting=counting).fit(fs.train)
        got = lr.rank_table()
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, st_rank_table(lr.lookup_table()))
    q, g = fs.query, fs.gallery
    llr = lr.log_lr(q.cams[:, None], q.frames[:, None], g.cams[None], g.frames[None])
    ranks = lr.rank_table().take(lr.lookup_index(q.cams[:, None], q.frames[:, None], g.cams[None], g.frames[None]))
    a, b = evaluate_scores(llr, q, g), evaluate_scores(ranks, q, g)
    np.testing.assert_array_equal(a.ap, b.ap)
    np.testing.assert_array_equal(a.first_hit, b.first_hit)


# ----------------------------------------------------------------------------------------------------------------
# Calibration


def test_calibration_recovers_a_known_weight() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    s = rng.normal(0.3, 0.2, n)
    llr = rng.normal(-1.0, 1.5, n)
    a, c, b = 12.0, 0.9, -6.0  # true visual slope, ST slope, intercept → w = c / a = 0.075
    y = rng.random(n) < 1 / (1 + np.exp(-(b + a * s + c * llr)))
    w, info = calibrate_weight(s, llr, y, max_negatives=60_000)  # negatives subsampled: slopes unaffected
    assert w == pytest.approx(c / a, rel=0.08)
    assert info["coef_s"] == pytest.approx(a, rel=0.08)
    with pytest.raises(ImprovedError, match="non-positive"):
        calibrate_weight(-s, llr, y)
    with pytest.raises(ImprovedError, match="both"):
        calibrate_weight(s, llr, np.zeros(n, bool))
    with pytest.raises(ImprovedError, match="one length"):
        calibrate_weight(s, llr[:5], y)


def test_calibration_is_scikit_learns_penalised_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(11)
    n = 5000
    s, llr = rng.normal(0, 0.3, n), rng.normal(0, 2, n)
    y = rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 4 * s + 0.5 * llr)))
    w, info = calibrate_weight(s, llr, y)
    X = np.stack([s, llr], 1)
    ref = LogisticRegression(C=1.0).fit((X - X.mean(0)) / X.std(0), y)
    coef = ref.coef_[0] / X.std(0)
    assert info["coef_s"] == pytest.approx(coef[0], rel=1e-3) and w == pytest.approx(coef[1] / coef[0], rel=1e-3)


def test_score_spread_needs_no_labels() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(0, 0.25, (300, 500))
    assert score_spread(rows) == pytest.approx(0.25, rel=0.03)
    qn = rng.standard_normal((40, 8)).astype(np.float32)
    gnT = rng.standard_normal((8, 90)).astype(np.float32)
    assert score_spread(qn=qn, gnT=gnT) == pytest.approx(score_spread(qn @ gnT))


# ----------------------------------------------------------------------------------------------------------------
# Validation folds


def test_validation_splits_hold_out_identities() -> None:
    train = synthetic_world(n_ids=40).train
    splits = validation_splits(train, n_folds=2, seed=1)
    assert len(splits) == 2
    for sp in splits:
        fit_ids, q_ids, g_ids = (set(train.pids[i]) for i in (sp.fit, sp.query, sp.gallery))
        assert not fit_ids & (q_ids | g_ids)
        assert q_ids <= g_ids
        q = train.take(sp.query)
        keys = q.pids * 10 + q.cams
        assert len(np.unique(keys)) == len(keys)  # one query per identity and camera
        g = train.take(sp.gallery)
        assert all(((g.pids == p) & (g.cams != c)).any() for p, c in zip(q.pids, q.cams, strict=True))
        assert not set(sp.query) & set(sp.gallery)
    with pytest.raises(ImprovedError, match="n_folds"):
        validation_splits(train, n_folds=1)
    with pytest.raises(ImprovedError, match="too few"):
        validation_splits(train.take(train.pids <= 3), n_folds=2)


def test_fold_ranking_equals_evaluate_scores() -> None:
    from streid_lib.improved.selection import Fold
    from streid_lib.joint import cosine_similarity

    fs = synthetic_world(seed=12, n_ids=60)
    train, tf = fs.train, fs.train_f
    sp = validation_splits(train, 2, seed=0)[0]
    qm, gm = train.take(sp.query), train.take(sp.gallery)
    s = cosine_similarity(tf[sp.query], tf[sp.gallery])
    lr = LikelihoodRatioModel(n_bins=4000, sigma=5.0).fit(train.take(sp.fit))
    llr = lr.log_lr(qm.cams[:, None], qm.frames[:, None], gm.cams[None], gm.frames[None])
    with_s = Fold(train, sp, tf, chunk_size=7)
    with_s.set_index(lr)
    w = 0.37
    want = evaluate_scores((s + w * llr).astype(np.float32), qm, gm).summary()
    assert with_s.result(w * lr.lookup_table()).summary() == want
    st_only = Fold(train, sp, None, chunk_size=5)
    st_only.set_index(lr)
    assert st_only.result(lr.rank_table()).summary() == evaluate_scores(llr, qm, gm).summary()
