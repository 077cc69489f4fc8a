"""Notebook 08's glue: st-ReID on your own cameras without identity labels (docs/reference.md §14).

The faithful HP model is fitted on the real labels and on pseudo-identities (training side, query+gallery), ranked,
compared by paired bootstrap and, on the campus, against the true transit densities and camera network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..camera_map import compare_maps, model_edges, truth_edges
from ..campus import hp_distance, mean_hp_distance
from ..improved import prepare_improved
from ..improved.analysis import bootstrap_difference
from ..joint import DEFAULT_METRIC
from ..metadata import Metadata
from ..metrics import RankingProtocol
from ..pseudo import EPS_GRID, PseudoIdentities, diagnostics, improved_guard, refine_with_st
from ..ranking import rank_rows
from ..st_model import SpatialTemporalModel, fit_st_model
from .interpret import features_used
from .outputs import display_or_print, markdown_table, save_figure, say, write_table
from .steps import beyond_features, campus_truth, training_metadata

#: The row of the ST model fitted on the training side's pseudo-identities.
TRAIN_SIDE = "label-free (train side)"
#: The table row of improved mode on the training side's pseudo-identities.
IMPROVED_ROW = "improved, pseudo-identities (spread rule)"
#: The campus row whose ST model is the true transit density (binned and smoothed like the fitted ones).
ORACLE = "true density (campus oracle)"
#: The same behind the label-free guard (:func:`streid_lib.pseudo.improved_guard`): what ``evaluate`` ranks.
GUARDED_ROW = "improved, pseudo-identities, guarded"
#: Targets of issue #19, checked by :func:`verdicts` (R1 in points, TV as a ratio).
TARGETS = {
    "campus_r1_gap": 2.0,
    "campus_tv_ratio": 1.25,
    "duke_r1": 16.0,
    "transductive_gap": 2.0,
    "improved_r1": 3.0,
    "improved_map": 5.0,
}


#: The clustering columns of notebook 08's tables: column → key of the clustering's record.
_CLUSTER = {
    "clusters": "n_clusters",
    "dropped": "n_dropped_inconsistent",
    "eps": "eps_chosen",
    "noise %": "noise_share",
    "ARI": "ari",
    "pair precision": "pair_precision",
    "pair recall": "pair_recall",
}
#: Decimals of the clustering columns in notebook 08's tables.
DECIMALS = {"ARI": 2, "pair precision": 2, "pair recall": 2, "split-half TV": 2, "clusters": 0, "dropped": 0}


@dataclass(frozen=True)
class LabelFreeSizes:
    """How much notebook 08 computes under a profile: the eps grid searched and the bootstrap resamples."""

    eps_grid: tuple[float, ...] = EPS_GRID
    n_boot: int = 2000
    rounds: int = 2
    improved: bool = True


#: Sizes per profile (``paper`` uses the default's; smoke: one eps, no ST round, no improved row: fast on Duke).
LABEL_FREE_SIZES = {
    "smoke": LabelFreeSizes(eps_grid=(0.35,), n_boot=200, rounds=0, improved=False),
    "default": LabelFreeSizes(),
}


@dataclass
class LabelFreeReport:
    """Everything notebook 08 shows; ``table`` and ``differences`` are DataFrames."""

    dataset: str
    table: Any
    differences: Any
    records: dict[str, dict] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    tv: Any = None
    maps: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, dict] = field(default_factory=dict)
    tv_mean: dict[str, float] = field(default_factory=dict)
    refinement: Any = None
    n_cams: int = 0
    truth: Any = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def main(self) -> str:
        """The label-free row the verdicts and the map use: the training side's, else the transductive one."""
        return TRAIN_SIDE if TRAIN_SIDE in self.models else "label-free (transductive)"


