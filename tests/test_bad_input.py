"""Bad input to ``python -m streid_lib evaluate`` is never silently wrong.

One test per case of the bad-input survey that concerns the evaluation (the exact command, the exit code and the
words of the message), then two property tests: random corruptions of a valid features file and of a valid name
list end either in a clear one-line error (exit 2, naming the file) or in exactly the numbers of the clean input.

Commands run in-process through :func:`streid_lib.cli.main` with the argument list of ``python -m streid_lib``;
one case also runs as a real subprocess.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from helpers import assert_error, random_feature_set, run
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streid_lib import features
from streid_lib.cli import main
from streid_lib.features import FeatureSet, save_features
from streid_lib.metadata import Metadata

REPO = Path(__file__).resolve().parents[1]


def duke_meta(pids, cams, frames) -> Metadata:
    names = [f"{p:04d}_c{c}_f{f:07d}.jpg" for p, c, f in zip(pids, cams, frames, strict=True)]
    return Metadata(pids, cams, frames, names)


def make_set(seed: int = 3, train: bool = True) -> FeatureSet:
    """15 queries, 50 gallery images, 4 cameras; a training side of 120 unique images of 20 identities."""
    base = random_feature_set(nq=15, ng=50, dim=8, n_ids=20, n_cams=4, max_frame=60_000, seed=seed)
    rng = np.random.default_rng(seed + 100)
    t = duke_meta(np.repeat(np.arange(1, 21), 6), np.tile(np.arange(1, 5), 30), rng.choice(60_000, 120, replace=False))
    q, g = base.query, base.gallery
    fs = FeatureSet(
        base.query_f, base.gallery_f, duke_meta(q.pids, q.cams, q.frames), duke_meta(g.pids, g.cams, g.frames)
    )
    if not train:
        return fs
    tf = rng.standard_normal((120, 8)).astype(np.float32)
    return FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, {"seed": seed}, train_f=tf, train=t)


@pytest.fixture
def clean(tmp_path):
    fs = make_set()
    path = save_features(tmp_path / "f.npz", fs)
    names = tmp_path / "train.txt"
    names.write_text("".join(f"{n}\n" for n in fs.train.names))
    return fs, path, names


# ------------------------------------------------------------------------------------------------------------
# Silently wrong before: now refused or flagged


def test_negative_frames_in_a_features_file(clean, tmp_path, capsys):
    # python -m streid_lib evaluate --features neg.npz --dataset duke
    _, path, _ = clean
    raw = dict(np.load(path))
    raw["gallery_frames"] = raw["gallery_frames"] - 70_000  # some frames fall below 0
    np.savez(tmp_path / "neg.npz", **raw)
    assert_error(
        run(capsys, "evaluate", "--features", str(tmp_path / "neg.npz"), "--dataset", "duke"),
        f"{tmp_path / 'neg.npz'}: gallery_frames: frame numbers must be integers >= 0; got -",
    )


def test_negative_frames_in_a_manifest(clean, tmp_path, capsys):
    # python -m streid_lib evaluate --features f.npz --dataset duke --train-manifest neg.csv
    _, path, _ = clean
    manifest = tmp_path / "neg.csv"
    manifest.write_text("path,pid,camera,frame\na.jpg,1,1,100\nb.jpg,1,2,-40\n")
    argv = ["evaluate", "--features", str(path), "--dataset", "duke", "--train-manifest", str(manifest)]
    line = assert_error(run(capsys, *argv))
    assert line == f"error: {manifest}, line 3: field 'frame' = '-40': frame numbers must be integers >= 0"


def test_a_negative_frame_in_a_name_does_not_parse(clean, tmp_path, capsys):
    _, path, _ = clean
    names = tmp_path / "neg.txt"
    names.write_text("0001_c1_f0000100.jpg\n0001_c2_f-000040.jpg\n")
    argv = ["evaluate", "--features", str(path), "--dataset", "duke", "--train-names", str(names)]
    assert_error(run(capsys, *argv), f"{names}, line 2: file name '0001_c2_f-000040.jpg' does not match PPPP_cC_f")


def test_training_list_with_one_image(clean, tmp_path, capsys):
    # python -m streid_lib evaluate --features f.npz --dataset duke --train-names one.txt
    _, path, _ = clean
    one = tmp_path / "one.txt"
    one.write_text("0001_c1_f0000100.jpg\n")
    argv = ["evaluate", "--features", str(path), "--dataset", "duke", "--train-names", str(one)]
    assert_error(
        run(capsys, *argv),
        f"the spatial-temporal model from fitted on name list {one} (1 images, 1 identities) has no votes",
        "no identity is seen by two cameras",
        "the ST rows cannot be computed",
    )
    # VIS alone does not need the ST model: it runs
    rc, out, _ = run(capsys, *argv, "--rows", "VIS")
    assert rc == 0 and "VIS" in out


def test_an_st_model_file_without_votes(clean, tmp_path, capsys):
    _, path, _ = clean
    empty = tmp_path / "pytorch_result2.mat"
    scipy.io.savemat(empty, {"distribution": np.zeros((8, 8, 3000))})
    argv = ["evaluate", "--features", str(path), "--dataset", "duke", "--st-model", str(empty)]
    assert_error(run(capsys, *argv), f"the spatial-temporal model from the ST model file {empty} has no votes")


def test_camera_pairs_never_seen_in_training_warn(clean, tmp_path, capsys):
    # python -m streid_lib evaluate --features f.npz --dataset duke --train-names pairs.txt --json w.json
    _, path, _ = clean
    names = tmp_path / "pairs.txt"  # identities seen by cameras 1-2 and 3-4 only: pairs 1-3, 1-4, 2-3, 2-4 unseen
    names.write_text(
        "".join(f"{p:04d}_c{c}_f{f:07d}.jpg\n" for p in range(1, 11) for c, f in ((1, 100 * p), (2, 100 * p + 900)))
        + "".join(f"{p:04d}_c{c}_f{f:07d}.jpg\n" for p in range(11, 21) for c, f in ((3, 100 * p), (4, 100 * p + 500)))
    )
    out = tmp_path / "w.json"
    argv = ["evaluate", "--features", str(path), "--dataset", "duke", "--train-names", str(names), "--json", str(out)]
    rc, printed, _ = run(capsys, *argv)
    assert rc == 0
    warnings = json.loads(out.read_text())["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("camera pair(s) 1-3, 1-4, 2-3, 2-4 of the test set were never")
    assert "% of the cross-camera query-gallery pairs" in warnings[0]
    assert f"warning: {warnings[0]}" in printed.splitlines()


def test_no_test_camera_pair_seen_in_training(clean, tmp_path, capsys):
    _, path, _ = clean
    names = tmp_path / "far.txt"  # identities seen only by cameras 5 and 6, which the test set does not have
    names.write_text("".join(f"{p:04d}_c{c}_f{100 * p + c:07d}.jpg\n" for p in range(1, 6) for c in (5, 6)))
    argv = ["evaluate", "--features", str(path), "--dataset", "duke", "--train-names", str(names)]
    assert_error(run(capsys, *argv), f"no camera pair of the test set in {path} was seen together in training")


def test_a_test_camera_outside_the_model(clean, tmp_path, capsys):
    fs, _, names = clean
    q = duke_meta(fs.query.pids, np.where(np.arange(15) == 2, 9, fs.query.cams), fs.query.frames)
    wide = save_features(tmp_path / "wide.npz", FeatureSet(fs.query_f, fs.gallery_f, q, fs.gallery))
    argv = ["evaluate", "--features", str(wide), "--dataset", "duke", "--train-names", str(names)]
    assert_error(run(capsys, *argv), f"{wide}: query_cam holds camera 9, outside the ST model's cameras 1..8")


def test_overflowing_votes_warn(clean, tmp_path, capsys):
    _, path, names = clean
    out = tmp_path / "o.json"
    argv = ["evaluate", "--features", str(path), "--dataset", "duke", "--train-names", str(names), "--n-bins", "100"]
    assert run(capsys, *argv, "--json", str(out))[0] == 0
    warnings = json.loads(out.read_text())["warnings"]
    assert any("training vote(s) fell beyond the last bin (n_bins=100" in w and "were dropped" in w for w in warnings)


# ------------------------------------------------------------------------------------------------------------
# Unclear before: now one line naming the file


def test_text_file_named_mat(clean, tmp_path, capsys):
    # python -m streid_lib evaluate --features notes.mat --dataset duke --train-names train.txt
    _, _, names = clean
    (tmp_path / "notes.mat").write_text("these are not features\n")
    argv = ["evaluate", "--features", str(tmp_path / "notes.mat"), "--dataset", "duke", "--train-names", str(names)]
    assert_error(
        run(capsys, *argv),
        f"{tmp_path / 'notes.mat'}: not a readable MATLAB .mat file",
        "expected MATLAB v5 holding query_f, query_label, query_cam, query_frames and the same for gallery",
    )


def test_text_file_named_npz(clean, tmp_path, capsys):
    _, _, names = clean
    (tmp_path / "notes.npz").write_text("these are not features\n")
    argv = ["evaluate", "--features", str(tmp_path / "notes.npz"), "--dataset", "duke", "--train-names", str(names)]
    assert_error(run(capsys, *argv), f"{tmp_path / 'notes.npz'}: not an .npz archive of plain arrays")


def test_name_list_with_a_byte_order_mark_is_accepted(clean, tmp_path, capsys):
    # Policy: a UTF-8 byte-order mark is accepted and dropped (same numbers); UTF-16 is refused with the file name.
    _, path, names = clean
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + names.read_bytes())
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    base = ["evaluate", "--features", str(path), "--dataset", "duke"]
    assert run(capsys, *base, "--train-names", str(names), "--json", str(a))[0] == 0
    assert run(capsys, *base, "--train-names", str(bom), "--json", str(b))[0] == 0
    assert json.loads(a.read_text())["rows"] == json.loads(b.read_text())["rows"]
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes(names.read_text().encode("utf-16"))
    assert_error(
        run(capsys, *base, "--train-names", str(utf16)), f"{utf16}: the name list is UTF-16 text; expected UTF-8"
    )


def test_name_list_with_a_bad_first_line(clean, tmp_path, capsys):
    _, path, names = clean
    bad = tmp_path / "header.txt"
    bad.write_text("image_name\n" + names.read_text())
    argv = ["evaluate", "--features", str(path), "--dataset", "duke", "--train-names", str(bad)]
    assert_error(run(capsys, *argv), f"{bad}, line 1: file name 'image_name' matches neither PPPP_cXsY")


# ------------------------------------------------------------------------------------------------------------
# --json destination: checked before anything is computed


@pytest.fixture
def nothing_computed(monkeypatch):
    """Fail the test if the features file is even opened."""

    def boom(*_a, **_k):
        raise AssertionError("the evaluation started before the --json destination was checked")

    monkeypatch.setattr(features, "load_features", boom)


def test_json_onto_a_folder(clean, tmp_path, capsys, nothing_computed):
    # python -m streid_lib evaluate --features f.npz --dataset duke --json out/
    _, path, _ = clean
    (tmp_path / "out").mkdir()
    line = assert_error(
        run(capsys, "evaluate", "--features", str(path), "--dataset", "duke", "--json", str(tmp_path / "out"))
    )
    assert line.startswith(f"error: --json file {tmp_path / 'out'}: is a folder; expected a file path")


def test_json_under_a_file(clean, tmp_path, capsys, nothing_computed):
    # the parent "folder" is a file: it cannot be created
    _, path, _ = clean
    target = tmp_path / "f.npz" / "result.json"
    assert_error(
        run(capsys, "evaluate", "--features", str(path), "--dataset", "duke", "--json", str(target)),
        f"--json file {target}: cannot be created, {tmp_path / 'f.npz'} is a file",
    )


def test_json_where_nothing_can_be_written(clean, capsys, nothing_computed):
    # /sys refuses new files even to root (a read-only place on any Linux machine)
    _, path, _ = clean
    if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and _can_create("/sys"):
        pytest.skip("/sys is absent or writable here")
    assert_error(
        run(capsys, "evaluate", "--features", str(path), "--dataset", "duke", "--json", "/sys/result.json"),
        "--json file /sys/result.json: cannot write in /sys (",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (see the /sys test)")
def test_json_into_a_read_only_folder(clean, tmp_path, capsys, nothing_computed):
    _, path, _ = clean
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert_error(
            run(capsys, "evaluate", "--features", str(path), "--dataset", "duke", "--json", str(ro / "r.json")),
            f"--json file {ro / 'r.json'}: cannot write in {ro} (Permission denied)",
        )
    finally:
        ro.chmod(0o700)


def test_json_missing_parents_are_created_and_nothing_is_left_by_the_check(clean, tmp_path, capsys):
    _, path, _ = clean
    target = tmp_path / "new" / "deeper" / "r.json"
    assert run(capsys, "evaluate", "--features", str(path), "--dataset", "duke", "--json", str(target))[0] == 0
    assert json.loads(target.read_text())["rows"]["VIS"]["R1"] >= 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the probe file was removed


def _can_create(folder: str) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def test_one_case_as_a_real_subprocess(clean, tmp_path):
    # python -m streid_lib evaluate --features neg.npz --dataset duke   (exit 2, one line, no traceback)
    _, path, _ = clean
    raw = dict(np.load(path))
    raw["query_frames"] = -raw["query_frames"] - 1
    np.savez(tmp_path / "neg.npz", **raw)
    cmd = [sys.executable, "-m", "streid_lib", "evaluate", "--features", str(tmp_path / "neg.npz"), "--dataset", "duke"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2 and res.stdout == ""
    expected = f"error: {tmp_path / 'neg.npz'}: query_frames: frame numbers must be integers >= 0; got -"
    assert res.stderr.startswith(expected) and res.stderr.count("\n") == 1, res.stderr


# ------------------------------------------------------------------------------------------------------------
# Property tests: random corruptions end in a clear error or in exactly the clean numbers


def _evaluate(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _rows(argv: list[str], json_path: Path) -> tuple[int, str, dict | None]:
    rc, _, err = _evaluate([*argv, "--json", str(json_path)])
    return rc, err, json.loads(json_path.read_text())["rows"] if rc == 0 else None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Clean files and their clean numbers: a features file with a training side (.npz and .mat), and a name list
    with a features file without training side."""
    work = tmp_path_factory.mktemp("corrupt")
    fs = make_set()
    out: dict = {
        "work": work,
        "npz": save_features(work / "clean.npz", fs),
        "mat": save_features(work / "clean.mat", fs),
    }
    for fmt in ("npz", "mat"):
        out[f"rows_{fmt}"] = _rows(["evaluate", "--features", str(out[fmt]), "--dataset", "duke"], work / "c.json")[2]
    out["names_npz"] = save_features(work / "no_train.npz", make_set(train=False))
    out["names_text"] = "".join(f"{n}\n" for n in fs.train.names)
    (work / "names.txt").write_text(out["names_text"])
    argv = [
        "evaluate",
        "--features",
        str(out["names_npz"]),
        "--dataset",
        "duke",
        "--train-names",
        str(work / "names.txt"),
    ]
    out["rows_names"] = _rows(argv, work / "n.json")[2]
    assert out["rows_npz"] == out["rows_mat"] and out["rows_names"] is not None
    return out


