"""The selection protocol: every hyperparameter of the improved mode chosen on training identities only (§12.1).

Validation folds of training identities: fitted on the other folds; held out, one seeded image per identity and
camera is a query (kept if it has a cross-camera match). Validation rankings overlap the next candidate's fit in a
worker thread; the signature cannot receive test data.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import threading
from collections import namedtuple
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ..joint import cosine_similarity
from ..metadata import Metadata
from ..metrics import MetricAccumulator, RankingProtocol, iter_row_chunks
from .calibration import calibrate_weight, jaccard_distance, jaccard_weight, sample_pairs
from .config import DEFAULT_RERANK_B, DEFAULT_RERANK_SOURCE, DEFAULT_W, ImprovedError, SelectionConfig
from .likelihood import LikelihoodRatioModel, pair_histograms

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


#: The likelihood-ratio parameters a candidate sets (the rest are the faithful model's bins and defaults).
CANDIDATE_KEYS: tuple[str, ...] = ("counting", "sigma", "direction_prior", "pair_prior", "background")


@dataclass
class Choice:
    """Hyperparameters chosen by :func:`select_hyperparameters`: ``params`` of the :class:`LikelihoodRatioModel`,
    ``w`` (calibrated, or with ``w_source="spread"`` the multiplier of σ_s), ``w_scale`` (None without features),
    ``rerank`` ({"source", "b", "beta", "b_source"} or None), the pooled logistic fit, the protocol, and the chosen
    model fitted on all training identities (``final_model``, not in :meth:`as_dict`)."""

    params: dict[str, Any]
    w: float
    w_source: str = "spread"
    w_scale: float | None = None
    rerank: dict[str, Any] | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    final_model: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for provenance)."""
        d = {**{k: self.params[k] for k in CANDIDATE_KEYS}, "sigma": float(self.params["sigma"])}
        d.update({f.name: getattr(self, f.name) for f in fields(self)[1:-1]}, w=float(self.w))  # not final_model
        d["w_scale"] = None if self.w_scale is None else float(self.w_scale)
        return d


