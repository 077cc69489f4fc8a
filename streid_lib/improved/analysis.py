"""What each ingredient brings (ablations), and whether a difference is more than noise: paired bootstraps over
query identities (:func:`streid_lib.uncertainty.cluster_means`), family-wise for the noise check (§12.1). Notebook
07's "beyond the paper" report: :func:`beyond_the_paper` computes its tables from one FeatureSet;
:func:`report_tables`, :func:`describe_inputs` and :func:`interpretation` render them and sentences from the numbers.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..features import FeatureSet
from ..joint import DEFAULT_METRIC, normalize_rows
from ..metadata import Metadata
from ..ranking import rank_rows
from ..st_model import SpatialTemporalModel, fit_st_model
from ..uncertainty import cluster_means, interval
from .calibration import score_spread
from .config import COUNTINGS, DEFAULT_W, RERANK_SOURCES, ImprovedError, SelectionConfig
from .likelihood import LikelihoodRatioModel
from .scoring import RERANK_ROW, ROW, fit_improved, improved_results, resolve_training, st_params_from

#: Per-query quantities of the bootstrap, in percent: rank-1 hit, AP, INP, and the selection's criterion.
BOOT_METRICS: tuple[str, ...] = ("R1", "mAP", "mINP", "R1+mAP")


def _per_query(result: Any, metric: str) -> np.ndarray:
    hit, ap = (result.first_hit == 0).astype(np.float64), np.asarray(result.ap, np.float64)
    return {"R1": hit, "mAP": ap, "mINP": np.asarray(result.inp, np.float64), "R1+mAP": hit + ap}[metric]


def bootstrap_difference(
    result_a: Any,
    result_b: Any,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    metrics: Sequence[str] = ("R1", "mAP", "mINP"),
    *,
    ids: np.ndarray | None = None,
) -> Any:
    """Paired bootstrap of ``b - a`` (percentage points) over the clusters ``ids`` (nq,) of the same queries (None:
    each query its own): DataFrame of metric, a, b, diff, ci_low, ci_high (percentile interval at ``level``), p_boot
    (share of resamples on the other side of 0, doubled, at most 1), n_boot."""
    import pandas as pd

    if len(result_a.ap) != len(result_b.ap) or not np.array_equal(result_a.n_good, result_b.n_good):
        raise ImprovedError(
            f"bootstrap_difference: the results cover different queries ({len(result_a.ap)} vs {len(result_b.ap)} "
            "queries, or other good-item counts); compare results of the same query set"
        )
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1) or not 0 < level < 1:
        raise ImprovedError(f"n_boot >= 1 and 0 < level < 1 expected, got n_boot={n_boot!r}, level={level!r}")
    if any(m not in BOOT_METRICS for m in metrics):
        raise ImprovedError(f"metrics: expected a selection of {BOOT_METRICS}, got {tuple(metrics)}")
    nq = len(result_a.ap)
    ids = np.arange(nq) if ids is None else np.asarray(ids)
    if len(ids) != nq:
        raise ImprovedError(f"bootstrap_difference: ids: expected one identity per query ({nq}), got {len(ids)}")
    rows = []
    for metric in metrics:
        a, b = _per_query(result_a, metric), _per_query(result_b, metric)
        d = b - a
        boot = 100.0 * cluster_means(d, ids, int(n_boot), int(seed))[:, 0]
        diff = 100.0 * float(d.mean())
        other = float(np.mean(boot <= 0)) if diff > 0 else float(np.mean(boot >= 0)) if diff < 0 else 1.0
        a_b = (100.0 * float(a.mean()), 100.0 * float(b.mean()))
        rows.append((metric, *a_b, diff, *interval(boot, level), min(1.0, 2.0 * other), int(n_boot)))
    return pd.DataFrame(rows, columns=["metric", "a", "b", "diff", "ci_low", "ci_high", "p_boot", "n_boot"])


def noise_check(
    results: dict[str, Any], reference: str, variants: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
    level: float = 0.95, ids: np.ndarray | None = None,
) -> Any:  # fmt: skip
    """Per variant: diff, ci_low, ci_high of (variant - reference) in R1+mAP at the Bonferroni level
    ``1 - (1 - level)/k`` (k variants), and beats_beyond_noise (``ci_low > 0``)."""
    import pandas as pd

    family = 1.0 - (1.0 - level) / max(len(variants), 1)
    recs = {}
    for v in variants:
        b = bootstrap_difference(results[reference], results[v], n_boot, seed, family, ("R1+mAP",), ids=ids).iloc[0]
        recs[v] = {"diff": b["diff"], "ci_low": b["ci_low"], "ci_high": b["ci_high"],
                   "beats_beyond_noise": bool(b["ci_low"] > 0)}  # fmt: skip
    return pd.DataFrame.from_dict(recs, orient="index")


#: The ablation table, its RankingResults, the chosen :class:`ImprovedModel`, the faithful model, the weight used
#: and improved+re-rank's source, b and β (None without re-ranking).
Ablations = namedtuple("Ablations", "table results fitted faithful w_effective rerank")


def ablation_table(
    fs: FeatureSet,
    train: Metadata | None = None,
    *,
    faithful: SpatialTemporalModel | None = None,
    rerank: bool = False,
    config: SelectionConfig | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> Ablations:
    """Faithful vs improved on ``fs`` and each variant that changes one thing of the chosen model (counting rule,
    switches, smoothing, σ, weight, ST alone; with ``rerank`` the re-ranked rows). Test labels only evaluate: the model
    comes from training identities. ``table``: variant, ingredient, R1, R5, mAP, mINP, dR1, dmAP (vs faithful) and
    the noise check against the chosen row (d_crit, ci_low, ci_high, beats_beyond_noise)."""
    import pandas as pd

    from ..rerank import VARIANTS, rerank_results

    train, train_features, _ = resolve_training(fs, train)
    if faithful is None:  # faithful's defaults, n_cams at least the training's
        faithful = SpatialTemporalModel(n_cams=max(8, train.n_cams)).fit(train)
    fitted = fit_improved(train, train_features, config=config, rerank=rerank, st_params=st_params_from(faithful))
    # VIS and faithful st-ReID; with ``rerank`` VIS+re-rank, faithful+re-rank and the other joint re-ranking variants.
    plain = fs.without_train()
    res = rank_rows(plain, faithful, DEFAULT_METRIC, ("VIS", "st-ReID"), 256, 1)
    results = {"VIS": res["VIS"], "faithful": res["st-ReID"]}
    ingredient = {"VIS": "visual only", "faithful": "paper/code joint metric (σ=50)"}
    if rerank:
        rr = rerank_results(plain, faithful, DEFAULT_METRIC, VARIANTS, visual=True, progress=False)
        results["VIS+re-rank"], results["faithful+re-rank"] = rr.pop("VIS+re-rank"), rr.pop("faithful")
        results.update({f"re-rank variant {k}": v for k, v in rr.items()})
        ingredient.update({"VIS+re-rank": "re-rank the visual distance, no ST",
                           "faithful+re-rank": "re-rank the joint score (docs/reference.md §6)"})  # fmt: skip
    lr, choice = fitted.likelihood_ratio, fitted.choice
    w_eff = float(choice.w) * (_cosine_spread(fs) if choice.w_source == "spread" else 1.0)
    # The variants: (name, ingredient, likelihood-ratio model or None, weight or None), scored in one pass.
    specs: list[tuple[str, str, Any, float | None]] = []
    p = lr.get_params()
    for c in COUNTINGS:
        if c != lr.counting:
            other = LikelihoodRatioModel(**{**p, "counting": c}).fit(train)
            specs.append((f"counting={c}", "counting rule", other, None))
    labels = {"direction_prior": "direction prior", "pair_prior": "camera-pair prior"}
    for sw, label in labels.items():
        on = bool(getattr(lr, sw))
        specs.append((f"{label} {'off' if on else 'on'}", label, lr.with_params(**{sw: not on}), None))
    name = "likelihood (no background)" if lr.background else "likelihood ratio (background)"
    specs.append((name, "likelihood ratio vs likelihood", lr.with_params(background=not lr.background), None))
    if lr.across_zero:
        specs.append(("per-direction smoothing", "smoothing across Δt=0", lr.with_params(across_zero=False), None))
    for sg in choice.protocol.get("sigmas", SelectionConfig().sigmas):
        if float(sg) != float(lr.sigma):
            specs.append((f"σ={float(sg):g}", "bandwidth σ (bins)", lr.with_params(sigma=float(sg)), None))
    if choice.w_source == "calibrated" and choice.w_scale not in (None, 1.0):
        specs.append(("w = logistic weight (m=1)", "validated multiplier of the logistic weight", None,
                      w_eff / choice.w_scale))  # fmt: skip
    specs.append(("w=1", "fusion weight (uncalibrated Bayes)", None, 1.0))
    if choice.w_source != "spread":
        specs.append(
            ("w by spread rule", "fusion weight without training features", None, DEFAULT_W * _cosine_spread(fs))
        )
    specs.append(("ST evidence only", "fusion (no visual)", None, 1e6))  # ranking by logLR; s only breaks ties
    info: dict[str, Any] = {}
    variants = {name: (model, w) for name, _, model, w in specs}
    main = improved_results(fs, fitted, rerank, variants=variants, info=info)
    results[ROW] = main.pop(ROW)
    ingredient[ROW] = (f"chosen: {lr.counting}, σ={lr.sigma:g}, "
                       + ", ".join(f"{k}={'on' if getattr(lr, k) else 'off'}" for k in
                                   ("direction_prior", "pair_prior", "background"))
                       + f", w={w_eff:.4g} ({choice.w_source})")  # fmt: skip
    for name, what, _, _ in specs:
        results[name], ingredient[name] = main[name], what
    names = [name for name, *_ in specs]
    rr_variants: list[str] = []
    if rerank:
        chosen_rr = info["rerank"]
        results[RERANK_ROW] = main[RERANK_ROW]
        ingredient[RERANK_ROW] = f"chosen: neighbours of the {chosen_rr['source']} score, b={chosen_rr['b']:g}"
        for src in RERANK_SOURCES:
            if src != chosen_rr["source"]:
                name = f"re-rank, {src} neighbours"
                rp = {"source": src, "b": chosen_rr["b"], "beta": chosen_rr["beta"]}
                results[name] = improved_results(fs, fitted, True, rerank_params=rp)[RERANK_ROW]
                ingredient[name] = "k-reciprocal neighbours from the other score (same β)"
                rr_variants.append(name)
    table_rows = [n for n in results if not n.startswith("re-rank variant ")]
    base = results["faithful"].summary()
    df = pd.DataFrame([results[n].summary() for n in table_rows])[["R1", "R5", "mAP", "mINP"]]
    df.insert(0, "variant", table_rows)
    df.insert(1, "ingredient", [ingredient[n] for n in table_rows])
    df["dR1"], df["dmAP"] = df["R1"] - base["R1"], df["mAP"] - base["mAP"]
    boot = {"n_boot": n_boot, "seed": seed, "ids": fs.query.pids}
    checks = [noise_check(results, ROW, names, **boot)]
    if rr_variants:
        checks.append(noise_check(results, RERANK_ROW, rr_variants, **boot))
    noise = pd.concat(checks).rename(columns={"diff": "d_crit"})
    df = df.merge(noise, left_on="variant", right_index=True, how="left")
    return Ablations(df, results, fitted, faithful, w_eff, info.get("rerank"))


def _cosine_spread(fs: FeatureSet) -> float:
    return score_spread(qn=normalize_rows(fs.query_f), gnT=normalize_rows(fs.gallery_f).T)


# -- notebook 07's report ----------------------------------------------------------------------------------------

#: Targets of the improved mode (percentage points): (name, row, reference row, metric, minimum difference).
TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    ("improved ≥ faithful + 6 R1", ROW, "faithful", "R1", 6.0),
    ("improved ≥ faithful + 12 mAP", ROW, "faithful", "mAP", 12.0),
    ("improved+re-rank ≥ improved − 0.5 R1", RERANK_ROW, ROW, "R1", -0.5),
    ("improved+re-rank ≥ improved + 2 mAP", RERANK_ROW, ROW, "mAP", 2.0),
)
#: The same without training features (the spread rule): improved beats faithful, re-ranking costs ≤ 1 R1.
TARGETS_NO_TRAIN: tuple[tuple[str, str, str, str, float], ...] = (
    ("improved > faithful (R1), no training features", ROW, "faithful", "R1", 1e-9),
    ("improved > faithful (mAP), no training features", ROW, "faithful", "mAP", 1e-9),
    ("improved+re-rank ≥ improved − 1 R1, no training features", RERANK_ROW, ROW, "R1", -1.0),
)
NO_TRAIN = " (no training features)"


#: The notebook's tables (DataFrames): ``summary`` (per method, with the bootstrap difference to faithful),
#: ``ablations``, ``comparisons`` (paired bootstraps), ``targets``, the selection's ``validation`` (its re-ranking
#: candidates in ``attrs["rerank"]``), ``rerank_variants`` of faithful st-ReID; the ``choice`` and ``details``.
BeyondReport = namedtuple(
    "BeyondReport", "summary ablations comparisons targets validation rerank_variants choice details"
)


def beyond_the_paper(
    fs: FeatureSet,
    *,
    dataset: str,
    train: Metadata | None = None,
    config: SelectionConfig | None = None,
    rerank: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
) -> BeyondReport:
    """Faithful vs improved (and improved+re-rank) on ``fs`` with ablations and paired bootstraps (``n_boot``,
    ``seed``); with a training side (calibration) the spread-rule rows are added. ``dataset``: the faithful model's
    bins; ``train``: training metadata (default ``fs.train``); ``config``: the selection's search."""
    import pandas as pd

    from ..rerank import VARIANTS

    train = fs.train if train is None else train
    if train is None:
        raise ImprovedError("beyond_the_paper: the features have no training side; give the training metadata (train=)")
    faithful = fit_st_model(train, dataset)
    n_boot = int(n_boot)
    abl = ablation_table(fs, train, faithful=faithful, rerank=rerank, config=config, n_boot=n_boot, seed=seed)
    results = dict(abl.results)
    main = ["VIS", "faithful", ROW] + (["VIS+re-rank", "faithful+re-rank", RERANK_ROW] if rerank else [])
    details: dict[str, Any] = {
        "features": _features_label(fs.provenance),
        "n_query": len(fs.query), "n_gallery": len(fs.gallery), "n_train": len(train),
        "train_features": fs.has_train, "n_boot": n_boot, "w_effective": abl.w_effective, "rerank": abl.rerank,
    }  # fmt: skip
    if fs.has_train:
        plain = fs.without_train()
        spread = fit_improved(train, None, config=config, rerank=rerank, st_params=st_params_from(faithful))
        info: dict[str, Any] = {}
        for row, res in improved_results(plain, spread, rerank, info=info).items():
            results[row + NO_TRAIN] = res
            main.append(row + NO_TRAIN)
        details["no_train"] = {"choice": spread.choice.as_dict(), **info}
    rows, ids = [], fs.query.pids
    for name in main:
        sm = results[name].summary()
        rec = {"method": name, "R1": sm["R1"], "R5": sm["R5"], "mAP": sm["mAP"], "mINP": sm["mINP"]}
        if name != "faithful":
            b = bootstrap_difference(results["faithful"], results[name], n_boot, seed, ids=ids).set_index("metric")
            for m in ("R1", "mAP"):
                rec[f"d{m} vs faithful"] = b.loc[m, "diff"]
                rec[f"d{m} 95% CI"] = f"[{b.loc[m, 'ci_low']:+.1f}, {b.loc[m, 'ci_high']:+.1f}]"
        rows.append(rec)
    summary = pd.DataFrame(rows).set_index("method")
    pairs = [(ROW, "faithful")] + ([(RERANK_ROW, ROW), (RERANK_ROW, "faithful+re-rank")] if rerank else [])
    if fs.has_train:
        pairs += [(ROW + NO_TRAIN, "faithful")] + ([(RERANK_ROW + NO_TRAIN, ROW + NO_TRAIN)] if rerank else [])
    comp = []
    for b_name, a_name in pairs:
        df = bootstrap_difference(results[a_name], results[b_name], n_boot, seed, ids=ids)
        comp.append(df.assign(comparison=f"{b_name} − {a_name}"))
    comparisons = pd.concat(comp, ignore_index=True).set_index(["comparison", "metric"])
    targets = _targets(results, with_train=fs.has_train)
    variants = None
    if rerank:  # the joint re-ranking variants (streid_lib.rerank.VARIANTS) beside st-ReID and VIS+re-rank
        names = {"st-ReID": "faithful", "VIS+re-rank": "VIS+re-rank", "faithful": "faithful+re-rank"}
        names.update({v: f"re-rank variant {v}" for v in VARIANTS if v != "faithful"})
        variants = pd.DataFrame({k: results[v].summary() for k, v in names.items()}).T.rename_axis("variant")
        variants = variants[["R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"]]
    choice = abl.fitted.choice.as_dict()
    return BeyondReport(summary, abl.table, comparisons, targets, abl.fitted.validation, variants, choice, details)


