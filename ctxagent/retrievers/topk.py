"""Exact top-k selection over score matrices, shared by the retrievers."""

from __future__ import annotations

import numpy as np

# Queries are scored against this many corpus rows at a time, bounding the score matrix.
_SCORE_BLOCK = 65_536


def top_k_by_dot(matrix: np.ndarray, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Exact top-k rows of `matrix` by dot product with each query, best first. Scores the
    corpus in row blocks so memory stays bounded by block x queries, not corpus x queries."""
    n = matrix.shape[0]
    k = min(k, n)
    best_idx = np.empty((queries.shape[0], 0), dtype=np.int64)
    best_val = np.empty((queries.shape[0], 0), dtype=np.float32)
    for start in range(0, n, _SCORE_BLOCK):
        block = queries @ matrix[start : start + _SCORE_BLOCK].T  # (queries, block)
        part = _top_k_unsorted(block, k)
        best_idx = np.concatenate([best_idx, part + start], axis=1)
        best_val = np.concatenate([best_val, np.take_along_axis(block, part, axis=1)], axis=1)
    return _sorted_pairs(best_idx, best_val, k)


def top_k_rows(scores: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per row of a (queries, chunks) score matrix, the k best (column, score) pairs, best first."""
    part = _top_k_unsorted(scores, k)
    return _sorted_pairs(part, np.take_along_axis(scores, part, axis=1), k)


def _top_k_unsorted(scores: np.ndarray, k: int) -> np.ndarray:
    kk = min(k, scores.shape[1])
    if kk == scores.shape[1]:
        return np.broadcast_to(np.arange(kk), scores.shape).copy()
    return np.argpartition(-scores, kk - 1, axis=1)[:, :kk]


def _sorted_pairs(idx: np.ndarray, val: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    order = np.lexsort((idx, -val), axis=1)[:, :k] if idx.size else np.empty((idx.shape[0], 0), dtype=np.int64)
    idx = np.take_along_axis(idx, order, axis=1)
    val = np.take_along_axis(val, order, axis=1)
    return [[(int(i), float(v)) for i, v in zip(row_i, row_v)] for row_i, row_v in zip(idx, val)]
