"""k-reciprocal re-ranking: agreement with the slow reference (streid_lib.rerank_reference), edge cases, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from rerank_reference import reference_rerank, reference_rerank_distances

from streid_lib.joint import JointMetric
from streid_lib.metadata import Metadata
from streid_lib.metrics import evaluate_scores
from streid_lib.rerank import (
    RerankError,
    cosine_matrix,
    effective_params,
    joint_score_matrix,
    k_reciprocal_rerank,
    rerank_distances,
    rerank_joint,
    rerank_rows,
)
from streid_lib.st_model import SpatialTemporalModel


def clustered_dist(n: int, n_ids: int, seed: int, dim: int = 8, noise: float = 0.7, asym: bool = False) -> np.ndarray:
    """A realistic distance matrix: identity clusters in feature space (so reciprocal sets are non-trivial)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    f = centres[rng.integers(0, n_ids, n)] + noise * rng.standard_normal((n, dim))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    d = (2 - 2 * f @ f.T).astype(np.float32)
    np.fill_diagonal(d, 0)
    if asym:  # make it non-symmetric, like joint scores at frame ties
        d = (d * rng.uniform(0.9, 1.1, d.shape)).astype(np.float32)
    return np.abs(d)


def assert_same(ours: np.ndarray, ref: np.ndarray, atol: float = 2e-6) -> None:
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)
    # identical rankings: a rank order is only defined up to float-rounding ties, so compare where the reference
    # separates neighbours by more than the tolerance
    o_ref = np.argsort(ref, axis=1, kind="stable")
    o_our = np.argsort(ours, axis=1, kind="stable")
    gaps = np.diff(np.take_along_axis(ref, o_ref, axis=1), axis=1)
    if (gaps > 4 * atol).all():
        np.testing.assert_array_equal(o_our, o_ref)
    else:  # ranks equal wherever the reference's values are distinct beyond the tolerance
        np.testing.assert_array_equal(
            np.take_along_axis(ref, o_our, axis=1).round(5), np.take_along_axis(ref, o_ref, axis=1).round(5)
        )


CASES = [  # (N, nq, n_ids, seed, k1, k2, lambda, block_size)
    (60, 12, 6, 0, 20, 6, 0.3, 4),
    (90, 20, 9, 1, 20, 6, 0.3, 3),
    (80, 15, 5, 2, 7, 3, 0.5, 2),
    (70, 10, 7, 3, 5, 1, 0.0, 4),  # k2 = 1: no query expansion; odd k1 → round(2.5) = 2
    (50, 7, 4, 4, 20, 6, 1.0, 32),  # a single-block... fewer blocks than k1+1: whole-column sort path
]


@pytest.mark.parametrize("n,nq,n_ids,seed,k1,k2,lam,bs", CASES)
@pytest.mark.parametrize("asym", [False, True])
def test_numpy_matches_reference(n, nq, n_ids, seed, k1, k2, lam, bs, asym):
    d = clustered_dist(n, n_ids, seed, asym=asym)
    ref = reference_rerank(d, nq, k1, k2, lam)
    ours = k_reciprocal_rerank(d, nq, k1, k2, lam, progress=False, block_size=bs)
    assert_same(ours, ref)
    # Fortran order and float64 input give the same result
    assert_same(k_reciprocal_rerank(np.asfortranarray(d), nq, k1, k2, lam, progress=False, block_size=bs), ref)
    assert_same(k_reciprocal_rerank(d.astype(np.float64), nq, k1, k2, lam, progress=False, block_size=bs), ref)


def test_reciprocal_sets_are_exercised():
    """Guard against a vacuous comparison: the test matrices give non-trivial sets and a real re-ordering."""
    d = clustered_dist(90, 9, 1)
    nq = 20
    ref = reference_rerank(d, nq)
    plain = d[nq:, :nq].T  # the transposed block, as the reference's D
    changed = (np.argsort(ref, axis=1, kind="stable")[:, :5] != np.argsort(plain, axis=1, kind="stable")[:, :5]).any()
    assert changed
    assert (ref < 0.3 * plain.max() + 0.7).any()  # some Jaccard distances < 1


def test_scores_equal_distance_form():
    d = clustered_dist(64, 8, 5)
    s = (2 - d) / 2  # d = 2 - 2 s exactly representable? compare to the reference on 2 - 2s in float64
    s = s.astype(np.float32)
    ref = reference_rerank(2.0 - 2.0 * s.astype(np.float64), 10)
    # the reference's own score form (used by benchmarks/bench_rerank.py) forms d = 2 - 2 s the same way
    np.testing.assert_array_equal(reference_rerank_distances(s, 10), ref)
    assert_same(rerank_distances(s, 10, progress=False, block_size=4), ref)
    assert_same(rerank_distances(np.asfortranarray(s), 10, progress=False, block_size=3), ref)


