"""The notebook glue: profiles and routes, output folders, provenance beside every output, quoted vs computed
labels, one table per dataset, rows that were not computed, the notebooks' shape."""

from __future__ import annotations

import ast
import json

import numpy as np
import pandas as pd
import pytest

from streid_lib import reproduce, study
from streid_lib.features import FeatureSet, save_features
from streid_lib.metadata import Metadata


def _feature_set(n_q=6, n_g=20, dim=8, seed=0, train=False, names=True) -> FeatureSet:
    """Small features with Duke-style names: ids 1..4, cameras 1..3, frames far apart."""
    rng = np.random.default_rng(seed)

    def meta(n, offset):
        pids = rng.integers(1, 5, n)
        cams = rng.integers(1, 4, n)
        frames = rng.integers(0, 100_000, n)
        nm = np.array([f"{p:04d}_c{c}_f{f:07d}.jpg" for p, c, f in zip(pids, cams, frames)], dtype=object)
        return Metadata(pids, cams, frames, nm if names else None)

    q, g = meta(n_q, 0), meta(n_g, 1)
    kw = {}
    if train:
        t = meta(30, 2)
        kw = {"train": t, "train_f": rng.standard_normal((30, dim)).astype(np.float32)}
    qf = rng.standard_normal((n_q, dim)).astype(np.float32)
    gf = rng.standard_normal((n_g, dim)).astype(np.float32)
    return FeatureSet(qf, gf, q, g, {"source": "unit test"}, **kw)


# ----------------------------------------------------------------------------------------------------------------
# Configuration


def test_profile_follows_ci_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "true")
    assert study.study_config(out_dir=str(tmp_path)).profile == "smoke"
    monkeypatch.delenv("CI")
    cfg = study.study_config(out_dir=str(tmp_path))
    assert cfg.profile == "default"
    assert cfg.campus_preset == "small"


def test_configuration_takes_keywords_only():
    with pytest.raises(TypeError):
        study.study_config("smoke")  # type: ignore[misc]


def test_smoke_sizes_live_in_the_profiles():
    smoke, default = (study.PROFILE_SETTINGS[p].sizes for p in ("smoke", "default"))
    assert smoke.sweep_points < default.sweep_points
    assert len(smoke.sigmas) < len(default.sigmas) and smoke.bootstrap_samples < default.bootstrap_samples
    assert study.study_config(profile="smoke").sizes == smoke


def test_output_folders_per_run(tmp_path):
    """The default campus writes the README's figures/; any other run gets figures/<run>/ and runs/<profile>-<run>."""
    root = study.REPO_ROOT
    cfg = study.study_config(profile="default")
    assert (cfg.out_dir, cfg.figures_dir) == (str(root / "runs" / "default"), str(root / "figures"))
    smoke = study.study_config(profile="smoke", out_dir=str(tmp_path))
    assert smoke.figures_dir == str(tmp_path / "figures")
    own = study.study_config(profile="default", out_dir=str(tmp_path / "mine"))
    assert own.figures_dir == str(tmp_path / "mine" / "figures")  # a run directory of one's own keeps its figures
    same = study.study_config(profile="default", out_dir=str(root / "runs" / "default"))
    assert same.figures_dir == str(root / "figures")  # as reproduce passes it
    f = tmp_path / "duke_mobilenetv2.npz"
    save_features(f, _feature_set(train=True))
    duke = study.study_config(profile="default", dataset="duke", features=str(f))
    assert duke.figures_dir == str(root / "figures" / "duke-duke_mobilenetv2")
    assert duke.out_dir == str(root / "runs" / "default-duke-duke_mobilenetv2")
    assert duke.route.name == "features file" and duke.feature_files == {"pcb": str(f)}
    paper_campus = study.study_config(profile="paper")
    assert paper_campus.figures_dir == str(root / "figures" / "campus-large")
    seeded = study.study_config(profile="default", seed=2)
    assert seeded.figures_dir == str(root / "figures" / "campus-small-seed2")


