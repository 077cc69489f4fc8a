"""The paper's claims, each checked on every run: **held**, **not held** (with the numbers) or **not computed** (why).

:data:`CLAIMS` lists them (docs/claims.md explains each with its quote and place in the paper). A notebook passes
the results it computed to :func:`check_claims`, which checks every claim those results bear on, prints the
verdicts and records them in ``<figures>/claims.json``; ``claims.md`` in the figures root collects the verdicts of
every run found there (the campus in ``figures/``, real data in ``figures/<run>/``), one column per run.

Thresholds are our reading of the paper's words, named here once: "nearly keeps the best performance" is within
:data:`NEAR_BEST_R1` rank-1 points of the sweep's best; "keeps R1" under re-ranking is a drop of at most
:data:`RERANK_KEEPS_R1`; "reaches the paper's numbers" is within :data:`PAPER_MATCH` points of R1 and mAP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import write_json_atomic, write_text_atomic
from .config import DATASET_LABELS, MODEL_LABELS, REPO_ROOT, StudyConfig
from .paper import (
    PAPER_FIGURE4_R1,
    PAPER_GAMMA_RANGE,
    PAPER_LAMBDA_RANGE,
    PAPER_METRIC,
    PAPER_SPLITS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE3,
)
from .steps import NotComputed

HELD, NOT_HELD, NOT_COMPUTED = "held", "not held", "not computed"
#: "Nearly keeps the best performance" (Figure 4c/d): every value of a sweep within this many R1 points of its best.
NEAR_BEST_R1 = 2.0
#: "Keeps R1" under re-ranking (Tables 1-2: 98.1 → 98.0 on Market, 94.4 → 94.5 on Duke): a drop of at most this.
RERANK_KEEPS_R1 = 1.0
#: "Reaches the paper's numbers": R1 and mAP within this many points of the paper's row.
PAPER_MATCH = 1.0
CLAIMS_JSON = "claims.json"
CLAIMS_MD = "claims.md"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how a run checks it.

    Attributes:
        id: short stable name; notebook: the notebook that checks it ("01".."07");
        statement: the claim in our words; quote: a short quote of the paper; where: its place in the paper;
        test: the check in words; needs: the result (keyword of :func:`check_claims`) it reads;
        check: ``(result, cfg) -> (verdict, detail)``.
    """

    id: str
    notebook: str
    statement: str
    quote: str
    where: str
    test: str
    needs: str
    check: Callable[[Any, StudyConfig], tuple[str, str]]


@dataclass(frozen=True)
class Verdict:
    """The verdict of one claim on one run."""

    claim: Claim
    status: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status.upper():>12}  {self.claim.statement} ({self.claim.where}): {self.detail}"


def _r1(row: Any) -> float:
    return float(row["R1"])


def _missing(rows: dict[str, Any], names: list[str]) -> str | None:
    """The reason the first of ``names`` without numbers was not computed (None when all have numbers)."""
    for n in names:
        if n not in rows:
            return f"{n} was not evaluated"
        if isinstance(rows[n], NotComputed):
            return f"{MODEL_LABELS.get(n, n)} {rows[n]}"
    return None


def _signed(x: float) -> str:
    return f"{x:+.1f}"


# ------------------------------------------------------------------------------------------------------------
# Checks: (result, cfg) -> (verdict, detail). Each reads only what its claim names.


def _check_splits(splits: Any, cfg: StudyConfig) -> tuple[str, str]:
    if cfg.dataset not in PAPER_SPLITS:
        return NOT_COMPUTED, f"the run is on {cfg.dataset_label}, not one of the paper's datasets"
    want = PAPER_SPLITS[cfg.dataset]
    got = {
        "train": len(splits.train),
        "gallery": len(splits.gallery),
        "query": len(splits.query),
        "train_ids": int(len({int(p) for p in splits.train.pids if p > 0})),
    }
    diff = [f"{k} {got[k]:,} (paper {want[k]:,})" for k in want if got[k] != want[k]]
    if diff:
        return NOT_HELD, "; ".join(diff)
    return HELD, f"train {got['train']:,} of {got['train_ids']} ids, gallery {got['gallery']:,}, query {got['query']:,}"


