"""Run the study's notebooks in order with papermill (``python -m streid_lib reproduce``) into ``<out>/notebooks/``.

Parameters are checked against the notebooks' parameters cells before anything runs; the terminal shows each
notebook, the kernels' progress bars (relayed from :data:`streid_lib._progress.PROGRESS_FILE_ENV`) and stderr; the
kernel's own log goes to ``<out>/notebooks/kernel.log``. Bad input met in a notebook exits with code 2.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import inspect
import os
import pkgutil
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ._io import atomic_path, check_output_path, remove_stale_leftovers
from ._progress import PROGRESS_FILE_ENV, PROGRESS_INTERVAL_ENV, PROGRESS_TTY_ENV
from .errors import StreidError
from .study import REPO_ROOT, study_config
from .study.config import PATH_PARAMETERS

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_LOG = "kernel.log"
#: The kernel every notebook runs on (its display name is written into the executed copies).
KERNEL_NAME = "python3"
_KINDS = {"bool": bool, "int": int, "float": float, "str": str}


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


class ParameterError(StreidError):
    """A ``-p NAME VALUE`` the notebooks do not declare, or a value of the wrong type (one line)."""


class NotebookBadInput(StreidError):
    """A notebook raised a :class:`~streid_lib.errors.StreidError`: bad input, exit code 2."""


# -- notebooks and their parameters ------------------------------------------------------------------------------


def notebooks(only: Sequence[str] | None = None, notebook_dir: Path | None = None) -> list[Path]:
    """The study's notebooks in run order, optionally those whose name contains one of ``only``."""
    folder = Path(notebook_dir or NOTEBOOK_DIR)
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"{folder}: no notebooks (NN_name.ipynb)")
    if only is not None and (not only or not all(o.strip() for o in only)):
        given = " ".join(map(repr, only)) or "nothing"
        raise ParameterError(f"--only: expected one or more notebook names (e.g. --only 03 04), got {given}")
    if only:
        chosen = [p for p in found if any(o in p.name for o in only)]
        if not chosen:
            raise FileNotFoundError(
                f"--only {' '.join(only)}: no notebooks match; the notebooks are {', '.join(p.stem for p in found)}"
            )
        found = chosen
    return found


def notebook_parameters(paths: Sequence[Path]) -> dict[str, dict[str, dict]]:
    """Per notebook (file name), its parameters as :func:`papermill.inspect_notebook` reads them."""
    import papermill as pm

    return {p.name: pm.inspect_notebook(str(p)) for p in paths}


def convert(info: dict, text: str) -> Any:
    """The value of ``-p NAME TEXT`` for a parameter ``info`` of :func:`papermill.inspect_notebook`.

    The type is the annotation's (``Optional[int]``, ``# type: float``), else the default's; "none" where the default
    is None or the annotation optional. Untyped: numbers and true/false/none become values, the rest stays text.
    """
    name, annotation, default = info["name"], str(info.get("inferred_type_name")), str(info.get("default"))
    words = annotation.replace("[", " ").replace("]", " ").replace(",", " ").split()
    kinds = [_KINDS[w] for w in words if w in _KINDS]
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        value = ...
    kind = kinds[0] if len(kinds) == 1 else _KINDS.get(type(value).__name__)
    optional = value is None or "Optional" in words or "None" in words[1:]
    low = text.strip().lower()
    if low in ("none", "null") and (optional or kind is None):
        return None
    for cast in (int, float) if kind is None else (kind,) if kind in (int, float) else ():
        with contextlib.suppress(ValueError):
            return cast(text)
    if kind is None:
        return {"true": True, "false": False}.get(low, text)
    if kind is str:
        return text
    if kind is bool and low in ("true", "yes", "1", "false", "no", "0"):
        return low in ("true", "yes", "1")
    want = {bool: "true or false", int: "an integer", float: "a number"}[kind]
    raise ParameterError(f"parameter {name}: expected {want}{' (or none)' if optional else ''}, got {text!r}")