def test_features_folder_route(tmp_path):
    fs = _feature_set()
    for key in ("pcb", "resnet50"):
        save_features(tmp_path / f"{key}.npz", fs)
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(tmp_path), out_dir=str(tmp_path / "r"))
    assert cfg.route.name == "features folder" and set(cfg.feature_files) == {"pcb", "resnet50"}
    assert "pcb" in cfg.route.available and "densenet121" not in cfg.route.available
    with pytest.raises(study.MissingInput, match="densenet121.npz"):
        study.visual_features(cfg, "densenet121")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"profile": "fast"}, "profile"),
        ({"dataset": "cuhk03"}, "dataset"),
        ({"dataset": "market"}, "data_root"),
        ({"dataset": "duke", "features": "/no/such/file.mat"}, "features: /no/such/file.mat not found"),
        ({"dataset": "duke", "data_root": "/no/such/folder"}, "data_root"),
        ({"train_names": "/no/such/names.txt"}, "train_names"),
        ({"seed": -1}, "seed"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(study.StudyConfigError, match=match):
        study.study_config(**kwargs)


def test_features_folder_must_hold_known_files(tmp_path):
    with pytest.raises(study.StudyConfigError, match="holds no features file"):
        study.study_config(dataset="duke", features=str(tmp_path))
    save_features(tmp_path / "osnet.npz", _feature_set())
    with pytest.raises(study.StudyConfigError, match=r"osnet\.npz.*expected names: resnet50\.npz"):
        study.study_config(dataset="duke", features=str(tmp_path))


def test_epochs_override():
    assert study.study_config(profile="paper", epochs=3).train.epochs == 3
    assert study.study_config(profile="paper").train.epochs == 60


def test_training_metadata_comes_from_names_or_the_features_train_side(tmp_path):
    f = tmp_path / "with_train.npz"
    fs = _feature_set(train=True)
    save_features(f, fs)
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(f), out_dir=str(tmp_path / "r"))
    assert np.array_equal(study.training_metadata(cfg).frames, fs.train.frames)
    names = tmp_path / "train.txt"
    names.write_text("\n".join(["0001_c1_f0000100.jpg", "0001_c2_f0000900.jpg", "0002_c3_f0005000.jpg"]) + "\n")
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(f), train_names=str(names))
    assert len(study.training_metadata(cfg)) == 3
    bare = tmp_path / "bare.mat"
    save_features(bare, fs.without_train())
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(bare), out_dir=str(tmp_path / "r"))
    with pytest.raises(study.MissingInput, match="train_names"):
        study.training_metadata(cfg)


def test_features_of_a_folder_must_describe_the_same_images(tmp_path):
    from streid_lib.features import FeaturesError

    save_features(tmp_path / "pcb.npz", _feature_set(seed=0))
    save_features(tmp_path / "resnet50.npz", _feature_set(seed=1))
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(tmp_path), out_dir=str(tmp_path / "r"))
    with pytest.raises(FeaturesError, match="every features file of a run must describe the same images"):
        study.visual_features(cfg, "resnet50")


# ----------------------------------------------------------------------------------------------------------------
# Outputs


def test_tables_have_a_provenance_sidecar_and_stable_bytes(tmp_path):
    cfg = study.study_config(profile="smoke", out_dir=str(tmp_path))
    df = pd.DataFrame({"R1": [50.04, np.nan], "n": [2000, 3], "mAP_open_reid": [1.25, 2.0]}, index=["VIS", "ST"])
    df["D"] = pd.array([None, 256], dtype="Int64")
    shown = study.write_table(df, "t", cfg, title="T", note="A note.", features_source="unit test")
    figs = tmp_path / "figures"
    md, csv = (figs / "t.md").read_text(), (figs / "t.csv").read_text()
    assert "date" not in md and "commit" not in md and "date" not in csv
    assert "| VIS | 50.0 | 2000 | 1.2 | — |" in md  # one decimal, integers as integers, readable names
    assert "| ST | — | 3 | 2.0 | 256 |" in md and "mAP (open-reid)" in md and "A note." in md
    assert csv.splitlines()[1] == "VIS,50.0,2000,1.2," and csv.splitlines()[2] == "ST,,3,2.0,256"
    rec = json.loads((figs / "t.provenance.json").read_text())
    for key in ("commit", "date", "dataset", "route", "features_source", "train_settings", "sizes"):
        assert key in rec
    assert list(shown.columns) == ["R1", "n", "mAP (open-reid)", "D"]
    before = md
    study.write_table(df, "t", cfg, title="T", note="A note.", features_source="unit test")
    assert (figs / "t.md").read_text() == before


