"""Tests of the improved mode (issue 7): likelihood ratio, calibration, selection protocol, campus acceptance."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from streid_lib import improved
from streid_lib.features import FeatureSet
from streid_lib.improved import (
    DEFAULT_W,
    ImprovedError,
    LikelihoodRatioModel,
    background_counts,
    bootstrap_difference,
    calibrate_weight,
    fit_improved,
    improved_rows,
    select_hyperparameters,
    validation_splits,
)
from streid_lib.metadata import Metadata
from streid_lib.metrics import evaluate_scores

RHO = improved.DEFAULT_OUTLIER


def meta(rows: list[tuple[int, int, int]]) -> Metadata:
    """Metadata from (pid, cam, frame) rows."""
    a = np.array(rows, dtype=np.int64)
    return Metadata(a[:, 0], a[:, 1], a[:, 2])


def one_way_train(n: int = 30, gap: int = 1000, seed: int = 0) -> Metadata:
    """n identities walking cam 1 → cam 2 (cam 2 later by about ``gap`` frames), at spread-out start times."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(1, n + 1):
        t0 = int(rng.integers(0, 200_000))
        rows += [(pid, 1, t0), (pid, 2, t0 + gap + int(rng.integers(-40, 40)))]
    return meta(rows)


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
    from streid_lib.st_model import SpatialTemporalModel

    ref = SpatialTemporalModel(n_bins=1000, sigma=0.0).fit(meta(rows))
    np.testing.assert_array_equal(lr.same_counts_, ref.counts_)


