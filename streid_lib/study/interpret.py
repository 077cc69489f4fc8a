"""Computed interpretation: every sentence a notebook states about its results is rendered here from the numbers
(what they are, which rows are best, how much a sweep moves, what was not computed); judging against the paper is
:mod:`.claims`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .config import StudyConfig
from .steps import NotComputed, main_features, missing_reason, splits_source


def describe_splits(cfg: StudyConfig, splits: Any) -> str:
    """Images, identities and cameras of each split, junk (id −1) and distractors (id 0) of the gallery."""
    parts = []
    for name in ("train", "gallery", "query"):
        meta = getattr(splits, name)
        ids = int(np.unique(meta.pids[meta.pids > 0]).size)
        parts.append(f"{name} {len(meta):,} images of {ids:,} identities over {np.unique(meta.cams).size} cameras")
    g = splits.gallery
    return (
        f"Read from {splits_source(cfg)}: " + "; ".join(parts) + f". The gallery holds {int((g.pids == -1).sum()):,} "
        f"junk (id −1) and {int((g.pids == 0).sum()):,} distractor (id 0) images."
    )


def _range(rows: dict[str, Any], metric: str, label=lambda k: k) -> str:
    vals = {k: float(v[metric]) for k, v in rows.items() if not isinstance(v, NotComputed)}
    if not vals:
        return f"no {metric} was computed"
    lo, hi = min(vals, key=vals.get), max(vals, key=vals.get)
    if lo == hi:
        return f"{metric} {vals[hi]:.1f} ({label(hi)})"
    return f"{metric} ranges from {vals[lo]:.1f} ({label(lo)}) to {vals[hi]:.1f} ({label(hi)})"


def describe_visual(rows: dict[str, Any], cfg: StudyConfig) -> str:
    """How the visual-only rows compare: the R1 and mAP ranges with the streams at each end (named as ``cfg``'s
    features are, :meth:`StudyConfig.model_label`)."""
    return f"Visual stream only: {_range(rows, 'R1', cfg.model_label)}; {_range(rows, 'mAP', cfg.model_label)}."


def describe_st_fit(st: Any) -> str:
    """What the HP model was fitted on."""
    over = st.n_overflow_votes_ or 0
    total = (st.n_votes_ or 0) + over
    share = f" ({100.0 * over / total:.1f} %)" if total else ""
    return (
        f"The HP model was fitted on {st.n_identities_:,} training identities: {st.n_votes_:,} votes in "
        f"{st.n_bins:,} bins of {st.bin_width} frames over {st.n_cams} cameras; {over:,} votes{share} fell beyond "
        "the last bin."
    )


def describe_sensitivity(sens: Any) -> str:
    """The σ and bin-width sweeps: the R1 range of each, and where the HP estimate is closest to the truth."""
    out = []
    for sweep, col, symbol, unit in (
        ("sigma", "sigma", "σ", " bins"),
        ("bin width", "bin_width", "bin width", " frames"),
    ):
        df = sens[sens.sweep == sweep]
        if len(df) == 0:
            continue
        lo, hi = df.loc[df["R1"].idxmin()], df.loc[df["R1"].idxmax()]
        values = f"{symbol} = {', '.join(f'{v:g}' for v in df[col])}{unit}"
        if len(df) == 1:
            text = f"At {values}, st-ReID R1 is {hi['R1']:.1f}"
        elif lo["R1"] == hi["R1"]:
            text = f"Over {values}, st-ReID R1 is {hi['R1']:.1f} at every value"
        else:
            text = (
                f"Over {values}, st-ReID R1 ranges from {lo['R1']:.1f} ({symbol} = {lo[col]:g}) to {hi['R1']:.1f} "
                f"({symbol} = {hi[col]:g})"
            )
        if "TV" in df and df["TV"].notna().any() and len(df) > 1:
            best = df.loc[df["TV"].idxmin()]
            text += f"; the HP estimate is closest to the truth at {symbol} = {best[col]:g} (TV {best['TV']:.3f})"
        out.append(text + ".")
    return " ".join(out)


def describe_differences(rows: dict[str, Any], pairs: list[tuple[str, str]]) -> str:
    """``b − a`` in R1 and mAP for each pair whose both rows were computed."""
    ok = {k for k, v in rows.items() if not isinstance(v, NotComputed)}
    out = [
        f"{b} − {a}: " + ", ".join(f"{m} {float(rows[b][m]) - float(rows[a][m]):+.1f}" for m in ("R1", "mAP"))
        for a, b in pairs
        if {a, b} <= ok
    ]
    return ("In this run: " + "; ".join(out) + ".") if out else ""


def sweep_best(df: Any, column: str, metric: str = "R1") -> tuple[list[float], bool]:
    """The values of ``column`` where ``metric`` is at its maximum (all tied ones), and whether one is an edge."""
    best = df[metric].max()
    values = [float(v) for v in df.loc[df[metric] == best, column]]
    edges = (float(df[column].min()), float(df[column].max()))
    return values, any(v in edges for v in values)


def describe_sweep(df: Any, column: str, symbol: str) -> str:
    """R1 and mAP ranges over a sweep, with every value where each is best (ties named), and a warning when the
    best sits at an edge of the swept range (the maximum may lie outside)."""
    parts = []
    lo_edge, hi_edge = float(df[column].min()), float(df[column].max())
    for metric in ("R1", "mAP"):
        lo = df.loc[df[metric].idxmin()]
        best, edge = sweep_best(df, column, metric)
        where = ", ".join(f"{v:g}" for v in best)
        tie = f" (tied at {len(best)} values)" if len(best) > 1 else ""
        text = (
            f"{metric} ranges from {lo[metric]:.1f} to {df[metric].max():.1f} over {symbol} = {lo_edge:g}–{hi_edge:g} "
            f"(best at {symbol} = {where}{tie})"
        )
        if edge:
            text += ": best at the edge of the range, the maximum may lie outside"
        parts.append(text)
    return "; ".join(parts) + "."


def not_computed(cfg: StudyConfig, notebook: str) -> str:
    """One sentence: what this notebook could not compute in this run, and why (or that it computed everything)."""
    gaps: list[str] = []
    models = {"02": cfg.route.streams, "04": ("pcb", "pcb_re"), "05": ("resnet50", "densenet121", "pcb")}
    for key in models.get(notebook, ()):
        if key not in cfg.route.available:
            gaps.append(f"{cfg.model_label(key)} ({missing_reason(cfg, key)})")
    if notebook == "01" and not cfg.route.has_images:
        gaps.append("the example crops (no images in a features-only run; a list of example entries stands in)")
    if notebook == "03" and not cfg.route.campus:
        gaps.append("the true transit densities and the TV distances (ground truth exists on the campus only)")
    if notebook == "06" or (notebook == "07" and not cfg.route.trains):  # the main stream: PCB, else a stand-in
        key, fs = main_features(cfg)
        what = "Figure 4" if notebook == "06" else "improved mode"
        if key != "pcb":
            gaps.append(f"{what} on PCB ({missing_reason(cfg, 'pcb')}; {cfg.model_label(key)} is used instead)")
        if notebook == "06" and not (cfg.route.has_images and fs.query.names is not None):
            gaps.append(
                "Figure 1 as pictures (no images, or no image names in the features file; a text list stands in)"
            )
        if notebook == "07" and not fs.has_train:
            gaps.append(
                f"a fusion weight calibrated on training features ({Path(cfg.feature_files[key]).name} has no "
                "training side; the spread rule sets the weight)"
            )
    if not gaps:
        return "Everything in this notebook was computed in this run."
    last = gaps.pop()
    return "Not computed in this run: " + ", ".join(gaps) + (" and " if gaps else "") + last + "."


def features_used(cfg: StudyConfig, key: str) -> str:
    """Which features a figure or table of this run is computed on, in words, with what ran
    (:attr:`StudyConfig.run_label`)."""
    if key == "colour":
        what = "colour-histogram features"
    elif key in cfg.feature_files:
        what = f"{cfg.model_label(key)}: the features file {Path(cfg.feature_files[key]).name}"
    else:
        what = f"{cfg.model_label(key)} features trained in this run"
    return f"{what}; {cfg.run_label}"
