"""The improved rows on a FeatureSet and through ``evaluate --mode improved``: scores, training side, provenance."""

from __future__ import annotations

import numpy as np
import pytest
from improved_world import synthetic_world

from streid_lib.cli import improved_extra
from streid_lib.evaluation import EvaluationError, evaluate_features, fit_st_model
from streid_lib.features import FeatureSet
from streid_lib.improved import ImprovedError, SelectionConfig, prepare_improved
from streid_lib.improved.calibration import jaccard_distance, score_spread
from streid_lib.improved.config import DEFAULT_W
from streid_lib.improved.scoring import fit_improved, improved_results
from streid_lib.joint import cosine_similarity
from streid_lib.metadata import Metadata
from streid_lib.metrics import evaluate_scores

SMALL = SelectionConfig(sigmas=(3.0, 12.0), sigma0=12.0, w_scales=(1.0, 2.0), rerank_b=(1.0, 4.0))
BINS = {"n_bins": 4000}


@pytest.fixture(scope="module")
def world() -> FeatureSet:
    return synthetic_world(seed=4, n_ids=60)


@pytest.fixture(scope="module")
def fitted(world: FeatureSet):
    return fit_improved(world.train, world.train_f, config=SMALL, rerank=True, st_params=BINS)


def test_improved_scores_are_s_plus_w_log_lr(world, fitted) -> None:
    rows = {row: res.summary() for row, res in improved_results(world, fitted, True).items()}
    assert set(rows) == {"improved", "improved+re-rank"}
    for summ in rows.values():
        assert set(summ) == {"R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"}
        assert all(0.0 <= v <= 100.0 for v in summ.values())
    q, g = world.query, world.gallery
    s = cosine_similarity(world.query_f, world.gallery_f)
    llr = fitted.likelihood_ratio.log_lr(q.cams[:, None], q.frames[:, None], g.cams[None], g.frames[None])
    score = s + fitted.choice.w * llr
    res = improved_results(world, fitted)["improved"]
    np.testing.assert_allclose(res.ap, evaluate_scores(score, q, g).ap)
    # improved+re-rank is F - β·J with J the Jaccard distance of the chosen neighbours, β carried from validation.
    info: dict = {}
    rr = improved_results(world, fitted, True, info=info)["improved+re-rank"]
    assert info["rerank"]["beta"] == pytest.approx(fitted.choice.rerank["beta"], rel=1e-6)
    jac = jaccard_distance(
        np.concatenate([world.query_f, world.gallery_f]), Metadata.concat([q, g]), len(q),
        source=fitted.choice.rerank["source"], model=fitted.likelihood_ratio, w=fitted.choice.w,
    )  # fmt: skip
    want = evaluate_scores((score - info["rerank"]["beta"] * jac).astype(np.float32), q, g)
    np.testing.assert_allclose(rr.ap, want.ap, atol=1e-6)
    # Threads change no figure.
    one = improved_results(world, fitted, True, threads=1)
    two = improved_results(world, fitted, True, threads=2)
    for row in one:
        np.testing.assert_array_equal(one[row].ap, two[row].ap)


def test_training_side_is_used_and_recorded(world) -> None:
    with_side: dict = {}
    prepare_improved(world, config=SMALL, st_params=BINS, info=with_side)
    assert with_side["w_source"] == "calibrated" and with_side["train_features"]["used"]
    without: dict = {}
    prepare_improved(world.without_train(), world.train, config=SMALL, st_params=BINS, info=without)
    assert without["w_source"] == "spread" and not without["train_features"]["used"]
    assert without["w_effective"] == pytest.approx(
        DEFAULT_W * score_spread(cosine_similarity(world.query_f, world.gallery_f)), rel=1e-5
    )
    # Other training metadata than the set's training side: the set's side is used (its features need it).
    other: dict = {}
    prepare_improved(world, world.train.take(slice(0, 50)), config=SMALL, st_params=BINS, info=other)
    assert other["train_features"]["n_images"] == len(world.train) and "differs" in other["train_features"]["note"]
    with pytest.raises(ImprovedError, match="training metadata"):
        prepare_improved(world.without_train(), None)


def test_evaluate_mode_improved_calibrates_on_the_features_training_side(world) -> None:
    model = fit_st_model(world.train, "duke")
    res = evaluate_features(world, model, rows=("VIS", "st-ReID"), extra=improved_extra(world, model))
    info = res["params"]["improved"]
    assert info["w_source"] == "calibrated" and info["train_features"]["source"] == "features file training side"
    assert set(res["rows"]) == {"VIS", "st-ReID", "improved"}
    bare = world.without_train()
    plain = evaluate_features(bare, model, rows=("VIS",), extra=improved_extra(bare, model, world.train))
    assert plain["params"]["improved"]["w_source"] == "spread"
    with pytest.raises(EvaluationError, match="training"):
        improved_extra(world.without_train(), model)


def test_improved_rerank_keeps_rank1_on_the_spread_fallback() -> None:
    # Without training features the Jaccard weight is the small default: improved+re-rank must not collapse rank-1.
    fs = synthetic_world(seed=6, n_ids=80, noise=2.2)
    spread = fit_improved(fs.train, None, config=SMALL, rerank=True, st_params=BINS)
    rows = {row: res.summary() for row, res in improved_results(fs.without_train(), spread, True).items()}
    assert rows["improved+re-rank"]["R1"] >= rows["improved"]["R1"] - 5.0


def test_improved_rows_in_the_faithful_pass_equal_the_standalone_rows(world, fitted) -> None:
    # evaluate ranks the improved rows beside the faithful ones, from the same cosine: same figures as alone, and
    # the faithful rows do not move.
    from streid_lib.improved import ImprovedRows
    from streid_lib.metrics import RankingProtocol
    from streid_lib.ranking import rank_rows

    model = fit_st_model(world.train, "duke")
    alone = improved_results(world, fitted, True)
    cols = RankingProtocol(world.gallery).columns
    for rows in (("VIS", "st-ReID"), ("ST",)):  # with and without a faithful cosine to share
        shared = rank_rows(world, model, rows=rows, chunk_size=9, threads=2,
                           extra=ImprovedRows(world, fitted, True, columns=cols))  # fmt: skip
        plain = rank_rows(world, model, rows=rows, chunk_size=9, threads=2)
        for row in alone:
            np.testing.assert_array_equal(shared[row].ap, alone[row].ap)
        for row in rows:
            np.testing.assert_array_equal(shared[row].ap, plain[row].ap)
