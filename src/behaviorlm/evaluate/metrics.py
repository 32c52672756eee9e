"""Full-ranking metrics as pure vectorised functions.

Every accuracy metric takes a matrix of ranked lists ``ranked`` (R, Kmax) int64, best
first, item 0 = padding, and the targets of each row in CSR form (``target_offsets``
(R + 1,), ``targets`` (T,)), and returns one value per row (R,) float64; a caller averages.
Relevance is binary: an item is relevant to a row when it is one of the row's targets.
Repeated targets of a row count once, target id 0 (no item) never counts, and rows without
a relevant target score 0 on every accuracy metric.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from behaviorlm.schema import Bool, Int

F64 = npt.NDArray[np.float64]
#: Up to this many targets per row, hits are found by direct comparison, else by binary search.
DENSE_TARGETS = 16


def relevance(ranked: Int, target_offsets: Int, targets: Int) -> tuple[Bool, Int]:
    """Which ranked entries are targets, and how many distinct targets every row has.

    Returns
    -------
    hits : (R, Kmax) bool
        ``hits[r, j]`` is true when ``ranked[r, j]`` is a target of row ``r`` (never for 0).
    n_relevant : (R,) int64
        Distinct target items (> 0) of each row.

    Examples
    --------
    >>> hits, n = relevance(np.array([[3, 1], [2, 0]]), np.array([0, 2, 3]), np.array([1, 1, 5]))
    >>> hits.tolist(), n.tolist()
    ([[False, True], [False, False]], [1, 1])
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2 or len(target_offsets) != ranked.shape[0] + 1:
        raise ValueError(
            f"ranked must be (R, K) with R + 1 target offsets, got {ranked.shape} and "
            f"{len(target_offsets)} offsets"
        )
    R = ranked.shape[0]
    counts = np.diff(target_offsets)
    target_rows = np.repeat(np.arange(R, dtype=np.int64), counts)
    valid = targets > 0
    width = int(max(ranked.max(initial=0), targets.max(initial=0))) + 1
    # one integer key per (row, item) pair; unique keys dedupe repeated targets
    keys = np.unique(target_rows[valid] * width + targets[valid])
    n_relevant = np.bincount(keys // width, minlength=R).astype(np.int64)
    most = int(counts.max(initial=0))
    if most <= DENSE_TARGETS:
        # few targets per row (leave-one-out has one): compare against each target column
        padded = np.full((R, most), -1, dtype=np.int64)
        padded[target_rows, np.arange(len(targets)) - np.repeat(target_offsets[:-1], counts)] = (
            np.where(valid, targets, -1)
        )
        hits = np.zeros(ranked.shape, dtype=bool)
        for j in range(most):
            hits |= ranked == padded[:, j : j + 1]
    elif len(keys):
        query = np.arange(R, dtype=np.int64)[:, None] * width + ranked  # (R, Kmax)
        pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        hits = keys[pos] == query
    else:
        hits = np.zeros(ranked.shape, dtype=bool)
    return hits & (ranked > 0), n_relevant


def _top(ranked: Int, k: int) -> Int:
    if k < 1 or k > ranked.shape[1]:
        raise ValueError(f"k must be in 1..{ranked.shape[1]} (the list length), got {k}")
    return np.asarray(ranked, dtype=np.int64)[:, :k]


def hit_rate(ranked: Int, target_offsets: Int, targets: Int, k: int) -> F64:
    """(R,) 1.0 where any of the top ``k`` is a target, else 0.0 (HR@k).

    Examples
    --------
    >>> hit_rate(np.array([[3, 1], [2, 4]]), np.array([0, 1, 2]), np.array([1, 5]), 2).tolist()
    [1.0, 0.0]
    """
    hits, _ = relevance(_top(ranked, k), target_offsets, targets)
    return np.asarray(hits.any(axis=1), dtype=np.float64)


def recall(ranked: Int, target_offsets: Int, targets: Int, k: int) -> F64:
    """(R,) share of a row's distinct targets found in its top ``k`` (Recall@k).

    Examples
    --------
    >>> recall(np.array([[3, 1]]), np.array([0, 2]), np.array([1, 5]), 2).tolist()
    [0.5]
    """
    hits, n = relevance(_top(ranked, k), target_offsets, targets)
    return _ratio(hits.sum(axis=1).astype(np.float64), n.astype(np.float64))


def mrr(ranked: Int, target_offsets: Int, targets: Int, k: int) -> F64:
    """(R,) 1 / rank of the first target within the top ``k``, 0 when none (MRR@k).

    Examples
    --------
    >>> mrr(np.array([[3, 1], [2, 4]]), np.array([0, 1, 2]), np.array([1, 5]), 2).tolist()
    [0.5, 0.0]
    """
    hits, _ = relevance(_top(ranked, k), target_offsets, targets)
    first = hits.argmax(axis=1)
    out: F64 = np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return out


def ndcg(ranked: Int, target_offsets: Int, targets: Int, k: int) -> F64:
    """(R,) normalised discounted cumulative gain at ``k`` with binary relevance (NDCG@k).

    ``DCG = sum over hits at rank j (1-based) of 1 / log2(j + 1)``; the ideal DCG puts
    ``min(k, n_targets)`` hits at ranks ``1, 2, ...``.

    Examples
    --------
    >>> ndcg(np.array([[3, 1]]), np.array([0, 1]), np.array([1]), 2).round(4).tolist()
    [0.6309]
    """
    hits, n = relevance(_top(ranked, k), target_offsets, targets)
    discount = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))  # (k,)
    dcg = hits.astype(np.float64) @ discount
    ideal = np.r_[0.0, np.cumsum(discount)][np.minimum(n, k)]
    return _ratio(dcg, ideal)


def coverage(ranked: Int, n_items: int, k: int) -> float:
    """Share of the catalogue ``1..n_items`` that appears in any top-``k`` list (padding aside).

    Examples
    --------
    >>> coverage(np.array([[1, 2], [1, 0]]), n_items=4, k=2)
    0.5
    """
    top = _top(ranked, k)
    distinct = np.unique(top[top > 0])
    return float(len(distinct)) / max(1, n_items)


def mean_popularity(ranked: Int, popularity: npt.ArrayLike, k: int) -> float:
    """Mean ``popularity[item]`` over all recommended (non-padding) entries of the top ``k``.

    ``popularity`` is indexed by item id (index 0 unused), e.g. each item's share of the
    training events. Returns 0.0 when nothing was recommended.

    Examples
    --------
    >>> round(mean_popularity(np.array([[1, 2], [1, 0]]), np.array([0.0, 0.5, 0.2, 0.3]), k=2), 4)
    0.4
    """
    top = _top(ranked, k)
    items = top[top > 0]
    if not len(items):
        return 0.0
    return float(np.asarray(popularity, dtype=np.float64)[items].mean())


def _ratio(numerator: F64, denominator: F64) -> F64:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