def test_figures_are_the_same_bytes_on_a_rerun(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = study.study_config(profile="smoke", out_dir=str(tmp_path))
    figs = tmp_path / "figures"
    outputs = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0], label="line")
        ax.legend()
        study.save_figure(fig, "f", cfg, source="unit test")
        plt.close(fig)
        outputs.append(((figs / "f.png").read_bytes(), (figs / "f.svg").read_bytes()))
    assert outputs[0] == outputs[1]
    assert b"<dc:date>" not in outputs[0][1]
    rec = json.loads((figs / "f.provenance.json").read_text())
    assert rec["figure"] == "f" and rec["source"] == "unit test"


def test_side_by_side_labels_quoted_computed_and_not_computed():
    ours = {
        "st-ReID": {"R1": 80.0, "R5": 90.0, "R10": 95.0, "mAP": 60.0},
        "st-ReID+RE": study.NotComputed("needs PCB+RE features"),
    }
    df = study.side_by_side(ours, study.PAPER_TABLE2, "Table 2")
    assert df.loc["st-ReID", "R1"] == 80.0
    assert df.loc["st-ReID", "paper R1"] == 94.0  # quoted, not computed
    assert df.loc["st-ReID", "source"].startswith("computed")
    assert np.isnan(df.loc["st-ReID+RE", "R1"]) and df.loc["st-ReID+RE", "paper R1"] == 94.4
    assert df.loc["st-ReID+RE", "source"].startswith("not computed (needs PCB+RE features)")
    assert df.loc["LOMO+XQDA", "source"].startswith("quoted")
    assert np.isnan(df.loc["LOMO+XQDA", "R1"])  # nothing computed for a literature row


def _rows():
    r = {"R1": 50.0, "R5": 60.0, "R10": 70.0, "mAP": 40.0}
    return {"PCB(*)": r, "st-ReID": r, "st-ReID+RE": r, "st-ReID+RE+re-rank": r}


@pytest.mark.parametrize("dataset", ["market", "duke"])
def test_one_table_per_dataset(dataset, tmp_path):
    f = tmp_path / "f.npz"
    save_features(f, _feature_set(train=True))
    cfg = study.study_config(profile="smoke", dataset=dataset, features=str(f), out_dir=str(tmp_path / "r"))
    tables = {t.name: t for t in study.tables_1_2(cfg, _rows())}
    mine, other = ("table1", "table2") if dataset == "market" else ("table2", "table1")
    assert set(tables) == {"table1", "table2"}
    assert tables[mine].frame.loc["st-ReID", "R1"] == 50.0
    assert "R1" in tables[other].frame and "paper R1" not in tables[other].frame
    assert (tables[other].frame["source"].str.startswith("quoted")).all()
    assert "Quoted only" in tables[other].note


def test_campus_tables_are_titled_as_such(tmp_path):
    cfg = study.study_config(profile="smoke", out_dir=str(tmp_path))
    (table,) = study.tables_1_2(cfg, _rows())
    assert table.name == "tables_1_2_campus" and "campus" in table.title
    assert table.frame.loc["st-ReID", "Market-1501 R1 (paper)"] == 97.2
    assert table.frame.loc["st-ReID", "DukeMTMC-reID R1 (paper)"] == 94.0
    assert "campus" in study.table_3(cfg, {}).title


def test_labels_name_what_ran(tmp_path):
    """ "PCB" names only PCB features; a run's label names the dataset, the features and the number of queries."""
    m = Metadata([1, 2, 3], [1, 2, 1], [10, 20, 30])
    plain, named = tmp_path / "plain.npz", tmp_path / "named.npz"
    save_features(plain, FeatureSet(np.eye(3), np.eye(3), m, m))
    save_features(named, FeatureSet(np.eye(3), np.eye(3), m, m, {"model": "MobileNetV2 ImageNet (a wheel)"}))
    pcb = tmp_path / "folder"
    pcb.mkdir()
    save_features(pcb / "pcb.npz", FeatureSet(np.eye(3), np.eye(3), m, m, {"training_config": {"model": "pcb"}}))
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(named), out_dir=str(tmp_path / "a"))
    assert cfg.model_label("pcb") == "MobileNetV2 ImageNet features (standing for PCB)"
    assert cfg.run_label == "DukeMTMC-reID · MobileNetV2 ImageNet features (standing for PCB) · 3 queries"
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(plain), out_dir=str(tmp_path / "b"))
    assert cfg.model_label("pcb") == "the features of plain.npz (standing for PCB)"
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(pcb), out_dir=str(tmp_path / "c"))
    assert cfg.model_label("pcb") == "PCB"  # made by a PCB
    campus = study.study_config(profile="smoke", out_dir=str(tmp_path / "d"))
    assert campus.model_label("pcb") == "PCB" and campus.run_label.startswith("the campus (synthetic) · CNNs trained")