def label_free_study(
    fs: Any, dataset: str, *, train: Any = None, truth: Any = None, fps: float = 60.0, sizes=LabelFreeSizes(), seed=0
):
    """Labelled (``fs.train``, else ``train``) vs label-free (train side) vs transductive st-ReID on ``fs``; without
    a training side in ``fs`` the train-side and improved rows are left out. ``truth`` (campus) adds the TV table and
    the camera maps against the true network. Returns a :class:`LabelFreeReport`."""
    routes = {"labelled": (fs.train_f, fs.train if fs.has_train else train)}
    if fs.has_train:
        routes["label-free (train side)"] = routes["labelled"]
    routes["label-free (transductive)"] = (
        np.concatenate([fs.query_f, fs.gallery_f]),
        Metadata.concat([fs.query, fs.gallery]),
    )
    report = LabelFreeReport(dataset, None, None, truth=truth)
    report.n_cams = truth.n_cams if truth is not None else int(max(fs.query.cams.max(), fs.gallery.cams.max()))
    results, rows, train_est = {}, [], None
    for name, (f, meta) in routes.items():
        record: dict[str, Any] = {}
        if name == "labelled":
            train = meta
        else:
            est = PseudoIdentities(eps_grid=sizes.eps_grid, fps=fps).fit(f, meta)
            train_est = est if name == "label-free (train side)" else train_est
            record = {**est.record(), **diagnostics(meta.pids, est.labels_)}
            train = Metadata(est.pids_, meta.cams, meta.frames)
        model = fit_st_model(train, dataset)
        res = rank_rows(fs, model, DEFAULT_METRIC, ("st-ReID",))["st-ReID"]
        results[name], report.models[name], report.records[name] = res, model, record
        rows.append({"ST model": name, **_row(res.summary(), record)})
    if sizes.improved and fs.has_train:  # §14.2: w by the spread rule, then the label-free guard
        train = Metadata(train_est.pids_, fs.train.cams, fs.train.frames)
        guard = improved_guard(train, lambda m: fit_st_model(m, dataset))
        free, bare = report.models[TRAIN_SIDE], fs.without_train()
        scorer = prepare_improved(bare, train, columns=RankingProtocol(bare.gallery).columns, base=free)
        res = rank_rows(bare, free, DEFAULT_METRIC, ("st-ReID",), extra=scorer)["improved"].summary()
        imp = {k: float(res[k]) for k in ("R1", "mAP")}
        rows.append({"ST model": IMPROVED_ROW, **imp})
        kept = imp if guard["use_improved"] else {k: results[TRAIN_SIDE].summary()[k] for k in ("R1", "mAP")}
        rows.append({"ST model": GUARDED_ROW, **kept, "split-half TV": guard["split_half_tv"]})
        report.records[GUARDED_ROW] = guard
    if truth is not None:  # the ceiling of any fitted ST model: the true density, binned and smoothed alike
        model = truth_model(truth, report.models["labelled"])
        results[ORACLE], report.models[ORACLE] = rank_rows(fs, model, DEFAULT_METRIC, ("st-ReID",))["st-ReID"], model
        rows.append({"ST model": ORACLE, **_row(results[ORACLE].summary(), {})})
    report.table = pd.DataFrame(rows).set_index("ST model")
    report.provenance = {"features": fs.provenance, "clustering": report.records}
    if fs.has_train:
        report.refinement = _refinement(fs, dataset, train_est, sizes, rows[1])
    diffs = []
    for name in [n for n in results if n != "labelled"]:  # the label-free routes, then the true density
        d = bootstrap_difference(
            results["labelled"], results[name], n_boot=sizes.n_boot, seed=seed, metrics=("R1", "mAP"), ids=fs.query.pids
        )
        d.index = [f"{name} − labelled, {m}" for m in d.pop("metric")]
        diffs.append(d)
    report.differences = pd.concat(diffs)
    report.differences.index.name = "difference (95 % paired bootstrap over query identities)"
    if truth is not None:
        report.tv_mean = {name: mean_hp_distance(m, truth) for name, m in report.models.items()}
        report.tv = pd.DataFrame({name: hp_distance(m, truth) for name, m in report.models.items()})
        report.tv.index = [f"{a}→{b}" for a, b in report.tv.index]
        report.tv.index.name = "pair (later→earlier)"
        report.maps["truth"] = truth_edges(truth, report.models["labelled"].bin_width)
    for name, m in report.models.items():
        if name == ORACLE:  # no counts to draw; the truth's own map is report.maps["truth"]
            continue
        report.maps[name] = model_edges(m, fps)
        if truth is not None:
            report.comparison[name] = compare_maps(report.maps[name], report.maps["truth"])
    return report


