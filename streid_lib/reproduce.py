"""Run the study's notebooks in order with papermill (``python -m streid_lib reproduce``).

Each notebook in ``notebooks/`` (``NN_name.ipynb``, run in name order) is executed with the same
parameters (profile, output directory, ...) into ``<out>/notebooks/``, where a reader can open the
executed copies in JupyterLab: they are signed, so JupyterLab shows them as trusted.

What a user sees on the terminal:

* one line per notebook as it starts, what the kernel writes to stderr while it runs (training
  progress bars, warnings: on a terminal the bars refresh in place, through a pipe a bar gives one
  line per ``progress_interval`` seconds), and a table of the time per notebook at the end;
* not the kernel process's own log (its transport warning, the interrupt that every kernel
  shutdown sends): that goes to ``<out>/notebooks/kernel.log``;
* on a failure, one message naming the notebook, the cell and the error.

Parameters (``-p NAME VALUE``) are checked against the notebooks' ``parameters`` cells before
anything runs or is written: an unknown name, a value of the wrong type, or a name that is also an
option (``profile``, ``out_dir``) given two different values is a one-line error. Path-valued
parameters (:data:`streid_lib.study.config.PATH_PARAMETERS`) are made absolute against the current
folder before they are injected, so that an executed copy reruns from any folder (nbval runs it from
its own).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._io import atomic_path, check_output_path, remove_stale_leftovers
from .errors import StreidError
from .study import REPO_ROOT, resolve_config
from .study.config import PATH_PARAMETERS

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_LOG = "kernel.log"

#: Notebook parameters that are also options of ``reproduce``: parameter name → option.
OPTION_PARAMETERS = {"profile": "--profile", "out_dir": "--out"}


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


class ParameterError(StreidError):
    """A ``-p NAME VALUE`` the notebooks do not declare, or a value of the wrong type (one line)."""


# --------------------------------------------------------------------------------------------
# Notebooks and their parameters
# --------------------------------------------------------------------------------------------


def notebooks(only: Sequence[str] | None = None, notebook_dir: Path | None = None) -> list[Path]:
    """The study's notebooks in run order, optionally those whose name contains one of ``only``.

    Raises:
        FileNotFoundError: no notebook matches (the message lists the notebooks there are).
    """
    folder = Path(notebook_dir or NOTEBOOK_DIR)
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"{folder}: no notebooks (NN_name.ipynb)")
    if only:
        chosen = [p for p in found if any(o in p.name for o in only)]
        if not chosen:
            raise FileNotFoundError(
                f"--only {' '.join(only)}: no notebooks match; the notebooks are {', '.join(p.stem for p in found)}"
            )
        found = chosen
    return found


@dataclass(frozen=True)
class NotebookParameter:
    """One name of a notebook's ``parameters`` cell and the type its command-line value is converted to.

    The type comes from the cell (an annotation or ``# type:`` comment, else the default's type);
    for a default of ``None`` without one, from the annotation of :func:`streid_lib.study.resolve_config`;
    otherwise values are read as numbers, true/false/none or text (:func:`_coerce`).
    """

    name: str
    default: str  # as written in the cell
    kind: type | None  # bool, int, float or str; None: no declared type
    optional: bool  # "none" is accepted

    def convert(self, text: str) -> Any:
        """The value of ``-p NAME TEXT``; raises :class:`ParameterError` naming the parameter."""
        if text.strip().lower() in ("none", "null") and (self.optional or self.kind is None):
            return None
        kind = self.kind
        if kind is None:
            return _coerce(text)
        if kind is str:
            return text
        if kind is bool:
            low = text.strip().lower()
            if low in ("true", "yes", "1"):
                return True
            if low in ("false", "no", "0"):
                return False
            want = "true or false"
        else:
            try:
                return kind(text)
            except ValueError:
                pass
            want = "an integer" if kind is int else "a number"
        none = " (or none)" if self.optional else ""
        raise ParameterError(f"parameter {self.name}: expected {want}{none}, got {text!r}")


_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def _kind_from_annotation(text: str | None) -> tuple[type | None, bool]:
    """(type, accepts None) from an annotation such as ``int``, ``Optional[int]``, ``int | None``."""
    words = re.findall(r"[A-Za-z_]+", text or "")
    kinds = [_TYPES[w] for w in words if w in _TYPES]
    return (kinds[0] if len(kinds) == 1 else None), ("None" in words or "Optional" in words)


def _declared_parameter(name: str, info: dict, fallback: dict[str, str]) -> NotebookParameter:
    default = str(info.get("default", "None"))
    annotation = info.get("inferred_type_name")
    if annotation not in (None, "None"):
        kind, optional = _kind_from_annotation(annotation)
        return NotebookParameter(name, default, kind, optional or default == "None")
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return NotebookParameter(name, default, None, True)
    if value is None:
        kind, _ = _kind_from_annotation(fallback.get(name))
        return NotebookParameter(name, default, kind, True)
    return NotebookParameter(name, default, type(value) if type(value) in _TYPES.values() else None, False)


def notebook_parameters(paths: Iterable[Path]) -> dict[str, dict[str, NotebookParameter]]:
    """Per notebook (file name), the parameters its ``parameters`` cell declares (read as papermill reads them).

    The notebooks are Python notebooks; the first cell tagged ``parameters`` is the one papermill replaces.
    """
    import nbformat
    from papermill.translators import PythonTranslator

    fallback = {k: str(p.annotation) for k, p in inspect.signature(resolve_config).parameters.items()}
    out = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        declared = PythonTranslator.inspect(cells[0]) if cells else []
        out[path.name] = {p.name: _declared_parameter(p.name, p._asdict(), fallback) for p in declared}
    return out


def _coerce(value: str) -> Any:
    """A value without a declared type: numbers and true/false/none become values, the rest stays text."""
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


def _known_parameters(per_notebook: dict[str, dict[str, NotebookParameter]]) -> dict[str, NotebookParameter]:
    known: dict[str, NotebookParameter] = {}
    for params in per_notebook.values():
        for name, p in params.items():
            known.setdefault(name, p)
    return known


def _unknown_name_error(name: str, known: Iterable[str]) -> ParameterError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ParameterError(
        f"unknown notebook parameter {name!r}{hint}; the notebooks' parameters are: {', '.join(known) or 'none'}"
    )


def parse_parameters(
    pairs: Sequence[Sequence[str]], per_notebook: dict[str, dict[str, NotebookParameter]]
) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs as typed values, checked against the notebooks' parameters.

    Raises:
        ParameterError: an unknown name (listing the valid ones), a bad value (naming the parameter), or one
            name given twice with different values.
    """
    known = _known_parameters(per_notebook)
    out: dict[str, Any] = {}
    for name, text in pairs:
        if name not in known:
            raise _unknown_name_error(name, known)
        value = known[name].convert(text)
        if name in out and out[name] != value:
            raise ParameterError(f"parameter {name} given twice: {out[name]!r} and {value!r}")
        out[name] = value
    return out


# --------------------------------------------------------------------------------------------
# What the terminal shows
# --------------------------------------------------------------------------------------------


class _StderrRelay:
    """Forwards what a kernel writes to stderr (progress bars, warnings) to the terminal, indented.

    On a terminal, carriage returns pass through, so a progress bar refreshes in place (cut to the terminal's
    width so that it never wraps; a finished line that was cut is written again whole). Through a pipe or into a
    file, every finished line is written, but a line that is refreshed with ``\\r`` (a progress bar) only once per
    ``interval`` seconds and when it finishes (a bar that clears itself on close shows no stale last refresh).
    """

    def __init__(self, stream: IO[str], interval: float = 30.0, indent: str = "      ") -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = interval
        self.indent = indent
        self._tail = ""  # pipe: text after the last \r or \n
        self._pending: str | None = None  # pipe: last refresh of a bar, not shown yet
        self._last_shown = -float("inf")
        self._open = False  # tty: a line has been started and not ended
        self._col0 = True  # tty: the cursor is at the start of a line (write the indent first)
        self._line = ""  # tty: the text written since the last \r or \n
        self._shown = 0  # tty: how much of it is on the screen (the rest was cut at the terminal's width)
        self._blank = True  # tty: what the current line shows is blank (a cleared bar)

    def write(self, text: str) -> int:
        if self.tty:
            self._write_tty(text)
        else:
            self._write_pipe(text)
        return len(text)

    def _write_tty(self, text: str) -> None:
        width = max(20, shutil.get_terminal_size().columns - 1 - len(self.indent))
        out = []
        for piece in re.split(r"(\r|\n)", text):
            if piece == "\n":
                if len(self._line) > self._shown:  # a line cut while it could still be refreshed: it is finished
                    out.append(f"\r{self.indent}{self._line}")
                out.append("\n")
                self._line, self._shown, self._col0, self._open, self._blank = "", 0, True, False, True
            elif piece == "\r":
                out.append("\r")
                self._line, self._shown, self._col0 = "", 0, True
            elif piece:
                if self._col0:
                    out.append(self.indent)
                    self._col0 = False
                # Cut to the width: a line that wraps cannot be refreshed in place with \r.
                room = max(0, width - self._shown)
                out.append(piece[:room])
                self._shown += min(len(piece), room)
                self._line += piece
                self._open, self._blank = True, not self._line.strip()
        self.stream.write("".join(out))
        self.stream.flush()

    def _write_pipe(self, text: str) -> None:
        parts = re.split(r"(\r|\n)", self._tail + text)
        self._tail = parts[-1]
        for raw, sep in zip(parts[0:-1:2], parts[1::2]):
            segment = raw.rstrip()
            if sep == "\n":
                line = segment or self._pending
                if line:
                    self._show(line)
                self._pending = None
            elif segment:
                self._pending = segment
                if time.monotonic() - self._last_shown >= self.interval:
                    self._show(segment)
                    self._pending = None
            elif raw:  # a bar cleared on close (tqdm leave=False: blanks, then \r): its last refresh is stale
                self._pending = None

    def _show(self, line: str) -> None:
        self.stream.write(f"{self.indent}{line}\n")
        self.stream.flush()
        self._last_shown = time.monotonic()

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        """End a line left open (a bar, a message without its newline)."""
        if self.tty:
            if self._open:  # a bar cleared on close (tqdm leave=False) leaves a blank line: reuse it
                self.stream.write("\r" if self._blank else "\n")
                self._open, self._col0 = False, True
        else:
            line = self._tail.rstrip() or self._pending
            if line:
                self._show(line)
            self._tail, self._pending = "", None
        self.stream.flush()


def _kernel_manager_class(log: IO):
    """A kernel manager whose kernel process writes its own log (not the cells' output) into ``log``."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


def format_seconds(s: float) -> str:
    """``4 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def timing_table(times: Sequence[tuple[str, float]]) -> str:
    """The time per notebook and the total, as a small text table."""
    width = max([len("notebook"), *(len(n) for n, _ in times)])
    rows = [f"{'notebook':<{width}}  {'time':>10}"]
    rows += [f"{name:<{width}}  {format_seconds(t):>10}" for name, t in times]
    rows.append(f"{'total':<{width}}  {format_seconds(sum(t for _, t in times)):>10}")
    return "\n".join(rows)


def sign_notebook(path: Path) -> str | None:
    """Sign an executed notebook so that Jupyter trusts it (its outputs render); return why not, if it failed.

    The signature goes into the user's Jupyter data folder (``nbformat.sign.NotebookNotary``), as when a
    user runs ``jupyter trust``; the file itself is not changed.
    """
    import sqlite3

    import nbformat
    from nbformat.sign import NotebookNotary

    try:
        NotebookNotary().sign(nbformat.read(path, as_version=4))
    except (OSError, ValueError, sqlite3.Error) as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def absolute_paths(parameters: dict[str, Any], base: str | Path | None = None) -> dict[str, Any]:
    """``parameters`` with every path-valued one (:data:`~streid_lib.study.config.PATH_PARAMETERS`) made absolute.

    A relative path is read against ``base`` (default: the current folder, where the command was typed); ``~`` is
    expanded; symbolic links and ``..`` are kept as written (the last name of a path names the run). Values that
    are None, empty or not text are left alone.
    """
    base = Path.cwd() if base is None else Path(base)
    out = dict(parameters)
    for name in PATH_PARAMETERS:
        value = out.get(name)
        if isinstance(value, (str, os.PathLike)) and str(value):
            out[name] = str(base / Path(value).expanduser())
    return out


def _same(name: str, a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve() if name == "out_dir" else a == b


def run_study(
    profile: str | None = None,
    out_dir: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
    only: Sequence[str] | None = None,
    progress: bool = True,
    notebook_dir: Path | None = None,
    progress_interval: float = 30.0,
) -> Path:
    """Execute the notebooks in order; return the run directory.

    Everything is checked before anything is written: the notebooks to run, the parameter names (against the
    notebooks' ``parameters`` cells), the configuration (:func:`streid_lib.study.resolve_config`) and the
    destinations. ``parameters`` may hold ``profile`` and ``out_dir``, as the notebooks name them; they are
    the same as the arguments (an error if both are given with different values). Relative paths in path-valued
    parameters are read from the current folder and injected as absolute paths (:func:`absolute_paths`).

    Raises:
        ParameterError: an unknown parameter name, or one that contradicts ``profile``/``out_dir``.
        ValueError: a bad configuration, or a destination that cannot be written (one line each).
        FileNotFoundError: no notebook matches ``only``.
        NotebookFailed: naming the notebook, the failing cell (index and first line) and the error.
    """
    folder = Path(notebook_dir or NOTEBOOK_DIR)
    todo = notebooks(only, folder)
    per_notebook = notebook_parameters(notebooks(None, folder))
    params = dict(parameters or {})
    known = _known_parameters(per_notebook)
    for name in params:
        if name not in known:
            raise _unknown_name_error(name, known)
    options = {"profile": profile, "out_dir": None if out_dir is None else str(out_dir)}
    for name, given in options.items():
        if name in params:
            value = params.pop(name)
            if given is not None and value is not None and not _same(name, str(value), given):
                raise ParameterError(
                    f"-p {name} {value} contradicts {OPTION_PARAMETERS[name]} {given}; give only one of them"
                )
            options[name] = given if value is None else str(value)
    params = absolute_paths(params)  # out_dir is made absolute below, with the option's value
    # The study's configuration takes the parameters it declares; others belong to the notebooks alone.
    declared = inspect.signature(resolve_config).parameters
    cfg = resolve_config(
        profile=options["profile"], out_dir=options["out_dir"], **{k: v for k, v in params.items() if k in declared}
    )
    out = Path(cfg.out)
    nb_out = out / "notebooks"
    check_output_path(out, kind="folder", what="run folder")
    check_output_path(cfg.figures_dir, kind="folder", what="figures folder")

    values = {"profile": cfg.profile, "out_dir": str(out.resolve()), **params}
    nb_out.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(nb_out)
    relay = _StderrRelay(sys.stderr, progress_interval) if progress else None
    times: list[tuple[str, float]] = []
    unsigned: list[str] = []
    with (nb_out / KERNEL_LOG).open("w", encoding="utf-8") as log:
        for i, nb in enumerate(todo, 1):
            t0 = time.perf_counter()
            if progress:
                print(f"[{i}/{len(todo)}] {nb.name} ...", flush=True)
            nb_values = {k: v for k, v in values.items() if k in per_notebook[nb.name]}
            try:
                _execute(nb, nb_out / nb.name, nb_values, relay, log)
            finally:
                why = sign_notebook(nb_out / nb.name) if (nb_out / nb.name).is_file() else None
                if why:
                    unsigned.append(f"{nb.name} ({why})")
            times.append((nb.name, time.perf_counter() - t0))
            if progress:
                print(f"      done in {format_seconds(times[-1][1])}", flush=True)
    if progress:
        print()
        print(timing_table(times))
        print(f"executed notebooks in {nb_out}" + ("" if unsigned else " (signed: trusted in JupyterLab)"))
        if unsigned:
            print(f"not signed (JupyterLab shows them as not trusted): {'; '.join(unsigned)}")
        print(f"figures and tables in {cfg.figures_dir}")
    return out


def _execute(nb: Path, target: Path, parameters: dict[str, Any], relay: _StderrRelay | None, log: IO[str]) -> None:
    """Execute one notebook into ``target`` (written atomically: a killed run leaves no half-executed copy).

    A notebook that raises still gets its executed copy, which shows the error in place.
    """
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    log.write(f"=== {nb.name}\n")
    log.flush()
    failure = None
    try:
        with atomic_path(target) as tmp:
            try:
                pm.execute_notebook(
                    str(nb),
                    str(tmp),
                    parameters=parameters,
                    kernel_name="python3",
                    language="python",
                    progress_bar=False,
                    stderr_file=relay,
                    kernel_manager_class=_kernel_manager_class(log),
                )
            except pm.PapermillExecutionError as exc:
                failure = exc
    except DeadKernelError as exc:
        raise NotebookFailed(f"{nb.name}: the kernel died ({exc}); its log: {Path(log.name)}") from None
    finally:
        if relay is not None:
            relay.close()
    if failure is not None:
        first = (failure.source or "").strip().splitlines()[:1]
        raise NotebookFailed(
            f"{nb.name}: cell {failure.cell_index} (execution count {failure.exec_count}"
            f"{', ' + repr(first[0]) if first else ''}) raised {failure.ename}: {failure.evalue}; "
            f"executed copy: {target}"
        )


def cli_reproduce(args: argparse.Namespace) -> int:
    """``python -m streid_lib reproduce``."""
    params = parse_parameters(args.parameter, notebook_parameters(notebooks()))
    try:
        run_study(args.profile, args.out, params, args.only)
    except NotebookFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