def _known(per_notebook: dict[str, dict[str, dict]], names: Sequence[str] = ()) -> dict[str, dict]:
    """Every notebook parameter by name (the first notebook's info); an unknown one of ``names`` is refused."""
    known: dict[str, dict] = {}
    for params in per_notebook.values():
        for name, info in params.items():
            known.setdefault(name, info)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ParameterError(
                f"unknown notebook parameter {name!r}{hint}; the notebooks' parameters are: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
    return known


def parse_parameters(pairs: Sequence[Sequence[str]], per_notebook: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs as typed values (:func:`convert`); an unknown name or a name given twice with
    different values is a :class:`ParameterError`."""
    known = _known(per_notebook, [name for name, _ in pairs])
    out: dict[str, Any] = {}
    for name, text in pairs:
        value = convert(known[name], text)
        if name in out and out[name] != value:
            raise ParameterError(f"parameter {name} given twice: {out[name]!r} and {value!r}")
        out[name] = value
    return out


def absolute_paths(parameters: dict[str, Any], base: str | Path | None = None) -> dict[str, Any]:
    """``parameters`` with every path-valued one (:data:`~streid_lib.study.config.PATH_PARAMETERS`) made absolute
    against ``base`` (default: the current folder), ``~`` expanded; links and ``..`` kept; other values left alone."""
    base = Path.cwd() if base is None else Path(base)
    out = dict(parameters)
    for name in PATH_PARAMETERS:
        value = out.get(name)
        if isinstance(value, (str, os.PathLike)) and str(value):
            out[name] = str(base / Path(value).expanduser())
    return out


# -- what the terminal shows -------------------------------------------------------------------------------------


class _Relay:
    """Writes a kernel's progress and stderr to the terminal, indented: on a terminal ``\\r`` passes through (bars
    refresh in place); elsewhere a bar's line is written once per ``interval`` seconds and when it ends."""

    def __init__(self, stream: IO[str], interval: float = 30.0, indent: str = "      ") -> None:
        self.stream, self.interval, self.indent = stream, interval, indent
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._col0 = True  # terminal: the cursor is at the start of a line
        self._tail = ""  # elsewhere: text after the last \r or \n
        self._pending: str | None = None  # elsewhere: a bar's last refresh, not shown yet
        self._last = -float("inf")

    def write(self, text: str) -> int:
        if self.tty:  # indent every line's first character
            head = self.indent if self._col0 and text[:1] not in "\r\n" else ""
            self.stream.write(head + re.sub(r"(?<=[\r\n])(?=[^\r\n])", self.indent, text))
            self.stream.flush()
            self._col0 = text[-1] in "\r\n" if text else self._col0
            return len(text)
        pieces = re.split(r"([\r\n])", self._tail + text)
        self._tail = pieces.pop()
        for segment, sep in zip(pieces[::2], pieces[1::2]):
            segment = segment.rstrip()
            if sep == "\n":
                if segment or self._pending:
                    self._show(segment or self._pending)
                self._pending = None
            elif segment:
                self._pending = segment
                if time.monotonic() - self._last >= self.interval:
                    self._show(segment)
                    self._pending = None
            else:  # a bar cleared on close (tqdm leave=False): its last refresh is stale
                self._pending = None
        return len(text)

    def _show(self, line: str) -> None:
        self.stream.write(f"{self.indent}{line}\n")
        self.stream.flush()
        self._last = time.monotonic()

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        """End a line left open by a bar."""
        if self.tty and not self._col0:
            self.stream.write("\n")
            self._col0 = True
        elif not self.tty and (self._tail.strip() or self._pending):
            self._show(self._tail.rstrip() or self._pending)
        self._tail, self._pending = "", None
        self.stream.flush()


@contextlib.contextmanager
def _tailing(path: Path, relay: _Relay) -> Iterator[None]:
    """Relays what is appended to ``path`` (the kernels' progress file) while the block runs, then closes ``relay``."""
    path.touch()
    done = threading.Event()

    def run(f: IO[str]) -> None:
        while not done.wait(0.1):
            relay.write(f.read())
        relay.write(f.read())  # what the last cell wrote before the block ended

    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        f.seek(0, os.SEEK_END)  # what earlier notebooks wrote was relayed with them
        thread = threading.Thread(target=run, args=(f,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            relay.close()


def _kernel_manager_class(log: IO, env: dict[str, str]):
    """A kernel manager whose kernel process writes its own log into ``log`` and gets ``env`` added."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            kw["env"] = {**(kw.get("env") or os.environ), **env}
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


def kernelspec() -> dict[str, str]:
    """The installed kernel's spec as a notebook's metadata holds it (JupyterLab rewrites any other)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    return {"display_name": spec.display_name, "language": spec.language, "name": KERNEL_NAME}


def bad_input_names() -> set[str]:
    """Class names of every :class:`~streid_lib.errors.StreidError` in ``streid_lib`` (importing its modules)."""
    import streid_lib

    for mod in pkgutil.walk_packages(streid_lib.__path__, "streid_lib."):
        if not mod.name.endswith("__main__"):
            # a module whose optional dependency is missing defines no error a notebook can raise
            with contextlib.suppress(Exception):
                importlib.import_module(mod.name)

    def names(cls: type) -> set[str]:
        return {cls.__name__}.union(*map(names, cls.__subclasses__()))

    return names(StreidError)


# -- the run -----------------------------------------------------------------------------------------------------


def run_study(
    profile: str | None = None,
    out_dir: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
    only: Sequence[str] | None = None,
    progress: bool = True,
    notebook_dir: Path | None = None,
) -> Path:
    """Execute the notebooks in order; return the run directory. The notebooks, parameters, configuration
    (:func:`streid_lib.study.study_config`) and destinations are checked before anything is written; ``parameters``
    may hold ``profile`` and ``out_dir`` if they agree with the arguments. A failing cell raises
    :class:`NotebookFailed` (:class:`NotebookBadInput` for bad input)."""
    folder = Path(notebook_dir or NOTEBOOK_DIR)
    todo = notebooks(only, folder)
    per_notebook = notebook_parameters(notebooks(None, folder))
    params = dict(parameters or {})
    _known(per_notebook, list(params))
    options = {"profile": profile, "out_dir": None if out_dir is None else str(out_dir)}
    for name, given in options.items():
        if name in params:
            value = params.pop(name)
            clash = given is not None and value is not None and str(value) != given
            if clash and (name == "profile" or Path(str(value)).resolve() != Path(given).resolve()):
                option = {"profile": "--profile", "out_dir": "--out"}[name]
                raise ParameterError(f"-p {name} {value} contradicts {option} {given}; give only one of them")
            options[name] = given if value is None else str(value)
    params = absolute_paths(params)
    declared = inspect.signature(study_config).parameters
    cfg = study_config(
        profile=options["profile"], out_dir=options["out_dir"], **{k: v for k, v in params.items() if k in declared}
    )
    out = Path(cfg.out)
    nb_out = out / "notebooks"
    check_output_path(out, kind="folder", what="run folder")
    check_output_path(cfg.figures_dir, kind="folder", what="figures folder")

    values = {"profile": cfg.profile, "out_dir": str(out.resolve()), **params}
    nb_out.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(nb_out)
    times: list[tuple[str, float]] = []
    unsigned: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="streid-progress-") as tmp,
        (nb_out / KERNEL_LOG).open("w") as log,
        open(os.devnull, "w") as null,
    ):
        relay = _Relay(sys.stderr if progress else null)
        env = {PROGRESS_FILE_ENV: str(Path(tmp) / "progress"), PROGRESS_INTERVAL_ENV: str(relay.interval)}
        if relay.tty:
            env[PROGRESS_TTY_ENV] = str(max(20, shutil.get_terminal_size().columns - 1 - len(relay.indent)))
        for i, nb in enumerate(todo, 1):
            t0 = time.perf_counter()
            if progress:
                print(f"[{i}/{len(todo)}] {nb.name} ...", flush=True)
            nb_values = {k: v for k, v in values.items() if k in per_notebook[nb.name]}
            if why := _execute(nb, nb_out / nb.name, nb_values, relay, log, env):
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


def _execute(nb: Path, target: Path, parameters: dict[str, Any], relay: _Relay, log: IO[str], env: dict) -> str | None:
    """Execute one notebook into ``target`` (written atomically; a notebook that raises keeps its executed copy) and
    sign it so that Jupyter trusts it (as ``jupyter trust`` does); return why it is not signed, if it could not be."""
    import sqlite3

    import nbformat
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    from nbformat.sign import NotebookNotary

    log.write(f"=== {nb.name}\n")
    log.flush()
    failure = unsigned = None
    try:
        with _tailing(Path(env[PROGRESS_FILE_ENV]), relay), atomic_path(target) as tmp:
            try:
                pm.execute_notebook(
                    str(nb),
                    str(tmp),
                    parameters=parameters,
                    kernel_name=KERNEL_NAME,
                    language="python",
                    progress_bar=False,
                    stderr_file=relay,
                    kernel_manager_class=_kernel_manager_class(log, env),
                )
            except pm.PapermillExecutionError as exc:
                failure = exc
            if Path(tmp).is_file():  # the installed kernel's name: JupyterLab opens the copy unmodified
                executed = nbformat.read(tmp, as_version=4)
                executed.metadata["kernelspec"] = kernelspec()
                nbformat.write(executed, tmp)
                try:
                    NotebookNotary().sign(executed)
                except (OSError, ValueError, sqlite3.Error) as exc:
                    unsigned = str(exc)
    except DeadKernelError as exc:
        raise NotebookFailed(f"{nb.name}: the kernel died ({exc}); its log: {Path(log.name)}") from None
    if failure is None:
        return unsigned
    first = (failure.source or "").strip().splitlines()[:1]
    where = f"cell {failure.cell_index} (execution count {failure.exec_count}{', ' + repr(first[0]) if first else ''})"
    if failure.ename in bad_input_names():
        raise NotebookBadInput(f"{failure.evalue} ({nb.name}, {where}; executed copy: {target})")
    raise NotebookFailed(f"{nb.name}: {where} raised {failure.ename}: {failure.evalue}; executed copy: {target}")
