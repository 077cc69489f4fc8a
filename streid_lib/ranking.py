"""Rank the score rows of a features file chunk by chunk: the one loop below the evaluation and improved mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .features import FeatureSet
from .joint import DEFAULT_METRIC, ROWS, JointMetric, check_rows, iter_score_chunks
from .metrics import RankingProtocol, rank_chunks
from .st_model import SpatialTemporalModel


def rank_rows(
    fs: FeatureSet,
    model: SpatialTemporalModel,
    metric: JointMetric = DEFAULT_METRIC,
    rows: Sequence[str] = ROWS,
    chunk_size: int = 256,
    threads: int = 1,
    extra: Any = None,
) -> dict[str, Any]:
    """``{row: RankingResult}`` of the selected rows, chunk by chunk, sharing each chunk's ST index and good/junk
    items (§8). ``extra`` adds rows from the chunk's cosine: ``extra.rows`` and ``extra(sl, s) -> {row: scores}`` on
    the protocol's columns (e.g. :class:`streid_lib.improved.ImprovedRows`); ``threads``: :func:`~.metrics.rank_chunks`.
    """
    rows = check_rows(rows)
    protocol = RankingProtocol(fs.gallery)
    chunks = iter_score_chunks(fs, model, metric, rows, chunk_size, protocol.columns, rank_only=True, extra=extra)
    return rank_chunks(chunks, fs.query, protocol, [*rows, *(() if extra is None else extra.rows)], threads)
