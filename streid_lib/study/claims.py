"""The paper's claims, each checked on every run: **held**, **not held**, **inconclusive** or **not computed** (why).

:data:`CLAIMS` lists them; docs/claims.md gives each quote, check and threshold (the paper's words, or our constants
below with their reasons). :func:`check_claims` checks a notebook's claims from the statistics of its rows' 95 %
bootstrap intervals (:mod:`streid_lib.uncertainty`) and records them in ``<figures>/claims.json`` and ``claims.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import find_peaks

from .._io import write_json_atomic, write_text_atomic
from ..uncertainty import HELD, INCONCLUSIVE, NOT_HELD, Estimate, RowSummary, combine, difference, estimate
from .config import MODEL_LABELS, REPO_ROOT, StudyConfig
from .interpret import sweep_best
from .outputs import markdown_table, relative_paths
from .paper import (
    PAPER_FIGURE4_R1,
    PAPER_GAMMA_RANGE,
    PAPER_LAMBDA_RANGE,
    PAPER_SPLITS,
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE3,
)
from .steps import NotComputed

NOT_COMPUTED = "not computed"
#: "Nearly keeps the best performance" (Figure 4c/d): the R1 spread of a sweep is at most this (our choice: below
#: the smallest difference the paper calls an improvement, 3.1 R1 points in Figure 4b).
NEAR_BEST_R1 = 2.0
#: "The VIS stream plays a key role" (Figure 4a): removing it loses more than this share (%) of st-ReID's R1 (our
#: choice: most of it; the paper's drop is 88.5 of 94.0, 94 %).
KEY_ROLE_SHARE = 50.0
#: "More than 10% improvement" (Table 3): the lift must exceed this many points (the paper's number).
ST_LIFT = 10.0
#: "Reaches the paper's numbers": R1 and mAP within this many points of the paper's row (our choice).
PAPER_MATCH = 1.0
#: "Several peaks" (Figure 2b): local maxima of the smoothed camera 1 → camera 6 distribution whose prominence is at
#: least this share of its highest value (our choice: ignores the ripples of the Parzen-smoothed histogram).
PEAK_PROMINENCE = 0.1
CLAIMS_JSON = "claims.json"
CLAIMS_MD = "claims.md"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: the notebook that checks it, our statement, the paper's place, the result it ``needs``
    (a keyword of :func:`check_claims`) and ``check(result, cfg) -> (verdict, detail)``. Its quote and the check in
    words: its row in docs/claims.md (tests/test_claims.py)."""

    id: str
    notebook: str
    statement: str
    where: str
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


def _missing(rows: dict[str, Any], names: list[str]) -> str | None:
    """The reason the first of ``names`` without numbers was not computed (None when all have numbers)."""
    for n in names:
        if n not in rows:
            return f"{n} was not evaluated"
        if isinstance(rows[n], NotComputed):
            return f"{MODEL_LABELS.get(n, n)} {rows[n]}"  # not computed: no features, so no stand-in to name
    return None


def _stand_in(cfg: StudyConfig, key: str = "pcb") -> str:
    """ " (rows on <features>)" when the run's ``key`` features are a stand-in (empty for the real model)."""
    label = cfg.model_label(key)
    return "" if label == MODEL_LABELS.get(key, key) else f" (rows on {label})"


def _no_intervals(names: list[str]) -> tuple[str, str]:
    return NOT_COMPUTED, f"{', '.join(names)} carry no per-query results (no interval can be computed)"


def _compare(rows: dict[str, Any], pairs: list[tuple[str, str, str, float]]) -> tuple[str, str]:
    """Paired differences ``b − a > threshold`` for ``(a, b, metric, threshold)``: (combined verdict, their texts)."""
    statuses, texts = [], []
    for a, b, metric, threshold in pairs:
        est = difference(rows[a], rows[b], metric, threshold)
        if est is None:
            return _no_intervals([a, b])
        statuses.append(est.status)
        texts.append(f"{metric} {b} − {a} {est.text()}".replace("VISxST", "VIS×ST"))
    return combine(statuses), "; ".join(texts)