def _features_label(prov: dict) -> str:
    """A short name of the features from their provenance ("DukeMTMC-reID, <model> features", ...)."""
    if prov.get("features") == "colour_histogram":
        return "colour-histogram features"
    if prov.get("model"):
        dataset = str(prov.get("dataset", "")).split(" (")[0]
        return f"{dataset + ', ' if dataset else ''}{prov['model']} features"
    source = prov.get("features_file") or prov.get("source") or prov.get("features")
    return f"features {Path(str(source)).name}" if source else "the features"


def _targets(results: dict[str, Any], with_train: bool) -> Any:
    """Each target whose rows exist: measured difference (percentage points), threshold, met."""
    import pandas as pd

    recs = []
    groups = [(TARGETS, "")] if with_train else []
    groups.append((TARGETS_NO_TRAIN, NO_TRAIN if with_train else ""))
    for targets, suffix in groups:
        for name, row, ref, metric, minimum in targets:
            row_k = row + suffix
            ref_k = ref if ref == "faithful" else ref + suffix
            if row_k not in results or ref_k not in results:
                continue
            d = results[row_k].summary()[metric] - results[ref_k].summary()[metric]
            recs.append({"target": name, "difference": d, "threshold": minimum, "met": bool(d >= minimum)})
    return pd.DataFrame(recs).set_index("target") if recs else pd.DataFrame(columns=["difference", "met"])


