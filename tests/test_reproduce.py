"""``python -m streid_lib reproduce``: parameters checked against the notebooks, a clean terminal with the kernels'
progress, signed executed copies, nothing left behind by a run that fails at its start or is interrupted.

Tests that execute notebooks use small generated notebooks (a kernel start each, a few seconds); the checks of
the command line run against the study's own notebooks and stop before any kernel starts.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from streid_lib import reproduce
from streid_lib.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_jupyter_data_dir(tmp_path, monkeypatch):
    """Signatures of executed notebooks go to a test folder, not to the user's Jupyter data folder."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(textwrap.dedent(parameters).strip())
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, *(nbformat.v4.new_code_cell(textwrap.dedent(c).strip()) for c in cells)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


PARAMS = """
from typing import Optional

profile = None  # "smoke" | "default" | "paper"
out_dir = None  # run directory
seed = 0
rate = 0.5
label = "x"
verbose = False
epochs: Optional[int] = None
width = None  # type: float
extra = None
"""


@pytest.fixture
def nb_dir(tmp_path, monkeypatch) -> Path:
    """A notebooks folder with one fast notebook that prints a progress bar to stderr; made the study's."""
    folder = tmp_path / "notebooks"
    write_notebook(
        folder / "01_small.ipynb",
        PARAMS + "steps = 3\n",
        """
        import os, sys
        from streid_lib._progress import progress_bar
        print(f"kernel pid {os.getpid()} cwd {os.getcwd()}", file=sys.stderr, flush=True)
        for _ in progress_bar(desc="training toy epoch 1/1", iterable=range(steps), mininterval=0):
            pass
        print("values", profile, out_dir, seed, rate, label, verbose, epochs, width, extra)
        """,
    )
    monkeypatch.setattr(reproduce, "NOTEBOOK_DIR", folder)
    return folder


def run_cli(*argv: str) -> int:
    return main(["reproduce", *argv])


# -- parameters: checked before anything runs ------------------------------------------------------------------


def test_unknown_parameter_lists_the_valid_names_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("--profile", "smoke", "--out", str(out), "-p", "sigmaa", "10") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown notebook parameter 'sigmaa'")
    assert "the notebooks' parameters are: " in err
    assert all(name in err for name in ("dataset", "out_dir", "profile", "seed"))
    assert err.count("\n") == 1
    assert not out.exists()


def test_unknown_parameter_suggests_a_close_name(nb_dir, tmp_path, capsys):
    assert run_cli("--out", str(tmp_path / "run"), "-p", "seeds", "1") == 2
    err = capsys.readouterr().err
    assert err == (
        "error: unknown notebook parameter 'seeds' (did you mean seed?); the notebooks' parameters are: "
        "epochs, extra, label, out_dir, profile, rate, seed, steps, verbose, width\n"
    )


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("seed", "abc", "parameter seed: expected an integer, got 'abc'"),
        ("seed", "none", "parameter seed: expected an integer, got 'none'"),
        ("rate", "fast", "parameter rate: expected a number, got 'fast'"),
        ("verbose", "maybe", "parameter verbose: expected true or false, got 'maybe'"),
        ("epochs", "x", "parameter epochs: expected an integer (or none), got 'x'"),
        ("width", "wide", "parameter width: expected a number (or none), got 'wide'"),
    ],
)
def test_bad_values_name_the_parameter(nb_dir, tmp_path, capsys, name, text, message):
    assert run_cli("--out", str(tmp_path / "run"), "-p", name, text) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "run").exists()


def test_the_study_notebooks_types_reach_the_error(tmp_path, capsys):
    # seed = 0 in the study's parameters cell; epochs = None takes its type from study.study_config.
    assert run_cli("--out", str(tmp_path / "r"), "-p", "seed", "abc") == 2
    assert capsys.readouterr().err == "error: parameter seed: expected an integer, got 'abc'\n"
    assert run_cli("--out", str(tmp_path / "r"), "-p", "epochs", "two") == 2
    assert capsys.readouterr().err == "error: parameter epochs: expected an integer (or none), got 'two'\n"


def test_values_are_converted_to_the_declared_types(nb_dir):
    declared = reproduce.notebook_parameters([nb_dir / "01_small.ipynb"])
    got = reproduce.parse_parameters(
        [
            ("seed", "7"),
            ("rate", "2"),
            ("label", "42"),
            ("verbose", "yes"),
            ("epochs", "none"),
            ("width", "1.5"),
            ("extra", "3"),
        ],
        declared,
    )
    assert got == {"seed": 7, "rate": 2.0, "label": "42", "verbose": True, "epochs": None, "width": 1.5, "extra": 3}
    assert type(got["rate"]) is float and type(got["label"]) is str


