"""Atomic writes, JSON, checks of output paths and the removal of leftovers of killed runs: temporary names carry the
writer's pid (``.NAME.tmp-PID-XXXX``, ``.NAME.partial-PID``), so only the leftovers of dead processes are removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import StreidError


class OutputError(StreidError):
    """A destination that cannot or must not be written (names the path and why)."""


#: Write errors that are the destination's fault, not a bug: reported in one line, the previous file kept.
_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)


def is_special(path: str | os.PathLike) -> bool:
    """Whether ``path`` (after symlinks) is a device, FIFO or socket: written in place, never renamed over."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix), renamed onto it only if the block succeeds; a symlink's
    target is replaced, a device or FIFO written in place; a full or forbidden disk raises :class:`OutputError`."""
    shown = path
    if is_special(path):
        with _disk_errors(shown):
            yield Path(path)
        return
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    tmp_path = Path(tmp)
    try:
        os.close(fd)
        # mkstemp creates the file 0600; give the final file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        with _disk_errors(shown):
            yield tmp_path
            os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _disk_errors(path: str | os.PathLike) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        raise OutputError(f"{path}: cannot write ({exc.strerror}); nothing was changed there") from None


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file, then rename; a device or FIFO in place)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, for provenance (cached while its size and modification time stay the same)."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=256)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()  # hashlib.file_digest needs Python 3.11; we support 3.10
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.generic, np.ndarray)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


#: ``.NAME.tmp-PID-…`` (atomic_path) and ``.NAME.partial-PID`` (staged folders): the pid is group 2.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:tmp|partial)-(?P<pid>\d+)(?:-.*)?$")


def partial_dir(path: str | os.PathLike) -> Path:
    """The staging folder beside ``path`` for a writer that builds a whole folder and renames it at the end."""
    path = Path(path)
    return path.parent / f".{path.name}.partial-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return True


def remove_stale_leftovers(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete, and return, this module's temp files and partial folders in ``folder`` (for target ``name`` only, if
    given) whose writing process is gone; nothing else is ever deleted."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _LEFTOVER.match(entry.name)
        if m is None or (name is not None and m["name"] != name) or _alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return sorted(removed)


def check_output_path(
    path: str | os.PathLike,
    *,
    kind: str = "file",
    suffixes: tuple[str, ...] | None = None,
    what: str = "output",
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """``Path(path)`` once checked, before any work and creating nothing, that it can be written as a ``kind`` "file"
    (not a folder nor one of the ``inputs``, ending in one of ``suffixes``) or "folder" (not a file), its nearest
    existing folder accepting a new file (probed: permission bits mislead under root); else :class:`OutputError`."""
    raw, path = os.fspath(path), Path(path)
    if raw == "":
        raise OutputError(f"{what}: the path is empty; expected a file path")
    if kind == "file":
        if path.is_dir() or raw.endswith(os.sep):
            raise OutputError(f"{what} {raw}: is a folder; expected a file path")
        for given in inputs:
            if os.path.realpath(given) == os.path.realpath(path):
                raise OutputError(f"{what} {raw}: is the input {given}; writing there would destroy it")
        if is_special(path):
            return path
        if suffixes and path.suffix not in suffixes:
            raise OutputError(f"{what} {path}: expected a name ending in {' or '.join(suffixes)}")
    elif path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path}: is a file; expected a folder")
    existing = (path if kind == "folder" else path.parent).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{what} {path}: cannot be created, {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".probe.tmp-{os.getpid()}-", dir=existing)
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot write in {existing} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return path
