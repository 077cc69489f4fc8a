"""Rank the score rows of a features file chunk by chunk: the one loop below the evaluation and improved mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .features import FeatureSet
from .joint import DEFAULT_METRIC, ROWS, ChunkScorer, JointMetric, check_rows, iter_score_chunks
from .metrics import RankingProtocol, iter_row_chunks, rank_chunks
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
    if extra is None:
        chunks = iter_score_chunks(fs, model, metric, rows, chunk_size, columns=protocol.columns, rank_only=True)
        return rank_chunks(chunks, fs.query, protocol, rows, threads)
    # iter_score_chunks' three stages, with the extra rows fed the chunk's cosine.
    scorer = ChunkScorer(fs, model, metric, rows, protocol.columns, True)

    def chunks_with_extra():
        for sl in iter_row_chunks(len(fs.query), int(chunk_size)):
            s = scorer.similarity(sl)
            scores = scorer.fuse(s, scorer.st_lookup(sl))
            scores.update(extra(sl, s))
            yield sl, scores

    return rank_chunks(chunks_with_extra(), fs.query, protocol, [*rows, *extra.rows], threads)
