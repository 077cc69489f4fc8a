"""Progress bars (:class:`tqdm.tqdm`): live on a terminal, never in a notebook. Inside ``reproduce``'s kernels they go
to :data:`PROGRESS_FILE_ENV` (relayed live with :data:`PROGRESS_TTY_ENV` columns, else every
:data:`PROGRESS_INTERVAL_ENV` s); elsewhere to stderr, redrawn every :data:`NON_TTY_INTERVAL_S` s if not a terminal.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

#: Seconds between redraws when the destination is not a terminal (a terminal gets tqdm's default 0.1 s).
NON_TTY_INTERVAL_S = 10.0
#: When the destination is not a terminal, a transient bar (``leave=False``) first appears after this many seconds.
NON_TTY_DELAY_S = 2.0
#: Environment variables set by ``reproduce`` for its kernels: the progress file, the seconds between redraws, and
#: (when the run's terminal is one) the columns a bar may use.
PROGRESS_FILE_ENV = "STREID_PROGRESS_FILE"
PROGRESS_INTERVAL_ENV = "STREID_PROGRESS_INTERVAL"
PROGRESS_TTY_ENV = "STREID_PROGRESS_COLUMNS"
_opened: dict[str, IO[str]] = {}


def _destination() -> tuple[IO[str], bool, dict[str, Any]]:
    """(stream, is a terminal, tqdm settings) following the module's rule."""
    path = os.environ.get(PROGRESS_FILE_ENV)
    if path:
        if path not in _opened:
            _opened[path] = open(path, "a", encoding="utf-8", buffering=1)  # open while the process lives
        columns = os.environ.get(PROGRESS_TTY_ENV)
        if columns:
            return _opened[path], True, {"ncols": int(columns)}
        return _opened[path], False, {"mininterval": float(os.environ.get(PROGRESS_INTERVAL_ENV, NON_TTY_INTERVAL_S))}
    in_notebook = type(sys.stderr).__module__.startswith("ipykernel")  # a kernel's stderr is a notebook's output
    stream = sys.__stderr__ if in_notebook and sys.__stderr__ is not None else sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    return stream, tty, {"dynamic_ncols": tty}


def progress_bar(total: int | None = None, desc: str = "", enabled: bool = True, **kwargs: Any):
    """A tqdm bar following the module's rule; ``enabled=False`` gives a silent one (same interface)."""
    from tqdm import tqdm

    stream, tty, settings = _destination()
    kwargs = settings | kwargs  # the caller's settings win
    kwargs.setdefault("mininterval", 0.1 if tty else NON_TTY_INTERVAL_S)
    if not tty and not kwargs.get("leave", True):
        kwargs.setdefault("delay", NON_TTY_DELAY_S)
    return tqdm(total=total, desc=desc, disable=not enabled, file=stream, **kwargs)


def progress_message(text: str, enabled: bool = True) -> None:
    """One line of progress information where the bars go (through tqdm, so a running bar is not broken)."""
    if enabled:
        from tqdm import tqdm

        tqdm.write(text, file=_destination()[0])
