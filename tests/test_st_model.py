"""Spatial-temporal model: reference worked examples, loop transcriptions of the reference, policies, I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st

from streid_lib.metadata import Metadata
from streid_lib.st_model import (
    DATASET_N_BINS,
    SpatialTemporalModel,
    STModelError,
    gaussian_kernel,
    gaussian_smooth,
    load_st_model,
)

# ------------------------------------------------------------------------------------------------------------
# Plain-Python transcriptions of the reference behaviour (§3.2-3.5, §4), used as oracles on small cases.


def loop_fit(pids, cams, frames, C, H, bw):
    """§3.2-3.4: per-(identity, camera) mean with +1e-7, one vote per identity per camera pair, normalise."""
    ids = sorted(set(int(p) for p in pids))
    S = {i: [0.0] * C for i in ids}
    N = {i: [0] * C for i in ids}
    for p, c, f in zip(pids, cams, frames, strict=True):
        S[int(p)][int(c) - 1] += float(f)
        N[int(p)][int(c) - 1] += 1
    hist = np.zeros((C, C, H))
    for i in ids:
        A = [S[i][c] / (N[i][c] + 1e-7) for c in range(C)]
        for j in range(C - 1):
            for k in range(j + 1, C):
                if N[i][j] == 0 or N[i][k] == 0:
                    continue
                if A[j] > A[k]:
                    hist[j][k][int((A[j] - A[k]) / bw)] += 1
                else:
                    hist[k][j][int((A[k] - A[j]) / bw)] += 1
    P = np.zeros_like(hist)
    for a in range(C):
        for b in range(C):
            P[a][b] = hist[a][b] / (hist[a][b].sum() + 1e-7)
    return hist, P


def loop_fit_image_pairs(pids, cams, frames, C, H, bw):
    """Paper Eqn. 2 literally: every cross-camera image pair of one identity votes."""
    hist = np.zeros((C, C, H))
    n = len(pids)
    for x in range(n):
        for y in range(n):
            if pids[x] != pids[y] or not cams[x] < cams[y]:
                continue
            j, k = int(cams[x]) - 1, int(cams[y]) - 1
            if frames[x] > frames[y]:
                hist[j][k][(int(frames[x]) - int(frames[y])) // bw] += 1
            else:
                hist[k][j][(int(frames[y]) - int(frames[x])) // bw] += 1
    return hist


def band_matrix_smooth(P, sigma, truncate=3.0):
    """§3.5 as the reference builds it: an H×H band matrix (upper triangle, plus transpose, diagonal halved)."""
    H = P.shape[-1]
    g = [math.exp(-(d**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi)) for d in range(H)]
    M = np.zeros((H, H))
    for i in range(H):
        kept = 0
        for j in range(i, H):
            if kept > truncate * sigma:
                continue
            M[i][j] = g[j - i]
            kept += 1
    M = M + M.T
    for i in range(H):
        M[i][i] /= 2
    out = np.zeros_like(P, dtype=float)
    for idx in np.ndindex(P.shape[:-1]):
        q = M @ P[idx]
        out[idx] = q / (q.sum() + 1e-7)
    return out


def loop_lookup(Phat, ca, fa, cb, fb, bw):
    """§4: the later image's camera indexes first; ties read P̂[cam_b][cam_a][0]."""
    if fa > fb:
        return Phat[ca - 1][cb - 1][int((fa - fb) / bw)]
    return Phat[cb - 1][ca - 1][int((fb - fa) / bw)]


# ------------------------------------------------------------------------------------------------------------
# Worked examples (docs/reference.md §11) and details of the fit


def test_fit_worked_example_camera3_later():
    # camera-1 mean 1000.0, camera-3 mean 1250.5 -> else-branch (j=0, k=2), gap 250.5 -> bin 2 -> hist[2][0][2]
    train = Metadata([7, 7, 7], [1, 3, 3], [1000, 1250, 1251])
    m = SpatialTemporalModel(n_bins=10, sigma=0).fit(train)
    expected = np.zeros((8, 8, 10))
    expected[2, 0, 2] = 1
    np.testing.assert_array_equal(m.counts_, expected)
    assert m.n_identities_ == 1 and m.n_votes_ == 1 and m.n_overflow_votes_ == 0
    assert m.distribution_[2, 0, 2] == pytest.approx(1 / (1 + 1e-7), rel=1e-15)