def truth_model(truth: Any, like: SpatialTemporalModel) -> SpatialTemporalModel:
    """An HP model whose distribution is the campus ``truth``'s density at ``like``'s bins, cameras and smoothing."""
    p = like.get_params()
    D = np.zeros((p["n_cams"], p["n_cams"], p["n_bins"]))
    D[: truth.n_cams, : truth.n_cams] = truth.density(p["bin_width"], p["n_bins"])
    return SpatialTemporalModel.from_distribution(
        D, **{k: p[k] for k in ("bin_width", "sigma", "truncate", "overflow")}
    )


def _row(summary: Any, record: dict) -> dict:
    """R1 and mAP of a summary, and the clustering columns of a record (NaN where there is no clustering)."""
    row = {"R1": summary["R1"], "mAP": summary["mAP"]} | {c: record.get(k, np.nan) for c, k in _CLUSTER.items()}
    row["noise %"] = 100 * row["noise %"]
    return row


def _refinement(fs: Any, dataset: str, est: Any, sizes: LabelFreeSizes, first: dict) -> Any:
    """Round 0 (``first``: the train-side row) and each ST re-clustering round
    (:func:`streid_lib.pseudo.refine_with_st`, updating the clustering ``est`` in place)."""
    keys = ("R1", "mAP", "clusters", "dropped", "noise %", "ARI", "pair precision", "pair recall")
    rows = [{"round": 0, **{k: first[k] for k in keys}}]
    for r in range(sizes.rounds):
        rec = refine_with_st(est, fs.train_f, fs.train, lambda m: fit_st_model(m, dataset), rounds=1)[0]
        model = fit_st_model(Metadata(est.pids_, fs.train.cams, fs.train.frames), dataset)
        s = rank_rows(fs, model, DEFAULT_METRIC, ("st-ReID",))["st-ReID"].summary()
        row = _row(s, {**rec, **diagnostics(fs.train.pids, est.labels_)})
        rows.append({"round": r + 1, **{k: row[k] for k in keys}})
    return pd.DataFrame(rows).set_index("round")


def run(cfg: Any) -> LabelFreeReport:
    """Notebook 08's study on the run ``cfg``: the features of notebook 07 (:func:`~.steps.beyond_features`), the
    campus truth if any, 60 fps (Duke and the campus), the labelled training metadata when the features carry no
    training side, and the sizes of the profile; shows the computed sentences."""
    fs, truth = beyond_features(cfg), campus_truth(cfg)
    fps = truth.fps if truth is not None else 60.0
    train = None if fs.has_train else training_metadata(cfg)
    sizes = LABEL_FREE_SIZES.get(cfg.profile, LABEL_FREE_SIZES["default"])
    report = label_free_study(fs, cfg.dataset, train=train, truth=truth, fps=fps, sizes=sizes, seed=cfg.seed)
    say(describe_label_free(report), cfg=cfg)
    return report


def _write(report: LabelFreeReport, cfg: Any, df: Any, name: str, title: str, decimals: dict) -> None:
    """Write and show one of notebook 08's tables, its title ending with the features it ran on."""
    title = f"{title}; {features_used(cfg, cfg.route.beyond)}"
    write_table(df, name, cfg, title=title, decimals=decimals, **report.provenance)


def show_rows(report: LabelFreeReport, cfg: Any) -> None:
    """Write and show ``label_free_rows`` and ``label_free_differences``."""
    title = "st-ReID with labelled and label-free ST models"
    _write(report, cfg, report.table, "label_free_rows", title, {"eps": 2, **DECIMALS})
    title = "Each ST model minus labelled (percentage points)"
    _write(report, cfg, report.differences, "label_free_differences", title, {"p_boot": 3})


def show_rounds(report: LabelFreeReport, cfg: Any) -> None:
    """Write and show ``label_free_rounds`` (the ST re-clustering rounds), or say why there are none."""
    if report.refinement is None:
        say("The features carry no training side, so there are no train-side pseudo-identities to re-cluster.")
        return
    title = "Train-side pseudo-identities re-clustered with ST evidence, per round"
    _write(report, cfg, report.refinement, "label_free_rounds", title, DECIMALS)
    if len(report.refinement) == 1:
        n = LABEL_FREE_SIZES["default"].rounds
        say(f"The {cfg.profile} profile runs no re-clustering round; the default profile runs {n}.")


