"""Progress bars for long jobs: one rule for the terminal, a notebook's stderr and a log file.

A plain :class:`tqdm.tqdm` on stderr (not ``tqdm.auto``: its notebook widget needs ipywidgets and, without them,
prints "TqdmWarning: IProgress not found"). stderr is what a terminal shows and what ``reproduce`` streams from a
notebook's kernel. When stderr is not a terminal (papermill, a log file) the bar is redrawn at most every
:data:`NON_TTY_INTERVAL_S` seconds, so an executed notebook or a log keeps a few lines per job rather than one per
step.
"""

from __future__ import annotations

import sys
from typing import Any

#: Seconds between redraws when stderr is not a terminal (a terminal gets tqdm's default 0.1 s).
NON_TTY_INTERVAL_S = 10.0
#: When stderr is not a terminal, a transient bar (``leave=False``) first appears after this many seconds, so a
#: short step leaves no stale line behind in a log; a bar that stays prints its final state whatever its length.
NON_TTY_DELAY_S = 2.0


def progress_bar(total: int | None = None, desc: str = "", enabled: bool = True, **kwargs: Any):
    """A tqdm bar on stderr following the module's rule; ``enabled=False`` gives a silent one (same interface)."""
    from tqdm import tqdm

    stream = sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    kwargs.setdefault("mininterval", 0.1 if tty else NON_TTY_INTERVAL_S)
    if not tty and not kwargs.get("leave", True):
        kwargs.setdefault("delay", NON_TTY_DELAY_S)
    kwargs.setdefault("dynamic_ncols", tty)
    return tqdm(total=total, desc=desc, disable=not enabled, file=stream, **kwargs)


def progress_message(text: str, enabled: bool = True) -> None:
    """One line of progress information on stderr (printed through tqdm, so a running bar is not broken)."""
    if enabled:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)