def test_fit_keeps_the_reference_epsilon_in_the_mean():
    # Means 1000/(1+1e-7) and 1100/(1+1e-7) differ by 99.99999 frames, not 100: bin 0, as in the reference.
    m = SpatialTemporalModel(n_bins=10, sigma=0).fit(Metadata([1, 1], [1, 2], [1000, 1100]))
    assert m.counts_[1, 0, 0] == 1 and m.counts_.sum() == 1


def test_fit_tie_goes_to_higher_camera_and_single_camera_ids_do_not_vote():
    train = Metadata([1, 1, 2, 2, 3], [2, 5, 4, 4, 1], [500, 500, 10, 900, 7])
    m = SpatialTemporalModel(n_bins=10, sigma=0).fit(train)
    assert m.counts_[4, 1, 0] == 1  # equal means: camera 5 counts as "later"
    assert m.counts_.sum() == 1  # ids 2 and 3 saw a single camera each
    assert not np.any(m.counts_[np.arange(8), np.arange(8)])  # same-camera pairs never counted


def test_fit_one_vote_per_identity_not_per_image_pair():
    # id 1: three images in camera 1, two in camera 2 -> one vote (identity) vs six (image pairs).
    train = Metadata([1] * 5, [1, 1, 1, 2, 2], [100, 200, 300, 5000, 5100])
    ident = SpatialTemporalModel(n_bins=100, sigma=0).fit(train)
    pairs = SpatialTemporalModel(n_bins=100, sigma=0, counting="image_pairs").fit(train)
    assert ident.counts_.sum() == 1 and ident.counts_[1, 0, 48] == 1  # 5050 - 200 = 4850 -> bin 48
    assert pairs.counts_.sum() == 6
    np.testing.assert_array_equal(pairs.counts_, loop_fit_image_pairs(*_arrays(train), 8, 100, 100))


def _arrays(meta: Metadata):
    return meta.pids.tolist(), meta.cams.tolist(), meta.frames.tolist()


@st.composite
def small_train(draw, max_cams=4, H=20, bw=10):
    n = draw(st.integers(1, 30))
    pids = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    cams = draw(st.lists(st.integers(1, max_cams), min_size=n, max_size=n))
    # frames inside [0, H*bw) so every gap has a bin (the reference would raise otherwise)
    frames = draw(st.lists(st.integers(0, H * bw - 1), min_size=n, max_size=n))
    return Metadata(pids, cams, frames)


@settings(max_examples=60, deadline=None)
@given(train=small_train())
def test_vectorised_fit_matches_reference_loops(train):
    C, H, bw = 4, 20, 10
    hist, P = loop_fit(*_arrays(train), C, H, bw)
    m = SpatialTemporalModel(bin_width=bw, n_bins=H, n_cams=C, sigma=1.5).fit(train)
    np.testing.assert_array_equal(m.counts_, hist)
    np.testing.assert_array_equal(m.distribution_, P)
    np.testing.assert_allclose(m.smoothed_, band_matrix_smooth(P, 1.5), rtol=1e-12, atol=1e-15)
    pairs = SpatialTemporalModel(bin_width=bw, n_bins=H, n_cams=C, sigma=1.5, counting="image_pairs").fit(train)
    np.testing.assert_array_equal(pairs.counts_, loop_fit_image_pairs(*_arrays(train), C, H, bw))


# ------------------------------------------------------------------------------------------------------------
# Smoothing


def test_kernel_truncation_and_mass():
    k = gaussian_kernel(50.0, 3.0)
    assert k.shape == (301,) and np.argmax(k) == 150  # |d| <= 150 exactly
    assert k.sum() == pytest.approx(0.99739, abs=5e-6)
    assert k[150] == pytest.approx(1 / (50 * math.sqrt(2 * math.pi)))
    # non-integer 3σ: the last kept offset is floor(3σ) (the reference compares an integer offset with 3σ)
    assert gaussian_kernel(2.5, 3.0).shape == (15,)  # 3σ = 7.5 -> |d| <= 7
    assert gaussian_kernel(0.0).tolist() == [1.0]


