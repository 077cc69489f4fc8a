"""Metrics: hand-computed cases, and a per-query loop (like the authors' evaluator) cross-checking the counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streid_lib.metadata import Metadata
from streid_lib.metrics import MetricAccumulator, MetricsError, RankingResult, evaluate_scores


def meta(pids, cams) -> Metadata:
    return Metadata(np.asarray(pids), np.asarray(cams), np.zeros(len(pids), np.int64))


def loop_evaluate(scores: np.ndarray, query: Metadata, gallery: Metadata) -> dict:
    """Straightforward per-query evaluator: stable argsort on -score, drop junk, trapezoid AP (docs/reference.md §5)."""
    nq, ng = scores.shape
    cmc = np.zeros(ng)
    ap, ap_open, inp, first = np.zeros(nq), np.zeros(nq), np.zeros(nq), np.full(nq, -1)
    for i in range(nq):
        order = np.argsort(-scores[i], kind="stable")
        same = gallery.pids == query.pids[i]
        good = np.flatnonzero(same & (gallery.cams != query.cams[i]))
        junk = np.flatnonzero((same & (gallery.cams == query.cams[i])) | (gallery.pids == -1))
        order = order[~np.isin(order, junk)]
        rows = np.flatnonzero(np.isin(order, good))
        if len(good) == 0:
            continue
        first[i] = rows[0]
        cmc[rows[0] :] += 1
        for k, r in enumerate(rows):
            precision = (k + 1) / (r + 1)
            old = k / r if r != 0 else 1.0
            ap[i] += (1.0 / len(good)) * (old + precision) / 2
            ap_open[i] += precision / len(good)
        inp[i] = len(good) / (rows[-1] + 1)
    return {"ap": ap, "ap_open_reid": ap_open, "inp": inp, "first_hit": first, "cmc": cmc / nq}


def assert_matches_loop(res: RankingResult, ref: dict) -> None:
    np.testing.assert_array_equal(res.first_hit, ref["first_hit"])
    for key in ("ap", "ap_open_reid", "inp", "cmc"):
        np.testing.assert_allclose(getattr(res, key), ref[key], rtol=0, atol=1e-12, err_msg=key)


# Gallery of the hand-computed cases: query pid 1 camera 1.
#   index  0     1     2     3      4     5
#   pid    1     2     1    -1      1     0
#   cam    2     1     1     3      3     2
#   role  good  neg  junk  junk   good  distractor (negative)
GALLERY = meta([1, 2, 1, -1, 1, 0], [2, 1, 1, 3, 3, 2])
QUERY = meta([1], [1])


def test_hand_computed_goods_after_negatives() -> None:
    # ranking 3 2 1 5 0 4 → junk-free 1 5 0 4 → goods at positions 2 and 3
    s = np.array([[0.5, 0.9, 0.95, 0.99, 0.3, 0.6]])
    res = evaluate_scores(s, QUERY, GALLERY)
    assert res.first_hit.tolist() == [2]
    assert res.ap[0] == pytest.approx((0.5 * (0 + 1 / 3) / 2) + 0.5 * (1 / 3 + 2 / 4) / 2)  # 7/24
    assert res.ap[0] == pytest.approx(7 / 24)
    assert res.ap_open_reid[0] == pytest.approx((1 / 3 + 2 / 4) / 2)  # 5/12
    assert res.inp[0] == pytest.approx(2 / 4)
    np.testing.assert_array_equal(res.cmc, [0, 0, 1, 1, 1, 1])
    summ = res.summary()
    assert summ == pytest.approx(
        {"R1": 0.0, "R5": 100.0, "R10": 100.0, "mAP": 700 / 24, "mAP_open_reid": 500 / 12, "mINP": 50.0}
    )
    assert all(type(v) is float for v in summ.values())


def test_hand_computed_first_hit_at_top() -> None:
    # junk-free ranking 0 1 4 5 → goods at 0 and 2: trapezoid (1+1)/4 + (1/2+2/3)/4 = 19/24
    s = np.array([[0.9, 0.8, 0.1, 0.2, 0.7, 0.6]])
    res = evaluate_scores(s, QUERY, GALLERY)
    assert res.ap[0] == pytest.approx(19 / 24)
    assert res.ap_open_reid[0] == pytest.approx((1 + 2 / 3) / 2)
    assert res.ap[0] < res.ap_open_reid[0]  # the trapezoid rule is never above the plain mean
    assert res.inp[0] == pytest.approx(2 / 3)
    assert res.summary()["R1"] == 100.0


def test_junk_removed_and_distractor_counts_as_negative() -> None:
    # Junk (2, 3) on top would put the first good at position 2 if it were kept; the distractor (5) is a negative.
    s = np.array([[0.8, 0.1, 1.0, 1.0, 0.2, 0.9]])
    res = evaluate_scores(s, QUERY, GALLERY)
    assert res.first_hit[0] == 1  # distractor 5 ahead, junk ignored
    # Without the distractor ahead the good item is first.
    s2 = s.copy()
    s2[0, 5] = 0.0
    assert evaluate_scores(s2, QUERY, GALLERY).first_hit[0] == 0


def test_ties_broken_by_gallery_order() -> None:
    g = meta([2, 1, 1], [1, 2, 2])  # index 0 negative, 1 and 2 good for query (1, cam 1)
    q = meta([1], [1])
    # The negative (index 0) ties with good index 1: the smaller index ranks first.
    res = evaluate_scores(np.array([[0.5, 0.5, 0.1]]), q, g)
    assert res.first_hit[0] == 1
    # A good item ranks ahead of an equal negative with a larger index.
    g2 = meta([1, 2, 1], [2, 1, 2])
    res2 = evaluate_scores(np.array([[0.5, 0.5, 0.1]]), q, g2)
    assert res2.first_hit[0] == 0
    # Ties with junk items do not change anything: junk is removed whatever its score.
    g3 = meta([1, 1, 2], [1, 2, 1])  # index 0 junk (same camera)
    res3 = evaluate_scores(np.array([[0.5, 0.5, 0.5]]), q, g3)
    assert res3.first_hit[0] == 0
    # All-equal scores: ranks follow gallery order exactly.
    g4 = meta([3, 1, 3, 1], [1, 2, 1, 3])
    res4 = evaluate_scores(np.zeros((1, 4), np.float32), q, g4)
    assert res4.first_hit[0] == 1
    assert res4.inp[0] == pytest.approx(2 / 4)


def test_query_without_good_counts_zero_and_divides_by_all_queries() -> None:
    q = meta([1, 7], [1, 1])  # pid 7 has no gallery item
    s = np.array([[0.9, 0.8, 0.1, 0.2, 0.7, 0.6], [0.9, 0.8, 0.1, 0.2, 0.7, 0.6]])
    res = evaluate_scores(s, q, GALLERY)
    assert res.n_valid == 1 and res.n_queries == 2
    assert res.first_hit.tolist() == [0, -1]
    assert res.ap[1] == 0 and res.ap_open_reid[1] == 0 and res.inp[1] == 0
    summ = res.summary()
    assert summ["R1"] == 50.0
    assert summ["mAP"] == pytest.approx(100 * (19 / 24) / 2)
    assert res.n_good.tolist() == [2, 0]


def test_distractor_query_uses_other_distractors_as_goods() -> None:
    # pid 0 is not special: a pid-0 query's goods are pid-0 images in other cameras (reference behaviour).
    res = evaluate_scores(np.array([[0.9, 0.8, 0.1, 0.2, 0.7, 0.6]]), meta([0], [1]), GALLERY)
    assert res.n_good.tolist() == [1]


def test_short_gallery_rank_k_uses_last_value() -> None:
    g = meta([1, 2], [2, 1])
    res = evaluate_scores(np.array([[0.1, 0.9]]), meta([1], [1]), g)
    assert res.summary()["R1"] == 0.0 and res.summary()["R5"] == 100.0 and res.summary()["R10"] == 100.0


def test_integer_scores_accepted() -> None:
    res = evaluate_scores(np.array([[3, 9, 0, 0, 1, 5]]), QUERY, GALLERY)
    assert res.first_hit[0] == 2


@pytest.mark.parametrize(
    ("scores", "query", "match"),
    [
        (np.zeros((1, 5)), QUERY, "expected shape"),
        (np.zeros((2, 6)), QUERY, "expected shape"),
        (np.array([[0.1, np.nan, 0, 0, 0, 0]]), QUERY, r"scores\[0, 1\] = nan"),
        (np.array([[0.1, np.inf, 0, 0, 0, 0]]), QUERY, "finite"),
        (np.zeros((1, 6)), meta([-1], [1]), "pid -1"),
        (np.zeros((0, 6)), meta([], []), "query is empty"),
        (np.array([["a"] * 6]), QUERY, "real numbers"),
    ],
)
def test_bad_input(scores, query, match) -> None:
    with pytest.raises(MetricsError, match=match):
        evaluate_scores(scores, query, GALLERY)


def test_empty_gallery_and_bad_parameters() -> None:
    with pytest.raises(MetricsError, match="gallery is empty"):
        MetricAccumulator(meta([], []))
    with pytest.raises(MetricsError, match="chunk_size"):
        evaluate_scores(np.zeros((1, 6)), QUERY, GALLERY, chunk_size=0)
    with pytest.raises(MetricsError, match="rank k"):
        evaluate_scores(np.zeros((1, 6)), QUERY, GALLERY).rank_k(0)


def test_nan_error_row_counts_previous_chunks() -> None:
    acc = MetricAccumulator(GALLERY)
    acc.update(np.zeros((1, 6)), QUERY)
    with pytest.raises(MetricsError, match=r"scores\[1, 2\]"):
        acc.update(np.array([[0, 0, np.nan, 0, 0, 0]]), QUERY)


@st.composite
def ranking_case(draw):
    nq = draw(st.integers(1, 5))
    ng = draw(st.integers(1, 14))
    gp = draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3]), min_size=ng, max_size=ng))
    gc = draw(st.lists(st.integers(1, 3), min_size=ng, max_size=ng))
    qp = draw(st.lists(st.sampled_from([0, 1, 2, 3, 4]), min_size=nq, max_size=nq))
    qc = draw(st.lists(st.integers(1, 3), min_size=nq, max_size=nq))
    # Few distinct values, so ties are frequent; also exact duplicates across dtypes.
    values = draw(st.lists(st.integers(-3, 3), min_size=nq * ng, max_size=nq * ng))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64]))
    scale = draw(st.sampled_from([1.0, 0.1, 1e-30]))
    s = np.asarray(values, np.float64).reshape(nq, ng) * (scale if dtype is not np.int64 else 1)
    return s.astype(dtype), meta(qp, qc), meta(gp, gc)


@settings(max_examples=300, deadline=None)
@given(ranking_case())
def test_vectorised_matches_loop(case) -> None:
    s, q, g = case
    assert_matches_loop(evaluate_scores(s, q, g), loop_evaluate(s, q, g))


@settings(max_examples=100, deadline=None)
@given(ranking_case(), st.integers(1, 4))
def test_chunked_accumulator_equals_one_shot(case, chunk) -> None:
    s, q, g = case
    one = evaluate_scores(s, q, g)
    acc = MetricAccumulator(g)
    for a in range(0, len(q), chunk):
        acc.update(s[a : a + chunk], q.take(slice(a, a + chunk)))
    res = acc.result()
    for key in ("ap", "ap_open_reid", "inp", "first_hit", "n_good", "cmc"):
        np.testing.assert_array_equal(getattr(res, key), getattr(one, key), err_msg=key)
    assert res.summary() == one.summary()


def test_random_larger_case_matches_loop() -> None:
    rng = np.random.default_rng(3)
    ng, nq = 700, 40
    g = meta(rng.integers(-1, 30, ng), rng.integers(1, 7, ng))
    q = meta(rng.integers(0, 30, nq), rng.integers(1, 7, nq))
    s = rng.standard_normal((nq, ng)).astype(np.float32)
    s[:, ::7] = s[:, :1]  # plenty of exact ties
    ref = loop_evaluate(s, q, g)
    assert_matches_loop(evaluate_scores(s, q, g, chunk_size=16), ref)
    assert_matches_loop(evaluate_scores(s.astype(np.float64), q, g, chunk_size=7), ref)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_rank_chunks_equals_evaluate_scores_for_every_row(threads: int) -> None:
    from streid_lib.metrics import RankingProtocol, default_threads, iter_row_chunks, rank_chunks

    rng = np.random.default_rng(4)
    query = Metadata(rng.integers(1, 9, 37), rng.integers(1, 4, 37), rng.integers(0, 1000, 37))
    gallery = Metadata(rng.integers(-1, 9, 150), rng.integers(1, 4, 150), rng.integers(0, 1000, 150))
    a = rng.standard_normal((37, 150)).astype(np.float32)
    b = rng.integers(0, 5, (37, 150)).astype(np.int32)  # many ties
    protocol = RankingProtocol(gallery)
    chunks = ((sl, {"a": a[sl], "b": b[sl][:, protocol.columns]}) for sl in iter_row_chunks(37, 8))
    got = rank_chunks(chunks, query, protocol, ["a", "b"], threads)
    for name, scores in (("a", a), ("b", b)):
        want = evaluate_scores(scores, query, gallery)
        np.testing.assert_array_equal(got[name].ap, want.ap)
        np.testing.assert_array_equal(got[name].first_hit, want.first_hit)
    assert default_threads() in (1, 2)