def show_map(report: LabelFreeReport, cfg: Any) -> None:
    """Draw the camera maps (the truth, else the labelled model, beside the label-free one) and write
    ``label_free_camera_map`` and the table ``label_free_edges``."""
    from .. import plots

    left = "truth" if report.truth is not None else "labelled"
    maps = [report.maps[left], report.maps[report.main]]
    title = f"Camera network; {features_used(cfg, cfg.route.beyond)}"
    fig = plots.camera_maps(maps, [left, report.main], report.n_cams, title=title)
    save_figure(fig, "label_free_camera_map", cfg, **report.provenance)
    edges = report.maps[report.main].set_index(["cam_a", "cam_b"])
    edges.index = [f"{a}–{b}" for a, b in edges.index]
    edges.index.name = "cameras"
    _write(report, cfg, edges, "label_free_edges", f"Camera-network edges of the {report.main} model", {"share": 3})


def show_truth(report: LabelFreeReport, cfg: Any) -> None:
    """Campus: write and show ``label_free_map_vs_truth`` (edge precision, recall and transit-time error of each
    model's camera map against the truth) and ``label_free_tv``; elsewhere say why not."""
    if report.truth is None:
        say(f"{cfg.run_label} has no ground-truth transit densities, so this step is the campus' only.")
        return
    keys = ("precision", "recall", "n_estimated", "n_true", "mean_abs_transit_error_s")
    maps = pd.DataFrame({n: {k: c[k] for k in keys} for n, c in report.comparison.items()}).T
    _write(report, cfg, maps, "label_free_map_vs_truth", "Camera maps against the true network",
           {"precision": 2, "recall": 2})  # fmt: skip
    title = "TV distance to the true transit density per camera pair"
    _write(report, cfg, report.tv, "label_free_tv", title, dict.fromkeys(report.tv.columns, 3))


class Verdicts:
    """:func:`verdicts` as a notebook shows them: a Markdown table with a plain-text twin (what nbval compares)."""

    def __init__(self, report: LabelFreeReport) -> None:
        self.rows = verdicts(report)

    def _repr_markdown_(self) -> str:
        return markdown_table(["claim", "measured", "verdict"], [[c, m, f"**{v}**"] for c, m, v in self.rows])

    def __repr__(self) -> str:
        return "\n".join(f"{v.upper():8} {c}: {m}" for c, m, v in self.rows)


def show_verdicts(report: LabelFreeReport) -> None:
    """Show :class:`Verdicts` in a notebook, else print them."""
    display_or_print(Verdicts(report))


def verdicts(report: LabelFreeReport) -> list[tuple[str, str, str]]:
    """(claim, measured, verdict) of the issue's targets that this dataset can check, computed from the run."""
    t, d, main, T = report.table, report.differences, report.main, TARGETS
    row = d.loc[f"{main} − labelled, R1"]
    g, lo, hi = float(row["diff"]), float(row["ci_low"]), float(row["ci_high"])
    if report.dataset == "campus":
        limit, tv = T["campus_r1_gap"], report.tv_mean
        ratio = tv[main] / tv["labelled"]
        out = [
            (
                f"{main} st-ReID within {limit:g} R1 of labelled",
                f"{g:+.2f} R1 (95 % CI {lo:+.1f} to {hi:+.1f})",
                g >= -limit,
            ),
            (
                f"{main} mean TV ≤ {T['campus_tv_ratio']:g}× labelled",
                f"{tv[main]:.3f} vs {tv['labelled']:.3f} ({ratio:.2f}×; the true density's floor "
                f"{tv.get(ORACLE, float('nan')):.3f})",
                ratio <= T["campus_tv_ratio"],
            ),
        ]
    else:
        r1 = float(t.loc[main, "R1"])
        measured = f"{r1:.2f} R1 (labelled {float(t.loc['labelled', 'R1']):.1f}; {g:+.1f}, CI {lo:+.1f} to {hi:+.1f})"
        out = [(f"{main} st-ReID ≥ {T['duke_r1']:g} R1", measured, r1 >= T["duke_r1"])]
    if main == TRAIN_SIDE:
        tr = float(t.loc["label-free (transductive)", "R1"]) - float(t.loc[TRAIN_SIDE, "R1"])
        claim = f"transductive within {T['transductive_gap']:g} R1 of label-free (train side)"
        out.append((claim, f"{tr:+.2f} R1", tr >= -T["transductive_gap"]))
    if GUARDED_ROW in t.index:
        imp, free, guard = t.loc[GUARDED_ROW], t.loc[TRAIN_SIDE], report.records[GUARDED_ROW]
        dr, dm = float(imp["R1"] - free["R1"]), float(imp["mAP"] - free["mAP"])
        raw = float(t.loc[IMPROVED_ROW, "R1"] - free["R1"])
        used = "improved fusion" if guard["use_improved"] else "faithful fusion"
        out += [
            (
                "improved on pseudo-identities (guarded) never below label-free faithful",
                f"{dr:+.2f} R1, {dm:+.2f} mAP (split-half TV {guard['split_half_tv']:.2f}: {used}; unguarded "
                f"{raw:+.2f} R1)",
                dr >= 0 and dm >= 0,
            ),
            (
                f"improved on pseudo-identities (guarded) ≥ label-free faithful + {T['improved_r1']:g} R1 and "
                f"+ {T['improved_map']:g} mAP",
                f"{dr:+.2f} R1, {dm:+.2f} mAP",
                dr >= T["improved_r1"] and dm >= T["improved_map"],
            ),
        ]
    return [(claim, measured, "met" if met else "not met") for claim, measured, met in out]