def test_smoothing_numbers_of_the_reference():
    P = np.zeros((2, 5000))
    P[0, 2500] = 1.0  # isolated count in the interior
    P[1, 0] = 1.0  # isolated count at bin 0: half the kernel falls off the edge
    Q = gaussian_smooth(P, 50.0, 3.0)
    assert Q[0].max() == pytest.approx(0.0080, abs=5e-5) and np.argmax(Q[0]) == 2500
    assert Q[1].max() == pytest.approx(0.0159, abs=5e-5) and np.argmax(Q[1]) == 0
    one_sided = gaussian_kernel(50.0)[150:].sum()
    assert one_sided == pytest.approx(0.5027, abs=5e-5)
    assert Q[1, 0] == pytest.approx(gaussian_kernel(50.0)[150] / (one_sided + 1e-7), rel=1e-12)
    assert np.count_nonzero(Q[0]) == 301  # support exactly ±150 bins
    mass = np.array([gaussian_kernel(50.0).sum(), one_sided])  # kernel mass kept inside the array
    np.testing.assert_allclose(Q.sum(axis=1), mass / (mass + 1e-7), rtol=1e-12)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.0, 50.0])
def test_gaussian_smooth_matches_band_matrix(sigma):
    rng = np.random.default_rng(int(sigma * 10))
    P = rng.random((3, 2, 40)) * (rng.random((3, 2, 40)) < 0.3)
    P[1, 1] = 0  # an empty pair stays all-zero
    np.testing.assert_allclose(gaussian_smooth(P, sigma), band_matrix_smooth(P, sigma), rtol=1e-12, atol=1e-16)
    assert not gaussian_smooth(P, sigma)[1, 1].any()


# ------------------------------------------------------------------------------------------------------------
# Lookup


@pytest.fixture(scope="module")
def random_model():
    rng = np.random.default_rng(3)
    D = rng.random((8, 8, 200))
    return SpatialTemporalModel.from_distribution(D, sigma=5.0)


def test_lookup_worked_examples(random_model):
    m = random_model
    # query cam 1, frame 50000; gallery cam 3, frame 42345 -> query later -> gap 7655 -> bin 76 -> P̂[0][2][76]
    assert m.probability(1, 50000, 3, 42345) == m.smoothed_[0, 2, 76]
    # gallery cam 3, frame 60000 -> gallery later -> gap 10000 -> bin 100 -> P̂[2][0][100]
    assert m.probability(1, 50000, 3, 60000) == m.smoothed_[2, 0, 100]
    # tie: P̂[cam_b][cam_a][0]
    assert m.probability(1, 50000, 3, 50000) == m.smoothed_[2, 0, 0]


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.integers(1, 8), st.integers(0, 25_000), st.integers(1, 8), st.integers(0, 25_000)),
        min_size=1,
        max_size=40,
    )
)
def test_vectorised_lookup_matches_loop(random_model, data):
    m = random_model
    ca, fa, cb, fb = (np.array(x) for x in zip(*data, strict=True))
    expected = [
        loop_lookup(m.smoothed_, *row, 100) if abs(row[1] - row[3]) < 200 * 100 else 0.0 for row in data
    ]  # gaps beyond 200 bins -> 0 under the default overflow="zero"
    np.testing.assert_array_equal(m.probability(ca, fa, cb, fb), expected)
    # broadcasting (queries × gallery) equals the elementwise loop on every pair
    grid = m.probability(ca[:, None], fa[:, None], cb[None, :], fb[None, :])
    assert grid.shape == (len(data), len(data))
    i, j = len(data) - 1, 0
    assert grid[i, j] == m.probability(ca[i], fa[i], cb[j], fb[j])


def test_same_camera_and_unseen_pairs_give_zero():
    train = Metadata([1, 1, 2, 2], [1, 2, 1, 2], [0, 3000, 100, 2000])
    m = SpatialTemporalModel(n_bins=100).fit(train)
    assert m.probability(1, 5000, 1, 2000) == 0.0  # same camera
    assert m.probability(4, 5000, 5, 2000) == 0.0  # never co-observed
    assert m.probability(2, 3000, 1, 0) > 0.0


def test_large_frames_use_int64_exactly():
    m = SpatialTemporalModel.from_distribution(np.random.default_rng(0).random((2, 2, 10)), sigma=0)
    big = 2**40
    assert m.probability(1, big + 950, 2, big) == m.smoothed_[0, 1, 9]


# ------------------------------------------------------------------------------------------------------------
# Overflow policies (never an IndexError: reference issue #44)


