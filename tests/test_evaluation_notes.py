"""What evaluate records beside the rows: re-ranking's effective k1/k2, queries without a valid match."""

from __future__ import annotations

import numpy as np
import pytest

from streid_lib.evaluation import evaluate_features, fit_st_model, format_table
from streid_lib.features import FeatureSet
from streid_lib.metadata import Metadata


def small_set(n_orphans: int, n_gallery: int = 12) -> tuple[FeatureSet, Metadata]:
    """A tiny set: 4 identities in 2 cameras, plus ``n_orphans`` queries whose identity has no gallery image."""
    rng = np.random.default_rng(0)
    g_pids = np.arange(n_gallery) % 4 + 1
    gallery = Metadata(g_pids, (np.arange(n_gallery) // 4) % 2 + 1, rng.integers(0, 50_000, n_gallery))
    q_pids = np.r_[[1, 2, 3, 4], 100 + np.arange(n_orphans)]
    query = Metadata(q_pids, np.ones(len(q_pids), np.int64), rng.integers(0, 50_000, len(q_pids)))
    centres = rng.standard_normal((200, 8))
    fs = FeatureSet(
        (centres[q_pids] + 0.3 * rng.standard_normal((len(q_pids), 8))).astype(np.float32),
        (centres[g_pids] + 0.3 * rng.standard_normal((n_gallery, 8))).astype(np.float32),
        query,
        gallery,
    )
    train = Metadata(np.repeat(np.arange(1, 31), 2), np.tile([1, 2], 30), rng.integers(0, 50_000, 60))
    return fs, train


def test_queries_without_a_valid_match_are_counted_and_printed() -> None:
    fs, train = small_set(n_orphans=3)
    model = fit_st_model(train, "market")
    result = evaluate_features(fs, model, rows=("VIS",))
    assert result["n_query_without_match"] == 3
    table = format_table(result)
    assert "note: 3 of 7 queries have no valid match" in table and "misses" in table
    clean = evaluate_features(small_set(n_orphans=0)[0], model, rows=("VIS",))
    assert clean["n_query_without_match"] == 0 and "note" not in format_table(clean)


def test_rerank_records_the_k1_k2_it_used() -> None:
    fs, train = small_set(n_orphans=0, n_gallery=12)  # 16 images: k1 = 20 is lowered to 15, k2 = 6 stays
    model = fit_st_model(train, "market")
    result = evaluate_features(fs, model, rows=("VIS",), rerank=True)
    assert result["params"]["rerank_params"] == {"k1": 15, "k2": 6, "lambda_value": pytest.approx(0.3), "n_images": 16}
    assert "note: re-ranking used k1=15, k2=6 (lowered from 20, 6: the set has only 16 images)" in format_table(result)
    tiny = evaluate_features(small_set(n_orphans=0, n_gallery=4)[0], model, rows=("VIS",), rerank=True)
    assert (tiny["params"]["rerank_params"]["k1"], tiny["params"]["rerank_params"]["k2"]) == (7, 6)
    big = dict(result, params={**result["params"], "rerank_params": {"k1": 20, "k2": 6, "n_images": 900}})
    assert "re-ranking used" not in format_table(big)
    assert "rerank_params" not in evaluate_features(fs, model, rows=("VIS",))["params"]
