"""Joint metric: logistic smoothing values of docs/reference.md §4, cosine, score rows, chunked scoring vs loops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import random_feature_set
from hypothesis import given, settings
from hypothesis import strategies as st

from streid_lib.evaluation import evaluate_features
from streid_lib.features import FeatureSet, load_features
from streid_lib.joint import (
    ALL_ROWS,
    ROWS,
    JointError,
    JointMetric,
    cosine_similarity,
    iter_score_chunks,
    logistic,
    normalize_rows,
    score_rows,
)
from streid_lib.metadata import Metadata
from streid_lib.metrics import evaluate_scores
from streid_lib.st_model import SpatialTemporalModel, STModelError, fit_st_model


def test_logistic_sample_values_of_the_reference():
    # ST factor f(p; λ1=2, γ1=5) for typical P̂ values (docs/reference.md §4)
    p = np.array([0.0, 0.001, 0.004, 0.008, 0.016])
    np.testing.assert_allclose(logistic(p, 2.0, 5.0), [1 / 3, 0.33445, 0.33779, 0.34228, 0.35134], atol=5e-6)
    assert logistic(0.0, 1.0, 5.0) == pytest.approx(0.5)


def test_same_camera_joint_is_visual_sigmoid_over_three():
    s = np.array([-1.0, 0.0, 0.3, 0.9], dtype=np.float32)
    joint = JointMetric()(s, np.zeros(4))
    np.testing.assert_allclose(joint, 1 / (1 + np.exp(-5 * s.astype(float))) / 3, rtol=1e-6)
    # the self-pair of the re-ranking matrix: s = 1, p = 0 -> J = 0.331102, d = 2 - 2J = 1.337795
    J = float(JointMetric()(np.float32(1.0), 0.0))
    assert J == pytest.approx(0.331102, abs=1e-6) and 2 - 2 * J == pytest.approx(1.337795, abs=1e-6)


def test_joint_metric_parameters_and_precision():
    m = JointMetric(lambda0=np.float64(1), gamma0=5, lambda1=2, gamma1=np.float64(5))
    assert m.params() == {"lambda0": 1.0, "gamma0": 5.0, "lambda1": 2.0, "gamma1": 5.0}
    s = np.array([0.5], dtype=np.float32)
    assert m.visual_factor(s).dtype == np.float32  # float32 similarities stay float32, as in the reference
    assert m(s, np.array([0.01])).dtype == np.float64
    with pytest.raises(JointError, match="lambda1"):
        JointMetric(lambda1=-1)
    with pytest.raises(JointError, match="gamma0"):
        JointMetric(gamma0=float("nan"))


def test_normalize_rows_pcb_stripes_give_mean_stripe_cosine():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 6, 32))
    a_stripes = a / np.linalg.norm(a, axis=1, keepdims=True)  # per-stripe L2, as PCB extraction does
    b_stripes = b / np.linalg.norm(b, axis=1, keepdims=True)
    fa, fb = normalize_rows(a_stripes.reshape(1, -1)), normalize_rows(b_stripes.reshape(1, -1))
    assert fa.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fa.reshape(6, 32), axis=1), 1 / np.sqrt(6), rtol=1e-6)
    stripe_cos = np.einsum("ij,ij->i", a_stripes, b_stripes)
    assert float((fa @ fb.T)[0, 0]) == pytest.approx(stripe_cos.mean(), rel=1e-5)
    with pytest.raises(JointError, match="row 1"):
        normalize_rows(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_cosine_similarity_matches_pairwise_dots():
    rng = np.random.default_rng(1)
    qf, gf = rng.standard_normal((5, 12)), rng.standard_normal((7, 12)) * 3
    s = cosine_similarity(qf, gf)
    assert s.shape == (5, 7) and s.dtype == np.float32
    for i in range(5):
        for j in range(7):
            expected = qf[i] @ gf[j] / np.linalg.norm(qf[i]) / np.linalg.norm(gf[j])
            assert s[i, j] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(JointError, match="dimensions"):
        cosine_similarity(qf, gf[:, :5])


def test_score_rows_definitions():
    s = np.array([[0.2, -0.4]], dtype=np.float32)
    p = np.array([[0.01, 0.0]])
    out = score_rows(s, p, JointMetric(), ALL_ROWS)
    assert list(out) == list(ALL_ROWS) == [*ROWS, "VISxST-shifted"]
    np.testing.assert_array_equal(out["VIS"], s)
    np.testing.assert_array_equal(out["ST"], p)
    # Eqn. 5 as the paper writes it: s·p, the cosine used directly (a negative s gives a negative score)
    np.testing.assert_array_equal(out["VISxST"], s.astype(np.float64) * p)
    assert out["VISxST"].dtype == np.float64 and out["VISxST"][0, 0] == pytest.approx(0.002)
    # the named option: cosine mapped to [0, 1] first (in float32, like s), then times float64 p
    np.testing.assert_array_equal(out["VISxST-shifted"], ((1 + s) / 2).astype(np.float64) * p)
    assert out["VISxST-shifted"][0, 0] == pytest.approx(0.006)
    assert list(score_rows(s, p, rows=ROWS)) == list(ROWS)  # the shifted row is opt-in
    np.testing.assert_allclose(out["st-ReID"], logistic(s, 1, 5) * logistic(p, 2, 5))
    assert list(score_rows(s, None, rows=("VIS",))) == ["VIS"]
    with pytest.raises(JointError, match="rows"):
        score_rows(s, p, rows=("VIS", "nope"))
    with pytest.raises(JointError, match="ST probabilities"):
        score_rows(s, None, rows=("ST",))


def _loop_scores(fs, model, metric):
    """Per-pair Python loop of the reference's evaluator: cosine, later-camera-first lookup, joint score."""
    qn, gn = normalize_rows(fs.query_f), normalize_rows(fs.gallery_f)
    P = model.smoothed_
    nq, ng = len(fs.query), len(fs.gallery)
    s = np.zeros((nq, ng), np.float32)
    p = np.zeros((nq, ng))
    for i in range(nq):
        qc, qfr = int(fs.query.cams[i]), int(fs.query.frames[i])
        for j in range(ng):
            gc, gfr = int(fs.gallery.cams[j]), int(fs.gallery.frames[j])
            s[i, j] = float(np.dot(qn[i], gn[j]))
            if qfr > gfr:
                b = (qfr - gfr) // model.bin_width
                p[i, j] = P[qc - 1][gc - 1][b] if b < model.n_bins else 0.0
            else:
                b = (gfr - qfr) // model.bin_width
                p[i, j] = P[gc - 1][qc - 1][b] if b < model.n_bins else 0.0
    return s, p


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), chunk=st.integers(1, 9))
def test_chunked_scores_match_the_loop(seed, chunk):
    fs = random_feature_set(nq=11, ng=23, dim=8, n_cams=4, max_frame=30_000, seed=seed)
    rng = np.random.default_rng(seed)
    train = Metadata(rng.integers(1, 20, 200), rng.integers(1, 5, 200), rng.integers(0, 30_000, 200))
    model = SpatialTemporalModel(n_bins=250, n_cams=4, sigma=4.0).fit(train)  # some gaps overflow 250 bins
    metric = JointMetric(lambda0=1.5, gamma0=4.0, lambda1=2.0, gamma1=6.0)
    s_loop, p_loop = _loop_scores(fs, model, metric)
    expected = score_rows(s_loop, p_loop, metric, ALL_ROWS)
    got = {row: [] for row in ALL_ROWS}
    starts = []
    for sl, scores in iter_score_chunks(fs, model, metric, ALL_ROWS, chunk_size=chunk):
        starts.append(sl.start)
        for row in ALL_ROWS:
            assert scores[row].shape == (sl.stop - sl.start, 23)
            got[row].append(scores[row])
    assert starts == list(range(0, 11, chunk))
    np.testing.assert_array_equal(np.vstack(got["ST"]), p_loop)
    for row in ("VIS", "VISxST", "VISxST-shifted", "st-ReID"):
        np.testing.assert_allclose(np.vstack(got[row]), expected[row], rtol=2e-6, atol=1e-7)
    assert np.vstack(got["st-ReID"]).dtype == np.float64