class _Search:
    """One selection's fold models, logistic weights, queued rankings and their records."""

    def __init__(self, train: Metadata, feats: np.ndarray | None, cfg: SelectionConfig, params: dict) -> None:
        self.cfg, self.params, self.feats = cfg, params, feats
        splits = validation_splits(train, cfg.n_folds, cfg.seed)
        self.folds = [
            Fold(train, sp, feats, max_positives=cfg.max_positives, max_negatives=cfg.max_negatives, seed=cfg.seed + f)
            for f, sp in enumerate(splits)
        ]
        # Fold models per (fold, counting), weights per (fold, candidate), per-query criteria per (candidate, fold),
        # records per candidate (in ranking order), and the queued (record, candidate, ranking) triples.
        self.base, self.w_log, self.per_query, self.done = {}, {}, {}, {}
        self.records: list[dict[str, Any]] = []
        self.pending: list[tuple[dict[str, Any], tuple, Future]] = []
        # One ranking worker beside this thread, which fits the next candidates (a second one contends for the GIL).
        self.pool = ThreadPoolExecutor(1)

    def model(self, f: int, cand: Mapping[str, Any]) -> LikelihoodRatioModel:
        """The fold's model of a candidate: counts fitted once per counting rule, the rest by ``with_params``."""
        key = (f, cand["counting"])
        base = self.base.get(key)
        if base is None:
            fd = self.folds[f]
            model = LikelihoodRatioModel(**{**self.params, **{k: cand[k] for k in CANDIDATE_KEYS}})
            if cand["counting"] not in fd.histograms:
                # Both image rules of the search in one pass over the fold's pairs.
                rules = tuple(c for c in self.cfg.countings if (c == "identity") == (cand["counting"] == "identity"))
                bins = {k: getattr(model, k) for k in ("bin_width", "n_bins", "n_cams", "overflow")}
                fd.histograms.update(pair_histograms(fd.fit_meta, countings=rules, **bins))
            base = self.base[key] = model.fit(fd.fit_meta, histograms=fd.histograms[cand["counting"]])
        change = {k: cand[k] for k in CANDIDATE_KEYS if k != "counting" and base.get_params()[k] != cand[k]}
        return base.with_params(**change) if change else base

    def weight(self, f: int, cand: Mapping[str, Any], model: LikelihoodRatioModel) -> float:
        """The fold's logistic weight of a candidate's model (cached)."""
        key = (f, tuple(cand[k] for k in CANDIDATE_KEYS))
        if key not in self.w_log:
            fd = self.folds[f]
            self.w_log[key] = calibrate_weight(fd.s_pairs, model.lookup_table().take(fd.idx_pairs), fd.psame)[0]
        return self.w_log[key]

    def submit(self, stage: str, cand: Mapping[str, Any]) -> None:
        """Queue the validation rankings of a candidate on every fold (once: a candidate seen before is reused)."""
        key = _key(cand)
        if key in self.done:
            return
        recs = self.done[key] = []
        for f, fd in enumerate(self.folds):
            model = self.model(f, cand)
            if fd.idx is None:
                fd.set_index(model)  # the indices depend on the bins only: once per fold
            rec = {"stage": stage, "fold": f, **{k: cand[k] for k in CANDIDATE_KEYS}}
            if self.feats is None:
                rec.update(w_scale=math.nan, w=math.nan)  # recorded as NaN; the candidate holds None
                table = model.rank_table()
            else:
                w = cand["w_scale"] * self.weight(f, cand, model)
                rec.update(w_scale=cand["w_scale"], w=w)
                table = w * model.lookup_table()
            self.records.append(rec)
            recs.append(rec)
            self.pending.append((rec, key, self.pool.submit(fd.result, table)))

    def collect(self) -> None:
        for rec, key, fut in self.pending:
            res = fut.result()
            rec.update({k: v for k, v in res.summary().items() if k in ("R1", "mAP")})
            self.per_query[(key, rec["fold"])] = _per_query(res, self.cfg.criterion)
        self.pending.clear()

    def value(self, cand: Mapping[str, Any]) -> float:
        """The criterion of a ranked candidate (mean over folds)."""
        return _criterion(self.done[_key(cand)], self.cfg.criterion)

    def gain(self, cand: Mapping[str, Any], ref: Mapping[str, Any]) -> tuple[float, float]:
        """(criterion of cand − that of ref, its standard error): paired over each fold's queries, mean over folds."""
        diffs = [self.per_query[(_key(cand), f)] - self.per_query[(_key(ref), f)] for f in range(len(self.folds))]
        mean = float(np.mean([d.mean() for d in diffs]))
        se = float(np.sqrt(sum(d.var(ddof=1) / len(d) for d in diffs if len(d) > 1)) / len(diffs))
        return mean, se

    def better(self, cand: Mapping[str, Any], ref: Mapping[str, Any]) -> bool:
        """The one-standard-error rule: cand replaces ref only when it gains more than a standard error."""
        mean, se = self.gain(cand, ref)
        return mean > se

    def walk(self, name: str, current: dict[str, Any], key: str, grid: tuple[float, ...]) -> dict[str, Any]:
        """Rank the current value's two neighbours on the sorted grid (plus the current value), then step towards the
        better one while the criterion rises."""
        values, nbrs = _neighbours(grid, current[key])
        best = self.stage(name, current, [{**current, key: v} for v in nbrs])
        step = 0 if best is current else (1 if float(best[key]) > float(current[key]) else -1)
        while step:
            j = values.index(float(best[key])) + step
            nxt = self.stage(name, best, [{**best, key: values[j]}]) if 0 <= j < len(values) else best
            if nxt is best:
                return best
            best = nxt
        return best

    def stage(self, name: str, current: dict[str, Any], cands: list[dict[str, Any]]) -> dict[str, Any]:
        """Rank ``cands`` and ``current``; the best of those :meth:`better` than current, or current."""
        for c in [current, *cands]:
            self.submit(name, c)
        self.collect()
        best, best_v = current, -np.inf
        for c in cands:
            v = self.value(c)
            if _key(c) != _key(current) and v > best_v and self.better(c, current):
                best, best_v = c, v
        return best


def _import_quietly(*modules: str) -> None:
    for module in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def _neighbours(grid: tuple[float, ...], value: float) -> tuple[list[float], list[float]]:
    """The sorted grid with ``value`` in it, and ``value``'s neighbours on it (one or two)."""
    values = sorted({float(v) for v in grid} | {float(value)})
    i = values.index(float(value))
    return values, [values[j] for j in (i - 1, i + 1) if 0 <= j < len(values)]


def _key(cand: Mapping[str, Any]) -> tuple:
    return tuple(cand.get(k) for k in (*CANDIDATE_KEYS, "w_scale"))


def _per_query(result: Any, criterion: str) -> np.ndarray:
    """Each validation query's share of the criterion, in percent: rank-1 hit + AP (or AP)."""
    ap = 100.0 * np.asarray(result.ap, np.float64)
    return ap + 100.0 * (result.first_hit == 0) if criterion == "R1+mAP" else ap


def _criterion(recs: list[Mapping[str, Any]], criterion: str) -> float:
    r1 = float(np.mean([r["R1"] for r in recs]))
    m = float(np.mean([r["mAP"] for r in recs]))
    # "mAP": mAP first, R1 only to break ties (a tiny weight no mAP difference can be outweighed by).
    return r1 + m if criterion == "R1+mAP" else m + 1e-6 * r1


