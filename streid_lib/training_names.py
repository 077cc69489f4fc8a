"""Training metadata of ``evaluate``: one source (name list, ``bounding_box_train`` folder, CSV manifest or the
features file's training side), its naming and sequence table (docs/reference.md §13), pid 0/-1 excluded (§13.9).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .features import FeatureSet
from .metadata import (
    SEQ_LENGTHS_FILE,
    Metadata,
    MetadataError,
    detect_naming,
    list_images,
    parse_names,
    read_manifest,
    read_name_lines,
    read_seq_lengths_file,
)


class TrainingDataError(MetadataError):
    """Bad training data or training options (names the file or option and what was expected)."""


#: pid values that are not identities: -1 junk, 0 distractors (the Market/Duke convention, docs/reference.md §1.5).
JUNK_PIDS = (-1, 0)


#: The naming each ``--dataset`` expects of training names unless the features' naming or ``--naming`` says otherwise.
DATASET_NAMING: dict[str, str] = {"market": "market", "duke": "duke", "campus": "market"}
_NAMING_TEXT = {"market": "Market-style (PPPP_cXsY_FFFFFF_BB.jpg)", "duke": "Duke-style (PPPP_cC_fFFFFFFF.jpg)"}
#: What the provenance says of the authors' Market-1501 sequence table.
AUTHORS_MARKET_TABLE = "the authors' Market-1501 table (metadata.MARKET_SEQ_LENGTHS)"


def _expected_naming(
    dataset: str, declared: str | None, features_naming: str | None, features_file: str
) -> tuple[str, str]:
    """The naming training names must have, and why (for messages and the provenance)."""
    if declared is not None:
        if declared not in _NAMING_TEXT:
            raise TrainingDataError(f"naming: expected one of {sorted(_NAMING_TEXT)}, got {declared!r}")
        return declared, f"--naming {declared}"
    if features_naming in _NAMING_TEXT:
        if dataset != "campus" and features_naming != DATASET_NAMING[dataset]:
            raise TrainingDataError(
                f"{features_file}: holds {_NAMING_TEXT[features_naming]} names, but --dataset {dataset} expects "
                f"{_NAMING_TEXT[DATASET_NAMING[dataset]]} names: are the features from another dataset? (declare "
                f"the training names' naming with --naming to go ahead)"
            )
        return features_naming, f"--dataset {dataset} with {features_file} ({features_naming}-style names)"
    return DATASET_NAMING[dataset], f"--dataset {dataset}"


def _sequence_table(
    dataset: str, naming: str, path: Path, kind: str, explicit: str | None
) -> tuple[np.ndarray | None, str | None]:
    """The sequence table for Market-style names and how the provenance names it (None, None for Duke names)."""
    if naming != "market":
        if explicit is not None:
            raise TrainingDataError(f"{explicit}: --sequence-lengths applies to Market-style names only")
        return None, None
    if explicit is not None:
        return read_seq_lengths_file(explicit), str(Path(explicit))
    beside = path.parent / SEQ_LENGTHS_FILE  # a name list's folder, or a bounding_box_train folder's dataset root
    if beside.is_file():
        return read_seq_lengths_file(beside), str(beside)
    if dataset != "market":
        what = f"Market-style names with --dataset {dataset} need their own"
        what = "campus Market-style names need the campus's" if dataset == "campus" else what
        raise TrainingDataError(
            f"{path}: {what} sequence table to make frames global (the authors' Market-1501 table is for Market-1501 "
            f"only); looked for {beside}, which does not exist. Pass --sequence-lengths FILE (the dataset root's "
            f"{SEQ_LENGTHS_FILE})"
        )
    return None, AUTHORS_MARKET_TABLE


def train_record(kind: str, path: str | Path, train: Metadata, **extra: Any) -> dict[str, Any]:
    record = {"kind": kind, "path": str(path), "n_images": len(train), "n_identities": int(np.unique(train.pids).size)}
    return record | {k: v for k, v in extra.items() if v is not None}


def choose_training(
    fs: FeatureSet,
    dataset: str,
    *,
    features: str,
    train_names: str | None = None,
    train_dir: str | None = None,
    train_manifest: str | None = None,
    naming: str | None = None,
    sequence_lengths: str | None = None,
    needed_by: str | None = "the ST model",
) -> tuple[FeatureSet, Metadata | None, dict[str, Any]]:
    """``(fs, train, record)``: the one ``train_*`` source given, else the features file's side, pid 0/-1 excluded
    from either (``record["n_junk_excluded"]``). Without training data ``train`` is None when ``needed_by`` is None
    (a stored ST model in faithful mode); else ``needed_by`` names what needs it in the error.

    Names follow ``naming`` if declared, else the features' naming (which must agree with a named dataset's), else
    :data:`DATASET_NAMING`; Market-style frames are made global with ``sequence_lengths``, else a
    ``sequence_lengths.json`` beside the list or folder, else (Market-1501 only) the authors' table.
    """
    keep = ~np.isin(fs.train.pids, JUNK_PIDS) if fs.has_train else None
    if keep is not None and not keep.all():  # the improved mode may calibrate on this side: read without junk too
        fs = dataclasses.replace(fs, train_f=fs.train_f[keep], train=fs.train.take(keep))
    n_side_junk = 0 if keep is None else int((~keep).sum())
    options = (("names", train_names), ("dir", train_dir), ("manifest", train_manifest))
    given = [(k, v) for k, v in options if v is not None]
    if not given:
        if naming is not None or sequence_lengths is not None:
            raise TrainingDataError(
                "--naming and --sequence-lengths apply to --train-names or --train-dir, none was given"
            )
        if fs.has_train:
            record = train_record(
                "features file", Path(features), fs.train, side="train_*", n_junk_excluded=n_side_junk
            )
            return fs, fs.train, record
        if needed_by is not None:
            raise TrainingDataError(
                f"{features}: no training side (train_f, train_label, train_cam, train_frames) and no "
                f"--train-names, --train-dir or --train-manifest given; {needed_by} needs training metadata"
            )
        return fs, None, {"kind": "none"}
    if len(given) != 1:
        raise TrainingDataError(f"training data: give exactly one of a name list, a folder or a manifest, got {given}")
    if dataset not in DATASET_NAMING:
        raise TrainingDataError(f"dataset: expected one of {sorted(DATASET_NAMING)}, got {dataset!r}")
    kind, path = given[0][0], Path(given[0][1])
    if kind == "manifest":
        if naming is not None or sequence_lengths is not None:
            raise TrainingDataError(
                f"{path}: a manifest carries global frames; --naming and --sequence-lengths apply to names only"
            )
        train, record = read_manifest(path), {"frames": "as given in the manifest (global per camera)"}
    else:
        train, record = _read_names(fs, dataset, kind, path, naming, sequence_lengths, features)
    if fs.has_train:
        record["features_train_side"] = "present but not used: the option given wins"
    train, n_junk = exclude_junk(train)
    return fs, train, train_record(kind, path, train, **record, n_junk_excluded=n_junk)


def _read_names(
    fs: FeatureSet, dataset: str, kind: str, path: Path, naming: str | None, sequence_lengths: str | None, features: str
) -> tuple[Metadata, dict[str, Any]]:
    """The training metadata of a name list or folder, and its naming and sequence table for the record."""
    if kind == "names":
        lines, files = read_name_lines(path)
    else:
        if not path.is_dir():
            raise MetadataError(f"{path}: training folder (bounding_box_train) not found")
        files, lines = list_images(path), None
        if not files:
            raise MetadataError(f"{path}: no .jpg images in the training folder")
    # The naming of the features' images: its provenance's (written by ``extract``), else its query names'.
    features_naming, names = fs.provenance.get("naming"), fs.query.names
    if features_naming not in _NAMING_TEXT:
        try:
            features_naming = detect_naming(str(names[0])) if names is not None and len(names) else None
        except MetadataError:
            features_naming = None
    where = f"{path}, line {lines[0]}" if lines else str(path)
    found = detect_naming(files[0], where)
    expected, because = _expected_naming(dataset, naming, features_naming, features)
    if found != expected:
        hint = (
            "; a campus written with --naming duke has Duke-style names: pass --naming duke"
            if dataset == "campus" and found == "duke"
            else f"; if these names are right, declare them with --naming {found}"
        )
        raise TrainingDataError(
            f"{where}: {files[0]!r} is a {_NAMING_TEXT[found]} name, but {because} expects "
            f"{_NAMING_TEXT[expected]} names{hint}"
        )
    seq, table = _sequence_table(dataset, expected, path, kind, sequence_lengths)
    train = parse_names(files, expected, seq, source=str(path), lines=lines)
    return train, {"naming": expected, "naming_from": because, "sequence_table": table}


def exclude_junk(train: Metadata) -> tuple[Metadata, int]:
    """``train`` without its pid 0 and -1 images (not identities, §1.5, §13.9), and how many were removed."""
    keep = ~np.isin(train.pids, JUNK_PIDS)
    return (train if keep.all() else train.take(keep)), int((~keep).sum())


def describe_train(record: dict[str, Any], table: bool = True) -> str:
    """A training source in words, for messages and the printed header (``table``: with its sequence table)."""
    if record["kind"] == "none":
        return "no training data"
    kinds = {"features file": "the training side of", "names": "name list", "dir": "folder", "manifest": "manifest"}
    text = f"{kinds[record['kind']]} {record['path']} ({record['n_images']} images, {record['n_identities']} identities"
    if table and record.get("sequence_table"):
        text += f"; sequence table: {record['sequence_table']}"
    if record.get("n_junk_excluded"):
        text += f"; {record['n_junk_excluded']} images with pid 0 or -1 excluded"
    return text + ")"
