"""Features files: the one door through which any visual stream enters the evaluation.

Two containers with the same keys (reference §0):

* the authors' ``pytorch_result.mat`` (MATLAB v5, via :mod:`scipy.io`): ``query_f`` (Nq×D float32),
  ``query_label``, ``query_cam``, ``query_frames`` (each stored as a 1×Nq row), and the same with
  ``gallery_``. Market frames are the authors' *global* (cumulative) frames.
* an ``.npz`` with the same keys (1-D metadata arrays), plus optional ``query_names``,
  ``gallery_names`` and a JSON ``provenance`` string.

Either container may also hold a **training side**, laid out like query and gallery: ``train_f`` (Nt×D),
``train_label``, ``train_cam``, ``train_frames`` and (``.npz``) ``train_names``. It is optional and all or
nothing: a file with some ``train_*`` keys but not all four required ones is refused. When present, it gives
the ST model its training metadata and lets the improved mode calibrate on training features
(:attr:`FeatureSet.train`, :attr:`FeatureSet.train_f`).

Whatever produced the features (our training, the authors' released file, another model), every
later step reads this file and is indifferent to its origin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .metadata import Metadata, MetadataError

SIDES = ("query", "gallery")
#: The optional training side of a features file (same keys as a test side).
TRAIN_SIDE = "train"
KEYS = ("f", "label", "cam", "frames")


class FeaturesError(ValueError):
    """A features file or array that does not meet the documented layout."""


@dataclass(frozen=True)
class FeatureSet:
    """Query and gallery features with their metadata.

    Attributes:
        query_f: (Nq, D) float32 features (not necessarily normalised).
        gallery_f: (Ng, D) float32 features.
        query: metadata of the Nq query images.
        gallery: metadata of the Ng gallery images.
        provenance: where the features came from (model, checkpoint, dataset, ...).
        train_f: (Nt, D) float32 features of the training images, or ``None`` (optional training side).
        train: metadata of the Nt training images, or ``None``; given together with ``train_f``.
    """

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
            object.__setattr__(self, f"{side}_f", f.astype(np.float32, copy=False))
            validate_features(getattr(self, f"{side}_f"), getattr(self, side), side)
        for side in self.sides[1:]:
            d = getattr(self, f"{side}_f").shape[1]
            if d != self.query_f.shape[1]:
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


def validate_features(f: np.ndarray, meta: Metadata, side: str, source: str = "") -> None:
    """Check one side: non-empty, lengths agree, no NaN/inf and no all-zero rows.

    Raises:
        FeaturesError: naming the side, the field and the offending row.
    """
    where = f"{source}: " if source else ""
    if len(f) == 0:
        raise FeaturesError(f"{where}{side} is empty: at least one {side} image is needed")
    if len(f) != len(meta):
        raise FeaturesError(
            f"{where}lengths disagree: {side}_f has {len(f)} rows but {side}_label/cam/frames have {len(meta)}"
        )
    finite = np.isfinite(f).all(axis=1)
    if not finite.all():
        raise FeaturesError(f"{where}{side}_f row {int(np.argmin(finite))} contains NaN or inf")
    zero = ~f.any(axis=1)
    if zero.any():
        raise FeaturesError(
            f"{where}{side}_f row {int(np.argmax(zero))} is all zeros: it has no direction, so cosine is undefined"
        )


def save_features(path: str | Path, fs: FeatureSet) -> Path:
    """Write ``fs`` to ``path`` (``.mat`` in the authors' layout or ``.npz``), atomically."""
    path = Path(path)
    data: dict[str, np.ndarray] = {}
    sides = fs.sides
    for side in sides:
        meta: Metadata = getattr(fs, side)
        data[f"{side}_f"] = getattr(fs, f"{side}_f")
        data[f"{side}_label"] = meta.pids
        data[f"{side}_cam"] = meta.cams
        data[f"{side}_frames"] = meta.frames
    if path.suffix == ".mat":
        import scipy.io

        with atomic_path(path) as tmp:
            # 1-D arrays become 1×N rows, as the authors' lists did.
            scipy.io.savemat(tmp, data, oned_as="row")
    elif path.suffix == ".npz":
        for side in sides:
            names = getattr(fs, side).names
            if names is not None:
                data[f"{side}_names"] = np.asarray(names, dtype=str)
        data["provenance"] = np.asarray(json.dumps(fs.provenance, default=str))
        with atomic_path(path) as tmp:
            np.savez(tmp, **data)
    else:
        raise FeaturesError(f"{path}: unknown features format {path.suffix!r}; expected .mat or .npz")
    return path


def load_features(path: str | Path) -> FeatureSet:
    """Read a features file (``.mat`` or ``.npz``) and validate it.

    Raises:
        FeaturesError: the file is missing, lacks a key, or its arrays disagree; the message names
            the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise FeaturesError(f"{path}: features file not found")
    if path.suffix == ".mat":
        import scipy.io

        raw = scipy.io.loadmat(path)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    else:
        raise FeaturesError(f"{path}: unknown features format {path.suffix!r}; expected .mat or .npz")
    required = [f"{side}_{key}" for side in SIDES for key in KEYS]
    missing = [k for k in required if k not in raw]
    if missing:
        hint = (
            " (is this the ST model file pytorch_result2.mat? see reference issue #26)" if "distribution" in raw else ""
        )
        raise FeaturesError(f"{path}: missing key(s) {missing}; expected {required}{hint}")
    train_keys = [f"{TRAIN_SIDE}_{key}" for key in KEYS]
    present = [k for k in train_keys if k in raw]
    if present and len(present) != len(train_keys):
        missing = [k for k in train_keys if k not in raw]
        raise FeaturesError(
            f"{path}: incomplete training side: has {present} but lacks {missing}; give all of {train_keys} or none"
        )
    sides = SIDES + ((TRAIN_SIDE,) if present else ())
    metas = {}
    for side in sides:
        names = raw.get(f"{side}_names")
        try:
            metas[side] = Metadata(
                np.asarray(raw[f"{side}_label"]).reshape(-1),
                np.asarray(raw[f"{side}_cam"]).reshape(-1),
                np.asarray(raw[f"{side}_frames"]).reshape(-1),
                None if names is None else np.asarray(names).reshape(-1).astype(object),
            )
        except MetadataError as exc:
            raise FeaturesError(f"{path}: {side}: {exc}") from None
        f = np.asarray(raw[f"{side}_f"])
        if f.ndim != 2:
            raise FeaturesError(f"{path}: {side}_f: expected a 2-D (N, D) array, got shape {f.shape}")
        validate_features(f, metas[side], side, source=str(path))
    provenance = {"features_file": str(path)}
    if "provenance" in raw:
        provenance.update(json.loads(str(raw["provenance"])))
    train = metas.get(TRAIN_SIDE)
    return FeatureSet(
        raw["query_f"],
        raw["gallery_f"],
        metas["query"],
        metas["gallery"],
        provenance,
        train_f=None if train is None else raw[f"{TRAIN_SIDE}_f"],
        train=train,
    )