#: One table as the notebook writes it: name, title, frame, decimals of the columns that need more than one.
ReportTable = namedtuple("ReportTable", "name title frame decimals", defaults=(None,))


#: Readable names of the summary's, ablations' and validation's columns (differences in percentage points).
_COLUMNS = {
    "dR1 vs faithful": "R1 − faithful",
    "dR1 95% CI": "R1 − faithful, 95 % interval",
    "dmAP vs faithful": "mAP − faithful",
    "dmAP 95% CI": "mAP − faithful, 95 % interval",
    "dR1": "R1 − faithful",
    "dmAP": "mAP − faithful",
    "d_crit": "R1+mAP − chosen",
    "ci_low": "R1+mAP − chosen, low",
    "ci_high": "R1+mAP − chosen, high",
    "beats_beyond_noise": "beats the chosen row beyond noise",
    "R1_sd": "R1 sd over folds",
    "mAP_sd": "mAP sd over folds",
    "gain_vs_chosen": "criterion − chosen",
    "se_vs_chosen": "its standard error",
}
_BOOTSTRAP_COLUMNS = {
    "a": "A (reference row)",
    "b": "B (compared row)",
    "diff": "B − A",
    "ci_low": "B − A, 95 % low",
    "ci_high": "B − A, 95 % high",
    "p_boot": "p (bootstrap, two-sided)",
    "n_boot": "resamples",
}


