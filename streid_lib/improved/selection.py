"""The selection protocol: every hyperparameter of the improved mode chosen on training identities only.

Folds, criterion, coordinate search and the one-standard-error rule: docs/reference.md §12.1 (order of the stages:
:class:`~.config.SelectionConfig`). Per fold the ranking protocol, ST lookups, cosine and calibration pairs are
computed once for all candidates; validation rankings overlap the next candidate's fit in a worker thread.
Nothing but the training metadata and training features is read: the signature cannot receive test data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..metadata import Metadata
from .calibration import calibrate_weight
from .config import DEFAULT_RERANK_B, DEFAULT_RERANK_SOURCE, DEFAULT_W, ImprovedError, SelectionConfig
from .counting import pair_histograms
from .folds import Fold, canonical_order, validation_splits
from .likelihood import SHARED_PARAMS, LikelihoodRatioModel
from .reranking import jaccard_distance, jaccard_weight

#: The likelihood-ratio parameters a candidate sets (the rest are the faithful model's bins and defaults).
CANDIDATE_KEYS: tuple[str, ...] = ("counting", "sigma", "direction_prior", "pair_prior", "background")


@dataclass
class Choice:
    """Hyperparameters chosen by :func:`select_hyperparameters` (all from training identities).

    Attributes:
        params: keyword arguments of the chosen :class:`LikelihoodRatioModel` (bins, counting, σ, priors, ...).
        w: fusion weight of ``s + w·logLR`` (``w_source="calibrated"``), or with ``"spread"`` (no training
            features) the multiplier :data:`~.config.DEFAULT_W` of the score spread σ_s.
        w_scale: the chosen multiplier m of the logistic weight (None without features).
        rerank: ``{"source", "b", "b_source"}`` of improved+re-rank (None when not asked for).
        calibration: the pooled logistic fit; protocol: folds, seed, criterion, search space, cost figures.
        final_model: the chosen model fitted on all training identities, when the protocol fitted it already
            (not part of :meth:`as_dict`).
    """

    params: dict[str, Any]
    w: float
    w_source: str = "spread"
    w_scale: float | None = None
    rerank: dict[str, Any] | None = None
    calibration: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    final_model: Any = field(default=None, repr=False, compare=False)

    @property
    def sigma(self) -> float:
        return float(self.params["sigma"])

    @property
    def counting(self) -> str:
        return str(self.params["counting"])

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for provenance)."""
        return {
            **{k: self.params[k] for k in CANDIDATE_KEYS},
            "sigma": float(self.params["sigma"]),
            "w": float(self.w),
            "w_source": self.w_source,
            "w_scale": None if self.w_scale is None else float(self.w_scale),
            "rerank": self.rerank,
            "calibration": self.calibration,
            "protocol": self.protocol,
        }


