"""Item-item nearest neighbours: cosine similarity of items over the users who touched them.

Sarwar et al., "Item-based collaborative filtering recommendation algorithms", WWW 2001.

Fit: a binary user x item matrix ``X`` (one row per training timeline, 1 where the user has
any event on the item), co-occurrence counts ``C = X^T X`` and the cosine

    sim(i, j) = C[i, j] / (sqrt(n_i * n_j) + shrinkage),   n_i = users of item i,

without the diagonal. Only the ``neighbours`` most similar items of each item are kept, so
the model takes O(n_items * neighbours) memory. ``C`` is computed in blocks of item rows
sized by their number of products, never as one dense matrix. With target actions
(``split.target_actions``, e.g. purchases) the columns are the items of those events: ``C =
X^T Y`` with ``Y`` the binary user x item matrix of target events, ``n_j`` the users with
such an event on ``j``, and the diagonal kept (buying the item one viewed).

Score: ``score(j) = sum over history items i of w_i * sim(i, j) + backoff_weight * pop[j]``,
with ``w_i = decay**age`` (``age`` = how many item events ago, 0 for the last one), over the
last ``max_history`` item events, and ``pop[j]`` the share of training item events on ``j``
(of target events, with target actions). With the default tiny ``backoff_weight`` the
neighbours decide the order, and items that are no neighbour of the history (all items, for
an empty history) follow in popularity order, as in ``markov``; only a neighbour score below
``backoff_weight * pop`` (an old history item's, under a strong ``recency_decay``) can rank
below a popular item that is no neighbour. One batch is one sparse matmul
``(H @ S)[:, start:stop]``.

Deviations: repeated events on an item in the history add up (each occurrence has its own
recency weight); ties of the top-k neighbour cut keep the lower item id.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped, unused-ignore]

from behaviorlm.config import check_finite
from behaviorlm.models.base import Recommender, target_events
from behaviorlm.schema import F32, Bool, Int, Sequences

#: Upper bound on the scalar products of one block of ``X^T X`` (bounds its memory).
BLOCK_PRODUCTS = 1 << 24


@dataclass(frozen=True, kw_only=True)
class ItemKNNConfig:
    """Settings of :class:`ItemKNN`.

    Attributes
    ----------
    neighbours : int
        Most similar items kept per item.
    shrinkage : float
        Added to the cosine's denominator; damps similarities supported by few users.
    max_history : int, optional
        Score from only the last ``max_history`` item events of a history (``None`` = all).
    recency_decay : float
        Weight ``decay**age`` of a history event ``age`` item events before the last one;
        1.0 weighs all events alike.
    backoff_weight : float
        Weight of the popularity share added to every score: orders the items that no
        history item has as a neighbour (0 leaves them tied, in item id order).

    Examples
    --------
    >>> ItemKNNConfig(neighbours=20).neighbours
    20
    """

    neighbours: int = 100
    shrinkage: float = 0.0
    max_history: int | None = None
    recency_decay: float = 1.0
    backoff_weight: float = 1e-6

    def __post_init__(self) -> None:
        check_finite(self)
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be at least 1, got {self.neighbours}")
        if self.shrinkage < 0:
            raise ValueError(f"shrinkage must be non-negative, got {self.shrinkage}")
        if self.max_history is not None and self.max_history < 1:
            raise ValueError(f"max_history must be at least 1, got {self.max_history}")
        if not 0.0 < self.recency_decay <= 1.0:
            raise ValueError(f"recency_decay must be in (0, 1], got {self.recency_decay}")
        if self.backoff_weight < 0:
            raise ValueError(f"backoff_weight must be non-negative, got {self.backoff_weight}")


def top_k_per_row(rows: Int, cols: Int, vals: F32, k: int) -> tuple[Int, Int, F32]:
    """Keep the ``k`` largest values of every row of a sparse matrix given as triplets.

    Ties keep the lower column. Returns the kept triplets sorted by row, then value descending.

    Examples
    --------
    >>> r, c, v = top_k_per_row(
    ...     np.array([0, 0, 0, 1]), np.array([1, 2, 3, 0]), np.array([0.5, 0.9, 0.5, 1.0]), 2
    ... )
    >>> r.tolist(), c.tolist(), [round(float(x), 2) for x in v]
    ([0, 0, 1], [2, 1, 0], [0.9, 0.5, 1.0])
    """
    vals = vals.astype(np.float32, copy=False)
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    # rank of each entry within its row = position - position of the row's first entry
    first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, dtype=bool)
    starts = np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
    keep = np.arange(len(rows)) - starts < k
    return rows[keep], cols[keep], vals[keep]


def history_matrix(
    histories: Sequences, n_items: int, max_history: int | None, decay: float
) -> Any:
    """(R, n_items + 1) sparse weights of the history items of each row (CSR, float32).

    Items outside ``1..n_items`` (padding, searches, items unknown to the model) are skipped.

    Examples
    --------
    >>> H = history_matrix(Sequences.from_lists([[1, 2, 1]], n_items=3), 3, None, 0.5)
    >>> H.toarray().tolist()
    [[0.0, 1.25, 0.5, 0.0]]
    """
    mask = (histories.items > 0) & (histories.items <= n_items)
    rows = histories.row_of_event[mask]
    items = histories.items[mask]
    counts = np.bincount(rows, minlength=len(histories))
    ends = np.cumsum(counts)
    # age 0 = the row's last item event, 1 = the one before, ...
    age = np.repeat(ends, counts) - 1 - np.arange(len(items))
    if max_history is not None:
        recent = age < max_history
        rows, items, age = rows[recent], items[recent], age[recent]
    weights = np.power(np.float32(decay), age.astype(np.float32))
    shape = (len(histories), n_items + 1)
    return sp.csr_matrix((weights.astype(np.float32), (rows, items)), shape=shape)


def user_items(train: Sequences, events: Bool) -> Any:
    """The binary (rows x n_items + 1) CSR matrix of which row had ``events`` on which item
    (repeats collapse to one): its column counts are each item's users, its row counts
    each row's items.

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2, 1], [3]], n_items=3)
    >>> X = user_items(s, s.items > 0)
    >>> X.toarray().tolist(), X.getnnz(axis=0).tolist(), X.getnnz(axis=1).tolist()
    ([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], [0, 1, 1, 1], [2, 1])
    """
    n = train.n_items + 1
    keys = np.unique(train.row_of_event[events] * n + train.items[events])
    ones = np.ones(len(keys), dtype=np.float32)
    return sp.csr_matrix((ones, (keys // n, keys % n)), shape=(len(train), n))


class ItemKNN(Recommender):
    """Item-item cosine neighbours, scored by summing the neighbours of the history items.

    Examples
    --------
    >>> train = Sequences.from_lists([[1, 2], [1, 2], [3, 4]], n_items=4)
    >>> model = ItemKNN(ItemKNNConfig(backoff_weight=0.0)).fit(train)
    >>> model.score(Sequences.from_lists([[1]], n_items=4)).round(3).tolist()
    [[0.0, 1.0, 0.0, 0.0]]
    >>> ItemKNN(ItemKNNConfig(backoff_weight=1.0)).fit(train).score(
    ...     Sequences.from_lists([[]], n_items=4)).tolist()  # popularity
    [[0.3333333432674408, 0.3333333432674408, 0.1666666716337204, 0.1666666716337204]]
    """

    name: ClassVar[str] = "itemknn"
    config_class: ClassVar[type[ItemKNNConfig]] = ItemKNNConfig
    config: ItemKNNConfig

    def __init__(self, config: ItemKNNConfig) -> None:
        super().__init__(config)
        self.similarity: Any = sp.csr_matrix((1, 1), dtype=np.float32)
        self.popularity: F32 = np.zeros(1, dtype=np.float32)

    def fit(self, train: Sequences, target_actions: Sequence[int] = ()) -> Self:
        """Compute the top-k cosine neighbours of every item; with ``target_actions``, the
        neighbours ``j`` of an item ``i`` are items of those actions' events, by the users
        who touched ``i`` and did such an event on ``j`` (``j = i`` too: buying the item
        just viewed is what such a model learns)."""
        n = train.n_items + 1
        target = target_events(train, target_actions)
        X = user_items(train, train.items > 0)  # who touched what: the history side
        Y = X if not len(target_actions) else user_items(train, target)
        XT = X.T.tocsr()
        norm = np.sqrt(X.getnnz(axis=0).astype(np.float32))
        target_norm = np.sqrt(Y.getnnz(axis=0).astype(np.float32))
        # products that row i of C costs: sum over its users of their number of target items
        work = np.asarray(XT @ Y.getnnz(axis=1).astype(np.float64)).ravel()
        # cut item rows into blocks of at most BLOCK_PRODUCTS products (at least one row each)
        block_of = (np.cumsum(work) // BLOCK_PRODUCTS).astype(np.int64)
        bounds = np.flatnonzero(np.r_[True, block_of[1:] != block_of[:-1], True])
        parts: list[tuple[Int, Int, F32]] = []
        for lo, hi in itertools.pairwise(bounds.tolist()):
            block = (XT[lo:hi] @ Y).tocoo()
            rows = block.row.astype(np.int64) + lo
            cols = block.col.astype(np.int64)
            kept = rows != cols if not len(target_actions) else np.ones(len(rows), dtype=bool)
            rows, cols = rows[kept], cols[kept]
            counts = block.data[kept].astype(np.float32)
            sims = counts / (norm[rows] * target_norm[cols] + np.float32(self.config.shrinkage))
            parts.append(top_k_per_row(rows, cols, sims, self.config.neighbours))
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        cols = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        sims = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, dtype=np.float32)
        self.n_items = train.n_items
        events = np.bincount(train.items[target], minlength=n).astype(np.float64)
        self.popularity = (events / max(1.0, events.sum())).astype(np.float32)
        self.similarity = sp.csr_matrix((sims, (rows, cols)), shape=(n, n), dtype=np.float32)
        self.similarity.sort_indices()
        return self

    def score(self, histories: Sequences, items: slice | None = None) -> F32:
        """(R, stop - start) summed similarities of the history items to each item."""
        start, stop = self.item_range(items)
        H = history_matrix(
            histories, self.n_items, self.config.max_history, self.config.recency_decay
        )
        # CSR @ CSR needs no format conversion; the sparse (R, n_items + 1) product is small
        # (at most history length x neighbours entries per row), so slice it, not the matrix
        scores = np.asarray((H @ self.similarity)[:, start:stop].toarray(), dtype=np.float32)
        scores += np.float32(self.config.backoff_weight) * self.popularity[start:stop]
        return scores

    def state(self) -> dict[str, np.ndarray]:
        """The neighbour matrix in CSR form: ``indptr``, ``indices`` (int64), ``data``
        (float32); and ``popularity``."""
        S = self.similarity
        return {
            "indptr": S.indptr.astype(np.int64),
            "indices": S.indices.astype(np.int64),
            "data": S.data.astype(np.float32),
            "popularity": self.popularity,
        }

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the neighbour matrix from the arrays written by :meth:`state`."""
        held: dict[str, np.ndarray] = {
            k: arrays[k] for k in ("indptr", "popularity") if k in arrays
        }
        self.check_rows(held, indptr=1)
        n = len(arrays["indptr"]) - 1
        self.similarity = sp.csr_matrix(
            (arrays["data"].astype(np.float32), arrays["indices"], arrays["indptr"]), shape=(n, n)
        )
        # an artifact saved before the backoff has no popularity: its scores stay as they were
        popularity = arrays.get("popularity")
        self.popularity = (
            popularity.astype(np.float32) if popularity is not None else np.zeros(n, np.float32)
        )
