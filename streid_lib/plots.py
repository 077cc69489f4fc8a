"""Figures of the study (matplotlib/seaborn): each function takes computed arrays, returns a Figure.

No numbers are computed here beyond what a plot needs (bin centres, axis limits); the notebooks
pass in what the tested library functions produced.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metadata import Metadata

#: Colours of Figure 1's frames.
MATCH_COLOURS = {"true match": "tab:green", "other identity": "tab:red"}


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def crop_grid(root: str | Path, meta: Metadata, n: int = 24, seed: int = 0, title: str = ""):
    """A grid of example crops (file names from ``meta.names`` under ``root``), labelled pid/camera."""
    from PIL import Image

    plt = _plt()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(meta), size=min(n, len(meta)), replace=False)
    cols = min(12, len(idx))
    rows = int(np.ceil(len(idx) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.9), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), idx):
        ax.imshow(Image.open(Path(root) / str(meta.names[i])))
        ax.set_title(f"id {meta.pids[i]}\ncam {meta.cams[i]}", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def st_distributions(
    counts: np.ndarray,
    smoothed: np.ndarray,
    bin_width: int,
    pairs: Sequence[tuple[int, int]] | None = None,
    truth: np.ndarray | None = None,
    distance: dict | None = None,
    max_bins: int | None = None,
    title: str = "",
):
    """The paper's Figure 2(b) style: per camera pair, histogram of votes and the Parzen curve.

    The two directions of a pair are drawn on one signed axis (Δt = t_a − t_b, in frames): the
    right half is direction ``[a, b]`` (a later), the left half ``[b, a]``. Every curve is a fraction
    of the pair's identities per bin: each direction's P̂ (normalised on its own, as the faithful
    model is) is weighted by that direction's share of the votes.

    Args:
        counts: (C, C, H) votes per direction and bin.
        smoothed: (C, C, H) smoothed per-direction probabilities P̂.
        bin_width: frames per bin.
        pairs: unordered camera pairs (1-based) to draw; default all pairs with votes.
        truth: optional (K, K, ≥H) ground-truth counts in the same bins (synthetic data), K ≤ C.
        distance: optional {(later, earlier): value} (e.g. TV to the truth) printed per direction.
        max_bins: bins drawn on each side; default: where 99.5 % of the votes and of the truth lie, plus 10 %.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    plt = _plt()
    C, _, H = counts.shape
    if truth is not None:
        k = truth.shape[0]
        t_full = np.zeros((C, C, H))
        m = min(H, truth.shape[2])
        t_full[:k, :k, :m] = truth[:, :, :m]
        truth = t_full
    if pairs is None:
        pairs = [
            (a + 1, b + 1) for a in range(C) for b in range(a + 1, C) if counts[a, b].sum() + counts[b, a].sum() > 0
        ]
    if not pairs:
        raise ValueError("st_distributions: no camera pair has any vote")
    if max_bins is None:
        # Zoom to where the data are: the bin below which 99.5 % of the votes (and of the truth) lie, plus a margin.
        def reach(arr: np.ndarray) -> int:
            mass = arr.sum(axis=(0, 1))
            if not mass.any():
                return 0
            return int(np.searchsorted(np.cumsum(mass) / mass.sum(), 0.995)) + 1

        furthest = max(reach(counts), 0 if truth is None else reach(truth), 1)
        max_bins = min(H, int(np.ceil(furthest * 1.1)) + 2)
    last = min(H, max_bins)
    # Display bins: sum groups of f model bins so that about 40 bars show per direction (100-frame bins
    # are far too thin to see over a span of many minutes). Sums keep every curve a fraction per bar.
    f = max(1, int(np.ceil(last / 40)))
    n_disp = int(np.ceil(last / f))

    def coarse(arr: np.ndarray) -> np.ndarray:
        out = np.zeros(arr.shape[:2] + (n_disp * f,))
        out[:, :, :last] = arr[:, :, :last]
        return out.reshape(arr.shape[:2] + (n_disp, f)).sum(axis=3)

    counts_d, smoothed_d = coarse(counts), coarse(smoothed)
    truth_d = None if truth is None else coarse(truth)
    width = f * bin_width
    x = np.concatenate([-(np.arange(n_disp)[::-1] + 0.5), np.arange(n_disp) + 0.5]) * width
    cols = min(4, len(pairs))
    rows = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel()[len(pairs) :]:
        ax.axis("off")
    for ax, (a, b) in zip(axes.ravel(), pairs):
        i, j = a - 1, b - 1

        def signed(arr: np.ndarray, w_ba: float = 1.0, w_ab: float = 1.0, i: int = i, j: int = j) -> np.ndarray:
            return np.concatenate([arr[j, i][::-1] * w_ba, arr[i, j] * w_ab])

        total = counts[i, j].sum() + counts[j, i].sum()
        share_ab = counts[i, j].sum() / max(total, 1)
        ax.bar(x, signed(counts_d) / max(total, 1), width=width, color="0.7", linewidth=0, label="votes (fraction)")
        ax.plot(x, signed(smoothed_d, 1 - share_ab, share_ab), color="C0", lw=1.5, label="Parzen (HP)")
        if truth_d is not None:
            t = signed(truth_d)
            ax.plot(x, t / max(t.sum(), 1e-12), color="C3", lw=1.0, ls="--", label="ground truth")
        label = f"cam {a} vs {b} ({int(total)} ids)"
        if distance is not None:
            tvs = [f"TV {p}>{q}: {distance[(p, q)]:.2f}" for p, q in ((a, b), (b, a)) if (p, q) in distance]
            if tvs:
                label += "\n" + ", ".join(tvs)
        ax.set_title(label, fontsize=9)
        ax.set_xlim(-last * bin_width, last * bin_width)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, symmetric=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / 1000:g}k"))
        ax.set_xlabel("Δt = t_a − t_b (frames)", fontsize=8)
        ax.set_ylabel("fraction of ids per bar", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=7)
    caption = (
        f"Each panel: one camera pair a vs b; right half: a seen after b, left half: b after a; bars of {width} frames."
    )
    if distance is not None:
        caption += (
            " TV p>q: total-variation distance between the HP estimate and the true transit density for camera p "
            "seen after q (0 = identical, 1 = disjoint)."
        )
    fig.text(0.5, 0.0, caption, ha="center", va="top", fontsize=8, wrap=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bar_rows(df, metrics: Sequence[str] = ("R1", "mAP"), title: str = ""):
    """Grouped bars of a results table (rows = methods, columns include ``metrics``), in percent.

    Rows without numbers (not computed) are left out; the y axis starts at 0.
    """
    plt = _plt()
    df = df.copy()
    df.attrs = {}  # attached results objects (e.g. improved.ablation_table) do not survive pandas reshaping
    df = df.dropna(subset=list(metrics), how="all")
    long = df[list(metrics)].reset_index(names="method").melt(id_vars="method", var_name="metric", value_name="%")
    import seaborn as sns

    longest = max((len(str(i)) for i in df.index), default=0)
    fig, ax = plt.subplots(figsize=(1.6 + max(1.2, 0.09 * longest) * len(df), 3.4))
    sns.barplot(data=long, x="method", y="%", hue="metric", ax=ax)
    for cont in ax.containers:
        ax.bar_label(cont, fmt="%.1f", fontsize=7)
    top = float(np.nanmax(long["%"])) if len(long) else 0.0
    ax.set_ylim(0, min(100.0, max(10.0, 10.0 * np.ceil(top * 1.15 / 10.0))))
    ax.set_xlabel("")
    ax.set_ylabel("percent")
    if len(df) > 3 or longest > 10:
        plt.setp(ax.get_xticklabels(), rotation=25, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def sweep(df, x: str, metrics: Sequence[str] = ("R1", "mAP"), title: str = "", xlabel: str | None = None):
    """A line plot of metrics (percent) against a swept parameter (column ``x``).

    The y axis starts at 0, and the title states each metric's spread (max − min), so a flat curve looks flat.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.4, 3.2))
    for m in metrics:
        ax.plot(df[x], df[m], marker="o", label=m)
    top = float(np.nanmax(df[list(metrics)].to_numpy())) if len(df) else 0.0
    ax.set_ylim(0, min(100.0, max(10.0, 10.0 * np.ceil(top * 1.15 / 10.0))))
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel("percent")
    spread = ", ".join(f"{m} spread {df[m].max() - df[m].min():.1f}" for m in metrics)
    ax.set_title(f"{title}\n{spread} points" if title else f"{spread} points", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


def ranked_lists(
    root_query: str | Path,
    root_gallery: str | Path,
    query: Metadata,
    gallery: Metadata,
    examples,
):
    """The paper's Figure 1: for a few queries, the top of each ranking as pictures.

    Args:
        examples: :class:`streid_lib.study.steps.RankedExamples` (queries, ranked gallery indices per method, rule).
    Green frames are true matches (same identity), red frames another identity (junk is removed, as in the metrics).
    """
    from matplotlib.patches import Patch
    from PIL import Image

    plt = _plt()
    methods = list(examples.lists)
    top = next(iter(examples.lists.values())).shape[1]
    n_rows = len(examples.queries) * len(methods)
    fig, axes = plt.subplots(n_rows, top + 1, figsize=((top + 1) * 0.85, n_rows * 1.75 + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    r = 0
    for pos, qi in enumerate(examples.queries):
        for m in methods:
            ax = axes[r, 0]
            ax.imshow(Image.open(Path(root_query) / str(query.names[qi])))
            ax.set_ylabel(m, fontsize=7)
            ax.set_title(f"query id {query.pids[qi]}", fontsize=7)
            for k, gi in enumerate(examples.lists[m][pos]):
                ax = axes[r, k + 1]
                ax.imshow(Image.open(Path(root_gallery) / str(gallery.names[gi])))
                colour = MATCH_COLOURS["true match" if gallery.pids[gi] == query.pids[qi] else "other identity"]
                for side in ax.spines.values():
                    side.set_edgecolor(colour)
                    side.set_linewidth(3)
                ax.set_title(f"{k + 1}", fontsize=7)
            r += 1
    handles = [Patch(facecolor="none", edgecolor=c, linewidth=3, label=k) for k, c in MATCH_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def camera_maps(edge_tables: Sequence, titles: Sequence[str], n_cams: int):
    """Camera networks side by side: cameras on a circle, edge width ∝ share, label = modal transit (s).

    ``edge_tables`` are :func:`streid_lib.camera_map.edges_from_arrays` tables (docs/reference.md §14.4).
    """
    plt = _plt()
    k = len(edge_tables)
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 4.2), squeeze=False)
    angle = np.pi / 2 - 2 * np.pi * np.arange(n_cams) / n_cams
    xy = np.c_[np.cos(angle), np.sin(angle)]
    for ax, edges, title in zip(axes[0], edge_tables, titles, strict=True):
        top = float(edges["share"].max()) if len(edges) else 1.0
        for row in edges.itertuples():
            (x0, y0), (x1, y1) = xy[row.cam_a - 1], xy[row.cam_b - 1]
            ax.plot([x0, x1], [y0, y1], color="tab:blue", lw=1 + 7 * row.share / top, alpha=0.6, zorder=1)
            ax.text(
                (x0 + x1) / 2,
                (y0 + y1) / 2,
                f"{row.transit_s:.0f}s",
                fontsize=9,
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
                zorder=3,
            )
        ax.scatter(xy[:, 0], xy[:, 1], s=420, color="tab:orange", zorder=2)
        for c in range(n_cams):
            ax.text(*xy[c], str(c + 1), fontsize=11, ha="center", va="center", zorder=4)
        ax.set_title(title, fontsize=11)
        ax.set_xlim(-1.3, 1.3)
        ax.set_ylim(-1.3, 1.3)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    return fig