def resolve_st_params(train: Metadata, st_params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Bins/cameras/overflow (and fixed ρ, smoothing axis) of the candidates; n_cams at least the training cameras."""
    allowed = set(LikelihoodRatioModel().get_params()) - set(CANDIDATE_KEYS)
    params = dict(st_params or {})
    bad = set(params) - allowed
    if bad:
        raise ImprovedError(f"st_params: unknown or selected keys {sorted(bad)}; allowed: {sorted(allowed)}")
    params.setdefault("n_cams", max(8, train.n_cams))
    return params


def check_train_features(train: Metadata, train_features: np.ndarray | None) -> np.ndarray | None:
    """Training features as float32, checked to be (N_train, D) rows aligned with the training metadata."""
    if train_features is None:
        return None
    f = np.asarray(train_features, dtype=np.float32)
    if f.ndim != 2 or len(f) != len(train):
        raise ImprovedError(
            f"train_features: expected an (N_train, D) array with N_train = {len(train)} rows aligned with the "
            f"training metadata, got shape {f.shape}"
        )
    return f


class _Search:
    """The bookkeeping of one selection: fold models, logistic weights, queued rankings and their records."""

    def __init__(self, train: Metadata, feats: np.ndarray | None, cfg: SelectionConfig, params: dict) -> None:
        self.cfg, self.params, self.feats = cfg, params, feats
        splits = validation_splits(train, cfg.n_folds, cfg.seed)
        self.folds = [
            Fold(train, sp, feats, max_positives=cfg.max_positives, max_negatives=cfg.max_negatives, seed=cfg.seed + f)
            for f, sp in enumerate(splits)
        ]
        self.base: dict[tuple[int, str], LikelihoodRatioModel] = {}
        self.w_log: dict[tuple[int, tuple], float] = {}
        self.records: list[dict[str, Any]] = []
        self.per_query: dict[tuple, np.ndarray] = {}
        self.done: dict[tuple, list[dict[str, Any]]] = {}
        self.pending: list[tuple[dict[str, Any], tuple, Future]] = []
        # One ranking worker beside this thread, which fits and calibrates the next candidates meanwhile (a second
        # worker is slower on 2 cores: the rankings' per-query Python loop contends for the GIL).
        self.pool = ThreadPoolExecutor(1)

    def model(self, f: int, cand: Mapping[str, Any]) -> LikelihoodRatioModel:
        """The fold's model of a candidate: counts fitted once per counting rule, the rest by ``with_params``."""
        key = (f, cand["counting"])
        base = self.base.get(key)
        if base is None:
            fd = self.folds[f]
            model = LikelihoodRatioModel(**{**self.params, **{k: cand[k] for k in CANDIDATE_KEYS}})
            if cand["counting"] not in fd.histograms:
                # Both image rules (and the identity rule) of the search in one pass over the fold's pairs.
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
            summ = res.summary()
            rec["R1"], rec["mAP"] = summ["R1"], summ["mAP"]
            self.per_query[(key, rec["fold"])] = _per_query(res, self.cfg.criterion)
        self.pending.clear()

    def value(self, cand: Mapping[str, Any]) -> float:
        """The criterion of a ranked candidate (mean over folds)."""
        recs = self.done[_key(cand)]
        return _criterion(recs, self.cfg.criterion)

    def gain(self, cand: Mapping[str, Any], ref: Mapping[str, Any]) -> tuple[float, float]:
        """(criterion of cand − criterion of ref, its standard error): the paired difference over the validation
        queries of each fold, averaged over folds like the criterion."""
        diffs = [self.per_query[(_key(cand), f)] - self.per_query[(_key(ref), f)] for f in range(len(self.folds))]
        mean = float(np.mean([d.mean() for d in diffs]))
        se = float(np.sqrt(sum(d.var(ddof=1) / len(d) for d in diffs if len(d) > 1)) / len(diffs))
        return mean, se

    def better(self, cand: Mapping[str, Any], ref: Mapping[str, Any]) -> bool:
        """The one-standard-error rule: cand replaces ref only when it raises the criterion by more than one
        standard error of the paired difference (so a change needs evidence, and noise keeps the current value)."""
        mean, se = self.gain(cand, ref)
        return mean > se

    def walk(self, name: str, current: dict[str, Any], key: str, grid: tuple[float, ...]) -> dict[str, Any]:
        """A walk on a sorted grid: rank the current value's two neighbours, then keep stepping towards the better
        one while the criterion rises (the grid's start value is added when it is not on the grid)."""
        values = sorted({float(v) for v in grid} | {float(current[key])})
        i = values.index(float(current[key]))
        nbrs = [values[j] for j in (i - 1, i + 1) if 0 <= j < len(values)]
        best = self.stage(name, current, [{**current, key: v} for v in nbrs])
        step = 0 if best is current else (1 if float(best[key]) > float(current[key]) else -1)
        while step:
            j = values.index(float(best[key])) + step
            if not 0 <= j < len(values):
                break
            nxt = self.stage(name, best, [{**best, key: values[j]}])
            if nxt is best:
                break
            best = nxt
        return best

    def stage(self, name: str, current: dict[str, Any], cands: list[dict[str, Any]]) -> dict[str, Any]:
        """Rank ``cands`` (and the current point); return the best of those that beat the current one by more than
        a standard error (:meth:`better`), or the current one."""
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
    from importlib import import_module

    for module in modules:
        try:
            import_module(module)
        except ImportError:
            pass


def _none(row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row as a candidate (NaN, the table's "no multiplier", back to None)."""
    out = dict(row)
    if isinstance(out.get("w_scale"), float) and math.isnan(out["w_scale"]):
        out["w_scale"] = None
    return out


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
    """Choose the counting rule, σ, the priors, likelihood ratio vs likelihood, the fusion weight and (with
    ``rerank``) the re-ranking term by cross-validation on **training identities only** (docs/reference.md §12.1).

    Args:
        train: training metadata; train_features: optional (N_train, D) visual features of the training images.
        config: the search space and protocol (default :class:`SelectionConfig`).
        rerank: also choose improved+re-rank's neighbour source and Jaccard weight (needs train_features; without
            them :data:`~.config.DEFAULT_RERANK_SOURCE` and :data:`~.config.DEFAULT_RERANK_B`).
        st_params: bin_width, n_bins, n_cams, truncate, overflow (and ρ, across_zero) of the candidates.

    Returns:
        (:class:`Choice`, DataFrame with one row per ranked candidate: stage, the candidate's parameters, w (mean
        over folds), R1, mAP (validation, percent, mean over folds), R1_sd, mAP_sd, criterion, chosen,
        gain_vs_chosen and se_vs_chosen (its criterion minus the chosen one's, and the standard error)).
        ``df.attrs["per_fold"]`` has the per-fold rows, ``df.attrs["rerank"]`` the re-ranking candidates.
    """

    cfg = SelectionConfig() if config is None else config
    feats = check_train_features(train, train_features)
    order = canonical_order(train, feats)  # the same choice whatever the order of the training side
    train, feats = train.take(order), (None if feats is None else feats[order])
    params = resolve_st_params(train, st_params)
    if feats is not None:
        # scikit-learn's and pandas' imports (~0.5 s of a CLI run) overlap the folds' preparation (GEMMs, lookups);
        # a failing import is left to the main thread, which reports it where the module is used.
        import threading

        threading.Thread(target=_import_quietly, args=("sklearn.linear_model", "pandas"), daemon=True).start()
    search = _Search(train, feats, cfg, params)
    current: dict[str, Any] = {
        "counting": cfg.countings[0], "sigma": float(cfg.sigma0), "direction_prior": True, "pair_prior": True,
        "background": True, "w_scale": float(cfg.w_scale0) if feats is not None else None,
    }  # fmt: skip
    final: LikelihoodRatioModel | None = None
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
            m0 = float(current["w_scale"])
            ms = sorted({float(m) for m in cfg.w_scales} | {m0})
            for m in [ms[j] for j in (ms.index(m0) - 1, ms.index(m0) + 1) if 0 <= j < len(ms)]:
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
            rerank_choice = {
                "source": DEFAULT_RERANK_SOURCE,
                "b": DEFAULT_RERANK_B,
                "beta": None,
                "b_source": "default",
            }
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

    table = _table(pd.DataFrame(search.records), current, cfg.criterion)
    gains = [search.gain(dict(zip(CANDIDATE_KEYS, k[:-1]), w_scale=k[-1]), current) for k in search.done]
    order = {k: i for i, k in enumerate(search.done)}  # the table lists candidates in the order they were ranked
    table["gain_vs_chosen"] = [gains[order[_key(_none(r))]][0] for _, r in table.iterrows()]
    table["se_vs_chosen"] = [gains[order[_key(_none(r))]][1] for _, r in table.iterrows()]
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
    choice = Choice(lr_params, float(w), source, scale, rerank_choice, calibration, protocol)
    choice.final_model = final
    return choice, table


def _select_rerank(search: _Search, current: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Neighbour source × Jaccard weight b of improved+re-rank, on the chosen model's folds.

    Rank-1 first: only candidates whose mean validation rank-1 is at least the improved row's (no re-ranking)
    qualify, and among them the criterion decides; when none qualifies, the highest rank-1 wins. β = b·σ_F is
    averaged over folds and carried over as a number.
    """
    import pandas as pd

    rows, base = [], []
    for f, fd in enumerate(search.folds):
        model = search.model(f, current)
        w = float(current["w_scale"]) * search.weight(f, current, model)
        fused = fd.s + (w * model.lookup_table()).take(fd.idx)
        base.append(fd.summary_of(fused.astype(np.float32)))
        feats = np.concatenate([fd.fq, fd.fg])
        meta = Metadata.concat([fd.qm, fd.gm])
        for source in search.cfg.rerank_sources:
            jac = jaccard_distance(feats, meta, len(fd.qm), source=source, model=model, w=w)
            for b in search.cfg.rerank_b:
                beta = jaccard_weight(fused, b)
                summ = fd.summary_of(
                    lambda sl, beta=beta, jac=jac, fused=fused: (fused[sl] - beta * jac[sl]).astype(np.float32)
                )
                rows.append({"fold": f, "source": source, "b": float(b), "beta": beta, **summ})
    per_fold = pd.DataFrame(rows)
    agg = (
        per_fold.groupby(["source", "b"], sort=False)
        .agg(beta=("beta", "mean"), R1=("R1", "mean"), mAP=("mAP", "mean"))
        .reset_index()
    )
    agg["criterion"] = [
        _criterion(per_fold[(per_fold.source == s) & (per_fold.b == b)].to_dict("records"), search.cfg.criterion)
        for s, b in zip(agg["source"], agg["b"], strict=True)
    ]
    r1_base = float(np.mean([b["R1"] for b in base]))
    agg["keeps_R1"] = agg["R1"] >= r1_base
    if agg["keeps_R1"].any():
        value = np.where(agg["keeps_R1"], agg["criterion"], -np.inf)
    else:
        value = agg["R1"].to_numpy()
    best = int(np.argmax(value))  # the first of equal values: grid order
    agg["chosen"] = np.arange(len(agg)) == best
    agg.attrs.update(per_fold=per_fold, R1_without=r1_base, mAP_without=float(np.mean([b["mAP"] for b in base])))
    choice = {
        "source": str(agg.loc[best, "source"]),
        "b": float(agg.loc[best, "b"]),
        "beta": float(agg.loc[best, "beta"]),
        "b_source": "validation",
    }
    return choice, agg


def _table(per_fold: Any, chosen: Mapping[str, Any], criterion: str) -> Any:
    """One row per candidate (first stage it was ranked in): parameters, fold means and sds, criterion, chosen."""
    keys = [*CANDIDATE_KEYS, "w_scale"]
    groups = per_fold.groupby(keys, sort=False, dropna=False)
    agg = groups.agg(
        stage=("stage", "first"), w=("w", "mean"), R1=("R1", "mean"), mAP=("mAP", "mean"),
        R1_sd=("R1", "std"), mAP_sd=("mAP", "std"),
    ).reset_index()  # fmt: skip
    agg["criterion"] = [_criterion(g.to_dict("records"), criterion) for _, g in groups]
    want = _key(chosen)
    agg["chosen"] = [_same_key(tuple(r[k] for k in keys), want) for _, r in agg.iterrows()]
    agg = agg[["stage", *keys, "w", "R1", "mAP", "R1_sd", "mAP_sd", "criterion", "chosen"]]
    agg.attrs["per_fold"] = per_fold
    return agg


def _same_key(a: tuple, b: tuple) -> bool:
    """Equal keys, with None and NaN (no multiplier without features) counted as one value."""

    def missing(x: Any) -> bool:
        return x is None or (isinstance(x, float) and math.isnan(x))

    return all(x == y or (missing(x) and missing(y)) for x, y in zip(a, b, strict=True))


__all__ = [
    "CANDIDATE_KEYS",
    "SHARED_PARAMS",
    "Choice",
    "check_train_features",
    "resolve_st_params",
    "select_hyperparameters",
]
