"""Figures of the study (matplotlib/seaborn): each function takes computed arrays and returns a Figure; nothing
is computed here beyond what a plot needs (bin centres, axis limits)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metadata import Metadata

#: Colours of Figure 1's frames.
MATCH_COLOURS = {"true match": "tab:green", "other identity": "tab:red"}


#: Widest figure, inches: 940 px at the 100 dpi a notebook shows, inside JupyterLab's 968-px column.
MAX_WIDTH_IN = 9.4
#: Smallest text, points (tested on every figure: tests/test_plots.py).
MIN_FONT_PT = 9
#: Panels of Figure 2(b) a notebook shows; the full grid goes to a file.
SHOWN_PAIRS = 6


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams["figure.dpi"] = 100
    return plt


def crop_grid(root: str | Path, meta: Metadata, n: int = 24, seed: int = 0, title: str = ""):
    """A grid of example crops (file names from ``meta.names`` under ``root``), labelled pid/camera."""
    from PIL import Image

    plt = _plt()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(meta), size=min(n, len(meta)), replace=False)
    cols = min(8, len(idx))
    rows = int(np.ceil(len(idx) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.15, rows * 2.2 + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), idx):
        ax.imshow(Image.open(Path(root) / str(meta.names[i])))
        ax.set_title(f"id {meta.pids[i]}\ncam {meta.cams[i]}", fontsize=MIN_FONT_PT)
    return _finish(fig, title)


#: The box under a camera map's transit label.
BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8}
#: Share of a pair's votes (and truth) that its panel's x-range holds.
PANEL_MASS = 0.97


def _reach(mass: np.ndarray) -> int:
    """Bins below which :data:`PANEL_MASS` of ``mass`` (H,) lies (0 when empty)."""
    if not mass.any():
        return 0
    return int(np.searchsorted(np.cumsum(mass) / mass.sum(), PANEL_MASS)) + 1


def st_distributions(
    counts: np.ndarray,
    smoothed: np.ndarray,
    bin_width: int,
    truth: np.ndarray | None = None,
    distance: dict | None = None,
    max_panels: int | None = None,
    title: str = "",
):
    """The paper's Figure 2(b) style: per camera pair, the histogram of votes and the Parzen curve on one signed axis
    (Δt = t_a − t_b, frames; right half a later), as fractions of the pair's identities, each panel's x-range where
    :data:`PANEL_MASS` of its votes lie, one panel per camera pair with votes. ``counts``/``smoothed``: (C, C, H);
    ``truth``: (K, K, ≥H) true counts; ``distance``: {(later, earlier): TV}; ``max_panels``: busiest pairs."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    plt = _plt()
    C, _, H = counts.shape
    if truth is not None:
        k, m = truth.shape[0], min(H, truth.shape[2])
        truth = np.pad(np.asarray(truth[:, :, :m], dtype=float), ((0, C - k), (0, C - k), (0, H - m)))
    votes = counts.sum(axis=2)
    pairs = [(a + 1, b + 1) for a in range(C) for b in range(a + 1, C) if votes[a, b] + votes[b, a] > 0]
    if not pairs:
        raise ValueError("st_distributions: no camera pair has any vote")
    n_pairs = len(pairs)
    if max_panels is not None and n_pairs > max_panels:
        pairs = sorted(pairs, key=lambda p: -(votes[p[0] - 1, p[1] - 1] + votes[p[1] - 1, p[0] - 1]))[:max_panels]
    cols = min(3, len(pairs))
    rows = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(MAX_WIDTH_IN * cols / 3, 2.9 * rows + 0.5), squeeze=False)
    for ax in axes.ravel()[len(pairs) :]:
        ax.axis("off")
    for ax, (a, b) in zip(axes.ravel(), pairs):
        i, j = a - 1, b - 1

        def side(p: int, q: int) -> int:  # bins drawn for direction [p, q]
            arrs = [counts[p, q]] + ([truth[p, q]] if truth is not None else [])
            return min(H, int(np.ceil(max(max(_reach(x) for x in arrs), 1) * 1.1)) + 2)

        last_ab, last_ba = side(i, j), side(j, i)
        f = max(1, int(np.ceil(max(last_ab, last_ba) / 25)))  # about 25 bars a side: 100-frame bins are too thin
        n_ab, n_ba = int(np.ceil(last_ab / f)), int(np.ceil(last_ba / f))

        def signed(arr: np.ndarray, w_ba: float = 1.0, w_ab: float = 1.0, i=i, j=j, f=f, n_ab=n_ab, n_ba=n_ba):
            def grouped(row: np.ndarray, n: int, f: int = f) -> np.ndarray:
                pad = np.zeros(n * f)
                pad[: min(n * f, H)] = row[: n * f]
                return pad.reshape(n, f).sum(axis=1)

            return np.concatenate([grouped(arr[j, i], n_ba)[::-1] * w_ba, grouped(arr[i, j], n_ab) * w_ab])

        width = f * bin_width
        x = np.concatenate([-(np.arange(n_ba)[::-1] + 0.5), np.arange(n_ab) + 0.5]) * width
        total = votes[i, j] + votes[j, i]
        share_ab = votes[i, j] / max(total, 1)
        ax.bar(x, signed(counts) / max(total, 1), width=width, color="0.7", linewidth=0, label="votes")
        ax.plot(x, signed(smoothed, 1 - share_ab, share_ab), color="C0", lw=1.5, label="Parzen (HP)")
        if truth is not None:
            t = signed(truth)
            ax.plot(x, t / max(t.sum(), 1e-12), color="C3", lw=1.0, ls="--", label="truth")
        label = f"cam {a} vs {b} ({int(total)} ids)"
        if distance is not None:
            tvs = [f"TV {p}>{q} {distance[(p, q)]:.2f}" for p, q in ((a, b), (b, a)) if (p, q) in distance]
            label += "\n" + ", ".join(tvs) if tvs else ""
        ax.set_title(label, fontsize=10)
        ax.set_xlim(-n_ba * width, n_ab * width)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / 1000:g}k"))
        ax.tick_params(labelsize=MIN_FONT_PT)
    for ax in axes[-1]:
        ax.set_xlabel("Δt = t_a − t_b (frames)", fontsize=MIN_FONT_PT + 1)
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction of ids", fontsize=MIN_FONT_PT + 1)
    axes.ravel()[0].legend(fontsize=MIN_FONT_PT)
    caption = (
        "Each panel: cameras a vs b; right half: a seen after b, left half: b after a; x-range per panel "
        f"({PANEL_MASS:.0%} of each direction's votes)."
    )
    if len(pairs) < n_pairs:
        caption += f" Shown: the {len(pairs)} of {n_pairs} camera pairs with the most identities."
    if distance is not None:
        caption += " TV p>q: total-variation distance of the HP estimate to the true density (0 = identical)."
    fig.text(0.5, 0.0, caption, ha="center", va="top", fontsize=MIN_FONT_PT, wrap=True)
    return _finish(fig, title)