def test_a_parameter_given_twice_differently_is_refused(nb_dir, tmp_path, capsys):
    assert run_cli("--out", str(tmp_path / "r"), "-p", "seed", "1", "-p", "seed", "2") == 2
    assert capsys.readouterr().err == "error: parameter seed given twice: 1 and 2\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--profile", "default", "-p", "profile", "smoke"],
            "error: -p profile smoke contradicts --profile default; give only one of them\n",
        ),
        (
            ["--out", "runs/a", "-p", "out_dir", "runs/b"],
            "error: -p out_dir runs/b contradicts --out runs/a; give only one of them\n",
        ),
    ],
)
def test_a_parameter_that_contradicts_its_option_is_refused(tmp_path, capsys, argv, message):
    assert run_cli(*argv) == 2
    assert capsys.readouterr().err == message


def test_no_matching_notebook_leaves_no_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("--profile", "smoke", "--out", str(out), "--only", "99") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --only 99: no notebooks match; the notebooks are 01_data, ")
    assert not out.exists()


def test_a_bad_configuration_or_destination_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("--out", str(out), "-p", "profile", "huge") == 2
    assert capsys.readouterr().err == "error: profile: expected one of ('smoke', 'default', 'paper'), got 'huge'\n"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert run_cli("--profile", "smoke", "--out", str(blocker / "run")) == 2
    assert capsys.readouterr().err == f"error: run folder {blocker / 'run'}: cannot be created, {blocker} is a file\n"
    assert not out.exists() and blocker.read_text() == "not a folder"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="no /sys here (a place that refuses new files, even to root)")
