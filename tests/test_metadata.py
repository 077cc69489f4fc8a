"""Metadata: file-name parsing (docs/reference.md §1 and §11 worked examples), manifests, dataset roots, split sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from streid_lib.metadata import (
    KNOWN_SPLIT_SIZES,
    MARKET_SEQ_LENGTHS,
    SEQ_LENGTHS_FILE,
    Metadata,
    MetadataError,
    check_field,
    detect_naming,
    parse_names,
    read_dataset_root,
    read_manifest,
    read_name_list,
    read_name_lists,
    read_seq_lengths_file,
    sequence_offsets,
    split_report,
)

NAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "names"
needs_names = pytest.mark.skipif(
    not NAMES.is_dir(), reason=f"real dataset name lists not found at {NAMES} (repo/../shared/data/names)"
)


# -- Market-1501 (docs/reference.md §1.2 and §11) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cam", "seq", "frame", "expected"),
    [(1, 1, 451, 451), (1, 2, 123, 72804), (6, 4, 100, 314736), (2, 3, 0, 163691 + 164677)],
)
def test_market_global_frame_worked_examples(cam, seq, frame, expected) -> None:
    assert parse_names([f"0002_c{cam}s{seq}_{frame:06d}_01.jpg"], "market").frames.tolist() == [expected]


def test_sequence_offsets_table() -> None:
    off = sequence_offsets(MARKET_SEQ_LENGTHS)
    assert off[0, :6].tolist() == [0, 72681, 147227, 222108, 296769, 371660]
    assert off[5, :4].tolist() == [0, 87551, 218819, 314636]
    with pytest.raises(MetadataError, match="sequence lengths"):
        sequence_offsets(np.array([1, 2]))
    with pytest.raises(MetadataError, match="sequence lengths"):
        sequence_offsets(np.array([[1, -2]]))


def test_parse_market_names() -> None:
    m = parse_names(
        [
            "0002_c1s1_000451_03.jpg",
            "0002_c1s2_000123_01.jpg",
            "0005_c6s4_000100_01.jpg",
            "-1_c3s1_000401_03.jpg",
            "0000_c2s3_001351_04.jpg",
            "0007_c5s1_000451_04.jpg.jpg",  # official double extension
            "0002_c1_f0072804_01.jpg",  # the authors' renamed form: frame used as is
        ],
        "market",
    )
    assert m.pids.tolist() == [2, 2, 5, -1, 0, 7, 2]
    assert m.cams.tolist() == [1, 1, 6, 3, 2, 5, 1]
    assert m.frames.tolist() == [451, 72804, 314736, 401, 163691 + 164677 + 1351, 451, 72804]
    assert m.pids.dtype == np.int64 and m.names[5] == "0007_c5s1_000451_04.jpg.jpg"


def test_parse_strips_directories() -> None:
    m = parse_names(["a/b/0002_c1s2_000123_01.jpg"], "market")
    assert m.frames.tolist() == [72804] and m.names[0] == "0002_c1s2_000123_01.jpg"
    d = parse_names(["c:\\d\\0001_c2_f0046182.jpg"], "duke")
    assert d.names[0] == "0001_c2_f0046182.jpg"


def test_parse_with_own_sequence_table() -> None:
    table = np.array([[10, 20], [5, 0]])
    m = parse_names(["0001_c1s2_000003_00.jpg", "0001_c2s1_000004_00.jpg"], "market", seq_lengths=table)
    assert m.frames.tolist() == [13, 4]


# -- DukeMTMC-reID (docs/reference.md §1.3) --------------------------------------------------------------------------


def test_parse_duke_names() -> None:
    m = parse_names(["0001_c2_f0046182.jpg", "0005_c8_f0000001.jpg", "-1_c1_f0000010.jpg"], "duke")
    assert m.pids.tolist() == [1, 5, -1]
    assert m.cams.tolist() == [2, 8, 1]
    assert m.frames.tolist() == [46182, 1, 10]  # raw frames, no sync offsets


def test_detect_naming() -> None:
    assert detect_naming("0002_c1s1_000451_03.jpg") == "market"
    assert detect_naming("x/0002_c1_f0072804_01.jpg") == "market"
    assert detect_naming("0001_c2_f0046182.jpg") == "duke"
    with pytest.raises(MetadataError, match=r"'cat\.jpg'"):
        detect_naming("cat.jpg")


# -- bad names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "naming", "match"),
    [
        ("foo.jpg", "market", r"'foo\.jpg' does not match PPPP_cXsY_FFFFFF_BB\.jpg"),
        ("0001_c2_f0046182.jpg", "market", "does not match PPPP_cXsY"),
        ("0002_c1s1_000451_03.jpg", "duke", r"'0002_c1s1_000451_03\.jpg' does not match PPPP_cC_fFFFFFFF\.jpg"),
        ("0002_c1s1_000451_03.png", "market", "does not match"),
        ("002_c1s1_000451_03.jpg", "market", "does not match"),
        ("0001_c2_f046182.jpg", "duke", "does not match"),
        ("0002_c7s1_000451_03.jpg", "market", r"camera 7, sequence 1 is outside the sequence-length table"),
        ("0002_c0s1_000451_03.jpg", "market", "camera 0, sequence 1 is outside"),
        ("0002_c1s9_000451_03.jpg", "market", "sequence 9 is outside"),
        ("0001_c0_f0046182.jpg", "duke", "camera ids are 1-based"),
    ],
)
def test_malformed_names(name, naming, match) -> None:
    with pytest.raises(MetadataError, match=match) as info:
        parse_names(["0002_c1s1_000451_03.jpg" if naming == "market" else "0001_c2_f0046182.jpg", name], naming)
    assert name in str(info.value)  # the error names the file


def test_unknown_naming() -> None:
    with pytest.raises(MetadataError, match="naming"):
        parse_names(["0001_c2_f0046182.jpg"], "msmt")


# -- the Metadata container ----------------------------------------------------------------------------------


def test_metadata_take_concat_and_validation() -> None:
    m = Metadata([1, 2, 3], [1, 2, 3], [10, 20, 30], ["a", "b", "c"])
    assert m.take([2, 0]).pids.tolist() == [3, 1] and m.take([2, 0]).names.tolist() == ["c", "a"]
    assert len(m.take(slice(1, None))) == 2 and m.n_cams == 3
    both = Metadata.concat([m, m.take([0])])
    assert both.frames.tolist() == [10, 20, 30, 10] and both.names.tolist() == ["a", "b", "c", "a"]
    assert Metadata.concat([m, Metadata([4], [1], [0])]).names is None
    assert Metadata(np.array([[1, 2]]), [1, 1], [0, 0]).pids.shape == (2,)  # 1×N rows (.mat) accepted
    assert Metadata([1.0], [2.0], [3.0]).cams.dtype == np.int64
    with pytest.raises(MetadataError, match="lengths disagree"):
        Metadata([1, 2], [1], [0, 0])
    with pytest.raises(MetadataError, match="lengths disagree"):
        Metadata([1], [1], [0], names=["a", "b"])
    with pytest.raises(MetadataError, match="1-based"):
        Metadata([1], [0], [0])
    with pytest.raises(MetadataError, match="frames: expected whole numbers"):
        Metadata([1], [1], [0.5])
    with pytest.raises(MetadataError, match="pids: expected a 1-D array"):
        Metadata(np.zeros((2, 2)), [1, 1], [0, 0])
    with pytest.raises(MetadataError, match="cams: expected integers"):
        Metadata([1], np.array(["x"]), [0])


# -- name lists and manifests --------------------------------------------------------------------------------


def test_read_name_list(tmp_path: Path) -> None:
    p = tmp_path / "train.txt"
    p.write_text("0002_c1s1_000451_03.jpg\n\n0002_c1s2_000123_01.jpg\n")
    m = read_name_list(p)
    assert m.frames.tolist() == [451, 72804]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(MetadataError, match="empty"):
        read_name_list(tmp_path / "empty.txt")
    with pytest.raises(MetadataError, match="not found"):
        read_name_list(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_text("0002_c1s1_000451_03.jpg\nbroken.jpg\n")
    with pytest.raises(MetadataError, match=r"bad\.txt, line 2: file name 'broken\.jpg'"):
        read_name_list(tmp_path / "bad.txt")


def test_read_manifest(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("path,pid,camera,frame\nimg/a.png,3,1,100\nimg/b.png,-1,12,5\n")
    m = read_manifest(p)
    assert m.pids.tolist() == [3, -1] and m.cams.tolist() == [1, 12] and m.frames.tolist() == [100, 5]
    assert m.names.tolist() == ["img/a.png", "img/b.png"]
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("path,pid,cam,frame\na,1,1,1\n")
    with pytest.raises(MetadataError, match=r"lacks column\(s\) \['camera'\]"):
        read_manifest(bad_header)
    bad_value = tmp_path / "v.csv"
    bad_value.write_text("path,pid,camera,frame\na,1,1,1\nb,1,x,2\n")
    with pytest.raises(MetadataError, match=r"v\.csv, line 3: field 'camera' = 'x' is not an integer"):
        read_manifest(bad_value)
    cam0 = tmp_path / "c.csv"
    cam0.write_text("path,pid,camera,frame\na,1,0,1\n")
    with pytest.raises(MetadataError, match="1-based"):
        read_manifest(cam0)
    with pytest.raises(MetadataError, match="not found"):
        read_manifest(tmp_path / "none.csv")


# -- dataset roots -------------------------------------------------------------------------------------------


def make_root(root: Path, files: dict[str, list[str]]) -> Path:
    for folder, names in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in names:
            (root / folder / n).write_bytes(b"")  # empty files: only names matter
    return root


MARKET_TREE = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000500_01.jpg", "Thumbs.db"],
    "bounding_box_test": ["-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg", "0003_c6s4_000100_01.jpg"],
    "query": ["0003_c1s2_000123_00.jpg.jpg"],
}


def test_read_dataset_root(tmp_path: Path) -> None:
    splits = read_dataset_root(make_root(tmp_path, MARKET_TREE))
    assert splits.naming == "market" and split_report(splits)["images"].tolist() == [2, 3, 1]  # Thumbs.db ignored
    assert splits.gallery.pids.tolist() == [-1, 0, 3]  # sorted names; junk and distractor kept
    assert splits.gallery.frames.tolist() == [401, 151, 314736]
    assert splits.query.frames.tolist() == [72804]
    rep = split_report(splits)
    assert "expected" not in rep and rep.index.tolist() == ["train", "gallery", "query"]
    assert rep["junk"].tolist() == [0, 1, 0] and rep["distractors"].tolist() == [0, 1, 0]
    bad = split_report(splits, "market")
    assert (bad["images"] != bad["expected"]).all() and "expected" in str(bad)


def test_read_dataset_root_with_sequence_table(tmp_path: Path) -> None:
    root = make_root(tmp_path, MARKET_TREE)
    (root / SEQ_LENGTHS_FILE).write_text(json.dumps({"1": [1000, 2000], "2": [10], "6": [1, 1, 1, 1]}))
    splits = read_dataset_root(root)
    assert splits.query.frames.tolist() == [1123] and splits.gallery.frames.tolist() == [401, 151, 103]
    (root / SEQ_LENGTHS_FILE).write_text(json.dumps({"one": [1]}))
    with pytest.raises(MetadataError, match=SEQ_LENGTHS_FILE):
        read_dataset_root(root)


def test_read_dataset_root_duke(tmp_path: Path) -> None:
    root = make_root(
        tmp_path,
        {
            "bounding_box_train": ["0001_c2_f0046182.jpg"],
            "bounding_box_test": ["0002_c1_f0044158.jpg"],
            "query": ["0002_c5_f0051781.jpg"],
        },
    )
    splits = read_dataset_root(root)
    assert splits.naming == "duke" and splits.query.cams.tolist() == [5]


def test_read_dataset_root_errors(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="dataset root not found"):
        read_dataset_root(tmp_path / "nope")
    partial = {k: v for k, v in MARKET_TREE.items() if k != "query"}
    root = make_root(tmp_path / "a", partial)
    with pytest.raises(MetadataError, match=r"missing split folder\(s\) \['query'\]"):
        read_dataset_root(root)
    root_b = make_root(tmp_path / "b", {**MARKET_TREE, "query": []})
    with pytest.raises(MetadataError, match=r"query: no \.jpg images"):
        read_dataset_root(root_b)
    root_c = make_root(tmp_path / "c", {**MARKET_TREE, "query": ["0003_c1s1_000123_00.jpg", "0003_x.jpg"]})
    with pytest.raises(MetadataError, match=r"query: file name '0003_x\.jpg'"):
        read_dataset_root(root_c)


# -- the real name lists -------------------------------------------------------------------------------------


@needs_names
@pytest.mark.names
@pytest.mark.parametrize(("dataset", "folder"), [("market", "market1501"), ("duke", "dukemtmc-reid")])
def test_real_split_sizes(dataset: str, folder: str) -> None:
    splits = read_name_lists(NAMES / folder)
    rep = split_report(splits, dataset)
    print(f"\n{dataset}\n{rep}")
    assert (rep["images"] == rep["expected"]).all(), str(rep)
    assert tuple(rep["images"]) == KNOWN_SPLIT_SIZES[dataset]
    ids = rep["ids"]
    assert ids["train"] == (751 if dataset == "market" else 702)
    train, gallery, query = splits.train, splits.gallery, splits.query
    assert (train.pids > 0).all() and (query.pids > 0).all()  # no junk or distractors in train or query
    if dataset == "market":
        assert (gallery.pids == -1).sum() > 0 and (gallery.pids == 0).sum() > 0
        assert train.cams.max() == 6 and gallery.frames.max() < 428_000  # §1.2: largest cumulative frame ≈ 428k
        n_double = sum(n.endswith(".jpg.jpg") for m in (gallery, query) for n in m.names)
        assert n_double == 24
    else:
        assert gallery.cams.max() == 8 and (gallery.pids >= 0).all()


# -- validation at the door: ranges, encodings, line numbers --------------------------------------------------


@pytest.mark.parametrize(
    ("key", "values", "match"),
    [
        ("frames", [0, -5], r"f\.npz: query_frames: frame numbers must be integers >= 0; got -5 at position 1"),
        ("frames", [0.0, -1.0], "frame numbers must be integers >= 0; got -1 at position 1"),
        ("cams", [1, 0], r"camera ids are 1-based \(>= 1\); got 0 at position 1"),
        ("pids", [-1, -2], r"person ids must be >= -1 \(-1 junk, 0 distractor\); got -2 at position 1"),
        ("frames", [3, 2.5], "expected whole numbers, got non-integer value 2.5 at position 1"),
        ("frames", [3, float("inf")], "non-integer value inf at position 1"),
        ("frames", [3, 1e30], r"value 1e\+30 at position 1 is out of range"),
        ("frames", np.array([3, 2**62], np.int64), "out of range"),
        ("frames", np.array([3, 2**64 - 1], np.uint64), "out of range"),
        ("frames", np.array(["3"]), "expected integers, got dtype <U1"),
        ("frames", np.array([1 + 2j]), "expected integers, got dtype complex128"),
        ("frames", np.array([True]), "expected integers, got dtype bool"),
    ],
)
def test_check_field_names_the_field_value_and_position(key, values, match) -> None:
    with pytest.raises(MetadataError, match=match):
        check_field(values, key, label="f.npz: query_frames")


def test_check_field_accepts_what_the_reference_writes() -> None:
    assert check_field(np.array([[1.0, 2.0, 0.0]]), "frames").tolist() == [1, 2, 0]  # a 1×N row of doubles
    assert check_field(np.array([-1, 0, 5], np.int32), "pids").dtype == np.int64
    assert check_field([], "cams").size == 0


def test_metadata_refuses_negative_frames() -> None:
    with pytest.raises(MetadataError, match="frames: frame numbers must be integers >= 0; got -3"):
        Metadata([1, 2], [1, 2], [10, -3])


def test_manifest_range_errors_name_file_line_and_field(tmp_path: Path) -> None:
    cases = {
        "frame": ("a,1,1,5\nb,1,2,-5\n", r"m\.csv, line 3: field 'frame' = '-5': frame numbers must be integers >= 0"),
        "pid": ("a,-7,1,5\n", r"m\.csv, line 2: field 'pid' = '-7': person ids must be >= -1"),
        "huge": ("a,1,1,99999999999999999999\n", r"line 2: field 'frame' = '99999999999999999999': .*at most 2\*\*53"),
        "float": ("a,1,1,5.5\n", r"line 2: field 'frame' = '5\.5' is not an integer"),
        "short": ("a,1,1\n", r"line 2: field 'frame' = None is not an integer"),
    }
    for body, match in cases.values():
        p = tmp_path / "m.csv"
        p.write_text("path,pid,camera,frame\n" + body)
        with pytest.raises(MetadataError, match=match):
            read_manifest(p)


def test_manifest_with_bom_and_crlf(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_bytes("\ufeffpath,pid,camera,frame\r\na.jpg,3,1,100\r\n".encode())
    m = read_manifest(p)
    assert m.pids.tolist() == [3] and m.frames.tolist() == [100]


def test_name_list_encodings(tmp_path: Path) -> None:
    names = "0002_c1s1_000451_03.jpg\n0002_c1s2_000123_01.jpg\n"
    # A UTF-8 byte-order mark (Windows Notepad) and CRLF line ends are accepted: same metadata.
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbf" + names.replace("\n", "\r\n").encode())
    assert read_name_list(p).frames.tolist() == [451, 72804]
    # UTF-16 (with its BOM) is refused, naming the file and what is expected.
    p16 = tmp_path / "utf16.txt"
    p16.write_bytes(names.encode("utf-16"))
    with pytest.raises(MetadataError, match=r"utf16\.txt: the name list is UTF-16 text; expected UTF-8"):
        read_name_list(p16)
    # Bytes that are not UTF-8: file, line and byte.
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(names.encode() + "0003_c1s1_000451_03\xe9.jpg\n".encode("latin-1"))
    with pytest.raises(MetadataError, match=r"latin1\.txt, line 3: byte 0xe9 is not UTF-8"):
        read_name_list(bad)


def test_name_list_errors_carry_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "first.txt"
    p.write_text("\n\nname\n0002_c1s1_000451_03.jpg\n")  # a header line where the first name should be
    with pytest.raises(MetadataError, match=r"first\.txt, line 3: file name 'name' matches neither"):
        read_name_list(p)
    p = tmp_path / "later.txt"
    p.write_text("0001_c2_f0046182.jpg\n\n0001_c2_f-046182.jpg\n")  # a negative frame does not parse
    with pytest.raises(MetadataError, match=r"later\.txt, line 3: file name '0001_c2_f-046182\.jpg' does not match"):
        read_name_list(p)
    p = tmp_path / "long.txt"
    p.write_text("0002_c1s1_" + "9" * 30 + "_03.jpg\n")
    with pytest.raises(MetadataError, match=r"long\.txt, line 1: .*frame 9+ is out of range"):
        read_name_list(p)
    with pytest.raises(MetadataError, match=r"folder\.txt: name list not found \(that path is a folder\)"):
        (tmp_path / "folder.txt").mkdir()
        read_name_list(tmp_path / "folder.txt")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a non-empty object"),
        ('{"0": [1]}', "camera ids must be >= 1"),
        ('{"1": [-5]}', "sequence lengths must be whole frames >= 0"),
        ('{"1": [1.5]}', "sequence lengths must be whole frames >= 0"),
        ('{"x": [1]}', "invalid literal"),
    ],
)
def test_sequence_table_file_errors(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / SEQ_LENGTHS_FILE
    p.write_text(text)
    with pytest.raises(MetadataError, match=rf"sequence_lengths\.json: .*{match}"):
        read_seq_lengths_file(p)