def select_hyperparameters(
    train: Metadata,
    train_features: np.ndarray | None = None,
    *,
    config: SelectionConfig | None = None,
    rerank: bool = False,
    st_params: Mapping[str, Any] | None = None,
) -> tuple[Choice, Any]:
    """Choose the counting rule, σ, the priors, likelihood ratio vs likelihood, the fusion weight and (``rerank``)
    the re-ranking term on **training identities only** (docs/reference.md §12.1; the search: ``config``).

    ``train_features``: optional (N_train, D); ``st_params``: the candidates' bins, cameras, truncate, overflow.
    Returns (:class:`Choice`, one row per ranked candidate: stage, parameters, w, validation R1 and mAP (percent, mean
    over folds), their sds, criterion, chosen, gain_vs_chosen, se_vs_chosen); ``attrs``: "per_fold", "rerank".
    """

    cfg = SelectionConfig() if config is None else config
    feats = None if train_features is None else np.asarray(train_features, dtype=np.float32)
    if feats is not None and (feats.ndim != 2 or len(feats) != len(train)):
        raise ImprovedError(
            f"train_features: expected an (N_train, D) array with N_train = {len(train)} rows aligned with the "
            f"training metadata, got shape {feats.shape}"
        )
    order = canonical_order(train, feats)  # the same choice whatever the order of the training side
    train, feats = train.take(order), (None if feats is None else feats[order])
    # The candidates' fixed parameters (bins, cameras, overflow, ...); n_cams at least the training cameras.
    allowed = set(LikelihoodRatioModel().get_params()) - set(CANDIDATE_KEYS)
    params = dict(st_params or {})
    if bad := sorted(set(params) - allowed):
        raise ImprovedError(f"st_params: unknown or selected keys {bad}; allowed: {sorted(allowed)}")
    params.setdefault("n_cams", max(8, train.n_cams))
    if feats is not None:
        # scikit-learn's and pandas' imports (~0.5 s of a CLI run) overlap the folds' preparation (GEMMs, lookups);
        # a failing import is left to the main thread, which reports it where the module is used.
        threading.Thread(target=_import_quietly, args=("sklearn.linear_model", "pandas"), daemon=True).start()
    search = _Search(train, feats, cfg, params)
    current: dict[str, Any] = {
        "counting": cfg.countings[0], "sigma": float(cfg.sigma0), "direction_prior": True, "pair_prior": True,
        "background": True, "w_scale": float(cfg.w_scale0) if feats is not None else None,
    }  # fmt: skip
    rr_table = None
    try:
        current = search.stage("counting", current, [{**current, "counting": c} for c in cfg.countings])
        current = search.walk("sigma", current, "sigma", cfg.sigmas)
        if current["sigma"] != float(cfg.sigma0):
            # σ moved: the counting rules again at the new σ, and σ again if the rule changes (a second pass).
            again = search.stage("counting", current, [{**current, "counting": c} for c in cfg.countings])
            if again is not current:
                current = search.walk("sigma", again, "sigma", cfg.sigmas)
        # The switches: flip each one alone, keep the best flip that helps, and flip the others again from there
        # until no flip helps (switches interact, e.g. the pair prior with the background).
        for _ in range(len(cfg.structure)):
            best = search.stage("structure", current, [{**current, sw: not current[sw]} for sw in cfg.structure])
            if best is current:
                break
            current = best
        lr_params = {**params, **{k: current[k] for k in CANDIDATE_KEYS}}
        # The likelihood-ratio model is chosen: the final one (all training identities) is fitted while the
        # multipliers are ranked.
        if feats is not None:
            for m in _neighbours(cfg.w_scales, current["w_scale"])[1]:
                search.submit("w_scale", {**current, "w_scale": m})
        final = LikelihoodRatioModel(**lr_params).fit(train)
        if feats is not None:
            current = search.walk("w_scale", current, "w_scale", cfg.w_scales)
    finally:
        search.pool.shutdown(wait=True, cancel_futures=True)
    calibration: dict[str, Any] = {}
    rerank_choice = None
    if feats is None:
        w, source, scale = DEFAULT_W, "spread", None
        if rerank:
            rerank_choice = dict(source=DEFAULT_RERANK_SOURCE, b=DEFAULT_RERANK_B, beta=None, b_source="default")
    else:
        key = tuple(current[k] for k in CANDIDATE_KEYS)
        pooled = [
            (fd.s_pairs, search.model(f, current).lookup_table().take(fd.idx_pairs), fd.psame)
            for f, fd in enumerate(search.folds)
        ]
        w_log, calibration = calibrate_weight(
            *(np.concatenate(x) for x in zip(*pooled, strict=True)), max_positives=10**12, max_negatives=10**12
        )
        scale = float(current["w_scale"])
        calibration.update(
            w_logistic=w_log, w_scale=scale, per_fold=[search.w_log[(f, key)] for f in range(len(pooled))]
        )
        w, source = w_log * scale, "calibrated"
        if rerank:
            rerank_choice, rr_table = _select_rerank(search, current)
    import pandas as pd  # here, not at the top: its import overlaps the folds in the import thread above

    # One row per candidate (first stage it was ranked in), in the order they were ranked: that of search.done.
    keys, per_fold = [*CANDIDATE_KEYS, "w_scale"], pd.DataFrame(search.records)
    groups = per_fold.groupby(keys, sort=False, dropna=False)
    table = groups.agg(
        stage=("stage", "first"), w=("w", "mean"), R1=("R1", "mean"), mAP=("mAP", "mean"),
        R1_sd=("R1", "std"), mAP_sd=("mAP", "std"),
    ).reset_index()  # fmt: skip
    table["criterion"] = [_criterion(g.to_dict("records"), cfg.criterion) for _, g in groups]
    table["chosen"] = np.arange(len(table)) == list(search.done).index(_key(current))
    table = table[["stage", *keys, "w", "R1", "mAP", "R1_sd", "mAP_sd", "criterion", "chosen"]]
    table.attrs["per_fold"] = per_fold
    gains = [search.gain(dict(zip(CANDIDATE_KEYS, k[:-1]), w_scale=k[-1]), current) for k in search.done]
    table["gain_vs_chosen"], table["se_vs_chosen"] = [g[0] for g in gains], [g[1] for g in gains]
    if rr_table is not None:
        table.attrs["rerank"] = rr_table
    protocol = {
        **cfg.as_dict(),
        "criterion": f"mean over folds of validation {cfg.criterion} (percent)",
        "search": "coordinate ascent: counting (all), sigma (walk on the log grid), counting again when sigma moved "
        "(then sigma again if it changed), structure (flip each switch, keep the best helpful flip, repeat), w_scale "
        "(walk on its grid), then (re-rank) source x b (all, keeping validation R1)",
        "score": "ST evidence only (dense ranks)" if feats is None else "s + w*logLR, w = w_scale * logistic weight",
        "st_params": params,
        "n_candidates": len(search.done),
        "n_validation_queries": [len(fd.qm) for fd in search.folds],
        "n_validation_gallery": [len(fd.gm) for fd in search.folds],
    }
    return Choice(lr_params, float(w), source, scale, rerank_choice, calibration, protocol, final), table


