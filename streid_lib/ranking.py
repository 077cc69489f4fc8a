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
    """Per-query metrics (:class:`streid_lib.metrics.RankingResult`) of each selected row, chunk by chunk.

    The rows of a chunk share everything that does not depend on the scores: the ST lookup index
    (:class:`streid_lib.joint.ChunkScorer`) and the protocol's good/junk items
    (:class:`streid_lib.metrics.RankingProtocol`, one :class:`~streid_lib.metrics.QueryChunk` per chunk). Only the
    gallery items that can take part in a ranking are scored (pid -1 items are junk for every query), and the ST
    row is ranked on the dense ranks of p (``rank_only``): both change no figure, only the work.

    ``extra`` adds rows computed from the same chunk's cosine: an object with ``rows`` (names) and
    ``extra(sl, s) -> {row: scores}`` on the protocol's columns (``s`` None when no faithful row needs the cosine),
    e.g. :class:`streid_lib.improved.ImprovedRows`. The faithful rows' figures do not depend on it.

    With ``threads > 1`` the rows of chunk i are ranked by worker threads while chunk i+1 is scored
    (:func:`streid_lib.metrics.rank_chunks`); each row's chunks still reach its accumulator in query order.
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


__all__ = ["rank_rows"]