def _paired(
    rows: dict[str, Any], cfg: StudyConfig, pairs: list, tail: str, names: list | None = None, stand_in: bool = True
) -> tuple[str, str]:
    """:func:`_compare` of ``pairs`` once every row of ``names`` (default: the pairs' rows) has numbers, followed by
    the stand-in note (:func:`_stand_in`, when ``stand_in``) and ``tail`` (the paper's numbers)."""
    why = _missing(rows, names or list(dict.fromkeys(n for p in pairs for n in p[:2])))
    if why:
        return NOT_COMPUTED, why
    status, text = _compare(rows, pairs)
    return status, text + (_stand_in(cfg) if stand_in else "") + tail


def _paper_gain(base: str, new: str, column: int) -> str:
    """The paper's gain of row ``new`` over ``base`` in Tables 1 and 2 (column 0 = R1, 3 = mAP), as text."""
    return " / ".join(f"{t[new][column] - t[base][column]:+.1f}" for t in (PAPER_TABLE1, PAPER_TABLE2))


# ------------------------------------------------------------------------------------------------------------
# Checks: (result, cfg) -> (verdict, detail). Each reads only what its claim names.


def _check_splits(splits: Any, cfg: StudyConfig) -> tuple[str, str]:
    if cfg.dataset not in PAPER_SPLITS:
        return NOT_COMPUTED, f"the run is on {cfg.dataset_label}, not one of the paper's datasets"
    want = PAPER_SPLITS[cfg.dataset]
    got = {side: len(getattr(splits, side)) for side in ("train", "gallery", "query")}
    got["train_ids"] = len({int(p) for p in splits.train.pids if p > 0})
    diff = [f"{k} {got[k]:,} (paper {want[k]:,})" for k in want if got[k] != want[k]]
    if diff:
        return NOT_HELD, "counted exactly: " + "; ".join(diff)
    return HELD, (
        f"counted exactly: train {got['train']:,} of {got['train_ids']} ids, gallery {got['gallery']:,}, "
        f"query {got['query']:,}"
    )


