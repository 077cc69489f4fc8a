"""Beyond the paper: a calibrated Bayesian ST fusion ("improved" mode), chosen on training ids only (§12.1).

Evidence (:mod:`.likelihood`), weight (:mod:`.calibration`), cross-validated choices
(:mod:`.selection`), the rows (:mod:`.scoring`), ablations and notebook 07's report. No torch.
"""

from __future__ import annotations

from .analysis import ablation_table, bootstrap_difference, noise_check
from .calibration import calibrate_weight, jaccard_distance, score_spread
from .config import COUNTINGS, DEFAULT_OUTLIER, DEFAULT_W, RERANK_SOURCES, ImprovedError, SelectionConfig
from .likelihood import LikelihoodRatioModel, pair_histograms
from .report import beyond_the_paper, describe_inputs, interpretation, report_tables
from .scoring import ImprovedRows, fit_improved, improved_results, prepare_improved, st_params_from
from .selection import select_hyperparameters, validation_splits

__all__ = [
    "COUNTINGS",
    "DEFAULT_OUTLIER",
    "DEFAULT_W",
    "RERANK_SOURCES",
    "ImprovedError",
    "ImprovedRows",
    "LikelihoodRatioModel",
    "SelectionConfig",
    "ablation_table",
    "beyond_the_paper",
    "bootstrap_difference",
    "calibrate_weight",
    "describe_inputs",
    "fit_improved",
    "improved_results",
    "interpretation",
    "jaccard_distance",
    "noise_check",
    "pair_histograms",
    "prepare_improved",
    "report_tables",
    "score_spread",
    "select_hyperparameters",
    "st_params_from",
    "validation_splits",
]