def test_overflow_at_lookup():
    D = np.random.default_rng(1).random((2, 2, 30))
    zero = SpatialTemporalModel.from_distribution(D, sigma=2.0)
    clip = SpatialTemporalModel.from_distribution(D, sigma=2.0, overflow="clip")
    err = SpatialTemporalModel.from_distribution(D, sigma=2.0, overflow="error")
    # gap 3028 bins with 30 bins: zero -> 0, clip -> last bin, error -> STModelError naming the bin
    assert zero.probability(1, 302_800, 2, 0) == 0.0
    assert zero.probability(1, 2999, 2, 0) == zero.smoothed_[0, 1, 29]  # last valid bin still read
    assert clip.probability(1, 302_800, 2, 0) == clip.smoothed_[0, 1, 29]
    with pytest.raises(STModelError, match=r"bin 3028.*n_bins=30"):
        err.probability(np.array([1, 1]), np.array([0, 302_800]), 2, 0)
    assert err.probability(1, 2999, 2, 0) == err.smoothed_[0, 1, 29]


def test_overflow_at_fit():
    train = Metadata([1, 1, 2, 2], [1, 2, 1, 2], [0, 5000, 0, 250])  # id 1: gap 5000 frames = bin 50 >= 10
    zero = SpatialTemporalModel(n_bins=10, sigma=0).fit(train)
    assert zero.n_overflow_votes_ == 1 and zero.counts_.sum() == 1 and zero.counts_[1, 0, 2] == 1
    clip = SpatialTemporalModel(n_bins=10, sigma=0, overflow="clip").fit(train)
    assert clip.counts_[1, 0, 9] == 1 and clip.counts_.sum() == 2
    with pytest.raises(STModelError, match=r"n_bins=10"):
        SpatialTemporalModel(n_bins=10, overflow="error").fit(train)


# ------------------------------------------------------------------------------------------------------------
# Persistence and the authors' distribution


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    train = Metadata(rng.integers(1, 30, 300), rng.integers(1, 7, 300), rng.integers(0, 100_000, 300))
    m = SpatialTemporalModel(n_bins=1500, sigma=7.0, overflow="clip").fit(train)
    path = m.save(tmp_path / "st.npz")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind
    m2 = SpatialTemporalModel.load(path)
    assert m2.get_params() == m.get_params()
    for key in ("counts_", "distribution_", "smoothed_"):
        np.testing.assert_array_equal(getattr(m2, key), getattr(m, key))
    assert m2.fit_info() == m.fit_info()
    q = (train.cams[:50, None], train.frames[:50, None], train.cams[None, :], train.frames[None, :])
    np.testing.assert_array_equal(m2.probability(*q), m.probability(*q))
    assert load_st_model(path).get_params() == m.get_params()
    with pytest.raises(STModelError, match="n_bins=1500"):
        load_st_model(path, n_bins=3000)


def test_from_distribution_and_authors_mat(tmp_path):
    rng = np.random.default_rng(6)
    train = Metadata(rng.integers(1, 40, 400), rng.integers(1, 7, 400), rng.integers(0, 200_000, 400))
    fitted = SpatialTemporalModel(n_bins=3000).fit(train)
    mat = tmp_path / "pytorch_result2.mat"
    scipy.io.savemat(mat, {"distribution": fitted.distribution_})
    D = load_st_model(mat).distribution_
    assert D.shape == (8, 8, 3000) and D.dtype == np.float64
    m = SpatialTemporalModel.from_distribution(D)
    assert m.n_bins == 3000 and m.n_cams == 8 and m.counts_ is None
    np.testing.assert_allclose(m.smoothed_, fitted.smoothed_, rtol=1e-13, atol=1e-18)
    m3 = load_st_model(mat, sigma=10.0, n_bins=None)
    assert m3.sigma == 10.0 and m3.n_bins == 3000
    with pytest.raises(STModelError, match="disagrees"):
        SpatialTemporalModel.from_distribution(D, n_bins=5000)


def test_load_st_model_errors(tmp_path):
    wrong = tmp_path / "pytorch_result.mat"
    scipy.io.savemat(wrong, {"query_f": np.ones((2, 3))})
    with pytest.raises(STModelError, match=r"missing key 'distribution'.*features file"):
        load_st_model(wrong)
    with pytest.raises(STModelError, match="not found"):
        load_st_model(tmp_path / "nope.mat")
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.ones(3))
    with pytest.raises(STModelError, match=r"missing key\(s\)"):
        SpatialTemporalModel.load(bad)


# ------------------------------------------------------------------------------------------------------------
# Bad input