def report_tables(report: BeyondReport) -> list[ReportTable]:
    """The report's tables in the notebook's order, with readable column names, for
    :func:`streid_lib.study.write_table`."""
    n_boot = report.details.get("n_boot")
    crit = f"family-wise 95 % interval of rank-1 + mAP against the chosen row ({n_boot} resamples)"
    boot = report.comparisons.reset_index().set_index("comparison").rename(columns=_BOOTSTRAP_COLUMNS)
    boot.index.name = "comparison (B − A)"
    boot["resamples"] = boot["resamples"].astype(int)
    out = [
        ReportTable(
            "beyond_summary",
            "Faithful vs improved (percent; differences vs faithful with 95 % paired-bootstrap intervals)",
            report.summary.rename(columns=_COLUMNS),
        ),
        ReportTable(
            "beyond_ablation",
            f"Improved mode: ablations (percent; the noise check is the {crit})",
            report.ablations.set_index("variant").rename(columns=_COLUMNS),
        ),
        ReportTable(
            "beyond_bootstrap",
            "Paired bootstrap over query identities: B − A in percentage points with its 95 % percentile interval; p "
            f"is the share of resamples on the other side of 0, doubled (0.000: none of the {n_boot} was)",
            boot,
            {"p (bootstrap, two-sided)": 3},
        ),
        ReportTable(
            "beyond_targets",
            "Targets of the improved mode (percentage points)",
            report.targets.rename(columns={"difference": "measured difference", "threshold": "minimum"}),
        ),
    ]
    if report.validation is not None:
        out.append(
            ReportTable(
                "beyond_validation",
                "Selection on training identities: validation rank-1 and mAP (percent, mean over folds)",
                report.validation.set_index("stage").rename(columns=_COLUMNS),
                {"w": 3},
            )
        )
    if report.rerank_variants is not None:
        out.append(
            ReportTable("rerank_variants", "Re-ranking variants for joint scores (percent)", report.rerank_variants)
        )
    return out


