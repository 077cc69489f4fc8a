"""Image metadata (pid, 1-based camera, frame) from Market or Duke file names, CSV manifests and dataset folders
(docs/reference.md §1); pid -1 (junk) and 0 (distractors) are kept, a name that does not parse is an error.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .errors import StreidError

Naming = Literal["market", "duke"]

#: Frames of each Market-1501 sequence, ``[cam-1][seq-1]``, as hard-coded in the authors' code (§1.2); 0: none.
MARKET_SEQ_LENGTHS = np.array(
    [
        [72681, 74546, 74881, 74661, 74891, 54346, 0, 0],
        [163691, 164677, 98102, 0, 0, 0, 0, 0],
        [161708, 161769, 104469, 0, 0, 0, 0, 0],
        [72107, 72373, 74810, 74541, 74910, 50616, 0, 0],
        [161095, 161724, 103487, 0, 0, 0, 0, 0],
        [87551, 131268, 95817, 30952, 0, 0, 0, 0],
    ],
    dtype=np.int64,
)

#: Expected (train, gallery, query) image counts of the standard splits.
KNOWN_SPLIT_SIZES: dict[str, tuple[int, int, int]] = {
    "market": (12936, 19732, 3368),
    "duke": (16522, 17661, 2228),
}

#: File written beside a Market-style synthetic dataset: per-camera sequence lengths (frames).
SEQ_LENGTHS_FILE = "sequence_lengths.json"

SPLIT_FOLDERS = {"train": "bounding_box_train", "gallery": "bounding_box_test", "query": "query"}

_PID = r"(?P<pid>-1|\d{4})"
MARKET_PATTERN = re.compile(_PID + r"_c(?P<cam>\d)s(?P<seq>\d)_(?P<frame>\d+)_(?P<bbox>\d+)\.jpg(?:\.jpg)?$")
MARKET_RENAMED_PATTERN = re.compile(_PID + r"_c(?P<cam>\d)_f(?P<frame>\d{7})_(?P<bbox>\d+)\.jpg(?:\.jpg)?$")
DUKE_PATTERN = re.compile(_PID + r"_c(?P<cam>\d)_f(?P<frame>\d{7})\.jpg$")
_EXPECTED = {
    "market": "PPPP_cXsY_FFFFFF_BB.jpg (Market-1501, e.g. 0002_c1s1_000451_03.jpg) "
    "or the authors' renamed PPPP_cX_fFFFFFFF_BB.jpg",
    "duke": "PPPP_cC_fFFFFFFF.jpg (DukeMTMC-reID, e.g. 0001_c2_f0046182.jpg)",
}


class MetadataError(StreidError):
    """A file name, manifest row or dataset folder that does not match what is expected."""


#: Largest magnitude of a pid, camera or frame: integers up to 2**53 are exact in float64 (``.mat`` files, ST sums).
MAX_INT = 2**53

#: The pid of every image of a side whose identities are not known (no ``*_label`` or ``pid``; §14.3).
UNKNOWN_PID = -2

#: Smallest value of each metadata field and what its values are (docs/reference.md §1).
FIELD_MINIMUM: dict[str, tuple[int, str]] = {
    "pids": (-1, "person ids must be >= -1 (-1 junk, 0 distractor)"),
    "cams": (1, "camera ids are 1-based (>= 1)"),
    "frames": (0, "frame numbers must be integers >= 0"),
}


def check_field(values: object, key: str, label: str | None = None) -> np.ndarray:
    """One field (``pids``, ``cams`` or ``frames``) as a checked 1-D int64 array: integers or whole-valued floats
    (1×N and N×1 flattened) in ``[FIELD_MINIMUM[key], MAX_INT]``; errors name ``label`` (default ``key``), the
    first offending value and its position."""
    label = label or key
    arr = np.asarray(values)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise MetadataError(f"{label}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise MetadataError(f"{label}: expected integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if (bad := ~np.isfinite(arr) | (arr != np.round(arr))).any():
            i = int(np.argmax(bad))
            raise MetadataError(
                f"{label}: expected whole numbers, got non-integer value {arr[i].item()!r} at position {i}"
            )
    lo, what = FIELD_MINIMUM[key]
    over = np.abs(arr) > MAX_INT if np.issubdtype(arr.dtype, np.floating) else (arr > MAX_INT) | (arr < -MAX_INT)
    if over.any():
        i = int(np.argmax(over))
        raise MetadataError(
            f"{label}: value {arr[i].item()!r} at position {i} is out of range (|value| <= 2**53 expected)"
        )
    arr = arr.astype(np.int64, copy=False)
    if (below := arr < lo).any():
        i = int(np.argmax(below))
        raise MetadataError(f"{label}: {what}; got {int(arr[i])} at position {i}")
    return arr


@dataclass(frozen=True)
class Metadata:
    """Identity, camera and time of N images: (N,) int64 ``pids`` (-1 junk, 0 distractor), ``cams`` (1-based),
    ``frames`` (on the camera's global timeline) and (N,) file ``names`` or None."""

    pids: np.ndarray
    cams: np.ndarray
    frames: np.ndarray
    names: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for key in FIELD_MINIMUM:
            values = getattr(self, key)
            if key == "pids" and np.size(values) and np.all(np.asarray(values) == UNKNOWN_PID):
                object.__setattr__(self, key, np.asarray(values, dtype=np.int64).reshape(-1))  # §14.3
                continue
            object.__setattr__(self, key, check_field(values, key))
        n = {k: len(getattr(self, k)) for k in FIELD_MINIMUM}
        if self.names is not None:
            object.__setattr__(self, "names", np.asarray(self.names, dtype=object).reshape(-1))
            n["names"] = len(self.names)
        if len(set(n.values())) > 1:
            raise MetadataError(f"lengths disagree: {n}")

    def __len__(self) -> int:
        return len(self.pids)

    @property
    def has_labels(self) -> bool:
        """False when the identities of this side are unknown (every pid is :data:`UNKNOWN_PID`, §14.3)."""
        return not (len(self.pids) and bool(np.all(self.pids == UNKNOWN_PID)))

    @property
    def n_cams(self) -> int:
        """Largest camera id present (cameras are 1-based)."""
        return int(self.cams.max()) if len(self) else 0

    def take(self, index: np.ndarray | slice | Sequence[int]) -> Metadata:
        """The subset of images selected by ``index`` (integer array, mask or slice)."""
        names = None if self.names is None else self.names[index]
        return Metadata(self.pids[index], self.cams[index], self.frames[index], names)

    @staticmethod
    def concat(parts: Iterable[Metadata]) -> Metadata:
        """Concatenate several metadata arrays (e.g. query then gallery)."""
        parts = list(parts)
        names = None if any(p.names is None for p in parts) else np.concatenate([p.names for p in parts])
        return Metadata(*(np.concatenate([getattr(p, k) for p in parts]) for k in FIELD_MINIMUM), names)


def sequence_offsets(seq_lengths: np.ndarray) -> np.ndarray:
    """(C, S) int64 frame offsets ``sum(seq_lengths[c-1, :s-1])`` from (C, S) sequence lengths (frames)."""
    lengths = np.asarray(seq_lengths, dtype=np.int64)
    if lengths.ndim != 2 or (lengths < 0).any():
        raise MetadataError(f"sequence lengths: expected a 2-D array of non-negative frames, got {lengths!r}")
    return np.cumsum(lengths, axis=1) - lengths


def parse_names(
    names: Iterable[str],
    naming: Naming,
    seq_lengths: np.ndarray | None = None,
    source: str = "<names>",
    lines: Sequence[int] | None = None,
) -> Metadata:
    """:class:`Metadata` of file names (folders stripped): ``"market"`` (frames made global with ``seq_lengths``,
    default the authors' table) or ``"duke"`` (raw frames); errors name ``source`` and the name's line in it."""
    if naming not in _EXPECTED:
        raise MetadataError(f"naming: expected 'market' or 'duke', got {naming!r}")
    names = [re.split(r"[/\\]", str(n))[-1] for n in names]
    patterns = (DUKE_PATTERN,) if naming == "duke" else (MARKET_PATTERN, MARKET_RENAMED_PATTERN)
    offsets = sequence_offsets(MARKET_SEQ_LENGTHS if seq_lengths is None else seq_lengths)
    values = np.empty((len(names), 3), np.int64)  # pid, camera, frame
    for i, name in enumerate(names):
        where = f"{source}, line {lines[i]}" if lines is not None else source
        m = next((m for p in patterns if (m := p.match(name))), None)
        if m is None:
            raise MetadataError(f"{where}: file name {name!r} does not match {_EXPECTED[naming]}")
        if len(m["frame"]) > 15:  # beyond MAX_INT: not a frame number
            raise MetadataError(f"{where}: file name {name!r}: frame {m['frame']} is out of range")
        c, frame = int(m["cam"]), int(m["frame"])
        if m.groupdict().get("seq") is not None:
            s = int(m["seq"])
            if not (1 <= c <= offsets.shape[0] and 1 <= s <= offsets.shape[1]):
                raise MetadataError(
                    f"{where}: file name {name!r}: camera {c}, sequence {s} is outside the sequence-length "
                    f"table ({offsets.shape[0]} cameras x {offsets.shape[1]} sequences)"
                )
            frame += int(offsets[c - 1, s - 1])
        values[i] = int(m["pid"]), c, frame
    if len(names) and values[:, 1].min() < 1:
        i = int(np.argmin(values[:, 1]))
        where = f"{source}, line {lines[i]}" if lines is not None else source
        raise MetadataError(f"{where}: file name {names[i]!r}: camera ids are 1-based, got camera 0")
    return Metadata(*values.T, np.asarray(names, dtype=object))


def detect_naming(name: str, where: str | None = None) -> Naming:
    """Guess the naming scheme of one file name; raises if it is neither Market nor Duke style (naming ``where``)."""
    base = re.split(r"[/\\]", name)[-1]
    if MARKET_PATTERN.match(base) or MARKET_RENAMED_PATTERN.match(base):
        return "market"
    if DUKE_PATTERN.match(base):
        return "duke"
    prefix = "" if where is None else f"{where}: "
    raise MetadataError(f"{prefix}file name {base!r} matches neither {_EXPECTED['market']} nor {_EXPECTED['duke']}")


def read_text(path: str | Path, what: str) -> str:
    """The text of a UTF-8 file (a byte-order mark dropped); UTF-16/32 or other bytes are refused naming ``what``."""
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: {what} not found" + (" (that path is a folder)" if path.is_dir() else ""))
    raw = path.read_bytes()
    for bom, enc in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
                     (b"\xfe\xff", "UTF-16")):  # fmt: skip
        if raw.startswith(bom):
            raise MetadataError(f"{path}: the {what} is {enc} text; expected UTF-8 (save it as UTF-8)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise MetadataError(
            f"{path}, line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8; expected a UTF-8 text {what}"
        ) from None