def test_chunks_equal_score_rows_exactly(make_feature_set):
    fs = make_feature_set(nq=9, ng=17, seed=4)
    model = SpatialTemporalModel(n_bins=600, sigma=3.0).fit(fs.gallery)
    metric = JointMetric()
    s = normalize_rows(fs.query_f) @ normalize_rows(fs.gallery_f).T
    p = model.probability(fs.query.cams[:, None], fs.query.frames[:, None], fs.gallery.cams, fs.gallery.frames)
    full = score_rows(s, p, metric, ALL_ROWS)
    chunks = list(iter_score_chunks(fs, model, metric, ("st-ReID", "ST", "VISxST-shifted", "VISxST"), chunk_size=4))
    np.testing.assert_array_equal(np.vstack([c["ST"] for _, c in chunks]), full["ST"])
    for row in ("VISxST", "VISxST-shifted"):
        np.testing.assert_array_equal(np.vstack([c[row] for _, c in chunks]), full[row])
    np.testing.assert_allclose(np.vstack([c["st-ReID"] for _, c in chunks]), full["st-ReID"], rtol=1e-6)


def test_iter_score_chunks_bad_input(make_feature_set):
    fs = make_feature_set(n_cams=6)
    small = SpatialTemporalModel(n_cams=4, n_bins=600).fit(Metadata([1, 1], [1, 2], [0, 100]))
    with pytest.raises(STModelError, match=r"camera [56] .*n_cams=4"):
        next(iter_score_chunks(fs, small))
    model = SpatialTemporalModel(n_bins=600).fit(fs.gallery)
    with pytest.raises(JointError, match="chunk_size"):
        next(iter_score_chunks(fs, model, chunk_size=0))
    with pytest.raises(JointError, match="rows"):
        next(iter_score_chunks(fs, model, rows=()))
    # VIS alone never touches the ST model (an unfitted one is fine)
    sl, out = next(iter_score_chunks(fs, SpatialTemporalModel(), rows=("VIS",)))
    assert list(out) == ["VIS"]


