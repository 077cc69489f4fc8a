"""What a reader sees of the study in a notebook: readable figures, tables under their titles with footnotes,
verdicts as a Markdown table, paths relative, the checks of the executed notebooks, and the source notebooks' shape.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from streid_lib import plots, reproduce, study  # noqa: E402
from streid_lib.metadata import Metadata  # noqa: E402
from streid_lib.study import outputs  # noqa: E402
from streid_lib.study.claims import ClaimReport  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import notebook_checks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _png(fig) -> tuple[int, int]:
    """(width, height) in pixels of the figure as a notebook shows it (100 dpi, tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return notebook_checks.png_size(base64.b64encode(buf.getvalue()).decode())


def _readable(fig) -> tuple[int, int]:
    fig.canvas.draw()
    small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert all(size >= plots.MIN_FONT_PT for _, size in small), [t for t in small if t[1] < plots.MIN_FONT_PT]
    w, h = _png(fig)
    assert w <= notebook_checks.MAX_PNG_WIDTH and w <= notebook_checks.MAX_ASPECT * h, (w, h)
    return w, h


def _rows(n: int, label: str = "a long method name (variant)") -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame(
        {"R1": rng.uniform(5, 95, n), "mAP": rng.uniform(5, 95, n)}, index=[f"{label} {i}" for i in range(n)]
    )


@pytest.mark.parametrize("n", [2, 3, 8, 14])
def test_bar_charts_fit_the_column_with_readable_text(n):
    title = "Figure 4(a) (PCB row: the features file duke_mobilenetv2.npz, DukeMTMC-reID, 2,228 queries)"
    _readable(plots.bar_rows(_rows(n), title=title))


def test_intervals_are_drawn_as_error_bars_when_the_frame_has_them():
    df = _rows(3)
    from matplotlib.container import BarContainer

    def bars(fig):
        return [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]

    assert [c.errorbar for c in bars(plots.bar_rows(df))] == [None, None]
    df["R1_lo"], df["R1_hi"] = df["R1"] - 2.0, df["R1"] + 3.0
    r1, m = bars(plots.bar_rows(df))
    assert m.errorbar is None and r1.errorbar is not None
    segments = r1.errorbar.lines[2][0].get_segments()
    assert np.allclose([s[:, 0] for s in segments], np.c_[df["R1_lo"], df["R1_hi"]])
    sweep = pd.DataFrame({"gamma": [1.0, 4.0, 7.0], "R1": [20.0, 30.0, 25.0], "mAP": [10.0, 12.0, 11.0]})
    assert not any(c.has_yerr for c in plots.sweep(sweep, "gamma").axes[0].containers)
    sweep["mAP_lo"], sweep["mAP_hi"] = sweep["mAP"] - 1, sweep["mAP"] + 1
    fig = plots.sweep(sweep, "gamma", title="Figure 4(d)")
    assert [c.has_yerr for c in fig.axes[0].containers] == [False, True]
    _readable(fig)


def test_figure_2b_shows_the_most_populated_pairs_each_on_its_own_range():
    C, H = 8, 800
    rng = np.random.default_rng(0)
    counts = np.zeros((C, C, H))
    for a in range(C):
        for b in range(C):
            if a != b:  # pair (a, b) votes around a pair-specific delay: ranges differ by two orders of magnitude
                centre = 5 + 20 * ((a + b) % 30)
                counts[a, b, centre : centre + 4] = rng.integers(1, 4 + a * b, 4)
    smoothed = counts / np.maximum(counts.sum(axis=2, keepdims=True), 1)
    full = plots.st_distributions(counts, smoothed, 100)
    assert sum(ax.axison for ax in full.axes) == 28
    fig = plots.st_distributions(counts, smoothed, 100, max_panels=plots.SHOWN_PAIRS, title="Figure 2(b)")
    shown = [ax for ax in fig.axes if ax.axison]
    votes = counts.sum(axis=2) + counts.sum(axis=2).T
    best = sorted(votes[np.triu_indices(C, 1)])[::-1][: plots.SHOWN_PAIRS]
    assert [int(ax.get_title().split("(")[1].split()[0]) for ax in shown] == [int(v) for v in best]
    assert len({ax.get_xlim() for ax in shown}) > 1  # each panel its own x-range
    assert "the 6 of 28 camera pairs with the most identities" in " ".join(t.get_text() for t in fig.texts)
    _readable(fig)


def test_crop_grid_and_ranked_lists_are_readable(tmp_path):
    from PIL import Image

    names = np.array([f"{i:04d}_c1_f{i:07d}.jpg" for i in range(30)])
    for n in names:
        Image.new("RGB", (32, 64), (120, 30, 30)).save(tmp_path / n)
    meta = Metadata(np.arange(30) % 5 + 1, np.arange(30) % 3 + 1, np.arange(30) * 10, names=names)
    _readable(plots.crop_grid(tmp_path, meta, n=24, title="Training crops (the campus (synthetic))"))
    lists = {"VIS": np.arange(24).reshape(3, 8), "st-ReID": np.arange(24).reshape(3, 8)[:, ::-1]}
    ex = SimpleNamespace(queries=np.array([0, 1, 2]), lists=lists)
    _readable(plots.ranked_lists(tmp_path, tmp_path, meta, meta, ex))


# -- tables, verdicts, paths ---------------------------------------------------------------------------------------


class _Display(list):
    def __call__(self, *objs):
        self.extend(objs)


def test_a_table_is_shown_under_its_title_with_long_sources_as_footnotes(tmp_path, monkeypatch):
    shown = _Display()
    monkeypatch.setattr(outputs, "_ipython_display", lambda: shown)
    cfg = study.study_config(profile="smoke", out_dir=str(tmp_path / "run"))
    long = "computed (this run); paper columns quoted: Wang et al., AAAI 2019, Tables 1-2"
    df = pd.DataFrame(
        {"R1": [50.0, 60.0, 70.0], "source": [long, "paper", long]}, index=["st-ReID+RE+re-rank", "b", "c"]
    )
    text = study.write_table(df, "t", cfg, title="Table 1 (the campus)", note="A note.")
    title, table, below = shown
    assert title.data == "**Table 1 (the campus)**"
    assert table.text["source"].tolist() == ["[1]", "[2]", "[1]"]
    assert "white-space: nowrap" in table._repr_html_() and "st-ReID+RE+re-rank" in repr(table)
    assert below.data == f"[1] {long}  \n[2] paper  \nA note."
    assert text["source"].tolist() == [long, "paper", long]  # the files keep the whole text
    assert long in (tmp_path / "run" / "figures" / "t.md").read_text()


def test_verdicts_render_as_a_markdown_table_with_a_plain_text_twin():
    claim = SimpleNamespace(statement="ST | VIS helps", where="Table 3")
    verdicts = (
        SimpleNamespace(claim=claim, status="held", detail="R1 +19.0"),
        SimpleNamespace(claim=claim, status="inconclusive", detail="R1 +0.3 (interval −1.0 to 1.6)"),
    )
    view = ClaimReport("05", verdicts)
    md = view._repr_markdown_().splitlines()
    assert md[0] == "**Claims of the paper checked in notebook 05:** 1 held, 1 inconclusive"
    assert md[2:4] == ["| claim | where | verdict | detail |", "|---|---|---|---|"]
    assert md[4] == "| ST \\| VIS helps | Table 3 | **held** | R1 +19.0 |"
    empty = ClaimReport("03", ())
    assert empty._repr_markdown_() == "Notebook 03 checks no claim of the paper."


def test_paths_of_this_machine_are_made_relative(tmp_path):
    repo = study.REPO_ROOT
    text = f"features {repo.parent / 'shared' / 'x.npz'}; run {repo / 'runs' / 'smoke'}/figures"
    assert study.relative_paths(text) == "features ../shared/x.npz; run runs/smoke/figures"
    cfg = study.study_config(profile="smoke", out_dir=str(tmp_path / "run"))
    assert study.relative_paths(f"in {tmp_path / 'run'}/figures/t.md", cfg) == "in <run>/figures/t.md"


# -- the executed notebooks' checks, and the source notebooks --------------------------------------------------------


def _notebook(tmp_path: Path, cells, kernelspec=None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = kernelspec or reproduce.kernelspec()
    nb.cells = cells
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    return path


def _png_output(w: int, h: int):
    buf = io.BytesIO()
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(buf.getvalue()).decode()})


