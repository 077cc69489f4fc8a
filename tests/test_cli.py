"""The command line's contract: every command ends a Ctrl-C or a library error with one line, never a traceback.

Exit codes: 0 done, 1 the work failed, 2 bad input, 130 interrupted (128 + SIGINT, as a shell reports it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from streid_lib import cli
from streid_lib.cli import build_parser, main
from streid_lib.errors import StreidError

REPO = Path(__file__).resolve().parents[1]

#: The least each command needs to parse, and the function it runs.
COMMANDS = {
    "evaluate": ["--features", "f.npz", "--dataset", "duke", "--train-names", "t.txt"],
    "synth": ["--out", "campus"],
    "train": ["--model", "pcb", "--data", "d", "--out", "o"],
    "extract": ["--model", "pcb", "--checkpoint", "c.pt", "--data", "d", "--out", "f.npz"],
    "reproduce": ["--profile", "smoke"],
}


def _fake_command(monkeypatch, command: str, behaviour) -> None:
    """Replace the function behind ``command`` where ``main`` looks it up (train/extract import torch when run)."""
    assert build_parser().parse_args([command, *COMMANDS[command]]).func is getattr(cli, f"cli_{command}")
    monkeypatch.setattr(cli, f"cli_{command}", behaviour)


def test_every_command_is_covered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_ctrl_c_ends_every_command_with_one_line_and_exit_130(monkeypatch, capsys, command):
    def interrupted(args):
        raise KeyboardInterrupt

    _fake_command(monkeypatch, command, interrupted)
    assert main([command, *COMMANDS[command]]) == 130
    captured = capsys.readouterr()
    assert captured.err == "interrupted\n" and captured.out == ""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_library_errors_end_every_command_with_one_line_and_exit_2(monkeypatch, capsys, command):
    def bad(args):
        raise StreidError("features.npz: query_f: expected 2-D float array, got 1-D")

    _fake_command(monkeypatch, command, bad)
    assert main([command, *COMMANDS[command]]) == 2
    assert capsys.readouterr().err == "error: features.npz: query_f: expected 2-D float array, got 1-D\n"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_file_is_bad_input_named_exit_2(monkeypatch, capsys, command):
    def missing(args):
        open("no/such/file.txt")  # noqa: SIM115

    _fake_command(monkeypatch, command, missing)
    assert main([command, *COMMANDS[command]]) == 2
    assert capsys.readouterr().err == "error: no/such/file.txt: No such file or directory\n"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bug_is_exit_1_with_one_line_and_the_traceback_in_a_log(monkeypatch, capsys, tmp_path, command):
    """A numpy bug (a plain ValueError) is not bad input: exit 1, one line naming the log, the traceback there."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def bug(args):
        import numpy as np

        np.zeros(3) + np.zeros(4)

    _fake_command(monkeypatch, command, bug)
    assert main([command, *COMMANDS[command]]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("internal error (a bug, not bad input): ValueError: ")
    assert "rerun with --debug" in err and "Traceback" not in err
    (log,) = tmp_path.glob("streid-error-*.log")
    assert str(log) in err and "Traceback" in log.read_text() and "in bug" in log.read_text()
    assert main(["--debug", command, *COMMANDS[command]]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("internal error") and "traceback above" in err
    assert main([command, *COMMANDS[command], "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--dataset", "duke"], "error: the following arguments are required: --features"),
        (["evaluate", "--features", "f.npz", "--dataset", "mars"], "error: argument --dataset: invalid choice: 'mars'"),
        (
            ["evaluate", "--features", "f.npz", "--dataset", "duke", "--sigma", "x"],
            "error: argument --sigma: invalid float",
        ),
        (["nosuch"], "error: argument command: invalid choice: 'nosuch'"),
    ],
)
def test_argparse_errors_are_one_line_and_see_help(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith(message) and line.endswith("--help)") and "usage" not in line and captured.out == ""


@pytest.mark.slow
def test_a_real_ctrl_c_during_synth(tmp_path):
    """SIGINT while the large campus renders into its staging folder: one line, exit 130, and nothing left behind."""
    out = tmp_path / "campus"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streid_lib", "synth", "--out", str(out), "--preset", "large"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".campus.partial-*")) and time.monotonic() < deadline:  # rendering has begun
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert list(tmp_path.glob(".campus.partial-*"))
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130
    assert proc.stdout.read() == b""
    # The bar's last state (tqdm may not end its line when the interrupt lands inside its own write), then the one
    # line; no traceback.
    assert err.endswith("interrupted\n") and "Traceback" not in err and "KeyboardInterrupt" not in err
    assert sorted(os.listdir(tmp_path)) == []  # neither the campus nor its .campus.partial-PID folder
