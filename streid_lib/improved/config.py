"""The improved mode's error type, its defaults, and the selection's configuration as one object.

Every number here is a default of a named option; the selection protocol (:mod:`.selection`) chooses the
hyperparameters it covers on training identities, and these are only its search space and fallbacks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import StreidError


class ImprovedError(StreidError):
    """Bad input to the improved mode (names the argument or value and what was expected)."""


#: Counting rules of the likelihood-ratio model: the faithful identity votes (one per identity and camera pair,
#: from mean frames), every cross-camera image pair (the paper's Eqn. 2), and every image pair weighted
#: ``1/(n_a·n_b)`` so that each identity and camera pair carries one vote spread over its image gaps.
COUNTINGS: tuple[str, ...] = ("identity", "image_pairs", "weighted_pairs")
#: The structural switches of the likelihood-ratio model that the selection may turn off (each one on by default).
STRUCTURE: tuple[str, ...] = ("direction_prior", "pair_prior", "background")
#: Where improved+re-rank takes its k-reciprocal neighbours from: the visual cosine alone, or the improved score.
RERANK_SOURCES: tuple[str, ...] = ("visual", "fused")

#: Fallback fusion weight without training features, in units of the visual score's spread σ_s per nat of ST
#: evidence (``w = DEFAULT_W · σ_s``). The campus and synthetic-Market calibrations give w/σ_s = 0.3-0.7; 0.5
#: is their middle. Pass training features (a features file with a training side) to calibrate instead.
DEFAULT_W: float = 0.5
#: Outlier fraction ρ of the likelihood ratio: the floor ``log ρ`` of the evidence (nats).
DEFAULT_OUTLIER: float = 0.01
#: Fallback of improved+re-rank without training features: neighbours from the improved score F, and a Jaccard
#: weight ``β = DEFAULT_RERANK_B · σ_F`` (:func:`streid_lib.improved.reranking.jaccard_weight`). Small on purpose:
#: without validation data the re-ranking term may only reorder near-ties of F.
DEFAULT_RERANK_SOURCE: str = "fused"
DEFAULT_RERANK_B: float = 1.0


@dataclass(frozen=True, kw_only=True)
class SelectionConfig:
    """The search space and protocol of :func:`streid_lib.improved.select_hyperparameters` (one object).

    The search is a coordinate ascent in a fixed order of stages; each stage tries its grid with everything else
    held at the current best, and keeps a change only when it raises the criterion by more than one standard error
    of the paired difference over validation queries:

    1. ``countings`` at σ = ``sigma0`` (all of them);
    2. σ over ``sigmas`` (a log grid, bins): a walk from ``sigma0`` to the better neighbour while it improves;
       when σ moved, the counting rules once more at the new σ (and the walk again if the rule changes);
    3. each switch of ``structure`` flipped alone; the best helpful flip is kept and the others are flipped again
       from there, until no flip helps;
    4. (training features only) the multiplier of the logistic weight: a walk on ``w_scales`` from ``w_scale0``;
    5. (re-ranking, training features only) the neighbour source and the Jaccard weight, all of
       ``rerank_sources`` × ``rerank_b``, rank-1 first: only pairs that keep the validation rank-1 of the
       improved row qualify, then the criterion decides.

    Attributes:
        countings, sigmas, sigma0, structure, w_scales, w_scale0, rerank_sources, rerank_b: the grids (stage 1
            and 2 start from ``sigma0`` and ``w_scale0``).
        n_folds, seed: identity folds of the training set and the seed of the folds and query draws.
        max_positives, max_negatives: pairs sampled per fold for the logistic fits.
        criterion: ``"R1+mAP"`` (mean over folds of validation rank-1 plus mAP, percent) or ``"mAP"``.
    """

    countings: tuple[str, ...] = COUNTINGS
    sigmas: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0, 25.0, 50.0)
    sigma0: float = 6.0
    structure: tuple[str, ...] = STRUCTURE
    w_scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    w_scale0: float = 2.0
    rerank_sources: tuple[str, ...] = RERANK_SOURCES
    rerank_b: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    n_folds: int = 2
    seed: int = 0
    max_positives: int = 10_000
    max_negatives: int = 20_000
    criterion: str = "R1+mAP"

    def __post_init__(self) -> None:
        for name in ("countings", "sigmas", "structure", "w_scales", "rerank_sources", "rerank_b"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [c for c in self.countings if c not in COUNTINGS]
        if not self.countings or bad:
            raise ImprovedError(f"countings: expected a non-empty selection of {COUNTINGS}, got {self.countings}")
        if not self.sigmas or any(not float(s) >= 0 for s in self.sigmas) or not float(self.sigma0) >= 0:
            raise ImprovedError(f"sigmas, sigma0: expected bins >= 0, got {self.sigmas}, {self.sigma0}")
        if any(s not in STRUCTURE for s in self.structure):
            raise ImprovedError(f"structure: expected switches from {STRUCTURE}, got {self.structure}")
        if not self.w_scales or any(not float(m) > 0 for m in (*self.w_scales, self.w_scale0)):
            raise ImprovedError(f"w_scales, w_scale0: expected positive multipliers, got {self.w_scales}")
        if not self.rerank_sources or any(s not in RERANK_SOURCES for s in self.rerank_sources):
            raise ImprovedError(f"rerank_sources: expected a selection of {RERANK_SOURCES}, got {self.rerank_sources}")
        if not self.rerank_b or any(not float(b) > 0 for b in self.rerank_b):
            raise ImprovedError(f"rerank_b: expected positive Jaccard weights, got {self.rerank_b}")
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise ImprovedError(f"n_folds: expected an integer >= 2, got {self.n_folds!r}")
        if self.criterion not in ("R1+mAP", "mAP"):
            raise ImprovedError(f"criterion: expected 'R1+mAP' or 'mAP', got {self.criterion!r}")
        if min(self.max_positives, self.max_negatives) < 1:
            raise ImprovedError("max_positives, max_negatives: expected at least 1 pair each")

    def replace(self, **changes: Any) -> SelectionConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for provenance)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
