"""What a run writes: tables (CSV + Markdown) and figures (PNG + SVG), each with a provenance record beside it.

Reruns rewrite tables and figures byte for byte (SVGs with a fixed hash salt, no dates); only the provenance
records change. Cells: readable column names, integers as integers, one decimal unless ``decimals`` says, "—" where
nothing was computed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_path, file_sha256, write_json_atomic, write_text_atomic
from ..visual.config import PORTABLE_CPU, kernels_in_use
from .config import REPO_ROOT, StudyConfig

#: Column and index names as tables show them (units in parentheses).
COLUMN_LABELS = {
    "mAP_open_reid": "mAP (open-reid)",
    "sigma": "σ (bins)",
    "sigma_frames": "σ (frames)",
    "bin_width": "bin width (frames)",
    "TV": "TV to truth",
    "lambda1": "λ1",
    "gamma": "γ0 = γ1",
}
MISSING = "—"
#: Fixed salt for the ids matplotlib writes into SVGs (otherwise random per run).
SVG_HASH_SALT = "streid"


def git_commit() -> str:
    """The commit of the code that made an output (with ``+dirty`` when the tree has changes)."""
    run = partial(subprocess.run, cwd=REPO_ROOT, capture_output=True, text=True)
    try:
        sha = run(["git", "rev-parse", "HEAD"], check=True).stdout.strip()
        # The outputs themselves (figures/) do not make the code dirty.
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures"]).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


#: The packages whose versions every provenance record names (read from their metadata; nothing is imported).
PROVENANCE_PACKAGES = ("torch", "numpy", "scipy", "pandas", "scikit-learn", "matplotlib")


def provenance(cfg: StudyConfig, **details: Any) -> dict:
    """A provenance record a stranger can check: the run's configuration, the sha256 of every input file, the
    versions of Python and the numeric packages, the CPU capability, the command line, the commit and whether the
    code had uncommitted changes, and the cached trained features the run read. Training settings appear only on a
    run that trains its visual models."""
    commit = git_commit()
    rec = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit.removesuffix("+dirty"),
        "uncommitted_changes": commit.endswith("+dirty"),
        "command": _command_line(),
        "profile": cfg.profile,
        "dataset": cfg.dataset,
        "route": cfg.route.name,
        "run": cfg.run_label,
        "data_root": cfg.data_root or (f"campus preset {cfg.campus_preset!r}" if cfg.route.campus else None),
        "features": cfg.feature_files or None,
        "train_names": cfg.train_names,
        "inputs_sha256": input_hashes(cfg),
        "seed": cfg.seed,
        "sizes": asdict(cfg.sizes),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "cpu_capability": _cpu_capability(),
        "python": platform.python_version(),
        "versions": _versions(),
    }
    if cfg.route.trains:
        rec["train_settings"] = asdict(cfg.train)
        rec["trained_features"] = _trained_features(cfg)
    rec.update(details)
    return rec


def input_hashes(cfg: StudyConfig) -> dict[str, str]:
    """``{file: sha256}`` of the run's input files: features files, the training-name list and the sequence
    lengths beside it, and the manifests / name lists of its dataset folder (the campus' included)."""
    files = [Path(p) for p in cfg.feature_files.values()]
    if cfg.train_names:
        files += [Path(cfg.train_names), Path(cfg.train_names).parent / "sequence_lengths.json"]
    root = cfg.root
    if root is not None and root.is_dir():
        files += sorted(p for p in root.iterdir() if p.suffix in (".csv", ".txt", ".json"))
    return {_shown(p): file_sha256(p) for p in files if p.is_file()}


def _shown(path: Path) -> str:
    """A path as recorded: relative to the repository when inside it (the same on every clone), else absolute."""
    path = path.resolve()
    return path.relative_to(REPO_ROOT).as_posix() if REPO_ROOT in path.parents else str(path)


def _trained_features(cfg: StudyConfig) -> dict[str, dict]:
    """The cached features of the run's trained models: sha256, and the checkpoint they were extracted from."""
    out = {}
    for path in sorted((cfg.out / "features").glob("*.npz")):
        rec: dict[str, Any] = {"sha256": file_sha256(path)}
        try:
            with np.load(path, allow_pickle=False) as z:
                prov = json.loads(str(z["provenance"])) if "provenance" in z.files else {}
        except (OSError, ValueError):
            prov = {}
        keys = ("checkpoint_sha256", "checkpoint_epoch", "torch", "commit")
        out[path.stem] = rec | {k: prov[k] for k in keys if k in prov}
    return out


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PROVENANCE_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_capability() -> str:
    """The CPU kernels torch uses (``ATEN_CPU_CAPABILITY``) and its threads, read from torch only when it is already
    loaded, with the kernel settings of the environment (the portable kernels, docs/reference.md §13.13)."""
    used = kernels_in_use()
    env = [f"{k}={os.environ[k]}" for k in (*PORTABLE_CPU, "OMP_NUM_THREADS") if k in os.environ]
    return f"{used} ({', '.join(env)})" if env else used


def _command_line() -> str:
    """The command that ran: ``STREID_COMMAND`` when the study's runner sets it, else this process's argv
    (a notebook kernel's own argv names a temporary connection file: recorded as "a Jupyter kernel")."""
    if os.environ.get("STREID_COMMAND"):
        return os.environ["STREID_COMMAND"]
    argv = list(sys.argv)
    if any("ipykernel" in a or a.endswith(".json") for a in argv):
        return "a Jupyter kernel (papermill or an interactive session)"
    return " ".join(argv)


def _cell(value: Any, decimals: int = 1) -> str:
    """One table cell as text: integers as integers, floats with ``decimals``, nothing computed as "—"."""
    if value is None or value is pd.NA:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return MISSING if not np.isfinite(value) else f"{value:.{decimals}f}"
    return str(value)


def formatted(df: Any, decimals: dict[str, int] | None = None) -> Any:
    """The table as text cells, with readable column names (what the notebooks show and the files hold)."""
    decimals = decimals or {}
    # A MultiIndex (blocks, e.g. one per query) stays one: shown with each block's label once.
    index = df.index.map(lambda i: tuple(map(_cell, i)) if isinstance(i, tuple) else _cell(i))
    out = pd.DataFrame(index=index.set_names([COLUMN_LABELS.get(str(n), n) for n in df.index.names]))
    for col in df.columns:
        out[COLUMN_LABELS.get(str(col), str(col))] = [_cell(v, decimals.get(str(col), 1)) for v in df[col].tolist()]
    return out


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table: a header row, the ``|---|`` rule, one line per row (cells as given, not escaped)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def relative_paths(text: str, cfg: StudyConfig | None = None) -> str:
    """``text`` with the machine's absolute paths made relative: to the repository (``runs/smoke/...``,
    ``../shared/...``), or to the run directory (``<run>/...``) when that lies outside it."""
    repo = [REPO_ROOT, REPO_ROOT.resolve()]
    bases: list[tuple[str, str]] = []
    if cfg is not None:
        run = [Path(cfg.out), Path(cfg.out).absolute(), Path(cfg.out).resolve()]
        bases += [(f"{r}/", "<run>/") for r in run if r.is_absolute() and not r.resolve().is_relative_to(repo[1])]
    bases += [(f"{r}/", "") for r in repo] + [(f"{r.parent}/", "../") for r in repo]
    for base, short in bases:
        text = text.replace(base, short)
    return text


class Shown:
    """A table as a notebook shows it: HTML whose row labels do not wrap, and its plain text (for nbval, terminals)."""

    def __init__(self, text: Any, uuid: str) -> None:
        self.text = text
        styler = text.style.set_uuid(uuid).set_table_styles([{"selector": "th", "props": "white-space: nowrap;"}])
        # A table wider than the column scrolls instead of being clipped.
        styler = styler.set_table_attributes('style="display: block; overflow-x: auto; max-width: 100%"')
        self.html = styler.to_html()

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text.to_string()


def _ipython_display() -> Any:
    """IPython's ``display`` when running in an IPython shell or kernel, else None."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks
        return None
    return display if get_ipython() is not None else None


def footnotes(text: Any) -> tuple[Any, list[str]]:
    """``text`` with its ``source`` column as markers ``[1]``, ``[2]`` … when a cell there is longer than 24
    characters, and the footnotes."""
    if "source" not in text.columns or max((len(str(c)) for c in text["source"]), default=0) <= 24:
        return text, []
    notes = list(dict.fromkeys(text["source"]))
    short = text.assign(source=[f"[{notes.index(c) + 1}]" for c in text["source"]])
    return short, [f"[{i}] {n}" for i, n in enumerate(notes, 1)]


def show(text: Any, title: str = "", note: str = "", uuid: str = "table") -> None:
    """Show a table (text cells, :func:`formatted`) in a notebook: its title, the table, footnotes, the note."""
    display = _ipython_display()
    if display is None:
        return
    from IPython.display import Markdown

    short, notes = footnotes(text)
    if title:
        display(Markdown(f"**{title}**"))
    display(Shown(short, uuid))
    below = "  \n".join([*notes, note] if note else notes)
    if below:
        display(Markdown(below))


def write_table(
    df: Any,
    name: str,
    cfg: StudyConfig,
    title: str = "",
    note: str = "",
    decimals: dict[str, int] | None = None,
    **details: Any,
) -> Any:
    """Write ``df`` as ``<name>.csv`` and ``<name>.md`` into ``figures_dir`` with ``<name>.provenance.json``
    (``details``: extra fields) and show it under ``title``, ``note`` below; ``decimals`` per column (default one).
    Returns the table as the files show it (text cells, paths relative: :func:`relative_paths`)."""
    text = formatted(df, decimals).map(lambda c: relative_paths(c, cfg))
    title, note = relative_paths(title, cfg), relative_paths(note, cfg)
    out = Path(cfg.figures_dir)
    write_text_atomic(out / f"{name}.csv", text.replace(MISSING, "").to_csv(index=True))
    idx = [i if isinstance(i, tuple) else (i,) for i in text.index]
    cells = [[str(v).replace("|", "\\|") for v in [*i, *r]] for i, r in zip(idx, text.values.tolist())]
    table = markdown_table([str(n or "") for n in text.index.names] + [str(c) for c in text.columns], cells)
    parts = [f"**{title}**" if title else "", table, note, f"Provenance: `{name}.provenance.json`."]
    write_text_atomic(out / f"{name}.md", "\n\n".join(p for p in parts if p) + "\n")
    write_json_atomic(out / f"{name}.provenance.json", provenance(cfg, table=name, title=title, **details))
    show(text, title, note, uuid=name)
    return text


def save_figure(fig: Any, name: str, cfg: StudyConfig, show: bool = True, **details: Any) -> None:
    """Save a figure as PNG and SVG (same bytes on a rerun) with ``<name>.provenance.json``; ``show=False`` closes it
    (a full grid kept as a file, not shown)."""
    import matplotlib
    import matplotlib.pyplot as plt

    out = Path(cfg.figures_dir)
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
            with atomic_path(out / f"{name}.{ext}") as tmp:
                fig.savefig(tmp, format=ext, dpi=110, bbox_inches="tight", metadata=meta)
    write_json_atomic(out / f"{name}.provenance.json", provenance(cfg, figure=name, **details))
    if not show:
        plt.close(fig)


def say(*sentences: str, cfg: StudyConfig | None = None) -> None:
    """Show computed sentences (paths relative: :func:`relative_paths`): as Markdown in a notebook, else printed."""
    text = relative_paths(" ".join(s for s in sentences if s), cfg)
    if not text:
        return
    display = _ipython_display()
    if display is None:
        print(text)
    else:
        from IPython.display import Markdown

        display(Markdown(text))


def display_or_print(obj: Any) -> None:
    """Show ``obj`` with IPython's rich display in a notebook, else print it."""
    display = _ipython_display()
    (print if display is None else display)(obj)


def show_claims(report: Any, *notes: str) -> None:
    """Show the verdicts of a notebook's claims (a :class:`~streid_lib.study.claims.ClaimReport`: Markdown, with a
    plain-text twin) and sentences under them, or print them."""
    display_or_print(report)
    say(*notes)
