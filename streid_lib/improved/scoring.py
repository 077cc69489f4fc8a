"""The fitted improved mode and its rows: ``improved`` (``s + w·logLR``) and ``improved+re-rank`` (``F - β·J``).

Calibrated on the features file's training side when there is one, else the spread rule (docs/reference.md §12.1).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..features import FeatureSet
from ..joint import normalize_rows
from ..metadata import Metadata
from ..metrics import RankingProtocol, default_threads, iter_row_chunks, rank_chunks
from ..st_model import SpatialTemporalModel
from .calibration import jaccard_distance, jaccard_weight, score_spread
from .config import ImprovedError, SelectionConfig
from .likelihood import SHARED_PARAMS, LikelihoodRatioModel
from .selection import select_hyperparameters

ROW = "improved"
RERANK_ROW = "improved+re-rank"


#: The likelihood-ratio model fitted on all training identities, the selection's :class:`Choice` (``choice.w``: the
#: calibrated weight, or the spread-rule multiplier) and table.
ImprovedModel = namedtuple("ImprovedModel", "likelihood_ratio choice validation")


def fit_improved(
    train: Metadata,
    train_features: np.ndarray | None = None,
    *,
    config: SelectionConfig | None = None,
    rerank: bool = False,
    st_params: Mapping[str, Any] | None = None,
) -> ImprovedModel:
    """:func:`select_hyperparameters`, with the chosen model it fitted on all training identities."""
    choice, table = select_hyperparameters(train, train_features, config=config, rerank=rerank, st_params=st_params)
    return ImprovedModel(choice.final_model, choice, table)


def st_params_from(model: SpatialTemporalModel | LikelihoodRatioModel) -> dict[str, Any]:
    """The bins, cameras, truncation and overflow policy of a model (so improved and faithful share them)."""
    p = model.get_params()
    return {k: p[k] for k in SHARED_PARAMS}


class ImprovedRows:
    """The improved rows of one FeatureSet, chunk by chunk of queries, on the gallery ``columns`` (default all).

    ``scorer(sl, s)`` returns ``{row: (c, n) float32 scores}`` for the queries ``sl`` given their cosine ``s`` (None:
    computed here). ``variants``: more rows ``{name: (likelihood_ratio or None, w or None)}``; ``rerank_params``:
    ``{"source", "b", "beta"}`` overriding the chosen re-ranking; ``info`` receives ``w_effective`` and ``rerank``.
    """

    def __init__(
        self,
        fs: FeatureSet,
        fitted: ImprovedModel,
        rerank: bool = False,
        *,
        columns: np.ndarray | None = None,
        variants: Mapping[str, tuple[LikelihoodRatioModel | None, float | None]] | None = None,
        rerank_params: Mapping[str, Any] | None = None,
        info: dict | None = None,
    ) -> None:
        self.lr = lr = fitted.likelihood_ratio
        cols = np.arange(len(fs.gallery)) if columns is None else np.asarray(columns)
        self.qc, self.qfr = fs.query.cams[:, None], fs.query.frames[:, None]
        self.gc, self.gfr = fs.gallery.cams[None, cols], fs.gallery.frames[None, cols]
        self.qn, self.gn = normalize_rows(fs.query_f), normalize_rows(fs.gallery_f)[cols]
        spread = fitted.choice.w_source == "spread"
        self.w = w = float(fitted.choice.w * score_spread(qn=self.qn, gnT=self.gn.T) if spread else fitted.choice.w)
        if info is not None:
            info["w_effective"] = w
        # Each row's small table is scaled once, not every pair; float32 like s (the cosine's precision).
        self.tables = {ROW: (w * lr.lookup_table()).astype(np.float32)}
        for name, (lr_v, w_v) in (variants or {}).items():
            lr_v = lr if lr_v is None else lr_v
            if st_params_from(lr_v) != st_params_from(lr):
                raise ImprovedError(
                    f"variant {name!r}: its bins/cameras differ from the chosen model's; score it apart"
                )
            self.tables[name] = (float(w if w_v is None else w_v) * lr_v.lookup_table()).astype(np.float32)
        self.jac = self.beta = None
        if rerank:
            rp = {**(fitted.choice.rerank or {}), **(rerank_params or {})}
            if "source" not in rp or "b" not in rp:
                raise ImprovedError(
                    "improved+re-rank: the model was fitted without rerank=True; refit it or give rerank_params"
                )
            feats = np.concatenate([fs.query_f, fs.gallery_f])
            meta = Metadata.concat([fs.query, fs.gallery])
            self.jac = jaccard_distance(feats, meta, len(fs.query), source=rp["source"], model=lr, w=w)[:, cols]
            beta = rp.get("beta")
            if beta is None:  # no validation data: b times the spread of this set's own improved score
                sample = np.unique(np.linspace(0, len(fs.query) - 1, min(len(fs.query), 256)).astype(np.int64))
                beta = jaccard_weight(self(sample)[ROW], float(rp["b"]))
            self.beta = np.float32(beta)
            if info is not None:
                info["rerank"] = {"source": rp["source"], "b": float(rp["b"]), "beta": float(self.beta)}
        self.rows = [*self.tables, *([RERANK_ROW] if rerank else [])]

    def __call__(self, sl: slice | np.ndarray, s: np.ndarray | None = None) -> dict[str, np.ndarray]:
        s = self.qn[sl] @ self.gn.T if s is None else s
        idx = self.lr.lookup_index(self.qc[sl], self.qfr[sl], self.gc, self.gfr)  # shared by every row
        out = {name: s + table.take(idx) for name, table in self.tables.items()}
        if self.jac is not None and isinstance(sl, slice):
            out[RERANK_ROW] = out[ROW] - self.beta * self.jac[sl]
        return out


def improved_results(
    fs: FeatureSet, fitted: ImprovedModel, rerank: bool = False, *, threads: int | None = None, **kw: Any
) -> dict[str, Any]:
    """RankingResults of ``improved`` (and ``improved+re-rank``, and ``variants``) on a FeatureSet; ``kw`` are
    :class:`ImprovedRows`'. Only the gallery items that can take part in a ranking are scored (as faithful's rows)."""
    protocol = RankingProtocol(fs.gallery)
    scorer = ImprovedRows(fs, fitted, rerank, columns=protocol.columns, **kw)
    step = max(16, 1024 // max(4, len(scorer.rows)))  # bounded memory however many rows
    chunks = ((sl, scorer(sl)) for sl in iter_row_chunks(len(fs.query), step))
    return rank_chunks(chunks, fs.query, protocol, scorer.rows, default_threads() if threads is None else threads)


def prepare_improved(
    fs: FeatureSet,
    train: Metadata | None = None,
    rerank: bool = False,
    *,
    columns: np.ndarray | None = None,
    config: SelectionConfig | None = None,
    st_params: Mapping[str, Any] | None = None,
    base: SpatialTemporalModel | None = None,
    info: dict | None = None,
) -> ImprovedRows:
    """Fit the improved mode on ``train`` (default ``fs.train``) and return its chunk scorer.

    Calibrated on ``fs.train_f``, else the spread rule; bins follow ``base`` or ``st_params``. ``info`` receives the
    provenance: choice, ST-model fit info, weights used, the training-features source, validation records.
    """
    train, train_features, source = resolve_training(fs, train)
    if st_params is None and base is not None:
        st_params = st_params_from(base)
    fitted = fit_improved(train, train_features, config=config, rerank=rerank, st_params=st_params)
    used: dict[str, Any] = {}
    scorer = ImprovedRows(fs, fitted, rerank, columns=columns, info=used)
    if info is not None:
        prov = {"choice": fitted.choice.as_dict(), "st_model": fitted.likelihood_ratio.fit_info()}
        info.update({**prov, **used, "w_source": fitted.choice.w_source, "train_features": source})
        if fitted.validation is not None:
            info["validation"] = fitted.validation.to_dict(orient="records")
    return scorer


def resolve_training(fs: FeatureSet, train: Metadata | None) -> tuple[Metadata, np.ndarray | None, dict[str, Any]]:
    """(training metadata, training features or None, provenance record) for the improved mode of ``fs``."""
    if train is None:
        if not fs.has_train:
            raise ImprovedError(
                "improved mode needs training metadata: the features set has no training side and no train was given"
            )
        train = fs.train
    if not fs.has_train:
        return train, None, {"used": False, "source": "none (no training side): spread rule", "n_images": 0}
    rec = {"used": True, "source": "features file training side", "n_images": len(fs.train)}
    keys = ("pids", "cams", "frames")
    if len(train) != len(fs.train) or not all(np.array_equal(getattr(train, k), getattr(fs.train, k)) for k in keys):
        rec["note"] = (
            f"the given training metadata ({len(train)} images) differs from the features file's training side "
            f"({len(fs.train)} images); the improved mode uses the file's training side, whose features it needs"
        )
    return fs.train, fs.train_f, rec
