"""What each ingredient brings (ablations), and whether a difference is more than noise: paired bootstraps over
query identities (:func:`streid_lib.uncertainty.cluster_means`), family-wise for the noise check (§12.1)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..features import FeatureSet
from ..joint import DEFAULT_METRIC, normalize_rows
from ..metadata import Metadata
from ..ranking import rank_rows
from ..st_model import SpatialTemporalModel
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
