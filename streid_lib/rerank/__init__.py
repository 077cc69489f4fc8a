"""k-reciprocal re-ranking: the algorithm (:mod:`.algorithm`) and the re-ranked rows and variants (:mod:`.rows`)."""

from __future__ import annotations

from .algorithm import BACKENDS, RerankError, RerankParams, effective_params, k_reciprocal_rerank, rerank_distances
from .rows import (
    RERANK_ROWS,
    VARIANTS,
    compare_rerank_variants,
    cosine_matrix,
    cosine_score_matrix,
    joint_score_matrix,
    rerank_joint,
    rerank_results,
    rerank_rows,
)

__all__ = [
    "BACKENDS",
    "RERANK_ROWS",
    "VARIANTS",
    "RerankError",
    "RerankParams",
    "compare_rerank_variants",
    "cosine_matrix",
    "cosine_score_matrix",
    "effective_params",
    "joint_score_matrix",
    "k_reciprocal_rerank",
    "rerank_distances",
    "rerank_joint",
    "rerank_results",
    "rerank_rows",
]