def describe_inputs(report: BeyondReport) -> str:
    """What the report was computed on: features, set sizes, and where the fusion weight came from."""
    d = report.details
    if d["train_features"]:
        weight = "the fusion weight is calibrated on the training side's features"
    else:
        weight = "the features have no training side, so the spread rule sets the fusion weight"
    return (
        f"Computed on {d['features']}: {d['n_query']:,} queries against {d['n_gallery']:,} gallery images; the ST "
        f"evidence is fitted on {d['n_train']:,} training images; {weight}."
    )


def _ci(comparisons: Any, comparison: str, metric: str) -> tuple[float, float, float]:
    row = comparisons.loc[(comparison, metric)]
    return float(row["diff"]), float(row["ci_low"]), float(row["ci_high"])


def _noise_word(lo: float, hi: float) -> str:
    return "beyond query-sampling noise" if lo > 0 or hi < 0 else "within query-sampling noise"


def interpretation(report: BeyondReport) -> list[str]:
    """The notebook's reading of the report, one sentence per item, every figure taken from the report."""
    s, c, ch, out = report.summary, report.comparisons, report.choice, []
    f, i = s.loc["faithful"], s.loc[ROW]
    d, lo, hi = _ci(c, f"{ROW} − faithful", "mAP")
    d1, lo1, hi1 = _ci(c, f"{ROW} − faithful", "R1")
    src = "calibrated on the training side" if ch["w_source"] == "calibrated" else "set by the spread rule"
    out.append(
        f"On {report.details['features']} ({report.details['n_query']:,} queries), improved mode reaches rank-1 "
        f"{i['R1']:.1f} and mAP {i['mAP']:.1f} against faithful st-ReID's {f['R1']:.1f} and {f['mAP']:.1f}: "
        f"{d1:+.1f} rank-1 (95 % interval {lo1:+.1f} to {hi1:+.1f}), {_noise_word(lo1, hi1)}, and {d:+.1f} mAP "
        f"({lo:+.1f} to {hi:+.1f}), {_noise_word(lo, hi)}."
    )
    switches = [k.replace("_", " ") for k in ("direction_prior", "pair_prior") if ch[k]]
    out.append(
        f"On {ch['protocol']['n_folds']} folds of training identities the selection chose the {ch['counting']} "
        f"counting rule, σ = {ch['sigma']:g} bins, "
        + (f"the {' and '.join(switches)}, " if switches else "neither prior, ")
        + ("the likelihood ratio" if ch["background"] else "the likelihood without background")
        + f", and a fusion weight {src} (w = {report.details['w_effective']:.3g})."
    )
    abl = report.ablations
    checked = abl[abl["beats_beyond_noise"].notna()]
    beats = checked[checked["beats_beyond_noise"].astype(bool)]
    if len(beats):
        listed = ", ".join(f"{v} ({x:+.1f})" for v, x in zip(beats["variant"], beats["d_crit"], strict=True))
        out.append(
            f"{len(beats)} of {len(checked)} ablation rows beat the chosen row beyond noise (paired bootstrap of "
            f"rank-1 + mAP, family-wise 95 %): {listed}."
        )
    else:
        worst = checked.loc[checked["d_crit"].idxmax()] if len(checked) else None
        closest = (
            f"; the closest is {worst['variant']} ({worst['d_crit']:+.1f} rank-1 + mAP)" if worst is not None else ""
        )
        out.append(
            f"None of the {len(checked)} ablation rows beats the chosen row beyond noise (paired bootstrap of rank-1 "
            f"+ mAP, family-wise 95 %){closest}."
        )
    variants = abl[abl["variant"].isin(checked["variant"]) & (abl["variant"] != "ST evidence only")]
    if len(variants):
        loss = variants.loc[variants["mAP"].idxmin()]
        dm = loss["mAP"] - i["mAP"]
        out.append(
            f"The ingredient that matters most here is the {loss['ingredient']}: '{loss['variant']}' costs "
            f"{-dm:.1f} mAP against the chosen row."
            if dm < 0
            else f"No single change of the chosen row lowers its mAP here (the lowest variant, '{loss['variant']}', "
            f"is {dm:+.1f})."
        )
    if RERANK_ROW in s.index:
        r = s.loc[RERANK_ROW]
        dr1, lor, hir = _ci(c, f"{RERANK_ROW} − {ROW}", "R1")
        drm, lom, him = _ci(c, f"{RERANK_ROW} − {ROW}", "mAP")
        rr = report.details.get("rerank") or {}
        fr = s.loc["faithful+re-rank"]
        out.append(
            f"improved+re-rank (neighbours of the {rr.get('source', '?')} score, b = {rr.get('b', float('nan')):g}) "
            f"reaches {r['R1']:.1f} / {r['mAP']:.1f}: {dr1:+.1f} rank-1 ({lor:+.1f} to {hir:+.1f}) and {drm:+.1f} mAP "
            f"({lom:+.1f} to {him:+.1f}) against improved, while faithful re-ranking moves st-ReID by "
            f"{fr['R1'] - f['R1']:+.1f} rank-1 and {fr['mAP'] - f['mAP']:+.1f} mAP."
        )
    if ROW + NO_TRAIN in s.index:
        n = s.loc[ROW + NO_TRAIN]
        out.append(
            f"Without training features (the weight by the spread rule) improved reaches {n['R1']:.1f} / "
            f"{n['mAP']:.1f}, {n['R1'] - i['R1']:+.1f} rank-1 and {n['mAP'] - i['mAP']:+.1f} mAP against the "
            f"calibrated row."
        )
    rv = report.rerank_variants
    if rv is not None:
        out.append(
            "Re-ranking faithful joint scores: "
            + "; ".join(f"the best {m} is {rv[m].idxmax()} ({rv[m].max():.1f})" for m in ("R1", "mAP"))
            + f", against st-ReID's {rv.loc['st-ReID', 'R1']:.1f} / {rv.loc['st-ReID', 'mAP']:.1f} without re-ranking."
        )
    t = report.targets
    if len(t):
        met, missed = t[t["met"]], t[~t["met"]]
        listed = ", ".join(f"{k} (measured {v:+.1f})" for k, v in zip(missed.index, missed["difference"], strict=True))
        out.append(f"Targets met: {len(met)} of {len(t)}" + (f"; not met: {listed}." if len(missed) else "."))
    return out
