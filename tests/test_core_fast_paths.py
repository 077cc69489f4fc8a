"""The fast evaluation paths change no figure: each is checked against a straightforward evaluator.

* ``ranking.rank_rows`` scores only the non-junk gallery columns, ranks the ST row on dense ranks of p
  (``rank_only``), shares one protocol chunk between the rows, and ranks float64 rows on a float32 copy with
  full-precision tie resolution; on the real Market-1501 names it must give exactly what a per-query stable
  argsort gives on the reference-precision (float32 visual, float64 ST) scores of ``joint.score_rows``.
* ``metrics`` on tie-heavy scores: exact ties, float64 values equal in float32, -0.0, small integers.
* ``st_model.lookup_index``: intp result, int64 fallback for frames beyond int32.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_metrics import assert_matches_loop, loop_evaluate

from streid_lib.evaluation import fit_st_model
from streid_lib.features import FeatureSet
from streid_lib.joint import ROWS, JointMetric, iter_score_chunks, normalize_rows, score_rows, st_rank_table
from streid_lib.metadata import Metadata, read_name_lists
from streid_lib.metrics import MetricAccumulator, RankingProtocol, evaluate_scores
from streid_lib.ranking import rank_rows
from streid_lib.st_model import SpatialTemporalModel


@pytest.fixture(scope="module")
def market(names_dir):
    splits = read_name_lists(names_dir / "market1501", "market")
    model = fit_st_model(splits.train, "market")
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(len(splits.query), 120, replace=False))
    query = splits.query.take(pick)
    dim = 8  # few dimensions: many near-equal cosines, a harder test of the float32 pre-pass
    fs = FeatureSet(
        rng.standard_normal((len(query), dim)).astype(np.float32),
        rng.standard_normal((len(splits.gallery), dim)).astype(np.float32),
        query,
        splits.gallery,
        {"source": "random"},
    )
    return fs, model


def test_rank_rows_on_real_market_names_equal_plain_argsort(market):
    fs, model = market
    metric = JointMetric()
    s = normalize_rows(fs.query_f) @ normalize_rows(fs.gallery_f).T
    p = model.probability(fs.query.cams[:, None], fs.query.frames[:, None], fs.gallery.cams, fs.gallery.frames)
    full = score_rows(s, p, metric, ROWS)
    assert full["VISxST"].dtype == full["st-ReID"].dtype == np.float64  # reference precision
    # The fast path meets float64 VISxST scores that are equal in float32 but not in float64, and exact ties.
    vx = full["VISxST"]
    assert (vx == 0).sum() > 1000
    fast1 = rank_rows(fs, model, metric, ROWS, chunk_size=37, threads=1)
    fast2 = rank_rows(fs, model, metric, ROWS, chunk_size=64, threads=2)
    for row in ROWS:
        ref = loop_evaluate(full[row], fs.query, fs.gallery)
        assert_matches_loop(fast1[row], ref)
        assert_matches_loop(fast2[row], ref)
        assert fast1[row].summary() == fast2[row].summary()
    # The public full-gallery chunks (float64 p) give the same figures as the fast path.
    accs = {row: MetricAccumulator(fs.gallery) for row in ROWS}
    for sl, scores in iter_score_chunks(fs, model, metric, ROWS, chunk_size=50):
        for row in ROWS:
            assert scores[row].shape == (sl.stop - sl.start, len(fs.gallery))
            accs[row].update(scores[row], fs.query.take(sl))
    for row in ROWS:
        assert accs[row].result().summary() == fast1[row].summary()


def test_st_rank_table_orders_and_ties_like_the_table():
    rng = np.random.default_rng(1)
    table = np.concatenate([np.zeros(50), rng.random(30), rng.random(30).round(1), [-0.0]])
    r = st_rank_table(table)
    assert r.dtype == np.int32
    np.testing.assert_array_equal(np.sign(r[:, None] - r[None, :]), np.sign(table[:, None] - table[None, :]))


def tie_heavy_case(seed: int, n_q: int = 12, n_g: int = 300):
    rng = np.random.default_rng(seed)
    gallery = Metadata(rng.integers(-1, 6, n_g), rng.integers(1, 4, n_g), np.zeros(n_g, np.int64))
    query = Metadata(rng.integers(0, 6, n_q), rng.integers(1, 4, n_q), np.zeros(n_q, np.int64))
    base = rng.integers(-3, 4, (n_q, n_g)) * 0.25  # exact ties, zeros and negatives
    # Values equal in float32 but not in float64, on both sides of the base value; some -0.0.
    nudge = rng.choice([0.0, 1e-12, -1e-12, 3e-13], (n_q, n_g), p=[0.5, 0.2, 0.2, 0.1])
    s64 = base + nudge
    s64[rng.random((n_q, n_g)) < 0.05] = -0.0
    return s64, query, gallery


@pytest.mark.parametrize("seed", range(4))
def test_tie_heavy_scores_all_dtypes_match_the_loop(seed):
    s64, query, gallery = tie_heavy_case(seed)
    assert (s64.astype(np.float32)[:, :, None] == s64.astype(np.float32)[:, None, :]).sum() > (
        s64[:, :, None] == s64[:, None, :]
    ).sum()  # the case has float32 ties that are not float64 ties
    cases = {
        "float64": s64,
        "float32": s64.astype(np.float32),
        "int16": np.round(s64 * 4).astype(np.int16),
        "int32": np.round(s64 * 4).astype(np.int32),
        "int64": np.round(s64 * 4).astype(np.int64),
    }
    for s in cases.values():
        ref = loop_evaluate(s, query, gallery)
        assert_matches_loop(evaluate_scores(s, query, gallery, chunk_size=5), ref)
        # Scores given on the protocol's columns only, chunks sharing one protocol.
        protocol = RankingProtocol(gallery)
        acc = MetricAccumulator(gallery, protocol=protocol)
        for a in range(0, len(query), 4):
            sl = slice(a, a + 4)
            acc.update(s[sl][:, protocol.columns], chunk=protocol.chunk(query.take(sl), a))
        assert_matches_loop(acc.result(), ref)


def test_lookup_index_intp_and_wide_frames_match_the_rule():
    rng = np.random.default_rng(3)
    model = SpatialTemporalModel.from_distribution(rng.random((3, 3, 50)), bin_width=100, sigma=0.0, overflow="clip")
    P = model.smoothed_
    for offset in (0, 2**40):  # int32 passes, then the int64 fallback
        ca, cb = rng.integers(1, 4, 40), rng.integers(1, 4, 40)
        fa, fb = offset + rng.integers(0, 6000, 40), offset + rng.integers(0, 6000, 40)
        idx = model.lookup_index(ca[:, None], fa[:, None], cb[None, :], fb[None, :])
        assert idx.dtype == np.intp
        got = model.lookup_table().take(idx)
        for i in range(40):
            for j in range(40):
                if fa[i] > fb[j]:
                    want = P[ca[i] - 1, cb[j] - 1, min((fa[i] - fb[j]) // 100, 49)]
                else:
                    want = P[cb[j] - 1, ca[i] - 1, min((fb[j] - fa[i]) // 100, 49)]
                assert got[i, j] == want
