"""The notebook glue: profiles, provenance on every output, quoted vs computed labels, the runner."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from streid_lib import reproduce, study


def test_profile_follows_ci_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    assert study.resolve_config(out_dir=str(tmp_path)).profile == "smoke"
    monkeypatch.delenv("CI")
    cfg = study.resolve_config(out_dir=str(tmp_path))
    assert cfg.profile == "default"
    assert cfg.campus_preset == "small"


def test_smoke_figures_stay_in_the_run_directory(tmp_path):
    cfg = study.resolve_config("smoke", out_dir=str(tmp_path))
    assert cfg.figures_dir == str(tmp_path / "figures")
    assert study.resolve_config("default", out_dir=str(tmp_path)).figures_dir == str(study.REPO_ROOT / "figures")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"profile": "fast"}, "profile"),
        ({"dataset": "cuhk03"}, "dataset"),
        ({"dataset": "market"}, "data_root"),
    ],
)
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        study.resolve_config(**kwargs)


def test_epochs_override():
    assert study.resolve_config("paper", epochs=3).train.epochs == 3
    assert study.resolve_config("paper").train.epochs == 60


def test_tables_carry_provenance(tmp_path):
    cfg = study.resolve_config("smoke", out_dir=str(tmp_path))
    df = pd.DataFrame({"R1": [50.0], "mAP": [40.0]}, index=["VIS"])
    md = study.write_table(df, "t", cfg, title="T", features_source="unit test")
    text = md.read_text()
    assert text.startswith("<!-- provenance")
    for key in ("commit", "dataset", "date", "features_source", "train_settings"):
        assert key in text
    csv = (tmp_path / "figures" / "t.csv").read_text()
    assert csv.startswith("# date:")
    assert "VIS,50.0,40.0" in csv


def test_figures_carry_provenance(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = study.resolve_config("smoke", out_dir=str(tmp_path))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = study.save_figure(fig, "f", cfg, source="unit test")
    assert png.is_file() and png.with_suffix(".svg").is_file()
    rec = json.loads((tmp_path / "figures" / "f.provenance.json").read_text())
    assert rec["figure"] == "f" and rec["source"] == "unit test"


def test_side_by_side_labels_quoted_and_computed():
    ours = {"st-ReID": {"R1": 80.0, "R5": 90.0, "R10": 95.0, "mAP": 60.0}}
    df = study.side_by_side(ours, study.PAPER_TABLE2, "Table 2")
    assert df.loc["st-ReID", "R1"] == 80.0
    assert df.loc["st-ReID", "paper R1"] == 94.0  # quoted, not computed
    assert df.loc["st-ReID", "source"].startswith("computed")
    assert df.loc["LOMO+XQDA", "source"].startswith("quoted")
    assert np.isnan(df.loc["LOMO+XQDA", "R1"])  # nothing computed for a literature row


def test_paper_tables_match_the_paper_text():
    # The headline numbers quoted in the abstract/conclusion.
    assert study.PAPER_TABLE1["st-ReID+RE"][0] == 98.1
    assert study.PAPER_TABLE2["st-ReID+RE"][0] == 94.4
    assert study.PAPER_TABLE3["PCB+ST"] == study.PAPER_TABLE2["st-ReID"]


def test_notebooks_are_ordered_and_clean():
    nbs = reproduce.notebooks()
    assert [p.name[:2] for p in nbs] == sorted(p.name[:2] for p in nbs)
    for p in nbs:
        nb = json.loads(p.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", p.name
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{p.name}: needs exactly one parameters cell"
        assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), f"{p.name} has outputs"


@pytest.mark.parametrize("text, value", [("3", 3), ("0.5", 0.5), ("none", None), ("true", True), ("market", "market")])
def test_command_line_parameters_are_coerced(text, value):
    assert reproduce._coerce(text) == value


def test_unknown_notebook_filter_is_an_error():
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        reproduce.notebooks(["no-such-notebook"])


def _fs(provenance):
    from streid_lib.features import FeatureSet
    from streid_lib.metadata import Metadata

    meta = Metadata(np.array([1, 2]), np.array([1, 2]), np.array([10, 20]))
    return FeatureSet(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), meta, meta, provenance)


def test_cached_features_must_match_the_training_settings(tmp_path):
    cfg = study.resolve_config("smoke", out_dir=str(tmp_path))
    done = dict(study._train_request(cfg, "pcb_re"))
    assert done["erasing"] == 0.5 and done["model"] == "pcb"
    assert study._same_training(_fs({"training_config": done}), cfg, "pcb_re")
    assert not study._same_training(_fs({"training_config": {**done, "epochs": 7}}), cfg, "pcb_re")
    assert not study._same_training(_fs({}), cfg, "pcb_re")  # unknown origin: train again
    assert study._same_training(_fs({}), cfg, "colour")  # training-free features carry no training settings
