"""``python -m streid_lib evaluate``: where the training metadata comes from, the naming rule, the sequence table in
the provenance, the opt-in ``VISxST-shifted`` row, and parser defaults that come from the library.

Every command is run in-process through :func:`streid_lib.cli.main` with the exact argument list of
``python -m streid_lib <argv>``; an error is exit code 2 and one line ``error: ...`` on stderr.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_error, random_feature_set, run

from streid_lib.campus import generate_campus
from streid_lib.cli import build_parser
from streid_lib.evaluation import evaluate_features, fit_st_model
from streid_lib.features import FeatureSet, load_features, save_features
from streid_lib.joint import ROWS, JointMetric
from streid_lib.metadata import SEQ_LENGTHS_FILE, Metadata, read_name_lists
from streid_lib.st_model import SpatialTemporalModel
from streid_lib.training_names import AUTHORS_MARKET_TABLE

DEV_FEATURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "features" / "duke_mobilenetv2.npz"


def duke_names(meta: Metadata) -> np.ndarray:
    return np.array([f"{p:04d}_c{c}_f{f:07d}.jpg" for p, c, f in zip(meta.pids, meta.cams, meta.frames, strict=True)])


def with_names(meta: Metadata) -> Metadata:
    return Metadata(meta.pids, meta.cams, meta.frames, duke_names(meta))


def train_metadata(n: int = 120, seed: int = 5) -> Metadata:
    """Unique Duke-style training images: 20 identities, 4 cameras, every camera pair co-observed."""
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(1, 21), n // 20)
    cams = np.tile(np.arange(1, 5), n // 4)[:n]
    frames = rng.choice(60_000, n, replace=False)
    return with_names(Metadata(pids, cams, frames))


@pytest.fixture
def files(tmp_path):
    """A Duke-style features file with a training side, the same without it, and the training names as a list."""
    base = random_feature_set(nq=15, ng=50, dim=8, n_ids=20, n_cams=4, max_frame=60_000, seed=3)
    train = train_metadata()
    rng = np.random.default_rng(9)
    train_f = rng.standard_normal((len(train), 8)).astype(np.float32)
    fs = FeatureSet(base.query_f, base.gallery_f, with_names(base.query), with_names(base.gallery), {"seed": 3})
    with_train = FeatureSet(fs.query_f, fs.gallery_f, fs.query, fs.gallery, fs.provenance, train_f=train_f, train=train)
    names = tmp_path / "train.txt"
    names.write_text("".join(f"{n}\n" for n in train.names))
    return {
        "fs": fs,
        "train": train,
        "with_train": save_features(tmp_path / "with_train.npz", with_train),
        "no_train": save_features(tmp_path / "no_train.npz", fs),
        "names": names,
    }


# ------------------------------------------------------------------------------------------------------------
# Where the training metadata comes from


def test_training_side_of_the_features_file_is_used_by_default(files, tmp_path, capsys):
    # python -m streid_lib evaluate --features with_train.npz --dataset duke --json a.json
    out = tmp_path / "a.json"
    rc, printed, _ = run(
        capsys, "evaluate", "--features", str(files["with_train"]), "--dataset", "duke", "--json", str(out)
    )
    assert rc == 0
    data = json.loads(out.read_text())
    train = data["provenance"]["train"]
    assert train["kind"] == "features file" and train["path"] == str(files["with_train"])
    assert train["n_images"] == 120 and train["n_identities"] == 20
    assert data["provenance"]["st_model"] == {"kind": "fit", "train": train}
    assert f"ST model: fitted on the training side of {files['with_train']} (120 images, 20 identities)" in printed
    # the same numbers as the library fitted on the same metadata
    expected = evaluate_features(files["fs"], fit_st_model(files["train"], "duke"), JointMetric(), ROWS)["rows"]
    assert data["rows"] == expected
    assert data["warnings"] == []


def test_the_option_wins_over_the_features_file(files, tmp_path, capsys):
    # python -m streid_lib evaluate --features with_train.npz --dataset duke --train-names other.txt --json b.json
    other = train_metadata(seed=6)  # other frames: another ST model
    (tmp_path / "other.txt").write_text("\n".join(other.names) + "\n")
    out = tmp_path / "b.json"
    argv = ["evaluate", "--features", str(files["with_train"]), "--dataset", "duke"]
    assert run(capsys, *argv, "--train-names", str(tmp_path / "other.txt"), "--json", str(out))[0] == 0
    data = json.loads(out.read_text())
    assert data["provenance"]["train"]["kind"] == "names"
    assert data["provenance"]["train"]["features_train_side"].startswith("present but not used")
    expected = evaluate_features(files["fs"], fit_st_model(other, "duke"), JointMetric(), ROWS)["rows"]
    assert data["rows"] == expected
    default = evaluate_features(files["fs"], fit_st_model(files["train"], "duke"), JointMetric(), ROWS)["rows"]
    assert data["rows"]["ST"] != default["ST"]  # the option really was used


def test_names_and_features_file_give_the_same_numbers(files, tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    base = ["evaluate", "--dataset", "duke"]
    assert run(capsys, *base, "--features", str(files["with_train"]), "--json", str(a))[0] == 0
    assert (
        run(
            capsys, *base, "--features", str(files["no_train"]), "--train-names", str(files["names"]), "--json", str(b)
        )[0]
        == 0
    )
    assert json.loads(a.read_text())["rows"] == json.loads(b.read_text())["rows"]


def test_no_training_data_at_all(files, capsys):
    # python -m streid_lib evaluate --features no_train.npz --dataset duke
    line = assert_error(run(capsys, "evaluate", "--features", str(files["no_train"]), "--dataset", "duke"))
    assert line == (
        f"error: {files['no_train']}: no training side (train_f, train_label, train_cam, train_frames) and no "
        "--train-names, --train-dir or --train-manifest given; the ST model needs training metadata"
    )


def test_st_model_file_needs_no_training_data(files, tmp_path, capsys):
    model = fit_st_model(files["train"], "duke").save(tmp_path / "st.npz")
    out = tmp_path / "st.json"
    argv = ["evaluate", "--features", str(files["no_train"]), "--dataset", "duke", "--st-model", str(model)]
    assert run(capsys, *argv, "--json", str(out))[0] == 0
    data = json.loads(out.read_text())
    assert data["provenance"]["train"] == {"kind": "none"} and data["provenance"]["st_model"]["kind"] == "file"
    assert_error(run(capsys, *argv, "--mode", "improved"), "--mode improved needs training metadata")


# ------------------------------------------------------------------------------------------------------------
# The naming rule and the sequence table


@pytest.fixture
def campus(tmp_path):
    """A tiny campus (Market-style names + sequence_lengths.json) and a features file of random features for it."""
    info = generate_campus(tmp_path / "campus", "tiny", seed=0, images=False, progress=False)
    root = info.root
    splits = read_name_lists(root)
    q, g = splits.query, splits.gallery
    rng = np.random.default_rng(0)
    fs = FeatureSet(
        rng.standard_normal((len(q), 6)).astype(np.float32),
        rng.standard_normal((len(g), 6)).astype(np.float32),
        q,
        g,
        {"naming": "market", "dataset": "campus"},
    )
    return root, save_features(tmp_path / "campus.npz", fs), splits


def test_campus_names_use_their_sequence_table_and_say_so(campus, tmp_path, capsys):
    root, features, splits = campus
    out = tmp_path / "c.json"
    argv = ["evaluate", "--features", str(features), "--dataset", "campus", "--train-names", str(root / "train.txt")]
    rc, printed, _ = run(capsys, *argv, "--json", str(out))
    assert rc == 0
    train = json.loads(out.read_text())["provenance"]["train"]
    assert train["sequence_table"] == str(root / SEQ_LENGTHS_FILE)
    assert train["naming"] == "market" and train["naming_from"].startswith("--dataset campus")
    assert f"sequence table: {root / SEQ_LENGTHS_FILE}" in printed
    # The same numbers as the manifest (global frames): the table was applied.
    out2 = tmp_path / "m.json"
    argv2 = ["evaluate", "--features", str(features), "--dataset", "campus"]
    assert run(capsys, *argv2, "--train-manifest", str(root / "manifest_train.csv"), "--json", str(out2))[0] == 0
    assert json.loads(out2.read_text())["rows"] == json.loads(out.read_text())["rows"]
    assert json.loads(out2.read_text())["provenance"]["train"]["kind"] == "manifest"


def test_campus_names_without_their_table_are_refused(campus, tmp_path, capsys):
    # python -m streid_lib evaluate --features campus.npz --dataset campus --train-names elsewhere/train.txt
    root, features, _ = campus
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "train.txt"
    moved.write_text((root / "train.txt").read_text())
    argv = ["evaluate", "--features", str(features), "--dataset", "campus", "--train-names", str(moved)]
    assert_error(
        run(capsys, *argv),
        f"{moved}: campus Market-style names need the campus's sequence table",
        f"looked for {tmp_path / 'elsewhere' / SEQ_LENGTHS_FILE}, which does not exist",
        "Pass --sequence-lengths FILE",
    )
    # ... and read with it when it is given explicitly (it can travel separately)
    out = tmp_path / "x.json"
    table = str(root / SEQ_LENGTHS_FILE)
    assert run(capsys, *argv, "--sequence-lengths", table, "--json", str(out))[0] == 0
    assert json.loads(out.read_text())["provenance"]["train"]["sequence_table"] == table


def test_duke_names_with_campus_features_are_refused(campus, capsys):
    # python -m streid_lib evaluate --features campus.npz --dataset campus --train-names duke_train.txt
    _, features, _ = campus
    duke = Path(__file__).resolve().parents[2] / "shared" / "data" / "names" / "dukemtmc-reid" / "train.txt"
    if not duke.is_file():
        pytest.skip(f"real DukeMTMC-reID names not found at {duke}")
    argv = ["evaluate", "--features", str(features), "--dataset", "campus", "--train-names", str(duke)]
    assert_error(
        run(capsys, *argv),
        f"{duke}, line 1: '0001_c2_f0046182.jpg' is a Duke-style (PPPP_cC_fFFFFFFF.jpg) name",
        "but --dataset campus with",
        "expects Market-style (PPPP_cXsY_FFFFFF_BB.jpg) names",
    )


def test_market_names_with_duke_features_are_refused(files, tmp_path, capsys):
    market = tmp_path / "market.txt"
    market.write_text("0002_c1s1_000451_03.jpg\n0002_c2s1_000500_01.jpg\n")
    argv = ["evaluate", "--features", str(files["no_train"]), "--dataset", "market", "--train-names", str(market)]
    assert_error(
        run(capsys, *argv),
        f"{files['no_train']}: holds Duke-style (PPPP_cC_fFFFFFFF.jpg) names, but --dataset market expects",
        "declare the training names' naming with --naming",
    )
    argv = ["evaluate", "--features", str(files["no_train"]), "--dataset", "duke", "--train-names", str(market)]
    assert_error(run(capsys, *argv), "is a Market-style", "if these names are right, declare them with --naming market")


def test_declared_naming_and_the_authors_table_are_recorded(files, tmp_path, capsys):
    # Market names, declared, on a features file whose naming is unknown (.mat without names): the authors' table.
    fs = files["fs"]
    plain = FeatureSet(fs.query_f, fs.gallery_f, Metadata(fs.query.pids, fs.query.cams, fs.query.frames),
                       Metadata(fs.gallery.pids, fs.gallery.cams, fs.gallery.frames))  # fmt: skip
    mat = save_features(tmp_path / "pytorch_result.mat", plain)
    market = tmp_path / "market.txt"
    market.write_text("0002_c1s1_000451_03.jpg\n0002_c2s1_000500_01.jpg\n0003_c1s2_000010_01.jpg\n0003_c3s1_1_01.jpg\n")
    out = tmp_path / "m.json"
    argv = ["evaluate", "--features", str(mat), "--dataset", "market", "--train-names", str(market)]
    assert run(capsys, *argv, "--json", str(out))[0] == 0
    train = json.loads(out.read_text())["provenance"]["train"]
    assert train["sequence_table"] == AUTHORS_MARKET_TABLE and train["naming_from"] == "--dataset market"
    # --dataset duke with Market names: refused unless declared; declared, a table is still required
    argv = ["evaluate", "--features", str(mat), "--dataset", "duke", "--train-names", str(market)]
    assert_error(run(capsys, *argv), "is a Market-style", "--naming market")
    assert_error(
        run(capsys, *argv, "--naming", "market"), "Market-style names with --dataset duke need their own sequence table"
    )
    # Duke names never take a sequence table; a manifest takes neither option
    argv = ["evaluate", "--features", str(mat), "--dataset", "duke", "--train-names", str(files["names"])]
    assert_error(run(capsys, *argv, "--sequence-lengths", str(market)), "applies to Market-style names only")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,pid,camera,frame\na,1,1,5\nb,1,2,100\n")
    argv = ["evaluate", "--features", str(mat), "--dataset", "duke", "--train-manifest", str(manifest)]
    assert_error(run(capsys, *argv, "--naming", "duke"), "a manifest carries global frames")


# ------------------------------------------------------------------------------------------------------------
# Rows, defaults


def test_shifted_row_is_opt_in(files, tmp_path, capsys):
    # python -m streid_lib evaluate --features with_train.npz --dataset duke --rows VISxST VISxST-shifted
    out = tmp_path / "r.json"
    argv = ["evaluate", "--features", str(files["with_train"]), "--dataset", "duke", "--json", str(out)]
    rc, printed, _ = run(capsys, *argv, "--rows", "VISxST", "VISxST-shifted")
    assert rc == 0 and "VISxST-shifted" in printed
    rows = json.loads(out.read_text())["rows"]
    model = fit_st_model(files["train"], "duke")
    expected = evaluate_features(files["fs"], model, JointMetric(), ("VISxST", "VISxST-shifted"))["rows"]
    assert list(rows) == ["VISxST", "VISxST-shifted"] and rows == expected
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv[:5], "--rows", "VISxST-bogus"])
    capsys.readouterr()


def test_parser_defaults_come_from_the_library():
    args = build_parser().parse_args(["evaluate", "--features", "f.npz", "--dataset", "duke"])
    st = inspect.signature(SpatialTemporalModel).parameters
    assert (args.sigma, args.bin_width, args.overflow) == (
        st["sigma"].default,
        st["bin_width"].default,
        st["overflow"].default,
    )
    metric = {f.name: f.default for f in dataclasses.fields(JointMetric)}
    assert {k: getattr(args, k) for k in metric} == metric
    ev = inspect.signature(evaluate_features).parameters
    assert (args.chunk_size, args.mode) == (ev["chunk_size"].default, "faithful")
    assert args.rows == list(ROWS) and args.n_bins is None
    assert args.train_names is args.train_dir is args.train_manifest is None


# ------------------------------------------------------------------------------------------------------------
# The real dev features (DukeMTMC-reID, ImageNet MobileNetV2): the training side gives the names' numbers


@pytest.mark.slow
def test_dev_features_training_side_equals_the_real_names(tmp_path, capsys):
    names = DEV_FEATURES.parents[1] / "names" / "dukemtmc-reid" / "train.txt"
    if not (DEV_FEATURES.is_file() and names.is_file()):
        pytest.skip(f"dev features {DEV_FEATURES} or real names {names} not found (repo/../shared is absent)")
    fs = load_features(DEV_FEATURES)
    sub = FeatureSet(fs.query_f[::8], fs.gallery_f, fs.query.take(slice(None, None, 8)), fs.gallery, fs.provenance,
                     train_f=fs.train_f, train=fs.train)  # fmt: skip
    small = save_features(tmp_path / "dev_sub.npz", sub)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    base = ["evaluate", "--features", str(small), "--dataset", "duke", "--rows", "ST", "VISxST"]
    assert run(capsys, *base, "--json", str(a))[0] == 0
    assert run(capsys, *base, "--train-names", str(names), "--json", str(b))[0] == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["rows"] == rb["rows"] and ra["provenance"]["train"]["kind"] == "features file"
    assert ra["provenance"]["train"]["n_identities"] == 702 and ra["warnings"] == []