def _check_visual_order(visual: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    keys = ["pcb", "densenet121", "resnet50"]
    why = _missing(visual, keys)
    if why:
        return NOT_COMPUTED, why
    r1 = {k: _r1(visual[k]) for k in keys}
    text = " > ".join(f"{MODEL_LABELS[k]} {r1[k]:.1f}" for k in keys)
    held = r1["pcb"] > r1["densenet121"] > r1["resnet50"]
    order = sorted(keys, key=lambda k: -r1[k])
    if held:
        return HELD, f"R1 {text}"
    return NOT_HELD, "R1 " + ", ".join(f"{MODEL_LABELS[k]} {r1[k]:.1f}" for k in order)


def _paper_rows(cfg: StudyConfig) -> dict[str, tuple] | None:
    return {"market": PAPER_TABLE1, "duke": PAPER_TABLE2}.get(cfg.dataset)


def _paper_gain(base: str, new: str, column: int) -> str:
    """The paper's gain of row ``new`` over ``base`` in Tables 1 and 2 (column 0 = R1, 3 = mAP), as text."""
    return " / ".join(_signed(t[new][column] - t[base][column]) for t in (PAPER_TABLE1, PAPER_TABLE2))


def _gain(rows: dict[str, Any], base: str, new: str) -> tuple[str, str]:
    """Held when ``new`` beats ``base`` in both R1 and mAP; the paper's gains (Market-1501 / Duke) beside ours."""
    why = _missing(rows, [base, new])
    if why:
        return NOT_COMPUTED, why
    d_r1 = _r1(rows[new]) - _r1(rows[base])
    d_map = rows[new]["mAP"] - rows[base]["mAP"]
    paper = f"paper, Market-1501 / DukeMTMC-reID: R1 {_paper_gain(base, new, 0)}, mAP {_paper_gain(base, new, 3)}"
    text = f"{new} − {base}: R1 {_signed(d_r1)}, mAP {_signed(d_map)} ({paper})"
    return (HELD if d_r1 > 0 and d_map > 0 else NOT_HELD), text


def _check_st_lifts_pcb(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    return _gain(rows, "PCB(*)", "st-ReID")


def _check_re_helps(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    return _gain(rows, "st-ReID", "st-ReID+RE")


def _check_rerank(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    for base, ranked in (("st-ReID+RE", "st-ReID+RE+re-rank"), ("st-ReID", "st-ReID+re-rank")):
        if _missing(rows, [base, ranked]) is None:
            break
    else:
        return NOT_COMPUTED, _missing(rows, ["st-ReID+RE", "st-ReID+RE+re-rank"]) or "no re-ranked row"
    d_r1 = _r1(rows[ranked]) - _r1(rows[base])
    d_map = rows[ranked]["mAP"] - rows[base]["mAP"]
    held = d_map > 0 and d_r1 >= -RERANK_KEEPS_R1
    return (HELD if held else NOT_HELD), f"{ranked} − {base}: mAP {_signed(d_map)}, R1 {_signed(d_r1)}"


def _check_reaches_paper(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    paper = _paper_rows(cfg)
    if paper is None:
        return NOT_COMPUTED, f"the run is on {cfg.dataset_label}; the paper reports Market-1501 and DukeMTMC-reID"
    why = _missing(rows, ["st-ReID"])
    if why:
        return NOT_COMPUTED, why
    r1, m = _r1(rows["st-ReID"]), float(rows["st-ReID"]["mAP"])
    p_r1, p_map = paper["st-ReID"][0], paper["st-ReID"][3]
    held = abs(r1 - p_r1) <= PAPER_MATCH and abs(m - p_map) <= PAPER_MATCH
    features = f"; features: {', '.join(Path(p).name for p in cfg.feature_files.values())}" if cfg.features else ""
    return (HELD if held else NOT_HELD), f"st-ReID R1 {r1:.1f}, mAP {m:.1f} (paper {p_r1}, {p_map}){features}"


def _check_st_lift_10(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    pairs = {
        "ResNet-50": ("ResNet50 baseline", "ResNet50+ST"),
        "DenseNet-121": ("DenseNet121 baseline", "DenseNet121+ST"),
    }
    pairs["PCB"] = ("PCB(*)", "PCB+ST")
    lifts, missing = {}, []
    for label, (vis, st) in pairs.items():
        if _missing(rows, [vis, st]) is None:
            lifts[label] = _r1(rows[st]) - _r1(rows[vis])
        else:
            missing.append(label)
    if not lifts:
        return NOT_COMPUTED, _missing(rows, list(pairs["PCB"])) or "no visual stream was evaluated"
    text = ", ".join(f"{k} {_signed(v)}" for k, v in lifts.items())
    text = f"R1 lift {text}" + (f"; not computed: {', '.join(missing)}" if missing else "")
    paper = ", ".join(_signed(PAPER_TABLE3[st][0] - PAPER_TABLE3[vis][0]) for vis, st in pairs.values())
    return (HELD if all(v >= 10.0 for v in lifts.values()) else NOT_HELD), f"{text} (paper: {paper})"


def _fig4(rows: dict[str, Any], names: list[str]) -> tuple[dict[str, float] | None, str | None]:
    why = _missing(rows, names)
    return (None, why) if why else ({n: _r1(rows[n]) for n in names}, None)


def _check_st_alone_weak(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    r1, why = _fig4(rows, ["ST", "VIS", "st-ReID"])
    if r1 is None:
        return NOT_COMPUTED, str(why)
    p = PAPER_FIGURE4_R1
    ours = f"R1 ST {r1['ST']:.1f}, VIS {r1['VIS']:.1f}, st-ReID {r1['st-ReID']:.1f}"
    text = f"{ours} (paper {p['ST']}, {p['VIS']}, {p['st-ReID']})"
    return (HELD if r1["ST"] < r1["VIS"] else NOT_HELD), text


def _check_st_helps(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    r1, why = _fig4(rows, ["VIS", "st-ReID"])
    if r1 is None:
        return NOT_COMPUTED, str(why)
    d = r1["st-ReID"] - r1["VIS"]
    paper = _signed(PAPER_FIGURE4_R1["st-ReID"] - PAPER_FIGURE4_R1["VIS"])
    return (HELD if d > 0 else NOT_HELD), f"st-ReID − VIS: R1 {_signed(d)} (paper {paper})"


def _fig4_beats(rows: dict[str, Any], better: str, worse: str) -> tuple[str, str]:
    """Held when row ``better`` has a higher R1 than row ``worse`` (Figure 4 rows), the paper's R1 beside ours."""
    r1, why = _fig4(rows, [worse, better])
    if r1 is None:
        return NOT_COMPUTED, str(why)
    label = {"VISxST": "VIS×ST"}
    p = PAPER_FIGURE4_R1
    ours = ", ".join(f"{label.get(n, n)} {r1[n]:.1f}" for n in (worse, better))
    return (HELD if r1[better] > r1[worse] else NOT_HELD), f"R1 {ours} (paper {p[worse]}, {p[better]})"


def _check_ls_beats_eqn5(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    return _fig4_beats(rows, better="st-ReID", worse="VISxST")


def _check_eqn5_beats_vis(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    return _fig4_beats(rows, better="VISxST", worse="VIS")


def _sweep_check(df: Any, column: str, span: tuple[float, float], symbol: str) -> tuple[str, str]:
    if df is None or len(df) < 2:
        return NOT_COMPUTED, f"the {symbol} sweep needs at least two values"
    lo, hi = float(df[column].min()), float(df[column].max())
    if lo > span[0] + 1e-9 or hi < span[1] - 1e-9:
        return NOT_COMPUTED, f"the sweep covers {symbol} {lo:g}–{hi:g}, not the paper's {span[0]:g}–{span[1]:g}"
    best = df.loc[df["R1"].idxmax()]
    worst = df.loc[df["R1"].idxmin()]
    gap = float(best["R1"] - worst["R1"])
    text = (
        f"R1 from {worst['R1']:.1f} ({symbol} = {worst[column]:g}) to {best['R1']:.1f} ({symbol} = {best[column]:g}), "
        f"spread {gap:.1f} over {len(df)} values"
    )
    return (HELD if gap <= NEAR_BEST_R1 else NOT_HELD), text


def _check_lambda(df: Any, cfg: StudyConfig) -> tuple[str, str]:
    return _sweep_check(df, "lambda1", PAPER_LAMBDA_RANGE, "λ1")


def _check_gamma(df: Any, cfg: StudyConfig) -> tuple[str, str]:
    return _sweep_check(df, "gamma", PAPER_GAMMA_RANGE, "γ")


def _check_defaults(result: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    rows, sweeps = result.get("rows", {}), [result.get("lambda"), result.get("gamma")]
    why = _missing(rows, ["st-ReID"])
    if why or any(s is None or not len(s) for s in sweeps):
        return NOT_COMPUTED, why or "the λ and γ sweeps are needed"
    at_default = _r1(rows["st-ReID"])
    best = max(float(s["R1"].max()) for s in sweeps)
    where = []
    for s, col, sym in ((sweeps[0], "lambda1", "λ1"), (sweeps[1], "gamma", "γ")):
        where.append(f"{sym} = {s.loc[s['R1'].idxmax(), col]:g}")
    text = f"R1 {at_default:.1f} at the defaults, best {best:.1f} in the sweeps (best at {', '.join(where)})"
    return (HELD if at_default >= best - NEAR_BEST_R1 else NOT_HELD), text


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "splits", "01", "The dataset has the standard split sizes",
        "16,522 training images of 702 identities, 2,228 query images of the other 702 identities and 17,661 "
        "gallery images", "Experiments, Datasets (Market-1501: 12,936 / 19,732 / 3,368 images)",
        "train, gallery and query image counts and training identities equal the paper's",
        "splits", _check_splits,
    ),
    Claim(
        "visual-order", "02", "PCB is the strongest visual baseline, DenseNet-121 beats ResNet-50",
        "ResNet50 baseline 76.9 … DenseNet121 baseline 79.3 … PCB(*) 83.8", "Table 3 (R1)",
        "VIS-only R1: PCB > DenseNet-121 > ResNet-50", "visual", _check_visual_order,
    ),
    Claim(
        "st-lifts-pcb", "04", "st-ReID improves on its PCB baseline in R1 and mAP",
        "improving from the baseline 91.2% and 83.8%", "Conclusion; Tables 1-2",
        "st-ReID R1 and mAP above PCB(*)", "tables_1_2", _check_st_lifts_pcb,
    ),
    Claim(
        "re-helps", "04", "Random erasing helps st-ReID",
        "With random erase (RE), our st-ReID achieves the rank-1 accuracy of 98.1%", "Tables 1-2 and their text",
        "st-ReID+RE R1 and mAP above st-ReID", "tables_1_2", _check_re_helps,
    ),
    Claim(
        "rerank", "04", "Re-ranking raises mAP and keeps R1",
        "With the re-ranking scheme, our st-ReID obtains mAP of 95.5%", "Tables 1-2 and their text",
        f"mAP rises and R1 drops by at most {RERANK_KEEPS_R1:g} point (st-ReID+RE, or st-ReID without RE features)",
        "tables_1_2", _check_rerank,
    ),
    Claim(
        "paper-numbers", "04", "st-ReID reaches the paper's numbers on the dataset that ran",
        "the rank-1 accuracy of 97.2% and mAP of 86.7%", "Tables 1-2, st-ReID row",
        f"st-ReID R1 and mAP within {PAPER_MATCH:g} point of the paper's row", "tables_1_2", _check_reaches_paper,
    ),
    Claim(
        "st-lift-10", "05", "The ST stream lifts every visual stream by more than 10 R1",
        "when adding the ST stream into these VIS streams … we can achieve more than 10% improvement",
        "Table 3; Generalization of the st-ReID", "R1 of +ST minus the baseline ≥ 10 for every stream computed",
        "table_3", _check_st_lift_10,
    ),
    Claim(
        "st-alone-weak", "06", "ST alone is weak: the visual stream plays the key role",
        "the rank-1 accuracy drops by 88.5% (from 5.5% to 94.0%) when removing the VIS stream",
        "Figure 4(a); Effect of the visual feature stream", "ST-only R1 below VIS-only R1", "figure4",
        _check_st_alone_weak,
    ),
    Claim(
        "st-helps", "06", "Removing the ST stream lowers R1",
        "without the spatial-temporal probability estimation stream, the rank-1 accuracy drops 10.2%",
        "Figure 4(a); Effect of the spatial-temporal stream", "st-ReID R1 above VIS-only R1", "figure4",
        _check_st_helps,
    ),
    Claim(
        "ls-beats-eqn5", "06", "Logistic smoothing beats the Eqn. 5 product",
        "our joint metric improves the performance from 86.9% to 94.0%",
        "Figure 4(b); Effectiveness of the joint metric",
        "st-ReID R1 above VIS×ST (Eqn. 5, faithful row) R1", "figure4", _check_ls_beats_eqn5,
    ),
    Claim(
        "eqn5-beats-vis", "06", "Even the Eqn. 5 product improves on the visual stream",
        "the baseline also obtains a 3.1% improvement", "Figure 4(b); Effectiveness of the joint metric",
        "VIS×ST R1 above VIS-only R1", "figure4", _check_eqn5_beats_vis,
    ),
    Claim(
        "lambda-flat", "06", "Accuracy is insensitive to λ over 0.4-2.8",
        "when λ is in the range of 0.4∼2.8 … our model nearly keeps the best performance",
        "Figure 4(c); Influence of parameters", f"R1 spread over the λ1 sweep ≤ {NEAR_BEST_R1:g}", "lambda_sweep",
        _check_lambda,
    ),
    Claim(
        "gamma-flat", "06", "Accuracy is insensitive to γ over 1-7",
        "or γ is in the range of 1∼7, our model nearly keeps the best performance",
        "Figure 4(d); Influence of parameters", f"R1 spread over the γ sweep ≤ {NEAR_BEST_R1:g}", "gamma_sweep",
        _check_gamma,
    ),
    Claim(
        "defaults-near-best", "06", "The paper's λ1 = 2 and γ = 5 are at (or near) the best",
        f"we set λ0, λ1, γ0 and γ1 to {', '.join(f'{v:g}' for v in PAPER_METRIC.values())}, respectively",
        "Implementation Details; Figure 4(c, d)",
        f"st-ReID R1 at the defaults within {NEAR_BEST_R1:g} of the best R1 of both sweeps", "defaults",
        _check_defaults,
    ),
)  # fmt: skip
CLAIMS_BY_ID = {c.id: c for c in CLAIMS}
assert len(CLAIMS_BY_ID) == len(CLAIMS), "claim ids must be unique"
assert PAPER_TABLE3["PCB+ST"] == PAPER_TABLE2["st-ReID"]


def claims_of(notebook: str) -> tuple[Claim, ...]:
    """The claims a notebook checks ("01".."07")."""
    return tuple(c for c in CLAIMS if c.notebook == notebook)


@dataclass(frozen=True)
class ClaimReport:
    """The verdicts of one notebook's claims on one run (printed in the notebook)."""

    notebook: str
    verdicts: tuple[Verdict, ...]

    def __str__(self) -> str:
        if not self.verdicts:
            return f"Notebook {self.notebook} checks no claim of the paper."
        counts = {s: sum(v.status == s for v in self.verdicts) for s in (HELD, NOT_HELD, NOT_COMPUTED)}
        head = f"Claims of the paper checked in notebook {self.notebook}: " + ", ".join(
            f"{n} {s}" for s, n in counts.items()
        )
        return "\n".join([head] + [str(v) for v in self.verdicts])


def check_claims(cfg: StudyConfig, notebook: str, record: bool = True, **results: Any) -> ClaimReport:
    """Check the claims of ``notebook`` on this run's ``results`` and (``record``) store them with the run.

    ``results`` are keyed as the claims' ``needs``: ``splits`` (DatasetSplits), ``visual`` ({model key: summary}),
    ``tables_1_2`` and ``table_3`` ({row: summary or NotComputed}), ``figure4`` ({VIS, ST, VISxST, st-ReID:
    summary}), ``lambda_sweep`` and ``gamma_sweep`` (DataFrames), ``defaults`` ({"rows", "lambda", "gamma"}). A
    claim whose result is not passed is "not computed".
    """
    verdicts = []
    for claim in claims_of(notebook):
        if claim.needs in results:
            status, detail = claim.check(results[claim.needs], cfg)
        else:
            status, detail = NOT_COMPUTED, f"this run has no {claim.needs.replace('_', ' ')} result"
        verdicts.append(Verdict(claim, status, detail))
    report = ClaimReport(notebook, tuple(verdicts))
    if record:
        record_claims(cfg, report)
    return report


# ------------------------------------------------------------------------------------------------------------
# Records and the collected table


def run_label(cfg: StudyConfig) -> str:
    """A run's column heading: dataset, features and profile."""
    what = DATASET_LABELS[cfg.dataset]
    if cfg.features:
        what += ", " + ", ".join(Path(p).name for p in cfg.feature_files.values())
    elif cfg.dataset == "campus":
        what = f"campus ({cfg.campus_preset})"
    return f"{what} [{cfg.profile}]"


def claims_root(cfg: StudyConfig) -> Path:
    """The folder whose ``claims.md`` collects this run's verdicts: the repository's ``figures/`` when the run
    writes inside it, else the run's own figures folder."""
    figs = Path(cfg.figures_dir).resolve()
    root = (REPO_ROOT / "figures").resolve()
    return root if figs == root or root in figs.parents else figs


def record_claims(cfg: StudyConfig, report: ClaimReport) -> None:
    """Store a notebook's verdicts in ``<figures>/claims.json`` and rewrite the collected ``claims.md``."""
    figs = Path(cfg.figures_dir)
    path = figs / CLAIMS_JSON
    run = {"label": run_label(cfg), "dataset": cfg.dataset, "route": cfg.route, "profile": cfg.profile}
    rec = json.loads(path.read_text()) if path.is_file() else {}
    if rec.get("run") != run:
        rec = {"run": run, "claims": {}}
    for v in report.verdicts:
        rec["claims"][v.claim.id] = {"status": v.status, "detail": v.detail}
    rec["claims"] = {c.id: rec["claims"][c.id] for c in CLAIMS if c.id in rec["claims"]}
    write_json_atomic(path, rec)
    root = claims_root(cfg)
    write_text_atomic(root / CLAIMS_MD, render_claims(collect_runs(root)))
    if root != figs.resolve():
        write_text_atomic(figs / CLAIMS_MD, render_claims([rec]))


def collect_runs(root: str | Path) -> list[dict]:
    """The claims records under a figures root: ``root/claims.json`` first, then ``root/*/claims.json`` by name."""
    root = Path(root)
    paths = ([root / CLAIMS_JSON] if (root / CLAIMS_JSON).is_file() else []) + sorted(root.glob(f"*/{CLAIMS_JSON}"))
    return [json.loads(p.read_text()) for p in paths]


def render_claims(runs: list[dict]) -> str:
    """The verdict table (Markdown): one row per claim, one column per run."""
    lines = [
        "# The paper's claims, checked on each run",
        "",
        "Each claim, its quote and its check are described in `docs/claims.md`. A verdict is "
        "computed by the run's notebooks from that run's numbers: **held**, **not held** (with the numbers) or "
        "**not computed** (why).",
        "",
    ]
    if not runs:
        return "\n".join(lines + ["No run has recorded verdicts yet.", ""])
    head = ["claim", "paper"] + [r["run"]["label"] for r in runs]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CLAIMS:
        cells = [f"{c.statement} (nb {c.notebook})", c.where]
        for r in runs:
            v = r["claims"].get(c.id)
            cells.append("—" if v is None else f"**{v['status']}**: {v['detail']}")
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def summary_table(runs: list[dict]) -> str:
    """A short verdict table for the README: claim × run, verdicts only."""
    if not runs:
        return "No run has recorded verdicts yet."
    head = ["claim"] + [r["run"]["label"] for r in runs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CLAIMS:
        cells = [c.statement] + [r["claims"].get(c.id, {}).get("status", "—") for r in runs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
