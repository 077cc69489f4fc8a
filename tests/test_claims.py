"""The paper's claims: every check can come out held, not held and not computed, from the numbers it is given;
verdicts are recorded per run and collected into claims.md and the README."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from streid_lib import study
from streid_lib.metadata import DatasetSplits, Metadata
from streid_lib.study import claims, readme
from streid_lib.study.claims import HELD, INCONCLUSIVE, NOT_COMPUTED, NOT_HELD
from streid_lib.uncertainty import PerQuery, RowSummary


def row(r1, m=None, n=2000, ids=None):
    """A row of ``n`` queries (one identity each unless ``ids``): the first r1 % are rank-1 hits, AP = m % each."""
    hit = (np.arange(n) < round(r1 * n / 100)).astype(float)
    ap = np.full(n, (r1 if m is None else m) / 100)
    pq = PerQuery(hit, ap, np.arange(n) if ids is None else np.asarray(ids))
    return RowSummary({"R1": 100 * hit.mean(), "R5": r1, "R10": r1, "mAP": 100 * ap.mean()}, pq)


@pytest.fixture
def campus_cfg(tmp_path):
    return study.study_config(profile="smoke", out_dir=str(tmp_path))


@pytest.fixture
def duke_cfg(tmp_path):
    from streid_lib.features import FeatureSet, save_features

    m = Metadata([1, 2], [1, 2], [10, 20])
    f = tmp_path / "feats.npz"
    save_features(
        f, FeatureSet([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], m, m, train_f=[[1.0, 0.0]] * 2, train=m)
    )
    return study.study_config(profile="smoke", dataset="duke", features=str(f), out_dir=str(tmp_path / "run"))


def verdict(claim_id, result, cfg):
    return next(c for c in claims.CLAIMS if c.id == claim_id).check(result, cfg)


def test_every_claim_has_a_place_and_a_notebook():
    assert len({c.id for c in claims.CLAIMS}) == len(claims.CLAIMS)
    for c in claims.CLAIMS:
        assert c.where and c.notebook in {"01", "02", "03", "04", "05", "06", "07"}


def test_claims_are_documented():
    # docs/claims.md holds each claim's row: id, notebook, statement, the paper's quote, where, the check in words.
    lines = (study.REPO_ROOT / "docs" / "claims.md").read_text().splitlines()
    for c in claims.CLAIMS:
        rows = [line for line in lines if line.startswith(f"| `{c.id}` |")]
        assert len(rows) == 1, f"docs/claims.md does not describe claim {c.id} in one row"
        _, notebook, statement, quote, where, check = (cell.strip() for cell in rows[0].strip(" |").split(" | "))
        assert (notebook, statement) == (c.notebook, c.statement), rows[0]
        assert quote.startswith('"') and quote.count('"') >= 2 and where and check, rows[0]


def test_st_lift_of_ten_points(campus_cfg):
    rows = {"PCB(*)": row(60), "PCB+ST": row(80), "ResNet50 baseline": row(50), "ResNet50+ST": row(70)}
    rows |= {"DenseNet121 baseline": study.NotComputed("needs x"), "DenseNet121+ST": study.NotComputed("needs x")}
    status, detail = verdict("st-lift-10", rows, campus_cfg)
    assert status == HELD and "PCB +20.0 [" in detail and "not computed: DenseNet-121" in detail
    rows["ResNet50+ST"] = row(58)  # a lift of 8 points beyond noise: not more than 10
    assert verdict("st-lift-10", rows, campus_cfg)[0] == NOT_HELD
    rows["ResNet50+ST"] = row(60.5, n=2000)  # 10.5 ± about 1.3: the interval straddles 10
    assert verdict("st-lift-10", rows, campus_cfg)[0] == INCONCLUSIVE
    none = {k: study.NotComputed("needs features") for k in rows}
    assert verdict("st-lift-10", none, campus_cfg)[0] == NOT_COMPUTED
    mAP = {k: row(50, 40 if "ST" not in k else 55) for k in ("PCB(*)", "PCB+ST")}
    assert verdict("st-lift-map", mAP, campus_cfg)[0] == HELD


def test_logistic_smoothing_against_the_eqn5_row(campus_cfg):
    assert verdict("ls-beats-eqn5", {"VISxST": row(20), "st-ReID": row(30)}, campus_cfg)[0] == HELD
    status, detail = verdict("ls-beats-eqn5", {"VISxST": row(22.3), "st-ReID": row(17.5)}, campus_cfg)
    assert status == NOT_HELD and "R1 st-ReID − VIS×ST -4.8 [" in detail
    assert verdict("ls-beats-eqn5", {"VISxST": row(20, n=221), "st-ReID": row(20.9, n=221)}, campus_cfg)[0] == (
        INCONCLUSIVE  # two queries of 221: within noise
    )
    assert verdict("ls-beats-eqn5", {"st-ReID": row(30)}, campus_cfg)[0] == NOT_COMPUTED


def test_plain_numbers_without_per_query_results_are_not_judged(campus_cfg):
    plain = {"VISxST": {"R1": 20.0}, "st-ReID": {"R1": 30.0}}
    status, detail = verdict("ls-beats-eqn5", plain, campus_cfg)
    assert status == NOT_COMPUTED and "no per-query results" in detail


def test_random_erasing_and_reranking(campus_cfg):
    rows = {"st-ReID": row(50, 40), "st-ReID+RE": row(55, 41), "st-ReID+RE+re-rank": row(50.5, 50)}
    assert verdict("re-helps", rows, campus_cfg)[0] == HELD
    status, detail = verdict("rerank", rows, campus_cfg)
    assert status == HELD and "(not tested)" in detail
    assert detail.startswith("mAP st-ReID+RE+re-rank − st-ReID+RE +9.0 [")
    rows["st-ReID+RE+re-rank"] = row(40, 39)
    assert verdict("rerank", rows, campus_cfg)[0] == NOT_HELD
    rows["st-ReID+RE"] = row(45, 41)  # mAP up, R1 down: one comparison fails, the claim is not held
    assert verdict("re-helps", rows, campus_cfg)[0] == NOT_HELD
    no_re = {"st-ReID": row(50, 40), "st-ReID+RE": study.NotComputed("needs PCB+RE features")}
    assert verdict("re-helps", no_re, campus_cfg) == (NOT_COMPUTED, "st-ReID+RE not computed (needs PCB+RE features)")
    no_re["st-ReID+re-rank"] = row(52, 45)  # re-ranking without RE stands in
    assert verdict("rerank", no_re, campus_cfg)[0] == HELD


def sweep(column, values, r1s, n=2000):
    df = pd.DataFrame({column: values, "R1": [row(r, n=n)["R1"] for r in r1s]})
    df.attrs["per_query"] = [row(r, n=n).per_query for r in r1s]
    return df


def test_sweeps_near_best_name_ties_and_edges(campus_cfg):
    lam = sweep("lambda1", [0.4, 1.6, 2.8], [50.0, 50.2, 50.3])
    status, detail = verdict("lambda-flat", lam, campus_cfg)
    assert status == HELD and "best at λ1 = 2.8, at the edge of the range" in detail
    gam = sweep("gamma", [1.0, 4.0, 7.0], [16.7, 29.9, 29.9])
    status, detail = verdict("gamma-flat", gam, campus_cfg)
    assert status == NOT_HELD and "best at γ = 4, 7, at the edge" in detail
    assert verdict("gamma-flat", sweep("gamma", [1.0, 4.0, 7.0], [50, 51, 52], n=300), campus_cfg)[0] == INCONCLUSIVE
    short = sweep("gamma", [3.0, 5.0], [1.0, 1.0])
    assert verdict("gamma-flat", short, campus_cfg)[0] == NOT_COMPUTED  # not the paper's range


def test_split_sizes_and_paper_numbers_only_on_the_papers_datasets(campus_cfg, duke_cfg):
    meta = Metadata([1, 2, 2], [1, 1, 2], [0, 1, 2])
    splits = DatasetSplits(meta, meta, meta)
    assert verdict("splits", splits, campus_cfg)[0] == NOT_COMPUTED
    status, detail = verdict("splits", splits, duke_cfg)
    assert status == NOT_HELD and "train 3 (paper 16,522)" in detail
    rows = {"st-ReID": row(94.0, 82.8, n=20000)}
    assert verdict("paper-numbers", rows, campus_cfg)[0] == NOT_COMPUTED
    assert verdict("paper-numbers", rows, duke_cfg)[0] == HELD
    status, detail = verdict("paper-numbers", {"st-ReID": row(17.5, 4.9)}, duke_cfg)
    assert status == NOT_HELD  # feats.npz has no provenance naming its model: named by its file
    assert "rows on the features of feats.npz (standing for PCB)" in detail
    gains = {"PCB(*)": row(60, n=20000), "st-ReID+RE": row(70.6, n=20000)}
    assert verdict("intro-gains", gains, duke_cfg)[0] == HELD  # 10.6 > 10.6 − 1
    assert verdict("intro-gains", gains, campus_cfg)[0] == NOT_COMPUTED
    assert verdict("st-lifts-pcb", gains, campus_cfg)[0] == HELD


def test_visual_order_and_figure_4a(campus_cfg):
    vis = {"pcb": row(30), "densenet121": row(20), "resnet50": row(10), "colour": row(40)}
    assert verdict("visual-order", vis, campus_cfg)[0] == HELD
    vis["resnet50"] = row(25)
    status, detail = verdict("visual-order", vis, campus_cfg)
    assert status == NOT_HELD and "R1 DenseNet-121 − ResNet-50 -5.0 [" in detail
    fig4 = {"VIS": row(9.1), "ST": row(5.4), "VISxST": row(22.3), "st-ReID": row(17.5)}
    status, detail = verdict("st-alone-weak", fig4, campus_cfg)
    assert status == HELD and "69.1 % of st-ReID's R1 lost [" in detail  # 1 − 5.4/17.5 = 69 % > 50 %
    assert verdict("eqn5-beats-vis", fig4, campus_cfg)[0] == HELD
    fig4["ST"] = row(2.0)
    assert verdict("st-alone-weak", fig4, campus_cfg)[0] == HELD
    fig4["ST"] = row(15.0)
    assert verdict("st-alone-weak", fig4, campus_cfg)[0] == NOT_HELD


def test_verdicts_are_recorded_per_run_and_collected(campus_cfg, duke_cfg):
    report = study.check_claims(campus_cfg, "06", figure4={"VISxST": row(20), "st-ReID": row(30)})
    text = str(report)
    assert "Claims of the paper checked in notebook 06" in text and "HELD" in text
    assert "this run has no lambda sweep result" in text  # not passed: not computed
    figs = campus_cfg.out / "figures"
    rec = json.loads((figs / "claims.json").read_text())
    assert rec["claims"]["ls-beats-eqn5"]["status"] == HELD
    assert "ls-beats-eqn5" in rec["claims"] and "date" not in json.dumps(rec)
    md = (figs / "claims.md").read_text()
    assert "| Logistic smoothing beats the Eqn. 5 product (nb 06)" in md and "**held**" in md
    assert str(study.check_claims(campus_cfg, "07")) == "Notebook 07 checks no claim of the paper."


def test_collected_table_has_one_column_per_run(tmp_path):
    for sub, label, status in (("", "campus", HELD), ("duke-x", "Duke", NOT_HELD)):
        folder = tmp_path / sub
        folder.mkdir(exist_ok=True)
        rec = {"run": {"label": label}, "claims": {"rerank": {"status": status, "detail": "numbers"}}}
        (folder / claims.CLAIMS_JSON).write_text(json.dumps(rec))
    runs = claims.collect_runs(tmp_path)
    assert [r["run"]["label"] for r in runs] == ["campus", "Duke"]
    md = claims.render_claims(runs)
    assert "| claim | paper | campus | Duke |" in md
    assert "**held**: numbers | **not held**: numbers |" in md
    assert "| Re-ranking raises mAP | held | not held |" in claims.summary_table(runs)


def test_readme_blocks_are_rendered_from_the_figures(tmp_path):
    text = (
        "a\n<!-- generated:claims -->\nold\n<!-- /generated:claims -->\n"
        "b\n<!-- generated:results -->\nx\n<!-- /generated:results -->\n"
    )
    new = readme.update_text(text, {"claims": "NEW", "results": "R"})
    assert "<!-- generated:claims -->\nNEW\n<!-- /generated:claims -->" in new and "old" not in new
    with pytest.raises(ValueError, match="generated:claims"):
        readme.update_text("no markers", {"claims": "x"})


def test_readme_matches_the_committed_figures():
    """The README's verdicts and results are those recorded under figures/ (``make study`` rewrites them)."""
    path = study.REPO_ROOT / "README.md"
    text = path.read_text()
    assert readme.update_text(text, readme.render_blocks()) == text, (
        "README.md is out of date with figures/: run `python -m streid_lib.study.readme`"
    )


def test_figure_2b_peaks_on_duke_only(campus_cfg, duke_cfg):
    from streid_lib.st_model import SpatialTemporalModel

    d = np.zeros((8, 8, 300))
    d[5, 0, 40], d[5, 0, 200] = 1.0, 0.8  # two separate bumps from camera 1 to camera 6
    st = SpatialTemporalModel.from_distribution(d, sigma=5.0)
    status, detail = verdict("fig2b-peaks", st, duke_cfg)
    assert status == HELD and detail.startswith("2 peaks") and "4,050, 20,050 frames" in detail
    d[5, 0, 200] = 0.0
    assert verdict("fig2b-peaks", SpatialTemporalModel.from_distribution(d, sigma=5.0), duke_cfg)[0] == NOT_HELD
    assert verdict("fig2b-peaks", st, campus_cfg)[0] == NOT_COMPUTED


def test_readme_tables_fold_intervals_into_their_cells(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("method,R1,mAP,R1_lo,R1_hi,mAP_lo,mAP_hi,source\nst-ReID,25.8,20.1,21.3,30.2,,,computed\n")
    table = readme._computed_rows(csv)
    assert "| method | R1 | mAP |" in table and "| st-ReID | 25.8 [21.3, 30.2] | 20.1 |" in table
