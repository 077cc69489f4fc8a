"""The fitted improved mode and its rows: ``improved`` (``s + w·logLR``) and ``improved+re-rank`` (``F - β·J``).

Calibrates on the features file's training side when there is one, else the spread rule (docs/reference.md §12.1);
the provenance says which (``w_source`` and ``train_features``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..features import FeatureSet
from ..metadata import Metadata
from ..st_model import SpatialTemporalModel
from .calibration import score_spread
from .config import ImprovedError, SelectionConfig
from .likelihood import SHARED_PARAMS, LikelihoodRatioModel
from .reranking import jaccard_distance, jaccard_weight
from .selection import Choice, select_hyperparameters

ROW = "improved"
RERANK_ROW = "improved+re-rank"


@dataclass
class ImprovedModel:
    """The improved mode, ready to score: the likelihood-ratio model fitted on all training identities + weights.

    Attributes:
        likelihood_ratio: the fitted :class:`LikelihoodRatioModel`; choice: the selection's :class:`Choice`;
        validation: the selection's validation table (DataFrame).
    """

    likelihood_ratio: LikelihoodRatioModel
    choice: Choice
    validation: Any = None

    @property
    def w(self) -> float:
        """The calibrated weight, or the spread-rule multiplier (``choice.w_source == "spread"``)."""
        return self.choice.w

    def provenance(self) -> dict[str, Any]:
        """Everything needed to reproduce the scores (JSON-able)."""
        return {"choice": self.choice.as_dict(), "st_model": self.likelihood_ratio.fit_info()}


def fit_improved(
    train: Metadata,
    train_features: np.ndarray | None = None,
    *,
    config: SelectionConfig | None = None,
    rerank: bool = False,
    st_params: Mapping[str, Any] | None = None,
) -> ImprovedModel:
    """Run :func:`select_hyperparameters` and fit the chosen likelihood-ratio model on all training identities."""
    choice, table = select_hyperparameters(train, train_features, config=config, rerank=rerank, st_params=st_params)
    lr = choice.final_model
    if lr is None or lr.get_params() != LikelihoodRatioModel(**choice.params).get_params():
        lr = LikelihoodRatioModel(**choice.params).fit(train)
    return ImprovedModel(lr, choice, table)


def st_params_from(model: SpatialTemporalModel | LikelihoodRatioModel) -> dict[str, Any]:
    """The bins, cameras, truncation and overflow policy of a model (so improved and faithful share them)."""
    p = model.get_params()
    return {k: p[k] for k in SHARED_PARAMS}


class ImprovedRows:
    """The improved rows of one FeatureSet, chunk by chunk of queries, on a set of gallery columns.

    ``rows`` are the row names; ``scorer(sl, s)`` returns ``{row: (c, n) float32 scores}`` for the queries ``sl``
    given their cosine ``s`` on ``columns`` (or None: computed here by the GEMM of
    :class:`streid_lib.joint.ChunkScorer`). ST lookup indices are computed once per chunk for every row.

    Args:
        fs, fitted, rerank: the features, the fitted improved mode, and whether to add ``improved+re-rank``.
        columns: gallery positions scored (default: all; rankings use :attr:`RankingProtocol.columns`).
        likelihood_ratio, w: override the fitted model and weight of the ``improved`` row (``w`` is the weight).
        variants: more rows ``{name: (likelihood_ratio or None, w or None)}`` (ablations).
        rerank_params: ``{"source", "b", "beta"}`` overriding the chosen re-ranking term.
        info: receives ``w_effective`` and, with ``rerank``, ``rerank`` (source, b, β).
    """

    def __init__(
        self,
        fs: FeatureSet,
        fitted: ImprovedModel,
        rerank: bool = False,
        *,
        columns: np.ndarray | None = None,
        likelihood_ratio: LikelihoodRatioModel | None = None,
        w: float | None = None,
        variants: Mapping[str, tuple[LikelihoodRatioModel | None, float | None]] | None = None,
        rerank_params: Mapping[str, Any] | None = None,
        info: dict | None = None,
    ) -> None:
        from ..joint import normalize_rows

        self.lr = lr = fitted.likelihood_ratio if likelihood_ratio is None else likelihood_ratio
        cols = np.arange(len(fs.gallery)) if columns is None else np.asarray(columns)
        self.qc, self.qfr = fs.query.cams[:, None], fs.query.frames[:, None]
        self.gc, self.gfr = fs.gallery.cams[None, cols], fs.gallery.frames[None, cols]
        self.qn, self.gn = normalize_rows(fs.query_f), normalize_rows(fs.gallery_f)[cols]
        if w is None:
            spread = fitted.choice.w_source == "spread"
            w = fitted.w * score_spread(qn=self.qn, gnT=self.gn.T) if spread else fitted.w
        self.w = w = float(w)
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

    def similarity(self, sl: slice | np.ndarray) -> np.ndarray:
        """(c, n) float32 cosine of the queries ``sl`` on the columns (:meth:`ChunkScorer.similarity`'s GEMM)."""
        return self.qn[sl] @ self.gn.T

    def __call__(self, sl: slice | np.ndarray, s: np.ndarray | None = None) -> dict[str, np.ndarray]:
        s = self.similarity(sl) if s is None else s
        idx = self.lr.lookup_index(self.qc[sl], self.qfr[sl], self.gc, self.gfr)  # shared by every row
        out = {name: s + table.take(idx) for name, table in self.tables.items()}
        if self.jac is not None and isinstance(sl, slice):
            out[RERANK_ROW] = out[ROW] - self.beta * self.jac[sl]
        return out


def improved_results(
    fs: FeatureSet,
    fitted: ImprovedModel,
    rerank: bool = False,
    *,
    chunk_size: int = 256,
    threads: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """RankingResults of ``improved`` (and ``improved+re-rank``, and ``variants``) on a FeatureSet, chunked over
    queries; ``kw`` are :class:`ImprovedRows`' (overrides, variants, rerank_params, info).

    With the spread rule (no training features) the weight is ``fitted.w`` times :func:`score_spread` of the cosine.
    Scores are float32 (the precision of the cosine). Memory: O(chunk × gallery × rows), plus the N×N matrix of the
    re-ranking's neighbour search when ``rerank``. Only the gallery items that can take part in a ranking are
    scored (pid -1 items are junk for every query), as in the faithful rows: the figures are the same.
    """
    from ..metrics import RankingProtocol, default_threads, iter_row_chunks, rank_chunks

    protocol = RankingProtocol(fs.gallery)
    scorer = ImprovedRows(fs, fitted, rerank, columns=protocol.columns, **kw)
    step = max(16, int(chunk_size) * 4 // max(4, len(scorer.rows)))  # bounded memory however many rows
    chunks = ((sl, scorer(sl)) for sl in iter_row_chunks(len(fs.query), step))
    return rank_chunks(chunks, fs.query, protocol, scorer.rows, default_threads() if threads is None else threads)


def prepare_improved(
    fs: FeatureSet,
    train: Metadata | None = None,
    rerank: bool = False,
    *,
    columns: np.ndarray | None = None,
    train_features: np.ndarray | None = None,
    fitted: ImprovedModel | None = None,
    config: SelectionConfig | None = None,
    st_params: Mapping[str, Any] | None = None,
    base: SpatialTemporalModel | None = None,
    info: dict | None = None,
) -> ImprovedRows:
    """Fit the improved mode on training data (:func:`improved_rows` says which) and return its chunk scorer.

    ``info`` (if given) receives the provenance: choice, ST-model fit info, weights used, the training-features
    source, validation records. :func:`streid_lib.evaluation.evaluate_features` ranks the scorer's rows beside the
    faithful rows, sharing their cosine.
    """
    train, train_features, source = resolve_training(fs, train, train_features)
    if fitted is None:
        if st_params is None and base is not None:
            st_params = st_params_from(base)
        fitted = fit_improved(train, train_features, config=config, rerank=rerank, st_params=st_params)
    used: dict[str, Any] = {}
    scorer = ImprovedRows(fs, fitted, rerank, columns=columns, info=used)
    if info is not None:
        info.update(fitted.provenance())
        info.update(used)
        info["w_source"] = fitted.choice.w_source
        info["train_features"] = source
        if fitted.validation is not None:
            info["validation"] = fitted.validation.to_dict(orient="records")
    return scorer


def _same_metadata(a: Metadata, b: Metadata) -> bool:
    return len(a) == len(b) and all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("pids", "cams", "frames"))


def improved_rows(
    fs: FeatureSet,
    train: Metadata | None = None,
    rerank: bool = False,
    *,
    train_features: np.ndarray | None = None,
    fitted: ImprovedModel | None = None,
    config: SelectionConfig | None = None,
    st_params: Mapping[str, Any] | None = None,
    base: SpatialTemporalModel | None = None,
    chunk_size: int = 256,
    info: dict | None = None,
) -> dict[str, dict[str, float]]:
    """Rows ``improved`` (and with ``rerank`` ``improved+re-rank``) of ``fs``, fitted and ranked on their own.

    Training data: ``train`` (default ``fs.train``); calibration uses ``train_features``, else ``fs.train_f`` (if
    ``train`` differs from the set's own, the set's training side is used and ``info["train_features"]`` says so);
    without training features the spread rule. Hyperparameters come from :func:`fit_improved` on training data only,
    unless ``fitted`` is passed. Bins, cameras and overflow follow ``base`` or ``st_params``.

    Returns:
        {row: {"R1", "R5", "R10", "mAP", "mAP_open_reid", "mINP"}} in percent. ``info`` (if given) receives the
        provenance: choice, ST-model fit info, weights used, the training-features source, validation records.
    """
    from ..metrics import RankingProtocol, default_threads, iter_row_chunks, rank_chunks

    protocol = RankingProtocol(fs.gallery)
    scorer = prepare_improved(
        fs, train, rerank, columns=protocol.columns, train_features=train_features, fitted=fitted, config=config,
        st_params=st_params, base=base, info=info,
    )  # fmt: skip
    chunks = ((sl, scorer(sl)) for sl in iter_row_chunks(len(fs.query), int(chunk_size)))
    results = rank_chunks(chunks, fs.query, protocol, scorer.rows, default_threads())
    return {row: res.summary() for row, res in results.items()}


def resolve_training(
    fs: FeatureSet, train: Metadata | None, train_features: np.ndarray | None
) -> tuple[Metadata, np.ndarray | None, dict[str, Any]]:
    """(training metadata, training features or None, provenance record) for the improved mode of ``fs``."""
    if train is None:
        if not fs.has_train:
            raise ImprovedError(
                "improved mode needs training metadata: the features set has no training side and no train was given"
            )
        train = fs.train
    if train_features is not None:
        return train, train_features, {"used": True, "source": "given train_features", "n_images": len(train)}
    if not fs.has_train:
        return train, None, {"used": False, "source": "none (no training side): spread rule", "n_images": 0}
    rec = {"used": True, "source": "features file training side", "n_images": len(fs.train)}
    if not _same_metadata(train, fs.train):
        rec["note"] = (
            f"the given training metadata ({len(train)} images) differs from the features file's training side "
            f"({len(fs.train)} images); the improved mode uses the file's training side, whose features it needs"
        )
    return fs.train, fs.train_f, rec