def test_camera_outside_the_model():
    train = Metadata([1, 1], [1, 9], [0, 100])
    with pytest.raises(STModelError, match=r"camera 9 .*n_cams=8"):
        SpatialTemporalModel().fit(train)
    m = SpatialTemporalModel(n_bins=10).fit(Metadata([1, 1], [1, 2], [0, 100]))
    with pytest.raises(STModelError, match=r"camera 12 .*n_cams=8"):
        m.probability(np.array([1, 12]), 0, 2, 0)
    with pytest.raises(STModelError, match="1-based"):
        m.probability(0, 0, 2, 0)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"bin_width": 0}, "bin_width"),
        ({"n_bins": 2.5}, "n_bins"),
        ({"n_cams": -1}, "n_cams"),
        ({"sigma": -1.0}, "sigma"),
        ({"truncate": 0.0}, "truncate"),
        ({"overflow": "wrap"}, "overflow"),
        ({"counting": "pairs"}, "counting"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(STModelError, match=match):
        SpatialTemporalModel(**params).fit(Metadata([1], [1], [0]))


def test_other_bad_input():
    with pytest.raises(STModelError, match="empty"):
        SpatialTemporalModel().fit(Metadata([], [], []))
    with pytest.raises(STModelError, match="not fitted"):
        SpatialTemporalModel().probability(1, 0, 2, 0)
    m = SpatialTemporalModel(n_bins=10).fit(Metadata([1, 1], [1, 2], [0, 100]))
    with pytest.raises(STModelError, match="broadcast"):
        m.probability(np.ones(3, int), np.zeros(3, int), np.ones(4, int), np.zeros(4, int))
    with pytest.raises(STModelError, match="whole numbers"):
        m.probability(1, 0.5, 2, 0)
    with pytest.raises(STModelError, match=r"\(C, C, H\)"):
        SpatialTemporalModel.from_distribution(np.ones((8, 7, 10)))
    with pytest.raises(STModelError, match="non-negative"):
        SpatialTemporalModel.from_distribution(-np.ones((2, 2, 10)))


def test_dataset_bins():
    assert DATASET_N_BINS["market"] == 5000 and DATASET_N_BINS["duke"] == 3000
    assert issubclass(STModelError, ValueError)


# ------------------------------------------------------------------------------------------------------------
# Estimator conventions and coverage


def test_constructor_is_keyword_only_and_fit_sets_trailing_underscores():
    with pytest.raises(TypeError):
        SpatialTemporalModel(100, 3000)  # scikit-learn style: parameters by keyword only
    m = SpatialTemporalModel(bin_width=100, n_bins=10, sigma=0)
    assert not any(k.endswith("_") for k in vars(m))  # the constructor only stores parameters
    m.fit(Metadata([1, 1], [1, 2], [0, 100]))
    fitted = {k for k in vars(m) if k.endswith("_") and not k.startswith("_")}
    assert fitted == {"counts_", "distribution_", "smoothed_", "n_identities_", "n_votes_", "n_overflow_votes_"}


def test_observed_pairs():
    # identity 1 seen by cameras 1 and 2; identity 2 by cameras 2 and 3 (3 later than 2)
    m = SpatialTemporalModel(n_cams=4, n_bins=10, sigma=0).fit(Metadata([1, 1, 2, 2], [1, 2, 2, 3], [0, 100, 0, 300]))
    seen = m.observed_pairs()
    assert seen.dtype == bool and (seen == seen.T).all() and not seen.diagonal().any()
    assert {(int(a) + 1, int(b) + 1) for a, b in zip(*np.nonzero(np.triu(seen)), strict=True)} == {(1, 2), (2, 3)}
    empty = SpatialTemporalModel(n_bins=10).fit(Metadata([1], [1], [0]))  # one image: no vote at all
    assert empty.n_votes_ == 0 and not empty.observed_pairs().any()


def test_model_size_is_bounded():
    # a corrupted camera id (a million) must not ask for terabytes: refused before any allocation
    with pytest.raises(STModelError, match=r"n_cams=1000000, n_bins=3000: .*camera ids are expected to be small"):
        SpatialTemporalModel(n_cams=1_000_000, n_bins=3000).fit(Metadata([1, 1], [1, 2], [0, 100]))
    assert SpatialTemporalModel(n_cams=20, n_bins=3000).fit(Metadata([1, 1], [1, 2], [0, 100])).n_votes_ == 1