def test_the_checks_find_what_a_reader_would_see_wrong(tmp_path):
    roots = notebook_checks.machine_roots(tmp_path)
    code = nbformat.v4.new_code_cell
    good = [nbformat.v4.new_markdown_cell("## A figure"), code("fig", outputs=[_png_output(900, 400)])]
    assert notebook_checks.problems(_notebook(tmp_path, good), reproduce.kernelspec(), roots) == []
    stderr = nbformat.v4.new_output("stream", name="stderr", text="train 75% 3/4\n")
    path_out = nbformat.v4.new_output("stream", name="stdout", text=f"wrote {tmp_path}/x.csv\n")
    table = nbformat.v4.new_output("display_data", data={"text/html": "<table></table>", "text/plain": "t"})
    bad = [
        code("a", outputs=[stderr, path_out]),
        code("b", outputs=[_png_output(1200, 300)]),
        code("c", outputs=[table]),
    ]
    spec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    found = notebook_checks.problems(_notebook(tmp_path, bad, spec), reproduce.kernelspec(), roots)
    assert found[0].startswith("kernelspec {'display_name': 'Python 3',")
    assert found[1] == "cell 0: stderr output 'train 75% 3/4\\n'"
    assert found[2] == f"cell 0: absolute path {f'{tmp_path}/x.csv'[:60]!r}"
    assert found[3:] == [
        "cell 1: a 1200x300 PNG (at most 968 px wide and 2.5:1)",
        "cell 1: shows a figure or a table without a markdown cell before it",
        "cell 2: shows a figure or a table without a markdown cell before it",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_source_notebook_opens_unmodified_and_reads_as_a_document(path):
    nb = nbformat.read(path, as_version=4)
    assert dict(nb.metadata.kernelspec) == reproduce.kernelspec()
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "**Purpose.**" in first.source and "**What it produces.**" in first.source
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert params == [1] and "study.setup(" in nb.cells[2].source and len(nb.cells[2].source.splitlines()) <= 3
    for i, cell in enumerate(nb.cells[3:], 3):
        makes = any(
            f in cell.source for f in ("save_figure(", "write_table(", ".write(cfg)", "study.show(", "show_claims(")
        )
        if cell.cell_type == "code" and makes:
            assert nb.cells[i - 1].cell_type == "markdown", f"{path.name} cell {i}"
    assert sum(c.cell_type == "markdown" and c.source.startswith("## ") for c in nb.cells) >= 2
