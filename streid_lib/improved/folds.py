"""Validation folds of training identities and a candidate's ranking on one (docs/reference.md §12.1): fitted on the
other folds; held out, one seeded image per identity and camera is a query (kept if it has a cross-camera match)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np

from ..joint import cosine_similarity
from ..metadata import Metadata
from ..metrics import MetricAccumulator, RankingProtocol, iter_row_chunks
from .calibration import sample_pairs
from .config import ImprovedError

#: One fold: indices into the training metadata of the fit images and the held-out query and gallery.
ValidationSplit = namedtuple("ValidationSplit", "fit query gallery")


def canonical_order(train: Metadata, features: np.ndarray | None = None) -> np.ndarray:
    """The order the improved mode works in: by pid, camera, frame, name, then feature bytes (content only, so a
    shuffled training side gives the same numbers)."""
    keys = [train.frames, train.cams, train.pids]
    if train.names is not None:
        keys.insert(0, np.unique(train.names.astype(str), return_inverse=True)[1].reshape(-1))
    if features is not None:
        f = np.ascontiguousarray(features)
        rows = f.view(np.dtype((np.void, f.dtype.itemsize * f.shape[1]))).reshape(-1)
        keys.insert(0, np.unique(rows, return_inverse=True)[1].reshape(-1))
    return np.lexsort(keys)


def validation_splits(train: Metadata, n_folds: int = 2, seed: int = 0) -> list[ValidationSplit]:
    """Split training identities into ``n_folds`` folds, each with its query/gallery split (seeded)."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ImprovedError(f"n_folds: expected an integer >= 2, got {n_folds!r}")
    ids = np.unique(train.pids)
    if ids.size < 2 * n_folds:
        raise ImprovedError(f"train: {ids.size} identities are too few for {n_folds} folds (need >= {2 * n_folds})")
    rng = np.random.default_rng(seed)
    fold_of_id = np.empty(ids.size, np.int64)
    fold_of_id[rng.permutation(ids.size)] = np.arange(ids.size) % n_folds
    fold = fold_of_id[np.searchsorted(ids, train.pids)]
    ncam = train.n_cams + 1
    out = []
    for f in range(int(n_folds)):
        held = np.flatnonzero(fold == f)
        perm = held[rng.permutation(held.size)]
        _, first = np.unique(train.pids[perm] * ncam + train.cams[perm], return_index=True)
        query = np.sort(perm[first])  # the first in a random order: a random image per (identity, camera)
        gallery = np.setdiff1d(held, query)
        # Usable query: (#gallery images of its pid) - (#gallery images of its pid in its camera) > 0.
        gp, qp = train.pids[gallery], train.pids[query]
        other_cam = _count_in(gp, qp) - _count_in(gp * ncam + train.cams[gallery], qp * ncam + train.cams[query])
        out.append(ValidationSplit(np.flatnonzero(fold != f), query[other_cam > 0], gallery))
    return out


def _count_in(pool: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """How many times each of ``keys`` occurs in ``pool``."""
    pool = np.sort(pool)
    return np.searchsorted(pool, keys, side="right") - np.searchsorted(pool, keys, side="left")


class Fold:
    """One validation fold with what its candidates share computed once: the protocol's query chunks, the cosine
    ``s``, the calibration pairs, and the (nq, ng) lookup indices ``idx`` (bins only), so that a candidate is one
    ``take`` of its small table. ``features``: (N_train, D) or None (ST-only)."""

    def __init__(
        self,
        train: Metadata,
        split: ValidationSplit,
        features: np.ndarray | None,
        *,
        max_positives: int = 10_000,
        max_negatives: int = 20_000,
        seed: int = 0,
        chunk_size: int = 256,
    ) -> None:
        self.fit_meta, self.qm, self.gm = train.take(split.fit), train.take(split.query), train.take(split.gallery)
        if len(self.qm) == 0:
            raise ImprovedError(
                "train: a validation fold has no identity seen in two cameras, so no query can be evaluated; "
                "use fewer folds or more training identities"
            )
        self.fq = None if features is None else features[split.query]
        self.fg = None if features is None else features[split.gallery]
        self.s = None if features is None else cosine_similarity(self.fq, self.fg)
        self.pidx = self.psame = self.s_pairs = None
        if features is not None:
            self.pidx, self.psame = sample_pairs(
                self.qm, self.gm, max_positives=max_positives, max_negatives=max_negatives, seed=seed
            )
            self.s_pairs = self.s.reshape(-1)[self.pidx]
        self.protocol = RankingProtocol(self.gm)
        self.slices = list(iter_row_chunks(len(self.qm), chunk_size))
        self.chunks = [self.protocol.chunk(self.qm.take(sl), sl.start) for sl in self.slices]
        self.idx: np.ndarray | None = None
        self.idx_pairs = None
        self.histograms: dict[str, object] = {}  # per counting rule, filled by the selection

    def set_index(self, model: object) -> None:
        """Lookup indices of the validation (and calibration) pairs from a fitted model's bins."""
        q, g = self.qm, self.gm
        self.idx = model.lookup_index(q.cams[:, None], q.frames[:, None], g.cams[None, :], g.frames[None, :])
        if self.pidx is not None:
            self.idx_pairs = self.idx.reshape(-1)[self.pidx]

    def result_of(self, score: np.ndarray | Callable[[slice], np.ndarray]) -> Any:
        """``evaluate_scores(score, qm, gm)`` of (nq, ng) scores, or of a function ``score(rows)`` giving them."""
        acc = MetricAccumulator(self.gm, protocol=self.protocol)
        for sl, chunk in zip(self.slices, self.chunks, strict=True):
            acc.update(score(sl) if callable(score) else score[sl], chunk=chunk)
        return acc.result()

    def result(self, table: np.ndarray) -> Any:
        """Validation ranking of ``s + table[idx]`` (as float32), or without features ``table[idx]`` (an integer rank
        table as it is), for a candidate's (weighted) lookup ``table``."""
        idx, s = self.idx, self.s

        def rows(sl: slice) -> np.ndarray:
            st = table.take(idx[sl])
            if s is None:
                return st if st.dtype.kind == "i" else st.astype(np.float32)
            st += s[sl]  # float64: the same values as s + w·logLR
            return st.astype(np.float32)

        return self.result_of(rows)
