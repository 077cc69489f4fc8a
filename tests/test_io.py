"""Atomic writes and the clean-up of what killed writers leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streid_lib._io import atomic_path, partial_dir, remove_stale_leftovers, write_text_atomic


def dead_pid() -> int:
    """The pid of a process that has finished (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_atomic_write_leaves_no_temp_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            assert tmp.name.startswith(f".a.json.tmp-{os.getpid()}-")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_text_atomic(tmp_path / "a.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_stale_leftovers_are_removed_and_nothing_else(tmp_path: Path) -> None:
    pid = dead_pid()
    stale_file = tmp_path / f".last.pt.tmp-{pid}-abc.pt"
    stale_dir = tmp_path / f".campus.partial-{pid}"
    live_file = tmp_path / f".last.pt.tmp-{os.getpid()}-xyz.pt"  # a writer still running (this process)
    user_files = [tmp_path / "last.pt", tmp_path / ".last.pt.tmp.old", tmp_path / "notes.partial-1"]
    stale_file.write_bytes(b"x")
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "f.jpg").write_bytes(b"x")
    live_file.write_bytes(b"x")
    for f in user_files:
        f.write_bytes(b"x")
    assert remove_stale_leftovers(tmp_path, name="campus") == [stale_dir]
    assert remove_stale_leftovers(tmp_path) == [stale_file]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live_file.name] + [f.name for f in user_files])
    assert remove_stale_leftovers(tmp_path / "missing") == []


def test_partial_dir_names_the_process(tmp_path: Path) -> None:
    assert partial_dir(tmp_path / "campus") == tmp_path / f".campus.partial-{os.getpid()}"