def read_name_lines(path: str | Path) -> tuple[list[int], list[str]]:
    """The 1-based line numbers and names of a name list (blank lines and surrounding whitespace dropped)."""
    rows = [(i, name) for i, line in enumerate(read_text(path, "name list").splitlines(), 1) if (name := line.strip())]
    if not rows:
        raise MetadataError(f"{path}: the name list is empty")
    return [i for i, _ in rows], [n for _, n in rows]


def read_name_list(path: str | Path, naming: Naming | None = None, seq_lengths: np.ndarray | None = None) -> Metadata:
    """:class:`Metadata` of a name list (naming detected from the first name when not given)."""
    lines, names = read_name_lines(path)
    naming = naming or detect_naming(names[0], f"{path}, line {lines[0]}")
    return parse_names(names, naming, seq_lengths, source=str(path), lines=lines)


def read_manifest(path: str | Path, fps: float | None = None) -> Metadata:
    """:class:`Metadata` of a CSV manifest ``path,pid,camera,frame`` (global frames); without ``pid`` every pid is
    :data:`UNKNOWN_PID`, and ``timestamp`` seconds may replace ``frame`` at ``fps`` (§14.3)."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(read_text(path, "manifest"), newline=""))
    header = reader.fieldnames or []
    timed = "frame" not in header and "timestamp" in header
    if timed and not (fps is not None and fps > 0):
        raise MetadataError(f"{path}: the manifest gives time as 'timestamp' (seconds): fps > 0 is needed, got {fps}")
    need = ["path", "camera", "timestamp" if timed else "frame"]
    if missing := [k for k in need if k not in header]:
        raise MetadataError(f"{path}: manifest header {reader.fieldnames} lacks column(s) {missing}")
    fields = {"pid": "pids", "camera": "cams", "frame": "frames"}
    if "pid" not in header:
        fields.pop("pid")
    values: dict[str, list[int]] = {k: [] for k in fields}
    names = []
    for row in reader:
        for k, key in fields.items():
            raw = row["timestamp"] if timed and k == "frame" else row[k]
            try:
                v = round(float(raw) * fps) if timed and k == "frame" else int(raw)
            except (TypeError, ValueError, OverflowError):
                what = "a number of seconds" if timed and k == "frame" else "an integer"
                raise MetadataError(f"{path}, line {reader.line_num}: field {k!r} = {raw!r} is not {what}") from None
            lo, what = FIELD_MINIMUM[key]
            if not lo <= v <= MAX_INT:
                limit = "" if v < lo else " and at most 2**53"
                raise MetadataError(f"{path}, line {reader.line_num}: field {k!r} = {raw!r}: {what}{limit}")
            values[k].append(v)
        names.append(row["path"])
    out = {k: np.asarray(v, dtype=np.int64) for k, v in values.items()}
    pids = out["pid"] if "pid" in out else np.full(len(names), UNKNOWN_PID, np.int64)
    return Metadata(pids, out["camera"], out["frame"], np.asarray(names, dtype=object))


def read_seq_lengths(root: str | Path) -> np.ndarray | None:
    """The per-camera sequence lengths written beside a dataset (``root/sequence_lengths.json``), if any."""
    p = Path(root) / SEQ_LENGTHS_FILE
    return read_seq_lengths_file(p) if p.is_file() else None


def read_seq_lengths_file(path: str | Path) -> np.ndarray:
    """(C, S) int64 sequence table (0 where a camera has fewer sequences) of a JSON file mapping each 1-based camera
    id to its sequence lengths in frames."""
    path = Path(path)
    expected = '{"<camera>": [length of sequence 1, length of sequence 2, ...] in frames}'
    try:
        raw = json.loads(read_text(path, "sequence table"))
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{path}: not valid JSON ({exc}); expected {expected}") from None
    try:
        if not isinstance(raw, dict) or not raw:
            raise ValueError("not a non-empty object")
        table_in = {int(c): v for c, v in raw.items()}
        if min(table_in) < 1 or any(not isinstance(v, list) for v in table_in.values()):
            raise ValueError("camera ids must be >= 1 and each value a list")
        width = max(len(v) for v in table_in.values())
        table = np.zeros((max(table_in), max(width, 1)), np.int64)
        for c, v in table_in.items():
            if any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= MAX_INT for x in v):
                raise ValueError(f"camera {c}: sequence lengths must be whole frames >= 0")
            table[c - 1, : len(v)] = v
    except (TypeError, ValueError) as exc:
        raise MetadataError(f"{path}: expected {expected}, got {exc}") from None
    return table


@dataclass(frozen=True)
class DatasetSplits:
    """The three standard splits of a re-ID dataset, as metadata; ``root`` is where they were read."""

    train: Metadata
    gallery: Metadata
    query: Metadata
    root: Path | None = None
    naming: str | None = None


def list_images(folder: Path) -> list[str]:
    """Sorted ``*.jpg`` file names in ``folder`` (the standard splits hold JPEGs only)."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(".jpg"))


