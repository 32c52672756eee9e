"""Weighted draws within groups, many at once: the one sampling primitive of the simulator.

A :class:`GroupSampler` holds members split into groups (items by category, local items by
city, a user's categories by user, ...) with a weight each. ``sample(groups, rng)`` draws one
member of each requested group with probability proportional to its weight, for any number of
draws in one ``searchsorted`` call.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from behaviorlm.schema import Bool, Int

F64 = npt.NDArray[np.float64]


class GroupSampler:
    """Draw group members proportionally to their weights, vectorised over draws.

    Parameters
    ----------
    groups : (M,) int
        Group of every member, in ``0..n_groups - 1``.
    weights : (M,) float
        Non-negative weights; members with weight 0 are never drawn.
    n_groups : int
        Number of groups (some may be empty).
    values : (M,) int, optional
        What a draw returns for each member (default: the member's index).

    Notes
    -----
    Members are sorted by group and each group's cumulative weights are scaled to ``(0, 1]``
    and shifted by the group number, so one sorted key array serves every group: a draw for
    group ``g`` with ``u`` uniform in ``(0, 1]`` is the first key ``>= g + u``.

    Examples
    --------
    >>> s = GroupSampler(np.array([0, 0, 1]), np.array([1.0, 0.0, 2.0]), 3)
    >>> s.sample(np.array([0, 1, 2, 0]), np.random.default_rng(0)).tolist()
    [0, 2, -1, 0]
    """

    def __init__(self, groups: Int, weights: F64, n_groups: int, values: Int | None = None) -> None:
        groups = np.asarray(groups, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        if values is None:
            values = np.arange(len(groups), dtype=np.int64)
        keep = weights > 0
        order = np.flatnonzero(keep)[np.argsort(groups[keep], kind="stable")]
        g = groups[order]
        w = weights[order]
        self.values: Int = np.asarray(values, dtype=np.int64)[order]
        self.counts: Int = np.bincount(g, minlength=n_groups).astype(np.int64)
        self.starts: Int = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(self.counts, out=self.starts[1:])
        totals = np.bincount(g, weights=w, minlength=n_groups)
        cum = np.cumsum(w)
        before = np.concatenate([[0.0], cum])[self.starts[:-1]]
        frac = (cum - before[g]) / totals[g]
        frac[self.starts[1:][self.counts > 0] - 1] = 1.0
        self.keys: F64 = g + frac

    @property
    def n_groups(self) -> int:
        return len(self.counts)

    def nonempty(self, groups: Int) -> Bool:
        """Whether each requested group has a member to draw."""
        return np.asarray(self.counts[groups] > 0)

    def sample(self, groups: Int, rng: np.random.Generator) -> Int:
        """One weighted draw from each of ``groups``; ``-1`` where a group has no members."""
        groups = np.asarray(groups, dtype=np.int64)
        u = 1.0 - rng.random(len(groups))
        pos = np.searchsorted(self.keys, groups + u, side="left")
        # guards against rounding at group edges; empty groups are masked below
        pos = np.clip(pos, self.starts[groups], np.maximum(self.starts[groups + 1] - 1, 0))
        out = (
            self.values[np.minimum(pos, max(len(self.values) - 1, 0))] if len(self.values) else pos
        )
        return np.where(self.counts[groups] > 0, out, -1).astype(np.int64)
