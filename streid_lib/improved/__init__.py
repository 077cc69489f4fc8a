"""Beyond the paper: a calibrated Bayesian spatial-temporal fusion ("improved" mode), chosen on training ids only.

The faithful joint metric (docs/reference.md §4) lets the ST stream move the score by at most ~5 %, normalises
the two travel directions of a camera pair apart, and fixes σ = 50 bins by hand. The improved mode replaces it, as
a named opt-in mode measured against faithful:

* :mod:`.counting` and :mod:`.likelihood` — the ST evidence as a log-likelihood ratio of same vs different
  training identities (:class:`LikelihoodRatioModel`), with direction and camera-pair priors and three counting
  rules;
* :mod:`.calibration` — the fusion ``s + w·logLR`` and its weight from a scikit-learn logistic regression on
  training pairs (:func:`calibrate_weight`), or the spread rule without training features;
* :mod:`.folds` and :mod:`.selection` — every choice (counting, σ, priors, likelihood ratio vs likelihood, w, the
  re-ranking term) made by cross-validation on training identities (:func:`select_hyperparameters`);
* :mod:`.reranking` and :mod:`.scoring` — the ``improved`` and ``improved+re-rank`` rows
  (:func:`improved_rows`, used by ``evaluate --mode improved``);
* :mod:`.analysis` and :mod:`.report` — ablations, paired bootstraps, the noise check and notebook 07's tables.

Nothing here imports torch; scikit-learn and pandas are imported where they are used.
"""

from __future__ import annotations

from .analysis import (
    BOOT_METRICS,
    Ablations,
    ablation_table,
    bootstrap_difference,
    colour_histogram_campus,
    faithful_results,
    noise_check,
)
from .calibration import calibrate_weight, sample_pairs, score_spread
from .config import (
    COUNTINGS,
    DEFAULT_OUTLIER,
    DEFAULT_RERANK_B,
    DEFAULT_RERANK_SOURCE,
    DEFAULT_W,
    RERANK_SOURCES,
    STRUCTURE,
    ImprovedError,
    SelectionConfig,
)
from .counting import PairHistograms, background_counts, pair_histograms
from .folds import Fold, ValidationSplit, validation_splits
from .likelihood import LikelihoodRatioModel
from .report import BeyondReport, ReportTable, beyond_the_paper, describe_inputs, interpretation, report_tables
from .reranking import fused_score_matrix, jaccard_distance, jaccard_weight
from .scoring import (
    RERANK_ROW,
    ROW,
    ImprovedModel,
    ImprovedRows,
    fit_improved,
    improved_results,
    improved_rows,
    prepare_improved,
    resolve_training,
    st_params_from,
)
from .selection import Choice, select_hyperparameters

__all__ = [
    "BOOT_METRICS",
    "COUNTINGS",
    "DEFAULT_OUTLIER",
    "DEFAULT_RERANK_B",
    "DEFAULT_RERANK_SOURCE",
    "DEFAULT_W",
    "RERANK_ROW",
    "RERANK_SOURCES",
    "ROW",
    "STRUCTURE",
    "Ablations",
    "BeyondReport",
    "Choice",
    "ReportTable",
    "Fold",
    "ImprovedError",
    "ImprovedModel",
    "ImprovedRows",
    "LikelihoodRatioModel",
    "PairHistograms",
    "SelectionConfig",
    "ValidationSplit",
    "ablation_table",
    "background_counts",
    "beyond_the_paper",
    "bootstrap_difference",
    "calibrate_weight",
    "colour_histogram_campus",
    "describe_inputs",
    "faithful_results",
    "fit_improved",
    "fused_score_matrix",
    "improved_results",
    "improved_rows",
    "interpretation",
    "jaccard_distance",
    "jaccard_weight",
    "noise_check",
    "pair_histograms",
    "prepare_improved",
    "report_tables",
    "resolve_training",
    "sample_pairs",
    "score_spread",
    "select_hyperparameters",
    "st_params_from",
    "validation_splits",
]