def read_dataset_root(root: str | Path, naming: Naming | None = None) -> DatasetSplits:
    """The splits of a dataset root (``bounding_box_train/``, ``bounding_box_test/``, ``query/``); a
    ``sequence_lengths.json`` there replaces the Market-1501 sequence table."""
    root = Path(root)
    if not root.is_dir():
        raise MetadataError(f"{root}: dataset root not found")
    if missing := [f for f in SPLIT_FOLDERS.values() if not (root / f).is_dir()]:
        raise MetadataError(f"{root}: missing split folder(s) {missing}; expected {list(SPLIT_FOLDERS.values())}")
    seq_lengths = read_seq_lengths(root)
    out = {}
    for split, folder in SPLIT_FOLDERS.items():
        if not (names := list_images(root / folder)):
            raise MetadataError(f"{root / folder}: no .jpg images")
        naming = naming or detect_naming(names[0], str(root / folder))
        out[split] = parse_names(names, naming, seq_lengths, source=str(root / folder))
    return DatasetSplits(out["train"], out["gallery"], out["query"], root=root, naming=naming)


def read_name_lists(folder: str | Path, naming: Naming | None = None) -> DatasetSplits:
    """Read ``train.txt``, ``gallery.txt`` and ``query.txt`` name lists from ``folder``."""
    folder = Path(folder)
    seq_lengths = read_seq_lengths(folder)
    parts = (read_name_list(folder / f"{s}.txt", naming, seq_lengths) for s in ("train", "gallery", "query"))
    return DatasetSplits(*parts, root=folder, naming=naming)


def split_report(splits: DatasetSplits, dataset: str | None = None):
    """A table (pandas DataFrame, rows train, gallery, query) of images, identities, cameras, junk (pid -1) and
    distractors (pid 0) per split; for a ``dataset`` of :data:`KNOWN_SPLIT_SIZES`, the standard image counts too."""
    import pandas as pd

    rows = {}
    for name in ("train", "gallery", "query"):
        meta = getattr(splits, name)
        ids, cams = np.unique(meta.pids[meta.pids > 0]).size, np.unique(meta.cams).size
        counts = (len(meta), ids, cams, (meta.pids == -1).sum(), (meta.pids == 0).sum())
        rows[name] = dict(zip(("images", "ids", "cams", "junk", "distractors"), map(int, counts)))
    report = pd.DataFrame.from_dict(rows, orient="index")
    if dataset in KNOWN_SPLIT_SIZES:
        report["expected"] = KNOWN_SPLIT_SIZES[dataset]
    return report
