"""The improved mode's error type, its defaults (fallbacks of named options), and the selection's search space."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import StreidError


class ImprovedError(StreidError):
    """Bad input to the improved mode (names the argument or value and what was expected)."""


#: Counting rules of the likelihood-ratio model (docs/reference.md §12.1): faithful identity votes, every
#: cross-camera image pair (the paper's Eqn. 2), every image pair weighted ``1/(n_a·n_b)``.
COUNTINGS: tuple[str, ...] = ("identity", "image_pairs", "weighted_pairs")
#: The structural switches of the likelihood-ratio model that the selection may turn off (each one on by default).
STRUCTURE: tuple[str, ...] = ("direction_prior", "pair_prior", "background")
#: Where improved+re-rank takes its k-reciprocal neighbours from: the visual cosine alone, or the improved score.
RERANK_SOURCES: tuple[str, ...] = ("visual", "fused")
#: Fallback fusion weight without training features: ``w = DEFAULT_W · σ_s`` (the campus and synthetic-Market
#: calibrations give w/σ_s = 0.3-0.7).
DEFAULT_W: float = 0.5
#: Outlier fraction ρ of the likelihood ratio: the floor ``log ρ`` of the evidence (nats).
DEFAULT_OUTLIER: float = 0.01
#: Fallback of improved+re-rank without training features: fused neighbours, ``β = DEFAULT_RERANK_B · σ_F`` (small:
#: it may only reorder near-ties of F).
DEFAULT_RERANK_SOURCE: str = "fused"
DEFAULT_RERANK_B: float = 1.0


@dataclass(frozen=True, kw_only=True)
class SelectionConfig:
    """The search of :func:`~.selection.select_hyperparameters` (docs/reference.md §12.1): a coordinate ascent over
    ``countings``; σ (a walk on ``sigmas`` from ``sigma0``, bins); each ``structure`` switch; the weight's multiplier
    (walk on ``w_scales`` from ``w_scale0``); re-ranking's ``rerank_sources`` × ``rerank_b``. ``n_folds`` identity
    folds (``seed``), ``max_positives``/``max_negatives`` calibration pairs per fold, ``criterion`` "R1+mAP" or "mAP".
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

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (for provenance)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
