"""Beyond the paper: a calibrated Bayesian ST fusion ("improved" mode), chosen on training ids only (§12.1).

Evidence (:mod:`.likelihood`), weight (:mod:`.calibration`), cross-validated choices (:mod:`.selection`), the rows
(:mod:`.scoring`), ablations and notebook 07's report (:mod:`.analysis`). No torch. The package exports the estimator,
its error and configuration, and what the library and notebooks call; the rest is imported from its module.
"""

from __future__ import annotations

from .analysis import beyond_the_paper, describe_inputs, interpretation, report_tables
from .config import ImprovedError, SelectionConfig
from .likelihood import LikelihoodRatioModel
from .scoring import ImprovedRows, prepare_improved

__all__ = [
    "ImprovedError",
    "ImprovedRows",
    "LikelihoodRatioModel",
    "SelectionConfig",
    "beyond_the_paper",
    "describe_inputs",
    "interpretation",
    "prepare_improved",
    "report_tables",
]