_META_KEYS = [f"{s}_{k}" for s in ("query", "gallery", "train") for k in ("label", "cam", "frames")]
_F_KEYS = ["query_f", "gallery_f", "train_f"]
#: corruption → whether it must end in an error (True) or in the clean numbers (False); None: either.
_ARRAY_CORRUPTIONS = {
    "drop_key": True,
    "below_range": True,
    "fraction": True,
    "beyond_2_53": True,
    "nan_or_inf": True,
    "zero_row": True,
    "float32_overflow": True,
    "float32_underflow": True,
    "shorten": True,
    "strings": True,
    "complex": True,
    "flatten_f": True,
    "drop_column": True,
    "empty_side": True,
    "bad_provenance": True,
    "float_metadata": False,
    "row_metadata": False,
    "float64_features": False,
    "extra_key": False,
    "drop_names": False,
}


def _corrupt_arrays(raw: dict, kind: str, data) -> dict:
    raw = {k: np.array(v) for k, v in raw.items() if not k.startswith("__")}
    meta_key = data.draw(st.sampled_from(_META_KEYS), label="meta key")
    f_key = data.draw(st.sampled_from(_F_KEYS), label="features key")
    m = raw[meta_key].reshape(-1)
    i = data.draw(st.integers(0, m.size - 1), label="position")
    row = data.draw(st.integers(0, raw[f_key].shape[0] - 1), label="row")
    if kind == "drop_key":
        del raw[data.draw(st.sampled_from(_META_KEYS + _F_KEYS), label="dropped")]
    elif kind == "below_range":
        lowest = {"label": -1, "cam": 1, "frames": 0}[meta_key.rsplit("_", 1)[1]]
        m = m.astype(np.int64)
        m[i] = lowest - data.draw(st.integers(1, 10**6), label="below")
        raw[meta_key] = m
    elif kind == "fraction":
        m = m.astype(np.float64)
        m[i] += data.draw(st.sampled_from([0.5, 0.25, 1e-6]), label="fraction")
        raw[meta_key] = m
    elif kind == "beyond_2_53":
        m = m.astype(np.float64)
        m[i] = data.draw(st.sampled_from([2.0**53 + 2, 1e30, -1e30, 2.0**70]), label="huge")
        raw[meta_key] = m
    elif kind == "nan_or_inf":
        f = raw[f_key].astype(np.float32)
        f[row, data.draw(st.integers(0, f.shape[1] - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        raw[f_key] = f
    elif kind == "zero_row":
        raw[f_key][row] = 0
    elif kind == "float32_overflow":
        f = raw[f_key].astype(np.float64)
        f[row, 0] = data.draw(st.sampled_from([1e39, -1e300]), label="overflow")
        raw[f_key] = f
    elif kind == "float32_underflow":
        raw[f_key] = raw[f_key].astype(np.float32)
        raw[f_key][row] = np.float32(1e-30)
    elif kind == "shorten":
        key = data.draw(st.sampled_from(_META_KEYS + _F_KEYS), label="shortened")
        raw[key] = raw[key][..., :-1] if raw[key].ndim == 2 and raw[key].shape[0] == 1 else raw[key][:-1]
    elif kind == "strings":
        raw[meta_key] = m.astype(str)
    elif kind == "complex":
        raw[f_key] = raw[f_key].astype(np.complex64) * np.complex64(1 + 1j)
    elif kind == "flatten_f":
        raw[f_key] = raw[f_key].reshape(-1)
    elif kind == "drop_column":
        raw[f_key] = raw[f_key][:, :-1]
    elif kind == "empty_side":
        side = data.draw(st.sampled_from(["query", "gallery", "train"]), label="side")
        for k in list(raw):
            if k.startswith(f"{side}_"):
                raw[k] = raw[k][:0] if raw[k].ndim == 1 else raw[k][..., :0] if k != f"{side}_f" else raw[k][:0]
    elif kind == "bad_provenance":
        raw["provenance"] = np.asarray(data.draw(st.sampled_from(["{oops", "[1]", "3", ""]), label="provenance"))
    elif kind == "float_metadata":
        raw[meta_key] = raw[meta_key].astype(np.float64)
    elif kind == "row_metadata":
        raw[meta_key] = raw[meta_key].reshape(1, -1)
    elif kind == "float64_features":
        raw[f_key] = raw[f_key].astype(np.float64)
    elif kind == "extra_key":
        raw["notes"] = np.arange(3)
    elif kind == "drop_names":
        for k in [k for k in raw if k.endswith("_names")]:
            del raw[k]
    return raw


_FEATURE_CASES = [("npz", k) for k in [*_ARRAY_CORRUPTIONS, "truncate_bytes", "flip_byte"]] + [
    ("mat", k) for k in _ARRAY_CORRUPTIONS if k not in ("drop_names", "bad_provenance")
]


@pytest.mark.parametrize(("fmt", "kind"), _FEATURE_CASES)
@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_corrupted_features_file_fails_clearly_or_gives_the_clean_numbers(corpus, fmt, kind, data):
    path = corpus["work"] / f"case.{fmt}"
    clean = corpus[fmt]
    if kind in ("truncate_bytes", "flip_byte"):
        blob = bytearray(clean.read_bytes())
        at = data.draw(st.integers(0, len(blob) - 1), label="byte")
        if kind == "truncate_bytes":
            blob = blob[:at]
        else:
            blob[at] ^= data.draw(st.integers(1, 255), label="xor")
        path.write_bytes(bytes(blob))
        must_fail = True if kind == "truncate_bytes" else None
    else:
        raw = dict(np.load(clean)) if fmt == "npz" else scipy.io.loadmat(clean)
        raw = _corrupt_arrays(raw, kind, data)
        if fmt == "npz":
            with open(path, "wb") as fh:
                np.savez(fh, **raw)
        else:
            scipy.io.savemat(path, raw)
        must_fail = _ARRAY_CORRUPTIONS[kind]
    rc, err, rows = _rows(["evaluate", "--features", str(path), "--dataset", "duke"], corpus["work"] / "case.json")
    event(f"{fmt} {kind}: {'error' if rc else 'same numbers'}")
    if rc == 0:
        assert must_fail is not True, f"{kind}: accepted silently"
        assert rows == corpus[f"rows_{fmt}"], f"{kind}: different numbers without an error"
    else:
        assert must_fail is not False, f"{kind}: a valid variant was refused: {err}"
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}"), (kind, err)


#: corruption of a name list → must fail (True), must give the clean numbers (False), or either (None).
_NAME_CORRUPTIONS = {
    "insert_char": True,  # any non-space, non-separator character inside a name
    "delete_char": True,
    "negative_frame": True,
    "junk_line": True,
    "cut_inside_line": True,
    "not_utf8": True,
    "utf16": True,
    "bom": False,
    "crlf": False,
    "blank_lines": False,
    "surrounding_space": False,
    "directory_prefix": False,
    "no_final_newline": False,
}
_INSERTABLE = st.sampled_from(list("abcxyzABCXYZ_.-+#,;:!?()[]~'\"0123456789éß€\x00") + ["\t", "/", "\\"])


@pytest.mark.parametrize("kind", list(_NAME_CORRUPTIONS))
@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_corrupted_name_list_fails_clearly_or_gives_the_clean_numbers(corpus, kind, data):
    lines = corpus["names_text"].splitlines()
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    must_fail = _NAME_CORRUPTIONS[kind]
    if kind == "insert_char":
        c = data.draw(_INSERTABLE, label="char")
        k = data.draw(st.integers(0, len(lines[i])), label="at")
        if c in "\t/\\" and k in (0, len(lines[i])):
            must_fail = None  # surrounding whitespace is stripped; a leading "dir/" is a path
        lines[i] = lines[i][:k] + c + lines[i][k:]
    elif kind == "delete_char":
        k = data.draw(st.integers(0, len(lines[i]) - 1), label="at")
        lines[i] = lines[i][:k] + lines[i][k + 1 :]
    elif kind == "negative_frame":
        lines[i] = lines[i].replace("_f0", "_f-", 1)
    elif kind == "junk_line":
        lines.insert(i, data.draw(st.sampled_from(["Thumbs.db", "# training names", "name", "0001_c2_f0046182.png"])))
    elif kind == "cut_inside_line":
        k = data.draw(st.integers(1, len(lines[i]) - 1), label="at")
        lines = lines[:i] + [lines[i][:k]]
    elif kind == "blank_lines":
        for _ in range(data.draw(st.integers(1, 3))):
            lines.insert(data.draw(st.integers(0, len(lines))), data.draw(st.sampled_from(["", " ", "\t", "  \t "])))
    elif kind == "surrounding_space":
        lines[i] = (
            data.draw(st.sampled_from([" ", "\t", "  "])) + lines[i] + data.draw(st.sampled_from(["", " ", "\t"]))
        )
    elif kind == "directory_prefix":
        lines[i] = data.draw(st.sampled_from(["bounding_box_train/", "C:\\data\\", "./"])) + lines[i]
    text = "\n".join(lines) + ("" if kind in ("cut_inside_line", "no_final_newline") else "\n")
    if kind == "crlf":
        text = text.replace("\n", "\r\n")
    blob = text.encode("utf-16" if kind == "utf16" else "utf-8")
    if kind == "bom":
        blob = b"\xef\xbb\xbf" + blob
    elif kind == "not_utf8":
        at = data.draw(st.integers(0, len(blob)), label="byte at")
        blob = blob[:at] + data.draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3(", b"\x80"])) + blob[at:]
    path = corpus["work"] / "names_case.txt"
    path.write_bytes(blob)
    argv = ["evaluate", "--features", str(corpus["names_npz"]), "--dataset", "duke", "--train-names", str(path)]
    rc, err, rows = _rows(argv, corpus["work"] / "names_case.json")
    event(f"{kind}: {'error' if rc else 'same numbers'}")
    if rc == 0:
        assert must_fail is not True, f"{kind}: accepted silently: {lines[i]!r}"
        assert rows == corpus["rows_names"], f"{kind}: different numbers without an error"
    else:
        assert must_fail is not False, f"{kind}: a valid variant was refused: {err}"
        out = err.strip().splitlines()
        assert rc == 2 and len(out) == 1 and out[0].startswith(f"error: {path}"), (kind, err)