def _select_rerank(search: _Search, current: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Neighbour source × Jaccard weight b of improved+re-rank on the chosen model's folds: the best criterion among
    those keeping the improved row's mean validation rank-1 (else the best rank-1); β = b·σ_F, mean over folds."""
    import pandas as pd

    rows, base = [], []
    for f, fd in enumerate(search.folds):
        model = search.model(f, current)
        w = float(current["w_scale"]) * search.weight(f, current, model)
        fused = fd.s + (w * model.lookup_table()).take(fd.idx)
        base.append(fd.result_of(fused.astype(np.float32)).summary())
        feats = np.concatenate([fd.fq, fd.fg])
        meta = Metadata.concat([fd.qm, fd.gm])
        for source in search.cfg.rerank_sources:
            jac = jaccard_distance(feats, meta, len(fd.qm), source=source, model=model, w=w)
            for b in search.cfg.rerank_b:
                beta = jaccard_weight(fused, b)
                summ = fd.result_of(
                    lambda sl, beta=beta, jac=jac, fused=fused: (fused[sl] - beta * jac[sl]).astype(np.float32)
                ).summary()
                rows.append({"fold": f, "source": source, "b": float(b), "beta": beta, **summ})
    per_fold = pd.DataFrame(rows)
    groups = per_fold.groupby(["source", "b"], sort=False)
    agg = groups.agg(beta=("beta", "mean"), R1=("R1", "mean"), mAP=("mAP", "mean")).reset_index()
    agg["criterion"] = [_criterion(g.to_dict("records"), search.cfg.criterion) for _, g in groups]
    r1_base = float(np.mean([b["R1"] for b in base]))
    agg["keeps_R1"] = agg["R1"] >= r1_base
    value = np.where(agg["keeps_R1"], agg["criterion"], -np.inf) if agg["keeps_R1"].any() else agg["R1"].to_numpy()
    best = int(np.argmax(value))  # the first of equal values: grid order
    agg["chosen"] = np.arange(len(agg)) == best
    agg.attrs.update(per_fold=per_fold, R1_without=r1_base, mAP_without=float(np.mean([b["mAP"] for b in base])))
    row = agg.loc[best]
    return dict(source=str(row["source"]), b=float(row["b"]), beta=float(row["beta"]), b_source="validation"), agg
