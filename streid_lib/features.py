"""Features files: the one door through which any visual stream enters the evaluation (docs/reference.md §0).

``pytorch_result.mat`` (MATLAB v5) or ``.npz`` with ``query_f`` (Nq×D float32), ``query_label``, ``query_cam``,
``query_frames`` and the same for ``gallery_``; ``.npz`` may add ``*_names`` and a JSON ``provenance``. An optional
training side (``train_f`` Nt×D, ``train_label``, ``train_cam``, ``train_frames``) is all or nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .errors import StreidError
from .metadata import FIELD_MINIMUM, UNKNOWN_PID, Metadata, MetadataError, check_field

SIDES = ("query", "gallery")
#: The optional training side of a features file (same keys as a test side).
TRAIN_SIDE = "train"
KEYS = ("f", "label", "cam", "frames")


class FeaturesError(StreidError):
    """A features file or array that does not meet the documented layout."""


@dataclass(frozen=True)
class FeatureSet:
    """(Nq, D) ``query_f`` and (Ng, D) ``gallery_f`` float32 features (not necessarily normalised) with their
    :class:`Metadata`, a ``provenance`` dict, and an optional training side ``train_f`` (Nt, D) with ``train``."""

    query_f: np.ndarray
    gallery_f: np.ndarray
    query: Metadata
    gallery: Metadata
    provenance: dict = field(default_factory=dict, compare=False)
    train_f: np.ndarray | None = None
    train: Metadata | None = None

    def __post_init__(self) -> None:
        if (self.train_f is None) != (self.train is None):
            raise FeaturesError("training side: give both train_f and train (metadata), or neither")
        for side in self.sides:
            f = np.asarray(getattr(self, f"{side}_f"))
            if f.ndim != 2:
                raise FeaturesError(f"{side}_f: expected a 2-D (N, D) array, got shape {f.shape}")
            if not np.issubdtype(f.dtype, np.number) or np.issubdtype(f.dtype, np.complexfloating):
                raise FeaturesError(f"{side}_f: expected real numbers, got dtype {f.dtype}")
            if f.dtype.itemsize > 4 and (big := np.isfinite(f) & (np.abs(f) > np.finfo(np.float32).max)).any():
                i = int(np.argmax(big.any(axis=1)))
                raise FeaturesError(f"{side}_f row {i}: a value beyond float32's range (the evaluation's precision)")
            f = f.astype(np.float32, copy=False)  # the evaluation's precision
            object.__setattr__(self, f"{side}_f", f)
            if len(f) == 0:
                raise FeaturesError(f"{side} is empty: at least one {side} image is needed")
            if len(f) != len(getattr(self, side)):
                raise FeaturesError(
                    f"lengths disagree: {side}_f has {len(f)} rows but {side}_label/cam/frames have "
                    f"{len(getattr(self, side))}"
                )
            finite = np.isfinite(f).all(axis=1)
            if not finite.all():
                raise FeaturesError(f"{side}_f row {int(np.argmin(finite))} contains NaN or inf")
            if (zero := ~f.any(axis=1)).any():
                raise FeaturesError(
                    f"{side}_f row {int(np.argmax(zero))} is all zeros: it has no direction, so cosine is undefined"
                )
            norms = row_norms(f)  # cosine needs a finite non-zero float32 norm
            if (bad := ~np.isfinite(norms) | (norms == 0)).any():
                i = int(np.argmax(bad))
                raise FeaturesError(
                    f"{side}_f row {i}: its float32 norm is {float(norms[i])} (values too large or too small for "
                    "float32), so cosine is undefined"
                )
        for side in self.sides[1:]:
            if (d := getattr(self, f"{side}_f").shape[1]) != self.query_f.shape[1]:
                raise FeaturesError(
                    f"feature dimensions disagree: query_f has D={self.query_f.shape[1]}, {side}_f has D={d}"
                )

    @property
    def sides(self) -> tuple[str, ...]:
        """The sides this set holds: query, gallery and, when present, train."""
        return SIDES + ((TRAIN_SIDE,) if self.train is not None else ())

    @property
    def has_train(self) -> bool:
        """Whether the set carries a training side (``train_f`` and ``train``)."""
        return self.train is not None

    def without_train(self) -> FeatureSet:
        """The same query and gallery, without the training side."""
        return FeatureSet(self.query_f, self.gallery_f, self.query, self.gallery, self.provenance)

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return int(self.query_f.shape[1])


def row_norms(f: np.ndarray) -> np.ndarray:
    """(N,) float32 L2 norms of the rows of an (N, D) float32 matrix, exactly as the evaluation computes them."""
    return np.sqrt(np.einsum("ij,ij->i", f, f, dtype=np.float32))


def save_features(path: str | Path, fs: FeatureSet) -> Path:
    """Write ``fs`` to ``path`` (``.mat`` in the authors' layout or ``.npz``), atomically."""
    path = Path(path)
    data: dict[str, np.ndarray] = {}
    sides = fs.sides
    for side in sides:
        meta: Metadata = getattr(fs, side)
        data[f"{side}_f"] = getattr(fs, f"{side}_f")
        if meta.has_labels:  # unknown identities are written as an absent *_label (§14.3)
            data[f"{side}_label"] = meta.pids
        data[f"{side}_cam"], data[f"{side}_frames"] = meta.cams, meta.frames
    if path.suffix == ".mat":
        import scipy.io

        with atomic_path(path) as tmp:
            # 1-D arrays become 1×N rows, as the authors' lists did.
            scipy.io.savemat(tmp, data, oned_as="row")
    elif path.suffix == ".npz":
        data |= {
            f"{s}_names": np.asarray(getattr(fs, s).names, dtype=str) for s in sides if getattr(fs, s).names is not None
        }
        data["provenance"] = np.asarray(json.dumps(fs.provenance, default=str))
        with atomic_path(path) as tmp:
            np.savez(tmp, **data)
    else:
        raise FeaturesError(f"{path}: unknown features format {path.suffix!r}; expected .mat or .npz")
    return path


def _read_raw(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``.mat`` or ``.npz`` file; any reading failure becomes one line naming the file."""
    layout = "query_f, query_label, query_cam, query_frames and the same for gallery"
    if path.suffix == ".mat":
        import scipy.io

        try:
            return scipy.io.loadmat(path)
        except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
            raise FeaturesError(
                f"{path}: a MATLAB v7.3 (HDF5) file, which scipy cannot read; expected MATLAB v5 (save with "
                f"scipy.io.savemat, or MATLAB's save -v7) holding {layout}"
            ) from None
        except Exception as exc:  # MatReadError, ValueError("Unknown mat file type"), zlib errors, ...
            raise FeaturesError(
                f"{path}: not a readable MATLAB .mat file ({_one_line(exc)}); expected MATLAB v5 holding {layout}"
            ) from None
    if path.suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
            if isinstance(z, np.lib.npyio.NpzFile):
                with z:
                    return {k: z[k] for k in z.files}
        except Exception as exc:  # BadZipFile, EOFError, zlib.error, OSError, ValueError, ...
            if isinstance(exc, ValueError) and "pickle" in str(exc):  # a text or pickle file, or an object array
                raise FeaturesError(
                    f"{path}: not an .npz archive of plain arrays (it holds pickled data or is not a NumPy file "
                    f"at all); expected numeric arrays {layout}, and string arrays for *_names"
                ) from None
            raise FeaturesError(f"{path}: not a readable .npz file ({_one_line(exc)}); expected {layout}") from None
        raise FeaturesError(f"{path}: a single .npy array, not an .npz archive; expected {layout}")
    raise FeaturesError(f"{path}: unknown features format {path.suffix!r}; expected .mat or .npz")


def _one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line (messages of file readers may span lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_features(path: str | Path) -> FeatureSet:
    """Read and validate a features file (``.mat`` or ``.npz``); errors name the file, the key and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FeaturesError(f"{path}: features file not found" + (" (that path is a folder)" if path.is_dir() else ""))
    raw = _read_raw(path)
    required = [f"{side}_{key}" for side in SIDES for key in KEYS]
    if missing := [k for k in required if k not in raw]:
        hint = (
            " (is this the ST model file pytorch_result2.mat? see reference issue #26)" if "distribution" in raw else ""
        )
        raise FeaturesError(f"{path}: missing key(s) {missing}; expected {required}{hint}")
    # The training side's train_label may be absent: its identities are then unknown (UNKNOWN_PID, §14.3).
    train_keys = [f"{TRAIN_SIDE}_{key}" for key in KEYS if key != "label"]
    present = [k for k in train_keys if k in raw]
    if present and len(present) != len(train_keys):
        missing = [k for k in train_keys if k not in raw]
        raise FeaturesError(
            f"{path}: incomplete training side: has {present} but lacks {missing}; give all of {train_keys} or none"
        )
    sides = SIDES + ((TRAIN_SIDE,) if present else ())
    metas, feats = {}, {}
    for side in sides:
        fields = {}
        for name, key in zip(FIELD_MINIMUM, ("label", "cam", "frames"), strict=True):
            if key == "label" and f"{side}_label" not in raw:  # only the training side gets here (§14.3)
                fields[name] = np.full(len(raw[f"{side}_cam"].reshape(-1)), UNKNOWN_PID, np.int64)
                continue
            try:
                fields[name] = check_field(raw[f"{side}_{key}"], name, label=f"{path}: {side}_{key}")
            except MetadataError as exc:
                raise FeaturesError(str(exc)) from None
        names = raw.get(f"{side}_names")
        if names is not None:
            names = fields["names"] = np.asarray(names).reshape(-1).astype(object)
        lengths = {f"{side}_{k}": len(v) for k, v in zip(("label", "cam", "frames", "names"), fields.values())}
        if len(set(lengths.values())) > 1:
            raise FeaturesError(f"{path}: {side}: lengths disagree: {lengths}")
        metas[side] = Metadata(fields["pids"], fields["cams"], fields["frames"], names)
        feats[side] = raw[f"{side}_f"]  # checked by FeatureSet
    provenance: dict = {"features_file": str(path)}
    if "provenance" in raw:
        try:
            stored = json.loads(str(np.asarray(raw["provenance"]).reshape(-1)[0]))
        except (ValueError, IndexError):
            raise FeaturesError(f"{path}: provenance: expected a JSON object string") from None
        if not isinstance(stored, dict):
            raise FeaturesError(f"{path}: provenance: expected a JSON object, got {type(stored).__name__}")
        provenance.update(stored)
    train = {"train_f": feats.get(TRAIN_SIDE), "train": metas.get(TRAIN_SIDE)}
    try:
        return FeatureSet(*(feats[s] for s in SIDES), *(metas[s] for s in SIDES), provenance, **train)
    except FeaturesError as exc:
        raise FeaturesError(f"{path}: {exc}") from None


def check_duplicates(fs: FeatureSet, source: str, allow: bool = False) -> list[str]:
    """Refuse a side with duplicate images (they count twice in every average or vote) unless ``allow``; return
    one-line warnings (kept duplicates, names shared by query and gallery)."""
    warnings = []
    for side in fs.sides:
        meta, f = getattr(fs, side), getattr(fs, f"{side}_f")
        # The first repeat: same file name, or same pid, camera, frame and features (rows compared as bytes).
        rows = np.ascontiguousarray(f).view(np.dtype((np.void, f.dtype.itemsize * f.shape[1]))).reshape(-1)
        same = np.stack(
            [meta.pids, meta.cams, meta.frames, np.unique(rows, return_inverse=True)[1].reshape(-1)], axis=1
        )
        keys = [("pid, camera, frame and features", same)]
        if meta.names is not None:
            keys.insert(0, ("name", np.unique(meta.names.astype(str), return_inverse=True)[1].reshape(-1, 1)))
        found = None
        for why, key in keys:
            _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
            earliest = first[inverse.reshape(-1)]  # each row's first occurrence
            dup = np.flatnonzero(earliest != np.arange(len(key)))
            if dup.size and (found is None or dup[0] < found[0]):
                found = (int(dup[0]), int(earliest[dup[0]]), why)
        if found is None:
            continue
        j, i, why = found
        name = f" ({meta.names[j]})" if meta.names is not None else ""
        text = f"{source}: {side} row {j}{name} duplicates row {i} (same {why})"
        if not allow:
            raise FeaturesError(f"{text}; remove the duplicates, or pass --allow-duplicates to keep them")
        warnings.append(f"{text}; kept (--allow-duplicates)")
    if fs.query.names is not None and fs.gallery.names is not None:
        if (shared := np.intersect1d(fs.query.names.astype(str), fs.gallery.names.astype(str))).size:
            warnings.append(
                f"{source}: {shared.size} name(s) appear in both query and gallery (first: {shared[0]}); the same "
                "image on both sides matches itself"
            )
    return warnings


def check_queries(fs: FeatureSet, source: str) -> None:
    """Refuse queries with pid -1: junk images cannot be queries (docs/reference.md §1.5)."""
    if (junk := fs.query.pids == -1).any():
        raise FeaturesError(
            f"{source}: query_label row {int(np.argmax(junk))} is -1 (junk; {int(junk.sum())} of {junk.size} "
            "queries are): junk images cannot be queries"
        )
