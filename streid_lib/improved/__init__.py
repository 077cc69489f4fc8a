"""Beyond the paper: a calibrated Bayesian ST fusion ("improved" mode), chosen on training ids only (§12.1).

:mod:`.counting`, :mod:`.likelihood`: the evidence (:class:`LikelihoodRatioModel`); :mod:`.calibration`: the weight
of ``s + w·logLR``; :mod:`.folds`, :mod:`.selection`: cross-validated choices; :mod:`.reranking`, :mod:`.scoring`:
the ``improved`` and ``improved+re-rank`` rows; :mod:`.analysis`, :mod:`.report`: ablations and notebook 07's
tables. Nothing here imports torch. (docs/reference.md §12.1)
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