def test_paper_tables_match_the_paper_text():
    # The headline numbers quoted in the abstract/conclusion.
    assert study.PAPER_TABLE1["st-ReID+RE"][0] == 98.1
    assert study.PAPER_TABLE2["st-ReID+RE"][0] == 94.4
    assert study.PAPER_TABLE3["PCB+ST"] == study.PAPER_TABLE2["st-ReID"]


def test_interpretation_is_rendered_from_the_numbers():
    df = pd.DataFrame({"gamma": [1.0, 4.0, 7.0], "R1": [16.7, 29.9, 19.0], "mAP": [10.0, 12.0, 11.0]})
    text = study.describe_sweep(df, "gamma", "γ")
    assert "R1 ranges from 16.7 to 29.9 over γ = 1–7 (best at γ = 4)" in text and "edge" not in text
    df = pd.DataFrame({"gamma": [1.0, 4.0, 7.0], "R1": [16.7, 29.9, 29.9], "mAP": [10.0, 12.0, 13.0]})
    text = study.describe_sweep(df, "gamma", "γ")
    assert "(best at γ = 4, 7 (tied at 2 values)): best at the edge of the range, the maximum may lie outside" in text
    rows = {"VIS": {"R1": 10.0, "mAP": 5.0}, "st-ReID": {"R1": 25.5, "mAP": 9.0}}
    assert study.describe_differences(rows, [("VIS", "st-ReID")]) == "In this run: st-ReID − VIS: R1 +15.5, mAP +4.0."


# ----------------------------------------------------------------------------------------------------------------
# Notebooks


def _code_cells(path):
    nb = json.loads(path.read_text())
    return [("".join(c["source"]), c) for c in nb["cells"] if c["cell_type"] == "code"]


def test_notebooks_are_ordered_and_clean():
    nbs = reproduce.notebooks()
    assert [p.name[:2] for p in nbs] == sorted(p.name[:2] for p in nbs)
    for p in nbs:
        nb = json.loads(p.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", p.name
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{p.name}: needs exactly one parameters cell"
        assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), f"{p.name} has outputs"


def test_setup_cells_pass_every_parameter_in_order():
    import inspect

    accepted = set(inspect.signature(study.study_config).parameters)
    setup_names = list(inspect.signature(study.setup).parameters)
    for p in reproduce.notebooks():
        (params, _), (setup, _) = _code_cells(p)[:2]
        names = [t.id if isinstance(node, ast.Assign) else node.target.id for node in ast.parse(params).body
                 for t in (node.targets if isinstance(node, ast.Assign) else [node])]  # fmt: skip
        call = next(
            n
            for n in ast.walk(ast.parse(setup))
            if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "setup"
        )
        assert [a.id for a in call.args] == names == setup_names, f"{p.name}: every parameter goes to study.setup"
        assert set(names) <= accepted


def test_notebooks_do_not_size_themselves_and_check_their_claims():
    for p in reproduce.notebooks():
        code = "\n".join(src for src, _ in _code_cells(p))
        assert 'cfg.profile == "smoke"' not in code or p.name.startswith("07"), p.name
        if p.name[:2] <= "06":
            checked = [src for src, _ in _code_cells(p) if "check_claims" in src]
            assert len(checked) == 1 and checked[0].startswith("# NBVAL_CHECK_OUTPUT"), p.name
            assert f'"{p.name[:2]}"' in checked[0]


@pytest.mark.parametrize("text, value", [("3", 3), ("0.5", 0.5), ("none", None), ("true", True), ("market", "market")])
def test_command_line_parameters_are_coerced(text, value):
    untyped = {"name": "x", "inferred_type_name": "None", "default": "None"}
    assert reproduce.convert(untyped, text) == value


def test_unknown_notebook_filter_is_an_error():
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        reproduce.notebooks(["no-such-notebook"])


# ----------------------------------------------------------------------------------------------------------------
# Steps


def _fs(provenance):
    meta = Metadata(np.array([1, 2]), np.array([1, 2]), np.array([10, 20]))
    return FeatureSet(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), meta, meta, provenance)