def verdicts_markdown(report: LabelFreeReport) -> str:
    """The verdicts as a Markdown table."""
    return Verdicts(report)._repr_markdown_()


def describe_label_free(report: LabelFreeReport) -> str:
    """Computed sentences on the three ST models of ``report``."""
    t = report.table
    lab, trans = t.loc["labelled"], t.loc["label-free (transductive)"]
    text = ""
    if TRAIN_SIDE in t.index:
        free, rec = t.loc[TRAIN_SIDE], report.records[TRAIN_SIDE]
        text = (
            f"Fitted on pseudo-identities of the training side ({rec['n_clusters']} clusters at eps "
            f"{rec['eps_chosen']:g}, "
            f"{100 * rec['noise_share']:.0f} % noise, adjusted Rand index {rec['ari']:.2f} against the hidden labels), "
            f"the HP model gives st-ReID {free['R1']:.1f} R1 / {free['mAP']:.1f} mAP. "
        )
    text += (
        f"With the real labels it gives {lab['R1']:.1f} R1 / {lab['mAP']:.1f} mAP. Clustering the unlabelled query "
        f"and gallery themselves (transductive) gives {trans['R1']:.1f} R1 / {trans['mAP']:.1f} mAP."
    )
    if IMPROVED_ROW in t.index:
        imp, guard = t.loc[IMPROVED_ROW], report.records[GUARDED_ROW]
        text += (
            f" Improved mode on the same pseudo-identities, its weight set by the spread rule, gives "
            f"{imp['R1']:.1f} R1 / {imp['mAP']:.1f} mAP; the label-free guard measures a split-half TV of "
            f"{guard['split_half_tv']:.2f} for their ST density and "
            + ("keeps the improved fusion." if guard["use_improved"] else "falls back to the faithful fusion.")
        )
    if ORACLE in t.index:
        o, d = t.loc[ORACLE], report.differences.loc[f"{ORACLE} − labelled, R1"]
        text += (
            f" The true transit density itself, binned and smoothed like the fitted models, gives {o['R1']:.1f} R1 / "
            f"{o['mAP']:.1f} mAP ({d['diff']:+.1f} R1 against the labelled model, 95 % CI {d['ci_low']:+.1f} to "
            f"{d['ci_high']:+.1f}) at a mean TV of {report.tv_mean[ORACLE]:.3f}, the floor that binning and smoothing "
            "leave."
        )
    if report.comparison:
        c = report.comparison[report.main]
        text += (
            f" The {report.main} camera map finds {c['n_estimated']} edges against {c['n_true']} true ones "
            f"(precision {c['precision']:.2f}, recall {c['recall']:.2f}), with modal transit times off by "
            f"{c['mean_abs_transit_error_s']:.1f} s on average on the shared edges."
        )
    return text
