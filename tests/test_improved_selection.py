"""The improved mode's selection protocol: training identities only, the documented search and criterion."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from improved_world import synthetic_world

from streid_lib import improved, study
from streid_lib.features import FeatureSet
from streid_lib.improved import ImprovedError, LikelihoodRatioModel, SelectionConfig, prepare_improved
from streid_lib.improved.config import COUNTINGS, DEFAULT_W, RERANK_SOURCES
from streid_lib.improved.scoring import fit_improved
from streid_lib.improved.selection import select_hyperparameters
from streid_lib.metadata import Metadata
from streid_lib.metrics import evaluate_scores

SMALL = SelectionConfig(sigmas=(3.0, 12.0, 40.0), sigma0=12.0, w_scales=(1.0, 2.0, 4.0), rerank_b=(1.0, 4.0))
BINS = {"n_bins": 4000}


def test_protocol_cannot_and_does_not_read_test_data(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1. The signature has no way to receive query/gallery data.
    assert set(inspect.signature(select_hyperparameters).parameters) == {
        "train", "train_features", "config", "rerank", "st_params",
    }  # fmt: skip
    # 2. prepare_improved hands the protocol the set's training metadata and training features only.
    fs = synthetic_world(seed=2)
    seen: list[tuple] = []
    real = improved.scoring.select_hyperparameters

    def spy(*args, **kwargs):
        seen.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(improved.scoring, "select_hyperparameters", spy)
    info_a: dict = {}
    scorer_a = prepare_improved(fs, config=SMALL, st_params=BINS, info=info_a)
    ((args, kwargs),) = seen
    assert args[0] is fs.train and args[1] is fs.train_f
    everything = list(args) + list(kwargs.values())
    assert not any(x is fs.query or x is fs.gallery or x is fs.query_f or x is fs.gallery_f for x in everything)
    assert info_a["w_source"] == "calibrated" and info_a["train_features"]["source"] == "features file training side"
    # 3. Scrambling the test labels and features changes the scores but not the choice.
    rng = np.random.default_rng(5)
    scrambled = FeatureSet(
        fs.query_f[::-1].copy(),
        rng.permutation(fs.gallery_f),
        Metadata(rng.permutation(fs.query.pids), fs.query.cams, fs.query.frames),
        Metadata(rng.permutation(fs.gallery.pids), fs.gallery.cams, fs.gallery.frames),
        train_f=fs.train_f,
        train=fs.train,
    )
    info_b: dict = {}
    scorer_b = prepare_improved(scrambled, config=SMALL, st_params=BINS, info=info_b)
    assert info_a["choice"] == info_b["choice"]
    map_a, map_b = (
        evaluate_scores(scorer(slice(0, len(f.query)))["improved"], f.query, f.gallery).summary()["mAP"]
        for f, scorer in ((fs, scorer_a), (scrambled, scorer_b))
    )
    assert map_a != map_b


def test_search_follows_the_documented_stages_and_criterion() -> None:
    fs = synthetic_world(seed=3)
    choice, table = select_hyperparameters(fs.train, fs.train_f, config=SMALL, st_params=BINS)
    assert list(dict.fromkeys(table["stage"]))[:2] == ["counting", "sigma"]
    assert list(dict.fromkeys(table["stage"]))[-2:] == ["structure", "w_scale"]
    assert table["chosen"].sum() == 1
    chosen = table[table["chosen"]].iloc[0]
    # The criterion is the mean over folds of validation R1 + mAP, and nothing ranked beats the choice.
    per_fold = table.attrs["per_fold"]
    mine = per_fold[(per_fold["counting"] == chosen["counting"]) & (per_fold["sigma"] == chosen["sigma"])
                    & (per_fold["w_scale"] == chosen["w_scale"]) & (per_fold["background"] == chosen["background"])
                    & (per_fold["direction_prior"] == chosen["direction_prior"])
                    & (per_fold["pair_prior"] == chosen["pair_prior"])]  # fmt: skip
    assert len(mine) == 2 and chosen["criterion"] == pytest.approx((mine["R1"] + mine["mAP"]).mean())
    # A change needs more than one standard error of evidence: nothing ranked beats the choice by more.
    assert chosen["gain_vs_chosen"] == 0.0
    assert (table["gain_vs_chosen"] <= table["se_vs_chosen"] + 1e-9).all()
    diff = table["criterion"] - chosen["criterion"]
    np.testing.assert_allclose(diff, table["gain_vs_chosen"], atol=1e-9)
    # Every counting rule was ranked; σ walked from sigma0; each structural switch was tried off.
    assert set(table.loc[table["stage"] == "counting", "counting"]) == set(COUNTINGS)
    assert {12.0} < set(table["sigma"])
    assert {False} <= set(table["direction_prior"]) and {False} <= set(table["background"])
    assert choice.params["counting"] == chosen["counting"] and choice.params["sigma"] == chosen["sigma"]
    assert choice.w_scale == chosen["w_scale"] and choice.w_source == "calibrated"
    assert choice.w == pytest.approx(choice.calibration["w_logistic"] * choice.w_scale)
    assert choice.protocol["n_folds"] == 2 and "R1+mAP" in choice.protocol["criterion"]


def test_walk_stops_where_the_criterion_stops_rising() -> None:
    from streid_lib.improved.selection import _Search

    fs = synthetic_world(seed=3, n_ids=60)
    cfg = SelectionConfig(sigmas=(1.0, 2.0, 4.0, 8.0, 16.0, 32.0), sigma0=4.0)
    search = _Search(fs.train, None, cfg, {"n_bins": 4000, "n_cams": 8})
    score = {1.0: 1.0, 2.0: 3.0, 4.0: 2.0, 8.0: 1.0, 16.0: 5.0, 32.0: 0.0}  # rises to 2, then (past a dip) to 16
    search.value = lambda cand: score[cand["sigma"]]  # type: ignore[method-assign]
    search.better = lambda a, b: score[a["sigma"]] > score[b["sigma"]]  # type: ignore[method-assign]
    search.submit = lambda stage, cand: None  # type: ignore[method-assign]
    search.collect = lambda: None  # type: ignore[method-assign]
    start = {"counting": "identity", "sigma": 4.0, "direction_prior": True, "pair_prior": True,
             "background": True, "w_scale": None}  # fmt: skip
    assert search.walk("sigma", start, "sigma", cfg.sigmas)["sigma"] == 2.0  # a local walk: 16 is not reached
    search.pool.shutdown()


def test_protocol_without_features_ranks_the_st_evidence_and_uses_the_spread_rule() -> None:
    fs = synthetic_world(seed=3)
    choice, table = select_hyperparameters(fs.train, None, config=SMALL, st_params=BINS)
    assert choice.w == DEFAULT_W and choice.w_source == "spread" and choice.w_scale is None
    assert "w_scale" not in set(table["stage"])
    assert table["chosen"].sum() == 1
    assert (table["gain_vs_chosen"] <= table["se_vs_chosen"] + 1e-9).all()
    assert set(table.attrs["per_fold"]["fold"]) == {0, 1}


def test_rerank_choice_keeps_validation_rank1() -> None:
    fs = synthetic_world(seed=4, n_ids=60)
    fitted = fit_improved(fs.train, fs.train_f, config=SMALL, rerank=True, st_params=BINS)
    rr = fitted.validation.attrs["rerank"]
    assert set(rr["source"]) == set(RERANK_SOURCES) and rr["chosen"].sum() == 1
    chosen = rr[rr["chosen"]].iloc[0]
    if rr["keeps_R1"].any():
        assert chosen["keeps_R1"] and chosen["R1"] >= rr.attrs["R1_without"]
        assert chosen["criterion"] == rr.loc[rr["keeps_R1"], "criterion"].max()
    assert fitted.choice.rerank == {"source": chosen["source"], "b": chosen["b"], "beta": chosen["beta"],
                                    "b_source": "validation"}  # fmt: skip
    spread = fit_improved(fs.train, None, config=SMALL, rerank=True, st_params=BINS)
    assert spread.choice.rerank["b_source"] == "default" and spread.choice.rerank["beta"] is None


def test_fit_improved_reuses_the_final_model_fitted_by_the_protocol() -> None:
    fs = synthetic_world(seed=13, n_ids=60)
    fitted = fit_improved(fs.train, fs.train_f, config=SMALL, st_params=BINS)
    assert fitted.choice.final_model is fitted.likelihood_ratio
    fresh = LikelihoodRatioModel(**fitted.likelihood_ratio.get_params()).fit(fs.train)
    np.testing.assert_array_equal(fresh.lookup_table(), fitted.likelihood_ratio.lookup_table())
    assert "final_model" not in fitted.choice.as_dict()


def test_selection_config_is_validated_and_the_smoke_profile_shrinks_it() -> None:
    with pytest.raises(ImprovedError, match="countings"):
        SelectionConfig(countings=("pairs",))
    with pytest.raises(ImprovedError, match="n_folds"):
        SelectionConfig(n_folds=1)
    with pytest.raises(ImprovedError, match="criterion"):
        SelectionConfig(criterion="R5")
    with pytest.raises(TypeError):
        SelectionConfig((1.0,))  # type: ignore[misc]  # positional: the grid is named
    # The study's profiles size the search (one home for the smoke sizes); the smoke search keeps every stage.
    smoke, full = (study.PROFILE_SETTINGS[p].sizes.selection for p in ("smoke", "default"))
    assert full == SelectionConfig() and study.PROFILE_SETTINGS["paper"].sizes.selection == full
    assert len(smoke.sigmas) < len(full.sigmas) and smoke.countings == full.countings
    assert smoke.structure == full.structure and smoke.rerank_sources == full.rerank_sources
    assert min(full.sigmas) <= 2 and max(full.sigmas) == 50  # a log grid from 1-2 bins to 50
    assert full.as_dict()["sigmas"] == list(full.sigmas)