def test_cached_features_must_match_the_training_settings(tmp_path):
    from streid_lib.study import steps

    cfg = study.study_config(profile="smoke", out_dir=str(tmp_path))
    done = dict(steps.train_request(cfg, "pcb_re"))
    assert done["erasing"] == 0.5 and done["model"] == "pcb"
    assert steps._same_training(_fs({"training_config": done}), cfg, "pcb_re")
    assert not steps._same_training(_fs({"training_config": {**done, "epochs": 7}}), cfg, "pcb_re")
    assert not steps._same_training(_fs({}), cfg, "pcb_re")  # unknown origin: train again
    assert steps._same_training(_fs({}), cfg, "colour")  # training-free features carry no training settings


def test_rows_without_features_are_not_computed_never_borrowed(tmp_path):
    """With one features file, st-ReID+RE is "not computed", not a copy of st-ReID."""
    f = tmp_path / "f.npz"
    save_features(f, _feature_set(n_q=10, n_g=40, train=True))
    cfg = study.study_config(profile="smoke", dataset="duke", features=str(f), out_dir=str(tmp_path / "r"))
    st = study.fit_st_model(cfg)
    rows = study.tables_1_2_rows(cfg, st)
    assert isinstance(rows["st-ReID+RE"], study.NotComputed) and "PCB+RE" in str(rows["st-ReID+RE"])
    assert isinstance(rows["st-ReID+RE+re-rank"], study.NotComputed)
    assert not isinstance(rows["st-ReID"], study.NotComputed) and "st-ReID+re-rank" in rows
    t3 = study.table_3_rows(cfg, st)
    assert isinstance(t3["ResNet50+ST"], study.NotComputed) and t3["PCB+ST"] == rows["st-ReID"]
    assert "ResNet-50" in study.not_computed(cfg, "05")


def test_ranked_examples_follow_the_ranking_protocol():
    """The lists leave out junk (id -1, and the query's identity in its own camera), like the metrics."""
    from streid_lib.st_model import fit_st_model

    q = Metadata(np.array([1, 2]), np.array([1, 1]), np.array([1000, 5000]))
    g = Metadata(
        np.array([1, 1, -1, 2, 2, 3]), np.array([1, 2, 2, 2, 1, 2]), np.array([1100, 1500, 1200, 5400, 4000, 1300])
    )
    rng = np.random.default_rng(0)
    fs = FeatureSet(
        rng.standard_normal((2, 4)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32), q, g
    )
    train = Metadata(np.array([5, 5, 6, 6]), np.array([1, 2, 1, 2]), np.array([0, 400, 100, 600]))
    st = fit_st_model(train, "duke")
    ex = study.ranked_examples(fs, st, n_queries=2, top=4, seed=0)
    for m, lists in ex.lists.items():
        for pos, qi in enumerate(ex.queries):
            shown = lists[pos].tolist()
            assert 2 not in shown, m  # pid -1
            same_cam = [j for j in range(6) if g.pids[j] == q.pids[qi] and g.cams[j] == q.cams[qi]]
            assert not set(same_cam) & set(shown), m
    assert set(ex.lists) == {"VIS", "st-ReID"} and "drawn at random" in ex.rule
    text = study.ranked_text(fs, ex)  # one block per query: (query, rank) rows, a column per method
    assert list(text.columns) == ["VIS", "st-ReID"] and list(text.index.names) == ["query", "rank"]
    assert text.groupby(level="query").size().tolist() == [4, 4]
    assert {c[0] for c in text.to_numpy().ravel()} <= {"✓", "✗", "·"}


def test_study_path_on_a_nine_camera_campus(tmp_path):
    """The study's ST fit and a notebook step (notebook 03's σ sweep, Figure 1's lists) on 9 cameras."""
    from streid_lib.campus import generate_campus

    root = tmp_path / "campus9"
    generate_campus(root, "tiny", seed=0, progress=False, n_cams=9)
    cfg = study.study_config(profile="smoke", data_root=str(root), out_dir=str(tmp_path / "run"))
    st = study.fit_st_model(cfg)
    assert st.n_cams == 9 and study.training_metadata(cfg).cams.max() == 9
    fs = study.visual_features(cfg, "colour")
    sens = study.st_sensitivity(cfg, fs)
    assert len(sens) == len(cfg.sizes.sigmas) + len(cfg.sizes.bin_widths) and sens["TV"].between(0, 1).all()
    ex = study.ranked_examples(fs, st, n_queries=2, top=3, seed=0)
    assert ex.lists["st-ReID"].shape == (2, 3)