def test_a_destination_where_nothing_can_be_written_is_refused_before_work(capsys):
    assert run_cli("--profile", "smoke", "--out", "/sys/streid-run") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run folder /sys/streid-run: cannot write in /sys (")
    assert err.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (see the /sys test)")
def test_a_read_only_destination_is_refused_before_work(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert run_cli("--profile", "smoke", "--out", str(ro / "run")) == 2
        msg = f"error: run folder {ro / 'run'}: cannot write in {ro} (Permission denied)\n"
        assert capsys.readouterr().err == msg
    finally:
        ro.chmod(0o700)


# -- running: options mapped, progress on the terminal, no kernel noise, signed copies -----------------------------


@pytest.mark.slow
def test_a_run_maps_option_parameters_shows_progress_and_no_kernel_noise(nb_dir, tmp_path, capfd, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / "notebooks" / f".01_small.ipynb.tmp-{dead.pid}-x1.ipynb"  # left by a killed run
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    assert run_cli("-p", "out_dir", str(out), "-p", "profile", "smoke", "-p", "seed", "3", "-p", "extra", "a b") == 0
    cap = capfd.readouterr()
    executed = out / "notebooks" / "01_small.ipynb"
    nb = nbformat.read(executed, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert f"values smoke {out.resolve()} 3 0.5 x False None None a b" in printed
    # The terminal: the notebook as it starts, the kernel's stderr (its progress bar, finished), the time table.
    assert cap.out.startswith("[1/1] 01_small.ipynb ...\n")
    assert "notebook" in cap.out and "01_small.ipynb" in cap.out and "total" in cap.out
    assert f"cwd {tmp_path}" in cap.err  # kernels run where the command runs: relative paths mean the same
    assert "training toy epoch 1/1: 100%" in cap.err and "3/3" in cap.err
    # The bar went to the terminal only: the notebook keeps the kernel's own stderr line, not the progress.
    stderr = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr")
    assert "kernel pid" in stderr and "training toy" not in stderr
    assert nb.metadata.kernelspec == reproduce.kernelspec()
    # No kernel noise: the kernel process's own log goes to kernel.log, not to the terminal.
    for noise in ("eavesdropping", "KeyboardInterrupt", "Traceback", "Warning", "WARNING"):
        assert noise not in cap.out + cap.err
    assert "eavesdropping" in (out / "notebooks" / reproduce.KERNEL_LOG).read_text()
    # The executed copy is signed: Jupyter trusts it; nothing temporary is left.
    from nbformat.sign import NotebookNotary

    assert NotebookNotary().check_signature(nb)
    assert "signed: trusted in JupyterLab" in cap.out
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == ["01_small.ipynb", reproduce.KERNEL_LOG]


def test_path_parameters_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    given = {"features": "feats/pcb.npz", "train_names": "~/names.txt", "data_root": "/data/Duke", "out_dir": "../r",
             "figures_dir": "", "seed": 3, "label": "rel/x", "extra": None}  # fmt: skip
    here = tmp_path / "here"
    got = reproduce.absolute_paths(given, base=here)
    assert got == {**given, "features": str(here / "feats" / "pcb.npz"), "out_dir": str(here / ".." / "r"),
                   "train_names": str(tmp_path / "home" / "names.txt")}  # fmt: skip
    assert set(reproduce.PATH_PARAMETERS) >= {"data_root", "features", "train_names"}


@pytest.mark.slow
def test_relative_path_parameters_are_injected_absolute_so_the_copy_reruns_from_its_folder(tmp_path, monkeypatch):
    """``reproduce -p features feats/pcb.npz`` from the user's folder; nbval reruns the copy from its own folder."""
    folder = tmp_path / "notebooks"
    write_notebook(
        folder / "01_paths.ipynb",
        """
        profile = None
        out_dir = None
        dataset = "campus"
        features = None
        train_names = None
        """,
        "print('read', open(train_names).read().strip(), os.path.getsize(features), os.path.isabs(features))",
    )
    nb = nbformat.read(folder / "01_paths.ipynb", as_version=4)
    nb.cells[1].source = "import os\n" + nb.cells[1].source
    nbformat.write(nb, folder / "01_paths.ipynb")
    monkeypatch.setattr(reproduce, "NOTEBOOK_DIR", folder)
    user = tmp_path / "user"
    (user / "feats").mkdir(parents=True)
    (user / "feats" / "pcb.npz").write_bytes(b"12345")
    (user / "names.txt").write_text("0001_c1_f0000100.jpg\n")
    monkeypatch.chdir(user)
    params = ["-p", "dataset", "duke", "-p", "features", "feats/pcb.npz", "-p", "train_names", "names.txt"]
    assert run_cli("--profile", "smoke", "--out", "run", *params) == 0
    executed = user / "run" / "notebooks" / "01_paths.ipynb"
    nb = nbformat.read(executed, as_version=4)
    injected = next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert f'features = "{user / "feats" / "pcb.npz"}"' in injected
    assert f'train_names = "{user / "names.txt"}"' in injected
    # Rerun the executed copy as nbval does: from its own folder.
    from nbclient import NotebookClient

    monkeypatch.chdir(tmp_path)
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(executed.parent)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert "read 0001_c1_f0000100.jpg 5 True" in printed


@pytest.mark.slow
def test_a_failing_notebook_names_the_cell_and_keeps_its_executed_copy(nb_dir, tmp_path, capsys):
    write_notebook(nb_dir / "02_fails.ipynb", PARAMS, "raise ValueError(f'bad seed {seed}')")
    (nb_dir / "01_small.ipynb").unlink()
    out = tmp_path / "run"
    assert run_cli("--profile", "smoke", "--out", str(out), "-p", "seed", "4") == 1
    err = capsys.readouterr().err
    executed = out / "notebooks" / "02_fails.ipynb"
    assert err == (
        "error: 02_fails.ipynb: cell 2 (execution count 3, \"raise ValueError(f'bad seed {seed}')\") raised "
        f"ValueError: bad seed 4; executed copy: {executed}\n"
    )
    assert "bad seed 4" in executed.read_text()


@pytest.mark.slow
def test_bad_input_met_in_a_notebook_ends_with_exit_2_and_its_one_line(nb_dir, tmp_path, capsys):
    cell = "from streid_lib.study import StudyConfigError\nraise StudyConfigError(f'features: x.npz is not a file')"
    write_notebook(nb_dir / "02_bad_input.ipynb", PARAMS, cell)
    (nb_dir / "01_small.ipynb").unlink()
    out = tmp_path / "run"
    assert run_cli("--profile", "smoke", "--out", str(out)) == 2
    executed = out / "notebooks" / "02_bad_input.ipynb"
    assert capsys.readouterr().err == (
        "error: features: x.npz is not a file (02_bad_input.ipynb, cell 2 (execution count 3, "
        f"'from streid_lib.study import StudyConfigError'); executed copy: {executed})\n"
    )


@pytest.mark.parametrize("only", [[], [""], ["03", " "]])
def test_an_empty_only_is_refused_before_anything_runs(tmp_path, capsys, only):
    out = tmp_path / "run"
    assert run_cli("--profile", "smoke", "--out", str(out), "--only", *only) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --only: expected one or more notebook names (e.g. --only 03 04), got ")
    assert err.count("\n") == 1 and not out.exists()


def test_bad_input_names_cover_the_library_errors():
    names = reproduce.bad_input_names()
    assert {"StreidError", "StudyConfigError", "ParameterError", "NotebookBadInput"} <= names
    assert "ValueError" not in names and "NotebookFailed" not in names


# -- what the terminal shows of a kernel's progress --------------------------------------------------------------


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_through_a_pipe_a_progress_bar_gives_one_line_per_interval():
    stream = _Stream(tty=False)
    relay = reproduce._Relay(stream, interval=3600.0, indent="  ")
    relay.write("pcb epoch 1/2: ")
    relay.write("  0%|   | 0/9\rpcb epoch 1/2:  50%|#  | 4/9 ETA 00:05\r")
    relay.write("pcb epoch 1/2: 100%|###| 9/9   \n")
    relay.write("a warning line\n\rpcb epoch 2/2:  10%|   | 1/9")
    relay.close()
    # The first refresh is shown at once, the rest only when the bar finishes (interval not reached).
    assert stream.getvalue() == (
        "  pcb epoch 1/2:   0%|   | 0/9\n"
        "  pcb epoch 1/2: 100%|###| 9/9\n"
        "  a warning line\n"
        "  pcb epoch 2/2:  10%|   | 1/9\n"
    )
    every = _Stream(tty=False)
    relay = reproduce._Relay(every, interval=0.0, indent="")
    relay.write("\r1/3\r2/3\r3/3\n")
    assert every.getvalue() == "1/3\n2/3\n3/3\n"
    # A bar that clears itself on close (tqdm leave=False) leaves no stale "75%" line behind.
    cleared = _Stream(tty=False)
    relay = reproduce._Relay(cleared, interval=3600.0, indent="")
    relay.write("\rre-ranking:   0%| 0/4\rre-ranking:  75%| 3/4 jaccard\r" + " " * 30 + "\r")
    relay.close()
    assert cleared.getvalue() == "re-ranking:   0%| 0/4\n"


def test_on_a_terminal_a_bar_refreshes_in_place_indented():
    stream = _Stream(tty=True)
    relay = reproduce._Relay(stream, indent="  ")
    relay.write("\rstep 1/2")
    relay.write("\rstep 2/2\ndone\n\rrerank 3/4")
    relay.close()
    assert stream.getvalue() == "\r  step 1/2\r  step 2/2\n  done\n\r  rerank 3/4\n"


@pytest.mark.parametrize("tty", [False, True])
def test_a_kernel_bar_goes_to_the_progress_file_with_the_terminal_settings(tmp_path, monkeypatch, tty):
    from streid_lib import _progress

    path = tmp_path / "progress"
    monkeypatch.setenv(_progress.PROGRESS_FILE_ENV, str(path))
    monkeypatch.setenv(_progress.PROGRESS_INTERVAL_ENV, "3600")
    if tty:
        monkeypatch.setenv(_progress.PROGRESS_TTY_ENV, "40")
    else:
        monkeypatch.delenv(_progress.PROGRESS_TTY_ENV, raising=False)
    with _progress.progress_bar(5, "toy step") as bar:
        bar.update(5)
    _progress.progress_message("one line")
    text = path.read_bytes().decode()
    assert "one line\n" in text and "5/5" in text
    last_bar = next(seg for seg in text.replace("\n", "\r").split("\r")[::-1] if "5/5" in seg)
    assert (len(last_bar) <= 40) == tty  # on a terminal, the bar fits the columns it was given


def test_timing_table():
    assert reproduce.format_seconds(4.4) == "4 s"
    assert reproduce.format_seconds(185) == "3 min 05 s"
    assert reproduce.format_seconds(3720) == "1 h 02 min"
    assert reproduce.timing_table([("01_a.ipynb", 4.0), ("02_bb.ipynb", 70.0)]).splitlines() == [
        "notebook           time",
        "01_a.ipynb          4 s",
        "02_bb.ipynb  1 min 10 s",
        "total        1 min 14 s",
    ]


# -- Ctrl-C: one line, exit 130, the kernel stopped, nothing half-written ----------------------------------------


@pytest.mark.slow
def test_ctrl_c_stops_the_kernel_and_ends_with_one_line(tmp_path):
    import psutil

    folder = tmp_path / "notebooks"
    write_notebook(
        folder / "01_sleep.ipynb",
        "profile = None\nout_dir = None",
        """
        import os, sys, time
        print("kernel pid", os.getpid(), file=sys.stderr, flush=True)
        time.sleep(120)
        """,
    )
    out = tmp_path / "run"
    code = (
        "import sys; from pathlib import Path; from streid_lib import cli, reproduce; "
        f"reproduce.NOTEBOOK_DIR = Path({str(folder)!r}); raise SystemExit(cli.main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "reproduce", "--profile", "smoke", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    seen = b""
    deadline = time.monotonic() + 60
    while b"kernel pid" not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert b"kernel pid" in seen, seen
    kernel = int(seen.split(b"kernel pid")[1].split()[0])
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130
    assert err == "interrupted\n"  # after the kernel's line read above: nothing but the one line
    assert proc.stdout.read().decode() == "[1/1] 01_sleep.ipynb ...\n"
    deadline = time.monotonic() + 10
    while psutil.pid_exists(kernel) and psutil.Process(kernel).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the kernel outlived the interrupted run"
        time.sleep(0.1)
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == [reproduce.KERNEL_LOG]  # no half-executed copy
