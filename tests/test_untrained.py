"""What training bought: each CNN of a run beside the same network untrained (issue #22, item 6)."""

from __future__ import annotations

import numpy as np
import pytest

from streid_lib import study
from streid_lib.uncertainty import PerQuery, RowSummary


def _row(hit, ap, ids):
    pq = PerQuery(np.asarray(hit, float), np.asarray(ap, float), np.asarray(ids))
    return RowSummary({"R1": 100 * pq.hit.mean(), "mAP": 100 * pq.ap.mean()}, pq)


def test_training_gain_reads_the_paired_interval(tmp_path):
    cfg = study.study_config(profile="smoke", out_dir=str(tmp_path))
    ids = np.repeat(np.arange(40), 3)
    rng = np.random.default_rng(0)
    low = _row(rng.random(120) < 0.1, rng.random(120) * 0.2, ids)
    high = _row(rng.random(120) < 0.8, 0.5 + rng.random(120) * 0.5, ids)
    trained = {"resnet50": high, "densenet121": low, "pcb": low}
    gain = study.training_gain(cfg, trained, {"resnet50": low, "densenet121": low, "pcb": high})
    assert gain.loc["ResNet-50", "training"] == "training helped beyond noise"
    assert gain.loc["ResNet-50", "gain R1"] == pytest.approx(high["R1"] - low["R1"])
    assert gain.loc["DenseNet-121", "training"] == "untrained as good or better"  # identical rows: gain [0, 0]
    assert gain.loc["PCB", "training"] == "untrained as good or better"
    text = study.describe_gain(gain)
    assert "1 of 3 networks gained beyond noise" in text and "DenseNet-121: R1 +0.0" in text
    beside = study.beside_untrained(cfg, trained, {"resnet50": low})
    assert list(beside) == ["ResNet-50", "ResNet-50 untrained", "DenseNet-121", "PCB"]


def test_untrained_features_are_the_initial_weights_cached(tmp_path):
    pytest.importorskip("torch")
    cfg = study.study_config(profile="smoke", out_dir=str(tmp_path))
    fs = study.untrained.untrained_features(cfg, "resnet50", progress=False)
    assert fs.provenance["untrained_of"]["model"] == "resnet50" and fs.provenance["untrained_of"]["seed"] == 0
    mtime = cfg.features_path("resnet50_untrained").stat().st_mtime_ns
    again = study.untrained.untrained_features(cfg, "resnet50", progress=False)
    np.testing.assert_array_equal(fs.query_f, again.query_f)
    assert cfg.features_path("resnet50_untrained").stat().st_mtime_ns == mtime  # read from the cache
    assert study.untrained.trained_in_run(cfg, "pcb") and not study.untrained.trained_in_run(cfg, "colour")
