"""Global popularity: every user gets the same scores, the (weighted) event count of each item.

The reference point every other model has to beat. Options:

- ``window_seconds`` counts only events in the last window before the latest training
  timestamp (recent popularity, often much stronger than all-time popularity);
- ``action_weights`` weighs events by action code (e.g. a purchase counts more than a view).

Only events with an item (``item > 0``) count; search events carry item 0 and are ignored.
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
class PopConfig:
    """Settings of :class:`Pop`.

    Attributes
    ----------
    window_seconds : int, optional
        Count only events with ``timestamp > latest - window_seconds`` where ``latest`` is the
        latest timestamp in the training data. ``None`` counts all events.
    action_weights : tuple of float
        Weight of an event by action code: entry ``c - 1`` is the weight of code ``c``; codes
        beyond the tuple (and the default empty tuple) weigh 1.

    Examples
    --------
    >>> PopConfig(window_seconds=86_400).window_seconds
    86400
    """

    window_seconds: int | None = None
    action_weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_finite(self)
        if self.window_seconds is not None and self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {self.window_seconds}")
        if any(w < 0 for w in self.action_weights):
            raise ValueError(f"action_weights must be non-negative, got {self.action_weights}")


def action_weight(actions: Int, weights: tuple[float, ...]) -> F32:
    """(E,) weight of each event's action code; codes without an entry weigh 1.

    Examples
    --------
    >>> action_weight(np.array([1, 4, 9]), (1.0, 1.0, 1.0, 5.0)).tolist()
    [1.0, 5.0, 1.0]
    """
    # table[c] = weight of code c; code 0 (unknown) and codes past the tuple weigh 1
    size = max(len(weights) + 1, int(actions.max(initial=0)) + 1)
    table = np.ones(size, dtype=np.float32)
    table[1 : len(weights) + 1] = weights
    return table[actions]


class Pop(Recommender):
    """Most popular items first, whatever the history.

    Examples
    --------
    >>> model = Pop(PopConfig()).fit(Sequences.from_lists([[1, 2], [2, 3], [2]], n_items=3))
    >>> model.score(Sequences.from_lists([[], [1]], n_items=3)).tolist()
    [[1.0, 3.0, 1.0], [1.0, 3.0, 1.0]]
    """

    name: ClassVar[str] = "pop"
    config_class: ClassVar[type[PopConfig]] = PopConfig
    config: PopConfig

    def __init__(self, config: PopConfig) -> None:
        super().__init__(config)
        self.popularity: F32 = np.zeros(1, dtype=np.float32)

    def fit(self, train: Sequences, target_actions: Sequence[int] = ()) -> Self:
        """Count (weighted) item events (of the target actions, where given), within the
        recent window if one is set."""
        keep = target_events(train, target_actions)
        if self.config.window_seconds is not None and len(train.timestamps):
            latest = int(train.timestamps.max())
            keep &= train.timestamps > latest - self.config.window_seconds
        weights = action_weight(train.actions[keep], self.config.action_weights)
        self.n_items = train.n_items
        self.popularity = np.bincount(
            train.items[keep], weights=weights, minlength=train.n_items + 1
        ).astype(np.float32)
        self.popularity[0] = 0.0
        return self

    def score(self, histories: Sequences, items: slice | None = None) -> F32:
        """(R, stop - start) the popularity of each item, the same for every row."""
        start, stop = self.item_range(items)
        return np.repeat(self.popularity[None, start:stop], len(histories), axis=0)

    def state(self) -> dict[str, np.ndarray]:
        """``popularity``: (n_items + 1,) float32 weighted counts (index 0 unused)."""
        return {"popularity": self.popularity}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the counts written by :meth:`state`."""
        self.check_rows({"popularity": arrays["popularity"]})
        self.popularity = np.asarray(arrays["popularity"], dtype=np.float32)
