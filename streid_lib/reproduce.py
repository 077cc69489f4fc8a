"""Run the study's notebooks in order with papermill (``python -m streid_lib reproduce``).

Each notebook in ``notebooks/`` (``NN_name.ipynb``, run in name order) is executed with the same
parameters (profile, output directory, ...) into ``<out>/notebooks/``, where a reader can open the
executed copies in JupyterLab. The run stops at the first failure and names the notebook and cell.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from .study import REPO_ROOT, resolve_config

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The study's notebooks in run order, optionally filtered by name fragments."""
    found = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(o in p.name for o in only)]
    if not found:
        raise FileNotFoundError(f"{NOTEBOOK_DIR}: no notebooks match {only or '[0-9][0-9]_*.ipynb'}")
    return found


def _coerce(value: str) -> Any:
    """Parameters given on the command line as text: numbers and true/false/none become values."""
    low = value.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def run_study(
    profile: str | None = None,
    out_dir: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
    only: list[str] | None = None,
    progress: bool = True,
) -> Path:
    """Execute the notebooks in order; return the run directory.

    Raises:
        NotebookFailed: naming the notebook, the failing cell (index and first line) and the error.
    """
    import papermill as pm

    cfg = resolve_config(profile=profile, out_dir=str(out_dir) if out_dir else None, **(parameters or {}))
    out = cfg.out
    nb_out = out / "notebooks"
    nb_out.mkdir(parents=True, exist_ok=True)
    params = {"profile": cfg.profile, "out_dir": str(out.resolve()), **(parameters or {})}
    todo = notebooks(only)
    t_start = time.perf_counter()
    for i, nb in enumerate(todo, 1):
        t0 = time.perf_counter()
        if progress:
            print(f"[{i}/{len(todo)}] {nb.name} ...", flush=True)
        try:
            pm.execute_notebook(
                str(nb),
                str(nb_out / nb.name),
                parameters=params,
                kernel_name="python3",
                cwd=str(NOTEBOOK_DIR),
                progress_bar=False,
            )
        except pm.PapermillExecutionError as exc:
            first = (exc.source or "").strip().splitlines()[:1]
            raise NotebookFailed(
                f"{nb.name}: cell {exc.cell_index} (execution count {exc.exec_count}"
                f"{', ' + repr(first[0]) if first else ''}) raised {exc.ename}: {exc.evalue}\n"
                f"executed copy: {nb_out / nb.name}"
            ) from None
        if progress:
            print(f"      done in {time.perf_counter() - t0:.0f} s", flush=True)
    if progress:
        print(f"study finished in {time.perf_counter() - t_start:.0f} s; executed notebooks in {nb_out}")
        print(f"figures and tables in {cfg.figures_dir}")
    return out


def cli_reproduce(args: argparse.Namespace) -> int:
    """``python -m streid_lib reproduce``."""
    params = {name: _coerce(value) for name, value in args.parameter}
    profile = args.profile or ("smoke" if "CI" in os.environ else "default")
    try:
        run_study(profile, args.out, params, args.only)
    except NotebookFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
