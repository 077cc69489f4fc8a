"""Checks of the executed notebooks as a reader opens them (issue #18 item 8); run after ``reproduce`` in ``make test``:

    STREID_EXECUTED=runs/smoke/notebooks:runs/smoke-duke/notebooks python -m pytest -q tests/notebook_checks.py

Every executed copy in the folders of ``STREID_EXECUTED`` (``:``-separated; the folders must exist and hold notebooks):
no stderr output, the installed kernel's spec, no absolute path of this machine in an output, every PNG at most
2.5:1 and at most 968 px wide (JupyterLab's column), and every code cell that shows a figure or a table right after a
markdown cell (its heading and explanation). The checks themselves are tested in ``tests/test_notebook_checks.py``.
"""

from __future__ import annotations

import base64
import os
import struct
import tempfile
from pathlib import Path

import nbformat
import pytest

#: Widest PNG, in pixels (JupyterLab's notebook column), and the widest aspect ratio.
MAX_PNG_WIDTH = 968
MAX_ASPECT = 2.5
TEXT_TYPES = ("text/plain", "text/markdown", "text/html", "text/latex")


def machine_roots(*folders: Path) -> set[str]:
    """Top-level folders of this machine's own paths (the repository, ``folders``, home, temp), as ``/name/``."""
    from streid_lib.study import REPO_ROOT

    roots = set()
    for p in (REPO_ROOT, *folders, Path.home(), Path(tempfile.gettempdir())):
        for q in (Path(p).absolute(), Path(p).resolve()):
            if len(q.parts) > 1:
                roots.add(f"/{q.parts[1]}/")
    return roots


def _texts(output: dict) -> list[str]:
    if output.get("output_type") == "stream":
        return [output.get("text", "")]
    if output.get("output_type") == "error":
        return [output.get("evalue", "")]
    data = output.get("data", {})
    return [data[k] if isinstance(data[k], str) else "".join(data[k]) for k in TEXT_TYPES if k in data]


def png_size(data: str) -> tuple[int, int]:
    """(width, height) of a base64 PNG, from its IHDR header."""
    raw = base64.b64decode(data[:64])
    return struct.unpack(">II", raw[16:24])


def shows_figure_or_table(cell: dict) -> bool:
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if "image/png" in data or "<table" in "".join(data.get("text/html", "")):
            return True
    return False


def problems(path: Path, installed: dict[str, str], roots: set[str]) -> list[str]:
    """What a reader would see wrong in the executed notebook ``path`` (empty: nothing)."""
    nb = nbformat.read(path, as_version=4)
    found = []
    spec = dict(nb.metadata.get("kernelspec", {}))
    if spec != installed:
        found.append(f"kernelspec {spec} is not the installed kernel's {installed}")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                found.append(f"cell {i}: stderr output {out.get('text', '')[:80]!r}")
            for text in _texts(out):
                for root in sorted(r for r in roots if r in text):
                    at = text.index(root)
                    found.append(f"cell {i}: absolute path {text[at : at + 60]!r}")
            png = out.get("data", {}).get("image/png")
            if png:
                w, h = png_size(png)
                if w > MAX_PNG_WIDTH or w > MAX_ASPECT * h:
                    found.append(f"cell {i}: a {w}x{h} PNG (at most {MAX_PNG_WIDTH} px wide and {MAX_ASPECT}:1)")
        if shows_figure_or_table(cell) and (i == 0 or nb.cells[i - 1].cell_type != "markdown"):
            found.append(f"cell {i}: shows a figure or a table without a markdown cell before it")
    return found


def _executed() -> list[Path]:
    folders = [Path(f) for f in os.environ.get("STREID_EXECUTED", "").split(":") if f]
    return [nb for folder in folders for nb in sorted(folder.glob("[0-9][0-9]_*.ipynb"))]


def test_executed_notebooks_were_given():
    folders = [f for f in os.environ.get("STREID_EXECUTED", "").split(":") if f]
    assert folders, "STREID_EXECUTED names no folder of executed notebooks"
    for folder in folders:
        assert sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")), f"{folder}: no executed notebooks"


@pytest.mark.parametrize("path", _executed(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_an_executed_notebook_reads_clean(path):
    from streid_lib.reproduce import kernelspec

    assert problems(path, kernelspec(), machine_roots(path.parent)) == []
