"""First-order Markov chain over items: what follows the last item, backed off to popularity.

Fit: counts ``c[i, j]`` of item ``j`` directly following item ``i`` on a user timeline
(events without an item are skipped first; with ``drop_repeats`` consecutive events on the
same item, e.g. view -> cart -> purchase of one product, collapse into one), kept as a sparse
CSR matrix, and the popularity ``pop[j]`` = share of item events on ``j``. With target
actions (``split.target_actions``, e.g. purchases) only transitions into their events count,
repeats kept, and ``pop`` is their share.

Score, with ``l`` the last item of the history, ``T_l = sum_j c[l, j]``, ``s`` = smoothing
and ``b`` = backoff_weight:

    P(j | l)  = (c[l, j] + s * pop[j]) / (T_l + s)
    score(j)  = P(j | l) + b * pop[j] / (T_l + s)           (T_l + s read as 1 when it is 0)

The backoff is ``b`` pseudo-counts of popularity outside the normaliser. With the default
``b = 0.5`` (any ``b`` of at most 1 does the same) no item's popularity adds a whole count,
so without smoothing transitions decide the order, items with equal counts follow in
popularity order, and so do the items never seen after ``l``; an empty history gets
popularity. Scaled by the row's normaliser, the backoff stays within float32's precision
beside the transition counts (an absolute ``1e-6 * pop[j]`` fell below it, and equal counts
tied by item id). The smoothing is a Dirichlet prior centred on popularity rather than
additive (add-alpha) smoothing, which would add the same constant to every item and not
change the ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np

from behaviorlm.config import check_finite
from behaviorlm.models.base import Recommender, target_events
from behaviorlm.schema import F32, Int, Sequences


@dataclass(frozen=True, kw_only=True)
class MarkovConfig:
    """Settings of :class:`Markov`.

    Attributes
    ----------
    smoothing : float
        Prior mass ``s`` pulling ``P(j | l)`` towards popularity; 0 = raw transition frequencies.
    backoff_weight : float
        Pseudo-counts of popularity added to every item's transition count, outside the
        normaliser; at most 1 orders items with equal counts (and those without transitions)
        by popularity without ever outweighing a transition count.
    drop_repeats : bool
        Collapse consecutive events on the same item before counting transitions. Not with
        target actions (``split.target_actions``), whose transitions keep repeats: the
        purchase of the item just viewed is what such a model learns.

    Examples
    --------
    >>> MarkovConfig(smoothing=1.0).smoothing
    1.0
    """

    smoothing: float = 0.0
    backoff_weight: float = 0.5
    drop_repeats: bool = True

    def __post_init__(self) -> None:
        check_finite(self)
        if self.smoothing < 0:
            raise ValueError(f"smoothing must be non-negative, got {self.smoothing}")
        if self.backoff_weight < 0:
            raise ValueError(f"backoff_weight must be non-negative, got {self.backoff_weight}")


def last_items(histories: Sequences, n_items: int) -> Int:
    """(R,) the last item (``1..n_items``) of each row's history, 0 where it has none.

    Examples
    --------
    >>> last_items(Sequences.from_lists([[3, 1, 0], [], [2]], n_items=3), 3).tolist()
    [1, 0, 2]
    """
    mask = (histories.items > 0) & (histories.items <= n_items)
    rows = histories.row_of_event[mask]
    items = histories.items[mask]
    is_last = np.r_[rows[1:] != rows[:-1], True] if len(rows) else np.zeros(0, dtype=bool)
    out = np.zeros(len(histories), dtype=np.int64)
    out[rows[is_last]] = items[is_last]
    return out


class Markov(Recommender):
    """Transition probabilities from the last history item, plus a little popularity.

    Examples
    --------
    >>> train = Sequences.from_lists([[1, 2, 3], [1, 2], [3, 3]], n_items=3)
    >>> model = Markov(MarkovConfig(backoff_weight=0.0)).fit(train)
    >>> model.score(Sequences.from_lists([[1], [2]], n_items=3)).tolist()
    [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """

    name: ClassVar[str] = "markov"
    config_class: ClassVar[type[MarkovConfig]] = MarkovConfig
    config: MarkovConfig

    def __init__(self, config: MarkovConfig) -> None:
        super().__init__(config)
        self.indptr: Int = np.zeros(2, dtype=np.int64)
        self.indices: Int = np.zeros(0, dtype=np.int64)
        self.counts: F32 = np.zeros(0, dtype=np.float32)
        self.totals: F32 = np.zeros(1, dtype=np.float32)
        self.popularity: F32 = np.zeros(1, dtype=np.float32)

    def fit(self, train: Sequences, target_actions: Sequence[int] = ()) -> Self:
        """Count transitions between consecutive item events of every timeline; with
        ``target_actions``, only those into an event of them (from the item event before
        it, of any action; repeats are kept, since buying the item just viewed is what such
        a model learns), and the popularity of those events."""
        n = train.n_items + 1
        mask = train.items > 0
        rows = train.row_of_event[mask]
        items = train.items[mask]
        target = target_events(train, target_actions)[mask]
        popularity = np.bincount(items[target], minlength=n).astype(np.float64)
        self.popularity = (popularity / max(1.0, popularity.sum())).astype(np.float32)
        if self.config.drop_repeats and len(items) and not len(target_actions):
            repeat = np.r_[False, (rows[1:] == rows[:-1]) & (items[1:] == items[:-1])]
            rows, items, target = rows[~repeat], items[~repeat], target[~repeat]
        into = (rows[1:] == rows[:-1]) & target[1:]
        keys, counts = np.unique(items[:-1][into] * n + items[1:][into], return_counts=True)
        # np.unique sorts the keys: transitions come grouped by source item, targets ascending
        sources = keys // n
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(sources, minlength=n), out=self.indptr[1:])
        self.indices = (keys % n).astype(np.int64)
        self.counts = counts.astype(np.float32)
        self.totals = np.bincount(sources, weights=counts, minlength=n).astype(np.float32)
        self.n_items = train.n_items
        return self

    def score(self, histories: Sequences, items: slice | None = None) -> F32:
        """(R, stop - start) ``(c[l, j] + (s + b) * pop[j]) / (T_l + s)`` for each item j,
        with ``l`` the row's last item (module docstring)."""
        start, stop = self.item_range(items)
        s = np.float32(self.config.smoothing)
        last = last_items(histories, self.n_items)
        denominator = self.totals[last] + s
        inverse = np.divide(
            1.0, denominator, out=np.ones_like(denominator), where=denominator > 0
        ).astype(np.float32)
        pop = self.popularity[start:stop]
        # (R, n) smoothing prior and backoff, both pseudo-counts of popularity: one pass
        prior = (s + np.float32(self.config.backoff_weight)) * inverse
        scores: F32 = np.multiply.outer(prior, pop)
        # gather the observed transitions out of each row's last item that fall in the range
        lo, hi = self.indptr[last], self.indptr[last + 1]
        lengths = hi - lo
        row = np.repeat(np.arange(len(last), dtype=np.int64), lengths)
        index = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(
            int(lengths.sum()), dtype=np.int64
        )
        target = self.indices[index]
        inside = (target >= start) & (target < stop)
        row, index, target = row[inside], index[inside], target[inside]
        scores[row, target - start] += self.counts[index] * inverse[row]
        return scores

    def state(self) -> dict[str, np.ndarray]:
        """CSR transition counts ``indptr``, ``indices``, ``counts``; ``totals``, ``popularity``."""
        return {
            "indptr": self.indptr,
            "indices": self.indices,
            "counts": self.counts,
            "totals": self.totals,
            "popularity": self.popularity,
        }

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the arrays written by :meth:`state`."""
        names = ("indptr", "totals", "popularity")
        self.check_rows({k: arrays[k] for k in names}, indptr=1)
        self.indptr = np.asarray(arrays["indptr"], dtype=np.int64)
        self.indices = np.asarray(arrays["indices"], dtype=np.int64)
        self.counts = np.asarray(arrays["counts"], dtype=np.float32)
        self.totals = np.asarray(arrays["totals"], dtype=np.float32)
        self.popularity = np.asarray(arrays["popularity"], dtype=np.float32)