# ------------------------------------------------------------------------------------------------------------
# Eqn. 5 on real data: the VISxST row is the plain product s·p


DEV_FEATURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "features" / "duke_mobilenetv2.npz"


@pytest.mark.slow
def test_vis_x_st_is_plain_s_times_p_on_real_duke_data():
    """Real DukeMTMC-reID names, cameras and frames (the dev features file: ImageNet MobileNetV2 features)."""
    if not DEV_FEATURES.is_file():
        pytest.skip(f"dev features not found at {DEV_FEATURES} (repo/../shared is absent)")
    fs = load_features(DEV_FEATURES)
    assert fs.query.names[0].endswith(".jpg") and fs.has_train  # real names, real training side
    model = fit_st_model(fs.train, "duke")
    pick = np.arange(0, len(fs.query), 10)
    sub = FeatureSet(fs.query_f[pick], fs.gallery_f, fs.query.take(pick), fs.gallery)
    # Plain numpy: cosine of unit rows, and the reference's lookup (later image's camera first, 100-frame bins).
    qn = sub.query_f / np.linalg.norm(sub.query_f, axis=1, keepdims=True)
    gn = sub.gallery_f / np.linalg.norm(sub.gallery_f, axis=1, keepdims=True)
    s = qn @ gn.T
    qc, qt = sub.query.cams[:, None] - 1, sub.query.frames[:, None]
    gc, gt = sub.gallery.cams[None, :] - 1, sub.gallery.frames[None, :]
    d = qt - gt
    k = np.abs(d) // 100
    P = model.smoothed_
    kk = np.minimum(k, P.shape[2] - 1)
    p = np.where(d > 0, P[qc, gc, kk], P[gc, qc, kk]) * (k < P.shape[2])
    expected = s.astype(np.float64) * p
    got = np.vstack([c["VISxST"] for _, c in iter_score_chunks(sub, model, JointMetric(), ("VISxST",), 64)])
    # s differs from the library's GEMM by float32 rounding only (|Δs| < 1e-6), so the products agree to 1e-6·p
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * P.max())
    assert (got < 0).any() and (p > 0).mean() > 0.2  # negative cosines do occur, and p is informative
    # The row's figures are those of the plain product; the shifted option is another row with other figures.
    rows = evaluate_features(sub, model, JointMetric(), ("VISxST", "VISxST-shifted"))["rows"]
    plain = evaluate_scores(expected, sub.query, sub.gallery).summary()
    assert rows["VISxST"]["R1"] == pytest.approx(plain["R1"], abs=1e-9)
    assert rows["VISxST"]["mAP"] == pytest.approx(plain["mAP"], abs=1e-6)
    assert rows["VISxST"]["R1"] != rows["VISxST-shifted"]["R1"]