# ---------------------------------------------------------------------------------------------------------------
# edge cases
# ---------------------------------------------------------------------------------------------------------------


def test_n_smaller_than_k1_clamps():
    d = clustered_dist(12, 3, 7)
    prm = effective_params(12, 4, 20, 6)
    assert (prm.k1, prm.k2, prm.k_half) == (11, 6, 6)
    assert effective_params(4, 1, 20, 6).k2 == 4
    ref = reference_rerank(d, 4, 20, 6)
    assert_same(k_reciprocal_rerank(d, 4, progress=False), ref)
    assert_same(k_reciprocal_rerank(d[:3, :3], 1, progress=False), reference_rerank(d[:3, :3], 1))


def test_duplicate_scores_tie_break_by_index():
    rng = np.random.default_rng(3)
    # heavy ties: distances on a coarse grid, and duplicated images (identical rows/columns)
    base = clustered_dist(40, 5, 8)
    idx = np.concatenate([np.arange(40), rng.integers(0, 40, 20)])
    d = np.round(base[np.ix_(idx, idx)] * 4) / 4
    d = d.astype(np.float32)
    nq = 9
    ref = reference_rerank(d, nq)
    for bs in (2, 3, 32):
        assert_same(k_reciprocal_rerank(d, nq, progress=False, block_size=bs), ref)
        assert_same(k_reciprocal_rerank(np.asfortranarray(d), nq, progress=False, block_size=bs), ref)
        assert_same(rerank_distances(np.asfortranarray(1 - d / 2), nq, progress=False, block_size=bs), ref)


def _meta(pids, cams) -> Metadata:
    pids = np.asarray(pids)
    return Metadata(pids, np.asarray(cams), np.arange(len(pids)) * 1000)


def test_query_without_true_match_and_one_camera_gallery():
    d = clustered_dist(70, 7, 9)
    nq = 10
    final = k_reciprocal_rerank(d, nq, progress=False, block_size=4)
    assert_same(final, reference_rerank(d, nq))
    rng = np.random.default_rng(0)
    gp = rng.integers(1, 8, 60)
    qp = np.concatenate([[99], rng.choice(gp, nq - 1)])  # query 0 has no match in the gallery
    query = _meta(qp, np.full(nq, 2))
    gallery = _meta(gp, np.ones(60, dtype=int))  # a gallery of one camera
    res = evaluate_scores(-final, query, gallery)
    summ = res.summary()
    assert res.n_good[0] == 0 and res.first_hit[0] == -1
    assert 0 <= summ["mAP"] <= 100 * (nq - 1) / nq  # the matchless query counts as 0 in the average
    # the same metrics as the slow reference
    assert evaluate_scores(-reference_rerank(d, nq), query, gallery).summary() == pytest.approx(summ)


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


def test_bad_input():
    d = clustered_dist(20, 3, 1)
    with pytest.raises(RerankError, match="square"):
        k_reciprocal_rerank(d[:, :19], 5, progress=False)
    with pytest.raises(RerankError, match="square"):
        k_reciprocal_rerank(d[0], 5, progress=False)
    for nq in (0, 20, -1, 2.5, True):
        with pytest.raises(RerankError, match="n_query"):
            k_reciprocal_rerank(d, nq, progress=False)
    bad = d.copy()
    bad[3, 7] = np.nan
    with pytest.raises(RerankError, match="column 7 contains NaN"):
        k_reciprocal_rerank(bad, 5, progress=False)
    with pytest.raises(RerankError, match="column 7 contains NaN"):
        rerank_distances(bad, 5, progress=False, block_size=4)
    bad[3, 7] = -np.inf
    with pytest.raises(RerankError, match="NaN or inf"):
        k_reciprocal_rerank(bad, 5, progress=False, block_size=2)
    with pytest.raises(RerankError, match="k1"):
        k_reciprocal_rerank(d, 5, k1=0, progress=False)
    with pytest.raises(RerankError, match="lambda_value"):
        k_reciprocal_rerank(d, 5, lambda_value=1.5, progress=False)
    with pytest.raises(RerankError, match="positive maximum"):
        k_reciprocal_rerank(np.zeros((6, 6), np.float32), 2, progress=False)


# ---------------------------------------------------------------------------------------------------------------
# joint score matrix, rows, variants
# ---------------------------------------------------------------------------------------------------------------