def _intervals(df, m: str) -> np.ndarray | None:
    """(2, n) distances below/above the value from ``<m>_lo``/``<m>_hi`` columns (95 % intervals), else None."""
    if f"{m}_lo" not in df or f"{m}_hi" not in df:
        return None
    v = df[m].to_numpy(float)
    return np.nan_to_num(np.vstack([v - df[f"{m}_lo"].to_numpy(float), df[f"{m}_hi"].to_numpy(float) - v]))


def _wrapped(title: str, width_in: float) -> str:
    """A title broken into lines that fit ``width_in`` inches at 11 pt (a tight bounding box would widen the figure)."""
    return "\n".join(textwrap.wrap(title, width=max(20, int(width_in * 9.5))))


def _finish(fig, title: str):
    """``fig`` with ``title`` over it (wrapped to its width, 11 pt), laid out tight."""
    if title:
        fig.suptitle(_wrapped(title, fig.get_figwidth()), fontsize=11)
    fig.tight_layout()
    return fig


def _top(values: np.ndarray) -> float:
    """An axis limit in percent: the largest value plus room, a multiple of 10 between 10 and 110."""
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    return min(110.0, max(10.0, 10.0 * np.ceil(top * 1.15 / 10.0)))


def bar_rows(df, metrics: Sequence[str] = ("R1", "mAP"), title: str = ""):
    """Horizontal grouped bars (percent, from 0) of a results table's ``metrics``, rows without numbers left out;
    ``<metric>_lo``/``_hi`` columns (95 % intervals) are drawn as error bars, the value written past them."""
    plt = _plt()
    df = df.copy()
    df.attrs = {}  # attached results objects (e.g. improved.ablation_table) do not survive pandas reshaping
    df = df.dropna(subset=list(metrics), how="all")
    n, k = len(df), len(metrics)
    height = max(3.0, 0.9 + 0.3 * n * k)
    width = min(MAX_WIDTH_IN, max(6.0, 2.2 * height))
    fig, ax = plt.subplots(figsize=(width, height))
    y = np.arange(n)
    h = 0.8 / k
    ends = []
    for c, m in enumerate(metrics):
        v = df[m].to_numpy(float)
        err = _intervals(df, m)
        pos = y - 0.4 + h * (c + 0.5)
        ax.barh(pos, v, height=h, xerr=err, label=m, color=f"C{c}", error_kw={"capsize": 3, "lw": 1})
        end = v if err is None else v + err[1]
        ends.append(end)
        for p, val, e in zip(pos, v, end):
            if np.isfinite(val):
                ax.text(e + 0.8, p, f"{val:.1f}", va="center", fontsize=MIN_FONT_PT)
    ax.set_yticks(y, [str(i) for i in df.index])
    ax.invert_yaxis()
    ax.set(xlim=(0, _top(np.concatenate(ends)) if ends else 10.0), xlabel="percent")
    ax.legend(fontsize=MIN_FONT_PT, loc="best")
    return _finish(fig, title)  # over the figure, not the axes: long row labels would push an axes title out


