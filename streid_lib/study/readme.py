"""The README's generated blocks (``claims``, ``results``) from the runs recorded under ``figures/``.

``python -m streid_lib.study.readme [README.md]`` rewrites the text between ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->`` (``make study`` runs it), so the README states no number a run did not produce.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd

from .._io import write_text_atomic
from .claims import CLAIMS_JSON, collect_runs, summary_table
from .config import REPO_ROOT
from .outputs import markdown_table

#: The computed tables shown per run, in order: (file stem, heading). The first that exists of each group is used.
_RESULT_TABLES = (
    (("tables_1_2_campus", "table1", "table2"), "Tables 1-2 rows"),
    (("table3",), "Table 3 rows"),
    (("figure4ab",), "Figure 4(a, b) rows"),
    (("beyond_summary",), "Beyond the paper (notebook 07): faithful against improved"),
)


def _computed_rows(csv: Path) -> str:
    """The rows of a table CSV that this run computed (or could not compute), as Markdown; quoted rows left out;
    interval columns ``<m>_lo`` / ``<m>_hi`` folded into their metric's cell: ``25.8 [21.3, 30.2]``."""
    df = pd.read_csv(csv, dtype=str, keep_default_na=False, header=None)
    df = df.iloc[1:].set_axis(head := df.iloc[0].tolist(), axis=1)
    if "source" in head:
        df = df[~df.pop("source").str.startswith("quoted")]
    if df.empty:
        return ""
    for m in [c for c in df.columns if f"{c}_lo" in df and f"{c}_hi" in df]:
        lo, hi = df.pop(f"{m}_lo"), df.pop(f"{m}_hi")
        df[m] = df[m].where((df[m] == "") | (lo == "") | (hi == ""), df[m] + " [" + lo + ", " + hi + "]")
    return markdown_table(list(df.columns), df.replace("", "—").values.tolist())


def results_block(root: Path) -> str:
    """Per run under ``root`` (the campus first): its computed Tables 1-3 and Figure 4(a, b) rows, with links."""
    folders = ([root] if (root / CLAIMS_JSON).is_file() else []) + sorted(
        p.parent for p in root.glob(f"*/{CLAIMS_JSON}")
    )
    if not folders:
        return "No run has been recorded under figures/ yet."
    out = []
    for folder in folders:
        label = json.loads((folder / CLAIMS_JSON).read_text())["run"]["label"]
        rel = folder.relative_to(root.parent).as_posix()
        out.append(f"#### {label} (`{rel}/`)")
        for stems, heading in _RESULT_TABLES:
            for stem in stems:
                csv = folder / f"{stem}.csv"
                table = _computed_rows(csv) if csv.is_file() else ""
                if table:
                    out.append(f"{heading} ([{stem}]({rel}/{stem}.md)), computed in that run:\n\n{table}")
                    break
    return "\n\n".join(out)


def render_blocks(root: Path | None = None) -> dict[str, str]:
    """The generated README blocks from the figures under ``root`` (default: the repository's ``figures/``)."""
    root = root or REPO_ROOT / "figures"
    return {"claims": summary_table(collect_runs(root)), "results": results_block(root)}


def update_text(text: str, blocks: dict[str, str]) -> str:
    """``text`` with every generated block replaced (``ValueError`` when a block's markers are missing)."""
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n)(?:.*?\n)?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README: markers <!-- generated:{name} --> … <!-- /generated:{name} --> not found")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def update_readme(path: str | Path = REPO_ROOT / "README.md", root: Path | None = None) -> bool:
    """Rewrite the README's generated blocks; returns whether the file changed."""
    path = Path(path)
    old = path.read_text()
    new = update_text(old, render_blocks(root))
    if new != old:
        write_text_atomic(path, new)
    return new != old


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else REPO_ROOT / "README.md"
    print(f"{target}: {'updated' if update_readme(target) else 'already up to date'}")