def _campus(make_feature_set, seed: int = 0):
    fs = make_feature_set(nq=15, ng=60, dim=16, n_ids=8, n_cams=3, max_frame=20_000, seed=seed)
    rng = np.random.default_rng(seed)
    train = Metadata(rng.integers(1, 30, 400), rng.integers(1, 4, 400), rng.integers(0, 20_000, 400))
    model = SpatialTemporalModel(n_cams=3, n_bins=300, sigma=5.0).fit(train)
    return fs, model


def test_joint_score_matrix(make_feature_set):
    fs, model = _campus(make_feature_set)
    metric = JointMetric()
    J = joint_score_matrix(fs, model, metric, chunk_size=7)
    nq, N = len(fs.query), len(fs.query) + len(fs.gallery)
    assert J.shape == (N, N) and J.dtype == np.float32
    np.testing.assert_allclose(np.diag(J), 0.331102, atol=1e-6)  # self pair: s = 1, p = 0
    # element-wise definition, with image i as "a" and j as "b"
    f = np.concatenate([fs.query_f, fs.gallery_f])
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    meta = Metadata.concat([fs.query, fs.gallery])
    p = model.probability(meta.cams[:, None], meta.frames[:, None], meta.cams[None, :], meta.frames[None, :])
    np.testing.assert_allclose(J, metric(f @ f.T, p), rtol=1e-5, atol=1e-6)
    assert (p[:nq, nq:] > 0).any()  # the ST factor is exercised


def test_rows_and_variants(make_feature_set):
    fs, model = _campus(make_feature_set, seed=1)
    nq = len(fs.query)
    rows = rerank_rows(fs, model, progress=False)
    assert set(rows) == {"VIS+re-rank", "st-ReID+re-rank"}
    J = joint_score_matrix(fs, model)
    want = evaluate_scores(-reference_rerank(2.0 - 2.0 * J.astype(np.float64), nq), fs.query, fs.gallery).summary()
    assert rows["st-ReID+re-rank"].summary() == pytest.approx(want)
    S = cosine_matrix(np.concatenate([fs.query_f, fs.gallery_f]))
    want = evaluate_scores(-reference_rerank(2.0 - 2.0 * S.astype(np.float64), nq), fs.query, fs.gallery).summary()
    assert rows["VIS+re-rank"].summary() == pytest.approx(want)

    resc = rerank_joint(fs, model, variant="rescaled", progress=False)
    Jr = (J.astype(np.float64) - J.min()) / (J.max() - J.min())
    np.testing.assert_allclose(resc, -reference_rerank(2.0 - 2.0 * Jr, nq), atol=1e-5)
    vts = rerank_joint(fs, model, variant="visual_then_st", progress=False)
    assert vts.shape == (nq, len(fs.gallery)) and np.isfinite(vts).all()
    with pytest.raises(RerankError, match="variant"):
        rerank_joint(fs, model, variant="nope")


def test_progress_bar_is_plain_tqdm_on_stderr(capsys) -> None:
    # tqdm.auto picks the notebook widget (and warns "IProgress not found" without ipywidgets); the project's one
    # progress rule is a plain tqdm on stderr.
    from streid_lib import _progress, rerank

    assert rerank.progress_bar is _progress.progress_bar
    s = np.random.default_rng(0).standard_normal((12, 12)).astype(np.float32)
    rerank.rerank_distances(s @ s.T / 12, 4, progress=True)
    out, err = capsys.readouterr()
    assert "k-reciprocal re-ranking" in err and out == ""


def test_rerank_results_share_matrices_and_equal_each_variant(make_feature_set) -> None:
    from streid_lib.rerank import VARIANTS, rerank_results

    fs = make_feature_set(nq=9, ng=40, n_ids=8, n_cams=4, max_frame=20_000, seed=3)
    rng = np.random.default_rng(1)
    train = Metadata(rng.integers(1, 30, 200), rng.integers(1, 5, 200), rng.integers(0, 20_000, 200))
    model = SpatialTemporalModel(n_bins=300).fit(train)
    res = rerank_results(fs, model, variants=VARIANTS, progress=False)
    assert list(res) == ["VIS+re-rank", *VARIANTS]
    for v in VARIANTS:
        want = evaluate_scores(rerank_joint(fs, model, variant=v, progress=False), fs.query, fs.gallery)
        np.testing.assert_array_equal(res[v].ap, want.ap)
    rows = rerank_rows(fs, model, progress=False)
    np.testing.assert_array_equal(rows["st-ReID+re-rank"].ap, res["faithful"].ap)
    np.testing.assert_array_equal(rows["VIS+re-rank"].ap, res["VIS+re-rank"].ap)