def _check_visual_order(visual: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    keys = ["resnet50", "densenet121", "pcb"]
    if why := _missing(visual, keys):
        return NOT_COMPUTED, why
    rn, dn, pcb = (cfg.model_label(k) for k in keys)
    rows = {cfg.model_label(k): visual[k] for k in keys}
    return _paired(rows, cfg, [(dn, pcb, "R1", 0.0), (rn, dn, "R1", 0.0)], " (paper: +4.5, +2.4)", stand_in=False)


def _check_intro_gains(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    paper = {"market": PAPER_TABLE1, "duke": PAPER_TABLE2}.get(cfg.dataset)
    if paper is None:
        return NOT_COMPUTED, f"the run is on {cfg.dataset_label}; the paper's gains are on its two datasets"
    gain = paper["st-ReID+RE"][0] - paper["PCB(*)"][0]
    tail = f"; the paper's gain on {cfg.dataset_label}: {gain:+.1f}"
    return _paired(rows, cfg, [("PCB(*)", "st-ReID+RE", "R1", gain - PAPER_MATCH)], tail)


def _check_rerank(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    for base, ranked in (("st-ReID+RE", "st-ReID+RE+re-rank"), ("st-ReID", "st-ReID+re-rank")):
        if _missing(rows, [base, ranked]) is None:
            break
    else:
        return NOT_COMPUTED, _missing(rows, ["st-ReID+RE", "st-ReID+RE+re-rank"]) or "no re-ranked row"
    status, text = _compare(rows, [(base, ranked, "mAP", 0.0)])
    r1 = difference(rows[base], rows[ranked], "R1")
    r1_text = f"; R1 {r1.text()} (not tested)" if r1 is not None else ""
    paper = _paper_gain("st-ReID+RE", "st-ReID+RE+re-rank", 3)
    return status, f"{text}{r1_text}{_stand_in(cfg)} (paper mAP {paper})"


def _within(row: Any, metric: str, target: float) -> Estimate | None:
    """Whether ``metric`` of ``row`` lies within :data:`PAPER_MATCH` of ``target`` (statistic: margin left)."""
    return estimate([row], metric, lambda m: PAPER_MATCH - np.abs(m[:, 0] - target))


def _check_reaches_paper(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    paper = {"market": PAPER_TABLE1, "duke": PAPER_TABLE2}.get(cfg.dataset)
    if paper is None:
        return NOT_COMPUTED, f"the run is on {cfg.dataset_label}; the paper reports Market-1501 and DukeMTMC-reID"
    if why := _missing(rows, ["st-ReID"]):
        return NOT_COMPUTED, why
    ests = {m: _within(rows["st-ReID"], m, paper["st-ReID"][c]) for m, c in (("R1", 0), ("mAP", 3))}
    if any(e is None for e in ests.values()):
        return _no_intervals(["st-ReID"])
    texts = [
        f"{m} {float(rows['st-ReID'][m]):.1f} (paper {paper['st-ReID'][c]}; margin {e.text()})"
        for (m, e), c in zip(ests.items(), (0, 3))
    ]
    return combine([e.status for e in ests.values()]), "st-ReID " + ", ".join(texts) + _stand_in(cfg)


_TABLE3_PAIRS = {"resnet50": ("ResNet50 baseline", "ResNet50+ST"), "densenet121": ("DenseNet121 baseline",
    "DenseNet121+ST"), "pcb": ("PCB(*)", "PCB+ST")}  # fmt: skip


def _table3_lifts(rows: dict[str, Any], cfg: StudyConfig, metric: str, column: int) -> tuple[str, str]:
    statuses, texts, missing = [], [], []
    for key, (vis, st) in _TABLE3_PAIRS.items():
        if _missing(rows, [vis, st]) is not None:
            missing.append(cfg.model_label(key))
            continue
        est = difference(rows[vis], rows[st], metric, ST_LIFT)
        if est is None:
            return _no_intervals([vis, st])
        statuses.append(est.status)
        paper = PAPER_TABLE3[st][column] - PAPER_TABLE3[vis][column]
        texts.append(f"{cfg.model_label(key)} {est.text()} (paper {paper:+.1f})")
    if not statuses:
        return NOT_COMPUTED, _missing(rows, list(_TABLE3_PAIRS["pcb"])) or "no visual stream was evaluated"
    text = f"{metric} lift of +ST: " + ", ".join(texts) + (f"; not computed: {', '.join(missing)}" if missing else "")
    return combine(statuses), text


def _check_st_alone_weak(rows: dict[str, Any], cfg: StudyConfig) -> tuple[str, str]:
    if why := _missing(rows, ["ST", "st-ReID"]):
        return NOT_COMPUTED, why
    share = estimate(
        [rows["ST"], rows["st-ReID"]], "R1", lambda m: 100.0 * (1.0 - m[:, 0] / np.maximum(m[:, 1], 1e-12)),
        KEY_ROLE_SHARE,
    )  # fmt: skip
    if share is None:
        return _no_intervals(["ST", "st-ReID"])
    p = PAPER_FIGURE4_R1
    text = (
        f"R1 st-ReID {float(rows['st-ReID']['R1']):.1f} → ST {float(rows['ST']['R1']):.1f}: "
        f"{share.value:.1f} % of st-ReID's R1 lost [{share.lo:.1f}, {share.hi:.1f}] "
        f"(paper {p['st-ReID']} → {p['ST']}: {100 * (1 - p['ST'] / p['st-ReID']):.1f} %)"
    )
    return share.status, text


def _fig4_beats(better: str, worse: str) -> Callable[[Any, StudyConfig], tuple[str, str]]:
    """The check of the paired R1 difference ``better − worse > 0`` (Figure 4 rows), the paper's R1 beside ours."""
    tail = f" (paper {PAPER_FIGURE4_R1[better] - PAPER_FIGURE4_R1[worse]:+.1f})"
    return partial(_paired, pairs=[(worse, better, "R1", 0.0)], tail=tail, stand_in=False)


def _sweep_check(df: Any, cfg: StudyConfig, column: str, span: tuple[float, float], symbol: str) -> tuple[str, str]:
    if df is None or len(df) < 2:
        return NOT_COMPUTED, f"the {symbol} sweep needs at least two values"
    lo, hi = float(df[column].min()), float(df[column].max())
    if lo > span[0] + 1e-9 or hi < span[1] - 1e-9:
        return NOT_COMPUTED, f"the sweep covers {symbol} {lo:g}–{hi:g}, not the paper's {span[0]:g}–{span[1]:g}"
    pqs = df.attrs.get("per_query")
    if not pqs or any(p is None for p in pqs):
        return NOT_COMPUTED, f"the {symbol} sweep carries no per-query results (no interval can be computed)"
    rows = [RowSummary({"R1": float(r)}, pq) for r, pq in zip(df["R1"], pqs)]
    est = estimate(rows, "R1", lambda m: NEAR_BEST_R1 - (m.max(axis=1) - m.min(axis=1)))
    best, edge = sweep_best(df, column)
    spread = NEAR_BEST_R1 - est.value
    text = (
        f"R1 spread {spread:.1f} [{NEAR_BEST_R1 - est.hi:.1f}, {NEAR_BEST_R1 - est.lo:.1f}] over {len(df)} values "
        f"of {symbol} (from {df['R1'].min():.1f} to {df['R1'].max():.1f}; best at {symbol} = "
        f"{', '.join(f'{v:g}' for v in best)}{', at the edge of the range' if edge else ''})"
    )
    return est.status, text


def _check_peaks(st: Any, cfg: StudyConfig) -> tuple[str, str]:
    if cfg.dataset != "duke":
        return NOT_COMPUTED, f"the run is on {cfg.dataset_label}; Figure 2(b) is about DukeMTMC-reID's cameras"
    if st.n_cams < 6:
        return NOT_COMPUTED, f"the ST model has {st.n_cams} cameras; camera 6 is needed"
    # The paper does not say which way "from Camera 1 to Camera 6" is read: the direction with more votes is used.
    votes = {d: float(st.counts_[d].sum()) if st.counts_ is not None else 0.0 for d in ((5, 0), (0, 5))}
    later, first = max(votes, key=votes.get)
    p = np.asarray(st.smoothed_[later, first], np.float64)
    if not p.max() > 0:
        return NOT_HELD, "no training identity went between camera 1 and camera 6"

    def count(x: np.ndarray) -> np.ndarray:
        return find_peaks(np.concatenate([[0.0], x, [0.0]]), prominence=PEAK_PROMINENCE * x.max())[0] - 1

    peaks, raw = count(p), count(np.asarray(st.distribution_[later, first], np.float64))
    frames = ", ".join(f"{(k + 0.5) * st.bin_width:,.0f}" for k in peaks)
    text = (
        f"{len(peaks)} peak{'s' * (len(peaks) != 1)} of prominence ≥ {PEAK_PROMINENCE:.0%} of the maximum in the "
        f"smoothed camera {first + 1} → camera {later + 1} distribution (σ = {st.sigma:g} bins; "
        f"{votes[(later, first)]:,.0f} votes), at Δt ≈ {frames} frames; the unsmoothed histogram has {len(raw)} "
        "(a count on the fitted estimate: no interval)"
    )
    return (HELD if len(peaks) >= 2 else NOT_HELD), text


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "splits", "01", "The dataset has the standard split sizes",
        "Experiments, Datasets (Market-1501: 12,936 / 19,732 / 3,368 images)", "splits", _check_splits,
    ),
    Claim(
        "fig2b-peaks", "03", "The camera 1 → camera 6 time gaps have several peaks",
        "Introduction; Figure 2(b)", "st_model", _check_peaks,
    ),
    Claim(
        "visual-order", "02", "PCB is the strongest visual baseline, DenseNet-121 beats ResNet-50",
        "Table 3 (R1)", "visual", _check_visual_order,
    ),
    Claim(
        "st-lifts-pcb", "04", "st-ReID with RE improves on its PCB baseline",
        "Introduction (contributions) and Conclusion", "tables_1_2",
        partial(_paired, pairs=[("PCB(*)", "st-ReID+RE", "R1", 0.0)],
                tail=f" (paper, Market-1501 / DukeMTMC-reID: {_paper_gain('PCB(*)', 'st-ReID+RE', 0)})"),
    ),
    Claim(
        "intro-gains", "04", "The ST information lifts R1 by 6.9 (Market-1501) and 10.6 (DukeMTMC-reID) points",
        "Introduction", "tables_1_2", _check_intro_gains,
    ),
    Claim(
        "re-helps", "04", "Random erasing helps st-ReID",
        "Evaluations on Market-1501; Tables 1-2", "tables_1_2",
        partial(_paired, pairs=[("st-ReID", "st-ReID+RE", m, 0.0) for m in ("R1", "mAP")], tail=(
            f" (paper R1 {_paper_gain('st-ReID', 'st-ReID+RE', 0)}, mAP {_paper_gain('st-ReID', 'st-ReID+RE', 3)})")),
    ),
    Claim(
        "rerank", "04", "Re-ranking raises mAP",
        "Evaluations on Market-1501; Tables 1-2", "tables_1_2", _check_rerank,
    ),
    Claim(
        "paper-numbers", "04", "st-ReID reaches the paper's numbers on the dataset that ran",
        "Tables 1-2, st-ReID row", "tables_1_2", _check_reaches_paper,
    ),
    Claim(
        "st-lift-10", "05", "The ST stream lifts every visual stream by more than 10 R1",
        "Generalization of the st-ReID; Table 3 (R1); Figure 4(a) for PCB", "table_3",
        partial(_table3_lifts, metric="R1", column=0),
    ),
    Claim(
        "st-lift-map", "05", "The ST stream lifts every visual stream by more than 10 mAP",
        "Table 3 (mAP)", "table_3", partial(_table3_lifts, metric="mAP", column=3),
    ),
    Claim(
        "st-order", "05", "With the ST stream the order stays PCB > DenseNet-121 > ResNet-50",
        "Table 3 (R1)", "table_3",
        partial(_paired, pairs=[("DenseNet121+ST", "PCB+ST", "R1", 0.0), ("ResNet50+ST", "DenseNet121+ST", "R1", 0.0)],
                tail=" (paper: +3.2, +3.1)", names=["ResNet50+ST", "DenseNet121+ST", "PCB+ST"]),
    ),
    Claim(
        "st-alone-weak", "06", "ST alone is weak: the visual stream plays the key role",
        "Figure 4(a); Effect of the visual feature stream", "figure4", _check_st_alone_weak,
    ),
    Claim(
        "ls-beats-eqn5", "06", "Logistic smoothing beats the Eqn. 5 product",
        "Figure 4(b); Effectiveness of the joint metric", "figure4", _fig4_beats("st-ReID", "VISxST"),
    ),
    Claim(
        "eqn5-beats-vis", "06", "Even the Eqn. 5 product improves on the visual stream",
        "Figure 4(b); Effectiveness of the joint metric", "figure4", _fig4_beats("VISxST", "VIS"),
    ),
    Claim(
        "lambda-flat", "06", "Accuracy is insensitive to λ over 0.4-2.8",
        "Figure 4(c); Influence of parameters", "lambda_sweep",
        partial(_sweep_check, column="lambda1", span=PAPER_LAMBDA_RANGE, symbol="λ1"),
    ),
    Claim(
        "gamma-flat", "06", "Accuracy is insensitive to γ over 1-7",
        "Figure 4(d); Influence of parameters", "gamma_sweep",
        partial(_sweep_check, column="gamma", span=PAPER_GAMMA_RANGE, symbol="γ"),
    ),
)  # fmt: skip
assert PAPER_TABLE3["PCB+ST"] == PAPER_TABLE2["st-ReID"]


@dataclass(frozen=True)
class ClaimReport:
    """The verdicts of one notebook's claims on one run (shown in the notebook as Markdown, else printed)."""

    notebook: str
    verdicts: tuple[Verdict, ...]
    #: What ran (:attr:`StudyConfig.run_label`): dataset, visual features, number of queries.
    run: str = ""

    def __str__(self) -> str:
        if not self.verdicts:
            return f"Notebook {self.notebook} checks no claim of the paper."
        counts = {s: sum(v.status == s for v in self.verdicts) for s in (HELD, NOT_HELD, INCONCLUSIVE, NOT_COMPUTED)}
        on = f" on {self.run}" if self.run else ""
        head = f"Claims of the paper checked in notebook {self.notebook}{on}: " + ", ".join(
            f"{n} {s}" for s, n in counts.items() if n
        )
        return "\n".join([head] + [str(v) for v in self.verdicts])

    def __repr__(self) -> str:
        return relative_paths(str(self))

    def _repr_markdown_(self) -> str:
        """The verdicts as a notebook shows them: a Markdown table (the plain-text twin, what nbval compares: repr)."""
        if not self.verdicts:
            return f"Notebook {self.notebook} checks no claim of the paper."
        counts = Counter(v.status for v in self.verdicts)
        head = f"**Claims of the paper checked in notebook {self.notebook}:** " + ", ".join(
            f"{n} {s}" for s, n in counts.items()
        )
        rows = [
            [_md(v.claim.statement), _md(v.claim.where), f"**{_md(v.status)}**", _md(v.detail)] for v in self.verdicts
        ]
        return f"{head}\n\n" + markdown_table(["claim", "where", "verdict", "detail"], rows)


def _md(text: Any) -> str:
    """One cell of a Markdown table: on one line, ``|`` escaped, paths relative."""
    return relative_paths(str(text)).replace("|", "\\|").replace("\n", " ")


def check_claims(cfg: StudyConfig, notebook: str, record: bool = True, **results: Any) -> ClaimReport:
    """Check the claims of ``notebook`` on this run's ``results`` (keyed as the claims' ``needs``: ``splits``,
    ``visual``, ``tables_1_2``, ``table_3``, ``figure4``, ``lambda_sweep``, ``gamma_sweep``) and (``record``) store
    them with the run. A claim whose result is not passed is "not computed"."""
    verdicts = []
    for claim in (c for c in CLAIMS if c.notebook == notebook):
        if claim.needs in results:
            status, detail = claim.check(results[claim.needs], cfg)
        else:
            status, detail = NOT_COMPUTED, f"this run has no {claim.needs.replace('_', ' ')} result"
        verdicts.append(Verdict(claim, status, detail))
    report = ClaimReport(notebook, tuple(verdicts), run_label(cfg))
    if record:
        record_claims(cfg, report)
    return report


# ------------------------------------------------------------------------------------------------------------
# Records and the collected table


def run_label(cfg: StudyConfig) -> str:
    """A run's column heading: dataset, visual features, number of queries and profile."""
    preset = f" {cfg.campus_preset}" if cfg.route.campus else ""
    return f"{cfg.run_label} [{cfg.profile}{preset}]"


def record_claims(cfg: StudyConfig, report: ClaimReport) -> None:
    """Store a notebook's verdicts in ``<figures>/claims.json`` and rewrite the collected ``claims.md``: the
    repository's ``figures/claims.md`` when the run writes inside ``figures/``, else the run's own."""
    figs = Path(cfg.figures_dir)
    path = figs / CLAIMS_JSON
    run = {"label": run_label(cfg), "dataset": cfg.dataset, "route": cfg.route.name, "profile": cfg.profile}
    rec = json.loads(path.read_text()) if path.is_file() else {}
    if rec.get("run") != run:
        rec = {"run": run, "claims": {}}
    for v in report.verdicts:
        rec["claims"][v.claim.id] = {"status": v.status, "detail": v.detail}
    rec["claims"] = {c.id: rec["claims"][c.id] for c in CLAIMS if c.id in rec["claims"]}
    write_json_atomic(path, rec)
    here, repo = figs.resolve(), (REPO_ROOT / "figures").resolve()
    root = repo if here == repo or repo in here.parents else here
    write_text_atomic(root / CLAIMS_MD, render_claims(collect_runs(root)))
    if root != here:
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
        "computed by the run's notebooks from that run's numbers, with 95 % intervals (bootstrap over query "
        "identities): **held** (the interval lies beyond the claim's threshold), **not held** (it lies on the "
        "other side), **inconclusive** (it straddles the threshold) or **not computed** (why).",
        "",
    ]
    if not runs:
        return "\n".join(lines + ["No run has recorded verdicts yet.", ""])
    head = ["claim", "paper"] + [r["run"]["label"] for r in runs]
    rows = []
    for c in CLAIMS:
        vs = [r["claims"].get(c.id) for r in runs]
        cells = [f"{c.statement} (nb {c.notebook})", c.where]
        cells += ["—" if v is None else f"**{v['status']}**: {v['detail']}" for v in vs]
        rows.append([x.replace("|", "\\|") for x in cells])
    return "\n".join(lines) + "\n" + markdown_table(head, rows) + "\n"


def summary_table(runs: list[dict]) -> str:
    """A short verdict table for the README: claim × run, verdicts only."""
    if not runs:
        return "No run has recorded verdicts yet."
    head = ["claim"] + [r["run"]["label"] for r in runs]
    return markdown_table(
        head, [[c.statement] + [r["claims"].get(c.id, {}).get("status", "—") for r in runs] for c in CLAIMS]
    )