@pytest.mark.parametrize("counting", ["identity", "image_pairs"])
def test_background_counts_match_brute_force(counting: str) -> None:
    rng = np.random.default_rng(3)
    n = 60
    train = Metadata(rng.integers(1, 9, n), rng.integers(1, 5, n), rng.integers(0, 30_000, n))
    train = Metadata.concat([train, Metadata(np.array([20, 21]), np.array([1, 2]), np.array([777, 777]))])  # a tie
    got, n_over = background_counts(train, counting=counting, n_bins=200, n_cams=4, max_block=7)
    units = improved._units(train, counting, 4)
    want = np.zeros_like(got)
    over = 0
    for i in range(len(units[0])):  # brute force over unit pairs (tiny data)
        for j in range(len(units[0])):
            pi, ci, ti = units[0][i], units[1][i], units[2][i]
            pj, cj, tj = units[0][j], units[1][j], units[2][j]
            if pi == pj or not ci < cj:
                continue
            d = ti - tj
            k = int(abs(d) / 100.0) if counting == "identity" else int(abs(d) // 100)
            if k >= 200:  # overflow="zero": dropped and counted
                over += 1
            elif d > 0:
                want[ci, cj, k] += 1
            else:
                want[cj, ci, k] += 1
    np.testing.assert_array_equal(got, want)
    assert n_over == over > 0
    assert got[1, 0, 0] >= 1  # the tie between pids 20 (cam 1) and 21 (cam 2): cam 2 counted as later


def test_normalisation_priors() -> None:
    train = Metadata.concat([one_way_train(20, seed=4), meta([(99, 3, 10), (99, 1, 3000), (98, 3, 500)])])
    lr = LikelihoodRatioModel(n_bins=3000, sigma=5.0).fit(train)
    assert lr.p_same_.sum() == pytest.approx(1.0)  # both priors: one joint distribution over pairs and directions
    assert lr.p_diff_.sum() == pytest.approx(1.0)
    nopri = lr.with_params(direction_prior=False, pair_prior=False, across_zero=False)
    sums = nopri.p_same_.sum(axis=2)
    np.testing.assert_allclose(sums[sums > 0], 0.5)  # each observed direction on its own (× uniform 1/2)
    assert lr.fit_info()["n_observed_pairs"] == 4


def test_bad_parameters_raise_clear_errors() -> None:
    with pytest.raises(ImprovedError, match="outlier"):
        LikelihoodRatioModel(outlier=0.0).fit(one_way_train())
    with pytest.raises(ImprovedError, match="counting"):
        LikelihoodRatioModel(counting="pairs").fit(one_way_train())
    with pytest.raises(ImprovedError, match="not fitted"):
        LikelihoodRatioModel().log_lr(1, 0, 2, 0)
    with pytest.raises(ImprovedError, match="refit"):
        LikelihoodRatioModel(n_bins=3000).fit(one_way_train()).with_params(counting="image_pairs")
    with pytest.raises(ImprovedError, match="train_features"):
        select_hyperparameters(one_way_train(), np.zeros((3, 4)))


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


# ----------------------------------------------------------------------------------------------------------------
# Selection protocol: training identities only


def synthetic_world(seed: int = 0, n_ids: int = 120, dim: int = 24) -> tuple[Metadata, np.ndarray, FeatureSet]:
    """Identities walking 1 → 2 → 3 with fixed transit times; features = identity centre + noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2 * n_ids + 1, dim))
    rows, feats = [], []
    for pid in range(1, 2 * n_ids + 1):
        t = int(rng.integers(0, 300_000))
        for cam, dt in ((1, 0), (2, 3000), (3, 9000)):
            for _ in range(int(rng.integers(1, 4))):
                rows.append((pid, cam, t + dt + int(rng.integers(0, 600))))
                feats.append(centres[pid] + 1.6 * rng.standard_normal(dim))
    m, f = meta(rows), np.asarray(feats, np.float32)
    train_mask = m.pids <= n_ids
    train, tf = m.take(train_mask), f[train_mask]
    test = np.flatnonzero(~train_mask)
    test_meta = m.take(test)
    key = test_meta.pids * 10 + test_meta.cams
    _, first = np.unique(key, return_index=True)
    q = np.zeros(len(test), bool)
    q[first[test_meta.cams[first] != 2]] = True  # queries from cams 1 and 3, the rest gallery
    fs = FeatureSet(f[test][q], f[test][~q], test_meta.take(q), test_meta.take(~q))
    return train, tf, fs


def test_validation_splits_hold_out_identities() -> None:
    train, _, _ = synthetic_world(n_ids=40)
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
        assert all(((g.pids == p) & (g.cams != c)).any() for p, c in zip(q.pids, q.cams))
        assert not set(sp.query) & set(sp.gallery)
    held = np.concatenate([np.r_[sp.query, sp.gallery] for sp in splits])
    assert set(held) >= set(np.concatenate([sp.query for sp in splits]))
    with pytest.raises(ImprovedError, match="n_folds"):
        validation_splits(train, n_folds=1)


def test_protocol_cannot_and_does_not_read_test_data(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1. The signature has no way to receive query/gallery data.
    params = inspect.signature(select_hyperparameters).parameters
    assert set(params) == {
        "train", "train_features", "grid", "n_folds", "seed", "rerank", "st_params", "max_positives",
        "max_negatives",
    }  # fmt: skip
    # 2. improved_rows hands the protocol the training metadata and training features only.
    train, tf, fs = synthetic_world(seed=2)
    seen: list[tuple] = []
    real = improved.select_hyperparameters

    def spy(*args, **kwargs):
        seen.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(improved, "select_hyperparameters", spy)
    grid = {"sigma": (5.0, 20.0), "counting": ("identity",), "w_scale": (1.0, 4.0)}
    info_a: dict = {}
    rows_a = improved_rows(fs, train, train_features=tf, grid=grid, st_params={"n_bins": 4000}, info=info_a)
    ((args, kwargs),) = seen
    assert args[0] is train and args[1] is tf
    everything = list(args) + list(kwargs.values())
    assert not any(x is fs or x is fs.query or x is fs.gallery or x is fs.query_f for x in everything)
    # 3. Scrambling the test labels and features changes the scores but not the choice.
    rng = np.random.default_rng(5)
    scrambled = FeatureSet(
        fs.query_f[::-1].copy(),
        rng.permutation(fs.gallery_f),
        Metadata(rng.permutation(fs.query.pids), fs.query.cams, fs.query.frames),
        Metadata(rng.permutation(fs.gallery.pids), fs.gallery.cams, fs.gallery.frames),
    )
    info_b: dict = {}
    rows_b = improved_rows(scrambled, train, train_features=tf, grid=grid, st_params={"n_bins": 4000}, info=info_b)
    assert info_a["choice"] == info_b["choice"]
    assert rows_a["improved"]["mAP"] != rows_b["improved"]["mAP"]


def test_protocol_without_features_uses_default_weight_and_picks_from_the_grid() -> None:
    train, _, fs = synthetic_world(seed=3)
    choice, table = select_hyperparameters(train, None, {"sigma": (2.0, 40.0), "counting": ("identity",)},
                                           st_params={"n_bins": 4000})  # fmt: skip
    assert choice.w == DEFAULT_W and choice.w_source == "spread"
    assert table["chosen"].sum() == 1
    assert choice.sigma == float(table.loc[table["chosen"], "sigma"].iloc[0])
    assert table.loc[table["chosen"], "mAP"].iloc[0] == table["mAP"].max()
    assert set(table.attrs["per_fold"]["fold"]) == {0, 1}


def test_tie_breaking_keeps_the_metrics_exact() -> None:
    train, _, fs = synthetic_world(seed=8, n_ids=60)
    lr = LikelihoodRatioModel(n_bins=4000, sigma=3.0).fit(train)
    q, g = fs.query, fs.gallery
    llr = lr.log_lr(q.cams[:, None], q.frames[:, None], g.cams[None], g.frames[None])
    assert len(np.unique(llr)) < llr.size // 4  # many ties (ST-only scores)
    idx = lr.lookup_index(q.cams[:, None], q.frames[:, None], g.cams[None], g.frames[None])
    broken = improved._dense_table(lr.lookup_table()).take(idx)
    assert broken.dtype == np.int32
    np.testing.assert_array_equal(np.argsort(-broken, axis=1, kind="stable"), np.argsort(-llr, axis=1, kind="stable"))
    a, b = evaluate_scores(llr, q, g), evaluate_scores(broken, q, g)
    np.testing.assert_array_equal(a.ap, b.ap)
    np.testing.assert_array_equal(a.first_hit, b.first_hit)


def test_improved_rows_shape_and_rerank_variant() -> None:
    train, tf, fs = synthetic_world(seed=4, n_ids=60)
    grid = {"sigma": (10.0,), "counting": ("identity",), "w_scale": (1.0, 2.0)}
    fitted = fit_improved(train, tf, grid=grid, rerank=True, st_params={"n_bins": 4000})
    assert fitted.w > 0 and fitted.w_rerank is not None and fitted.w_rerank > 0
    rows = improved_rows(fs, train, rerank=True, fitted=fitted)
    assert set(rows) == {"improved", "improved+re-rank"}
    for summ in rows.values():
        assert set(summ) == {"R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"}
        assert all(0.0 <= v <= 100.0 for v in summ.values())
    # The improved score is exactly s + w·logLR.
    res = improved.improved_results(fs, fitted)["improved"]
    from streid_lib.joint import cosine_similarity

    s = cosine_similarity(fs.query_f, fs.gallery_f)
    q, g = fs.query, fs.gallery
    score = s + fitted.w * fitted.lr.log_lr(q.cams[:, None], q.frames[:, None], g.cams[None], g.frames[None])
    np.testing.assert_allclose(res.ap, evaluate_scores(score, q, g).ap)


def test_ablation_table_rows_and_consistency() -> None:
    train, tf, fs = synthetic_world(seed=7, n_ids=60)
    grid = {"sigma": (10.0, 30.0), "counting": ("identity",), "w_scale": (1.0, 4.0)}
    df = improved.ablation_table(fs, train, train_features=tf, rerank=True, grid=grid, st_params={"n_bins": 4000})
    names = list(df["variant"])
    for want in ("VIS", "faithful", "improved", "counting=image_pairs", "no direction prior", "no camera-pair prior",
                 "no background", "per-direction smoothing", "w=1", "ST evidence only", "faithful+re-rank",
                 "improved+re-rank", "re-rank improved score"):  # fmt: skip
        assert want in names
    assert len(set(names)) == len(names)
    row = df.set_index("variant")
    assert row.loc["faithful", "dR1"] == 0.0 and row.loc["faithful", "dmAP"] == 0.0
    assert row.loc["improved", "dmAP"] == pytest.approx(row.loc["improved", "mAP"] - row.loc["faithful", "mAP"])
    # The rows agree with the stand-alone functions.
    fitted = fit_improved(train, tf, grid=grid, st_params={"n_bins": 4000})
    assert row.loc["improved", "mAP"] == pytest.approx(improved_rows(fs, train, fitted=fitted)["improved"]["mAP"])
    assert set(df.attrs["results"]) == set(names)
    assert df.attrs["choice"]["w"] == pytest.approx(fitted.w)


# ----------------------------------------------------------------------------------------------------------------
# Bootstrap


def test_bootstrap_difference() -> None:
    _, _, fs = synthetic_world(seed=6, n_ids=60)
    from streid_lib.joint import cosine_similarity

    s = cosine_similarity(fs.query_f, fs.gallery_f)
    a = evaluate_scores(s, fs.query, fs.gallery)
    same = bootstrap_difference(a, a, n_boot=200)
    assert list(same["metric"]) == ["R1", "mAP", "mINP"]
    np.testing.assert_array_equal(same[["diff", "ci_low", "ci_high"]].to_numpy(), 0.0)
    rng = np.random.default_rng(0)
    b = evaluate_scores(s + 0.3 * rng.standard_normal(s.shape), fs.query, fs.gallery)  # a noisier ranking
    df = bootstrap_difference(a, b, n_boot=500, seed=1).set_index("metric")
    assert df.loc["mAP", "diff"] == pytest.approx(100 * (b.ap.mean() - a.ap.mean()))
    assert df.loc["mAP", "ci_low"] <= df.loc["mAP", "diff"] <= df.loc["mAP", "ci_high"]
    assert df.loc["mAP", "ci_high"] < 0  # clearly worse
    again = bootstrap_difference(a, b, n_boot=500, seed=1)
    assert again.equals(df.reset_index())
    with pytest.raises(ImprovedError, match="same query"):
        bootstrap_difference(a, evaluate_scores(s[:5], fs.query.take(slice(0, 5)), fs.gallery))


# ----------------------------------------------------------------------------------------------------------------
# Acceptance on the campus: improved beats faithful on R1 and mAP (colour-histogram features)


@pytest.fixture(scope="module")
def campus_features(tmp_path_factory: pytest.TempPathFactory):
    from streid_lib.campus import generate_campus

    root = tmp_path_factory.mktemp("campus") / "small"
    generate_campus(root, "small", seed=0, progress=False)
    return improved.colour_histogram_campus(root)


@pytest.mark.slow
def test_campus_improved_beats_faithful(campus_features) -> None:
    from streid_lib.evaluation import evaluate_features, fit_st_model
    from streid_lib.joint import JointMetric

    fs, train, train_f = campus_features
    faithful_model = fit_st_model(train, "campus")
    faithful = evaluate_features(fs, faithful_model, JointMetric(), ("VIS", "st-ReID"))["rows"]["st-ReID"]
    st = improved.st_params_from(faithful_model)
    calibrated = improved_rows(fs, train, train_features=train_f, st_params=st)["improved"]
    assert calibrated["R1"] > faithful["R1"]
    assert calibrated["mAP"] > faithful["mAP"]
    # The evaluate --mode improved path (no training features: default w) beats faithful as well.
    default = improved_rows(fs, train, st_params=st, grid={"sigma": (25.0,), "counting": ("identity",)})["improved"]
    assert default["R1"] > faithful["R1"]
    assert default["mAP"] > faithful["mAP"]


# ----------------------------------------------------------------------------------------------------------------
# Exact speed-ups of the protocol (issue 7, speed): each shortcut equals the direct computation


def test_logistic_solver_reaches_the_penalised_optimum() -> None:
    rng = np.random.default_rng(11)
    n = 20_000
    X = rng.standard_normal((n, 2))
    y = rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 1.5 * X[:, 0] - 0.7 * X[:, 1])))
    coef, b = improved._logistic_l2(X, y)
    p = 1 / (1 + np.exp(-(X @ coef + b)))
    grad = np.r_[X.T @ (p - y) + coef, np.sum(p - y)]  # gradient of Σ logloss + ||β||²/2 (intercept free)
    assert np.max(np.abs(grad)) < 1e-6
    assert coef[0] == pytest.approx(1.5, rel=0.1) and coef[1] == pytest.approx(-0.7, rel=0.15)
    # Separable data: the penalty keeps the solution finite.
    Xs = np.r_[rng.normal(-3, 0.1, (50, 2)), rng.normal(3, 0.1, (50, 2))]
    coef_s, _ = improved._logistic_l2(Xs, np.r_[np.zeros(50, bool), np.ones(50, bool)])
    assert np.all(np.isfinite(coef_s)) and coef_s.sum() > 0


@pytest.mark.parametrize("counting", ["identity", "image_pairs"])
def test_dense_model_table_equals_dense_table(counting: str) -> None:
    train, _, _ = synthetic_world(seed=9, n_ids=50)
    lr = LikelihoodRatioModel(n_bins=4000, sigma=4.0, counting=counting).fit(train)
    got = improved._dense_model_table(lr)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, improved._dense_table(lr.lookup_table()))


def test_background_counts_do_not_depend_on_the_block_size() -> None:
    train, _, _ = synthetic_world(seed=10, n_ids=60)
    for counting in ("identity", "image_pairs"):
        a = background_counts(train, counting=counting, n_bins=300, overflow="clip", max_block=5)
        b = background_counts(train, counting=counting, n_bins=300, overflow="clip", max_block=10**7)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1] > 0


def test_fold_ranking_equals_evaluate_scores() -> None:
    train, tf, _ = synthetic_world(seed=12, n_ids=60)
    sp = validation_splits(train, 2, seed=0)[0]
    qm, gm = train.take(sp.query), train.take(sp.gallery)
    from streid_lib.joint import cosine_similarity

    s = cosine_similarity(tf[sp.query], tf[sp.gallery])
    lr = LikelihoodRatioModel(n_bins=4000, sigma=5.0).fit(train.take(sp.fit))
    llr = lr.log_lr(qm.cams[:, None], qm.frames[:, None], gm.cams[None], gm.frames[None])
    with_s = improved._Fold(train.take(sp.fit), qm, gm, None, None, s, None, None, chunk_size=7)
    with_s.set_index(lr)
    w = 0.37
    want = evaluate_scores((s + w * llr).astype(np.float32), qm, gm).summary()
    assert with_s.summary(w * lr.lookup_table()) == want
    st_only = improved._Fold(train.take(sp.fit), qm, gm, None, None, None, None, None, chunk_size=5)
    st_only.set_index(lr)
    assert st_only.summary(improved._dense_model_table(lr)) == evaluate_scores(llr, qm, gm).summary()


def test_fit_improved_reuses_the_final_model_fitted_by_the_protocol() -> None:
    train, tf, _ = synthetic_world(seed=13, n_ids=60)
    grid = {"sigma": (4.0, 12.0), "counting": ("identity", "image_pairs"), "w_scale": (1.0, 2.0)}
    fitted = fit_improved(train, tf, grid=grid, st_params={"n_bins": 4000})
    assert fitted.choice.final_model is fitted.lr
    fresh = LikelihoodRatioModel(**fitted.lr.get_params()).fit(train)
    np.testing.assert_array_equal(fresh.lookup_table(), fitted.lr.lookup_table())
    assert "final_model" not in fitted.choice.as_dict()
