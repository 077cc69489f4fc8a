"""Beyond the paper: a calibrated Bayesian ST fusion ("improved" mode), chosen on training ids only (§12.1).

Evidence (:mod:`.likelihood`), weight (:mod:`.calibration`), cross-validated choices
(:mod:`.selection`), the rows (:mod:`.scoring`), ablations and notebook 07's report. No torch. The package exports
what the library, notebooks and benchmarks call; the rest is imported from its module.
"""

from __future__ import annotations

from .analysis import ablation_table, bootstrap_difference
from .config import ImprovedError, SelectionConfig
from .likelihood import LikelihoodRatioModel
from .report import beyond_the_paper, describe_inputs, interpretation, report_tables
from .scoring import ImprovedRows, fit_improved, improved_results, prepare_improved

__all__ = [
    "ImprovedError",
    "ImprovedRows",
    "LikelihoodRatioModel",
    "SelectionConfig",
    "ablation_table",
    "beyond_the_paper",
    "bootstrap_difference",
    "describe_inputs",
    "fit_improved",
    "improved_results",
    "interpretation",
    "prepare_improved",
    "report_tables",
]
