"""The iterative k-core of an event log: minimum events per user and per item.

Rounds keep the textbook definition (each round drops the events of every user and item under
its minimum at the start of the round), but a round only looks at the users and items whose
counts the previous round lowered, so the work is proportional to the events dropped, not to
the events kept times the rounds: a long chain of users, each pushed under the minimum by the
last, peels in linear time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from behaviorlm.schema import Bool, Int


@dataclass(frozen=True)
class KCore:
    """What the k-core kept and why it dropped the rest.

    Attributes
    ----------
    keep : numpy.ndarray of bool
        Per event of the input, whether the k-core keeps it.
    rounds : int
        Rounds that dropped events (0 when nothing was under its minimum).
    by_item, by_user : int
        Events dropped because their item, or (their item being fine) their user, was under
        its minimum in the round that dropped them.
    users_before, users_after, items_before, items_after : int
        Users and items with events before and after the filter.
    """

    keep: Bool
    rounds: int
    by_item: int
    by_user: int
    users_before: int
    users_after: int
    items_before: int
    items_after: int


class RoundLimitError(Exception):
    """The k-core needed more rounds than allowed."""


def k_core(
    users: npt.NDArray[np.integer],
    items: npt.NDArray[np.integer],
    min_user_events: int,
    min_item_events: int,
    max_rounds: int | None = None,
) -> KCore:
    """Iterated minimum counts over events given as (user code, item code) pairs.

    Parameters
    ----------
    users : numpy.ndarray of int
        User code (``0..``) of each event.
    items : numpy.ndarray of int
        Item code (``0..``) of each event, ``-1`` for an event without an item (a search):
        it counts for its user, never for an item, and goes when its user goes.
    min_user_events, min_item_events : int
        Minimum events per user and per item; 1 or less keeps everything.
    max_rounds : int or None
        Raise :class:`RoundLimitError` when a round past this many would drop events.

    Returns
    -------
    KCore

    Examples
    --------
    >>> import numpy as np
    >>> core = k_core(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 2]), 2, 2)
    >>> core.keep.tolist(), core.rounds, core.by_item
    ([True, True, True, True, False], 1, 1)
    """
    n = len(users)
    uu = np.asarray(users, dtype=np.int64)
    ii = np.asarray(items, dtype=np.int64) + 1  # slot 0: no item, never too rare
    user_count, item_count = np.bincount(uu, minlength=1), np.bincount(ii, minlength=1)
    users_before = int(np.count_nonzero(user_count))
    items_before = int(np.count_nonzero(item_count[1:]))
    keep = np.ones(n, dtype=np.bool_)
    by_user_events, by_item_events = _Groups(uu, len(user_count)), _Groups(ii, len(item_count))
    low_users = _under(user_count, np.arange(len(user_count)), min_user_events)
    low_items = _under(item_count, np.arange(1, len(item_count)), min_item_events)
    rounds = by_item = by_user = 0
    while low_users.size or low_items.size:
        rounds += 1
        if max_rounds is not None and rounds > max_rounds:
            raise RoundLimitError(rounds)
        from_items = by_item_events.alive_members(low_items, keep)
        keep[from_items] = False
        from_users = by_user_events.alive_members(low_users, keep)
        keep[from_users] = False
        by_item += len(from_items)
        by_user += len(from_users)
        dropped = np.concatenate([from_items, from_users])
        low_users = _lowered(user_count, uu[dropped], min_user_events)
        low_items = _lowered(item_count, ii[dropped], min_item_events)
        low_items = low_items[low_items != 0]
    return KCore(
        keep=keep,
        rounds=rounds,
        by_item=by_item,
        by_user=by_user,
        users_before=users_before,
        users_after=int(np.count_nonzero(user_count)),
        items_before=items_before,
        items_after=int(np.count_nonzero(item_count[1:])),
    )


def _under(count: Int, codes: Int, minimum: int) -> Int:
    """The codes present with fewer than ``minimum`` events."""
    c = count[codes]
    return codes[(c > 0) & (c < minimum)]


def _lowered(count: Int, dropped: Int, minimum: int) -> Int:
    """Take the dropped events off ``count`` (in place); the codes they left under ``minimum``.

    A code under its minimum loses all its events in the round that finds it, so the codes
    under it after a round are among those the round lowered.
    """
    codes, times = np.unique(dropped, return_counts=True)
    count[codes] -= times
    return _under(count, codes, minimum)


class _Groups:
    """The events of each code, as one sorted index (a CSR layout)."""

    def __init__(self, codes: Int, n_codes: int) -> None:
        self.order = np.argsort(codes, kind="stable")
        self.starts = np.zeros(n_codes + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=n_codes), out=self.starts[1:])

    def alive_members(self, codes: Int, alive: Bool) -> Int:
        """The events of ``codes`` that ``alive`` still holds."""
        lo = self.starts[codes]
        sizes = self.starts[codes + 1] - lo
        total = int(sizes.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        first = np.cumsum(sizes) - sizes  # where each code's run starts in the output
        events = self.order[np.repeat(lo - first, sizes) + np.arange(total)]
        return events[alive[events]]