def sweep(df, x: str, metrics: Sequence[str] = ("R1", "mAP"), title: str = "", xlabel: str | None = None):
    """Metrics (percent, from 0) against a swept parameter (column ``x``), with 95 % intervals where ``<metric>_lo``
    / ``_hi`` columns exist; the title states each metric's spread, so a flat curve looks flat."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    tops = []
    for m in metrics:
        err = _intervals(df, m)
        ax.errorbar(df[x], df[m], yerr=err, marker="o", capsize=3, label=m)
        tops.append(df[m].to_numpy(float) + (0 if err is None else err[1]))
    ax.set_ylim(0, _top(np.concatenate(tops)) if tops else 10.0)
    ax.set(xlabel=xlabel or x, ylabel="percent")
    spread = ", ".join(f"{m} spread {df[m].max() - df[m].min():.1f}" for m in metrics)
    ax.set_title(_wrapped(title, 5.6) + f"\n{spread} points" if title else f"{spread} points", fontsize=11)
    ax.legend(fontsize=MIN_FONT_PT)
    fig.tight_layout()
    return fig


def ranked_lists(
    root_query: str | Path,
    root_gallery: str | Path,
    query: Metadata,
    gallery: Metadata,
    examples,
):
    """The paper's Figure 1: for a few queries (``examples``: :class:`streid_lib.study.steps.RankedExamples`), the
    top of each ranking as pictures, true matches framed green, other identities red (junk removed)."""
    from matplotlib.patches import Patch
    from PIL import Image

    plt = _plt()
    methods = list(examples.lists)
    top = next(iter(examples.lists.values())).shape[1]
    n_rows = len(examples.queries) * len(methods)
    cell = min(1.1, MAX_WIDTH_IN / (top + 1))
    fig, axes = plt.subplots(n_rows, top + 1, figsize=((top + 1) * cell, n_rows * cell * 2.1 + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.set(xticks=[], yticks=[])
    r = 0
    for pos, qi in enumerate(examples.queries):
        for m in methods:
            ax = axes[r, 0]
            ax.imshow(Image.open(Path(root_query) / str(query.names[qi])))
            ax.set_ylabel(f"{m}\nquery id {query.pids[qi]}", fontsize=MIN_FONT_PT)
            for k, gi in enumerate(examples.lists[m][pos]):
                ax = axes[r, k + 1]
                ax.imshow(Image.open(Path(root_gallery) / str(gallery.names[gi])))
                colour = MATCH_COLOURS["true match" if gallery.pids[gi] == query.pids[qi] else "other identity"]
                for side in ax.spines.values():
                    side.set(edgecolor=colour, linewidth=3)
                ax.set_title(f"{k + 1}", fontsize=MIN_FONT_PT)
            r += 1
    handles = [Patch(facecolor="none", edgecolor=c, linewidth=3, label=k) for k, c in MATCH_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=MIN_FONT_PT, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def camera_maps(edge_tables: Sequence, titles: Sequence[str], n_cams: int, title: str = ""):
    """Camera networks side by side (``edge_tables``: :func:`streid_lib.camera_map.edges_from_arrays`, §14.4):
    cameras on a circle, edge width ∝ share, label = modal transit (s)."""
    plt = _plt()
    k = len(edge_tables)
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 4.2), squeeze=False)
    angle = np.pi / 2 - 2 * np.pi * np.arange(n_cams) / n_cams
    xy = np.c_[np.cos(angle), np.sin(angle)]
    for ax, edges, panel in zip(axes[0], edge_tables, titles, strict=True):
        top = float(edges["share"].max()) if len(edges) else 1.0
        for row in edges.itertuples():
            (x0, y0), (x1, y1) = xy[row.cam_a - 1], xy[row.cam_b - 1]
            ax.plot([x0, x1], [y0, y1], color="tab:blue", lw=1 + 7 * row.share / top, alpha=0.6, zorder=1)
            label = f"{row.transit_s:.0f}s"
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, fontsize=9, ha="center", va="center", bbox=BOX, zorder=3)
        ax.scatter(xy[:, 0], xy[:, 1], s=420, color="tab:orange", zorder=2)
        for c in range(n_cams):
            ax.text(*xy[c], str(c + 1), fontsize=11, ha="center", va="center", zorder=4)
        ax.set_title(panel, fontsize=11)
        ax.set(xlim=(-1.3, 1.3), ylim=(-1.3, 1.3), aspect="equal")
        ax.axis("off")
    return _finish(fig, title)
