"""k-reciprocal re-ranking: the algorithm (:mod:`.algorithm`) and the re-ranked rows and variants (:mod:`.rows`)."""

from .algorithm import RerankError as RerankError
from .algorithm import RerankParams as RerankParams
from .algorithm import effective_params as effective_params
from .algorithm import k_reciprocal_rerank as k_reciprocal_rerank
from .algorithm import rerank_distances as rerank_distances
from .rows import VARIANTS as VARIANTS
from .rows import cosine_matrix as cosine_matrix
from .rows import joint_score_matrix as joint_score_matrix
from .rows import rerank_joint as rerank_joint
from .rows import rerank_results as rerank_results
from .rows import rerank_rows as rerank_rows
