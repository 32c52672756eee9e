"""Exposure: how likely a follower is to see what a user shares, learned from the log.

A share (or like) by U can only move a follower who sees it. Logs show who saw what through
a followee: a *social* view of the item (``source = social``). Each act of U is one trial per
follower (who already followed U at the time). A follower's social view of an item is
credited to one act: the latest act on that item, by anyone the follower follows, within
``horizon_s`` before the view; that act's trial is a hit. Every social act
(:data:`SOCIAL_ACTIONS`) competes for the credit, so a like does not take the credit for
what a share of the same item did. This is the static Bernoulli model of influence
probabilities learned from action logs (Goyal, Bonchi & Lakshmanan, WSDM 2010).

Users with few trials get an estimate shrunk toward the pooled rate, with a Beta prior whose
strength is fitted to the data (method of moments of the beta-binomial), so that a user with
one lucky share does not outrank one with a long record.

Predicted reach (:mod:`behaviorlm.explain.reach`) is then the sum over followers of the
chance to see the act times the model's uplift given that they see it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from behaviorlm.data.dataset import Dataset
from behaviorlm.schema import ACTIONS, F32, Int

#: Default window after an act in which a follower's social view of the item counts as seeing it.
HORIZON_S = 24 * 3600
#: Actions whose effect reaches the actor's followers; they compete for each social view.
SOCIAL_ACTIONS = ("share", "like")


@dataclass(frozen=True)
class Exposure:
    """Per user, the estimated chance that a follower sees an act of theirs.

    Attributes
    ----------
    action : int
        Code of the act (share, like).
    rate : (U + 1,) float32
        Estimate per internal user id (index 0 unused); the pooled rate for users with no
        trials.
    trials, hits : (U + 1,) int64
        Acts times followers at the time, and how many of those trials a social view was
        credited to.
    pooled : float
        All hits over all trials.
    strength : float
        Pseudo-trials of the prior (how far a short record is pulled toward ``pooled``).

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(200, seed=0))
    >>> exposure = estimate_exposure(ds, "share")
    >>> len(exposure.rate) == ds.n_users + 1, 0 < exposure.pooled < 1
    (True, True)
    """

    action: int
    rate: F32
    trials: Int
    hits: Int
    pooled: float
    strength: float

    def of(self, user: int) -> float:
        """Estimate for one internal user id (the pooled rate for a user not in the data)."""
        return float(self.rates(np.array([user]))[0])

    def relative(self) -> Exposure:
        """The rates over the pooled rate: how much more often than the average act a user's
        act is seen (1 for users with no trials).

        The factor for a model that reads followees' acts (``split.followee_actions``): the
        uplift of an act in a follower's timeline is learned from every follower the act
        reached in the log, seen or not, so it already holds the pooled rate.

        Examples
        --------
        >>> e = Exposure(action=8, rate=np.array([0.0, 0.1, 0.4], dtype=np.float32),
        ...              trials=np.zeros(3, dtype=np.int64), hits=np.zeros(3, dtype=np.int64),
        ...              pooled=0.2, strength=8.0)
        >>> e.relative().rates(np.array([1, 2, 99])).tolist()
        [0.5, 2.0, 1.0]
        """
        if self.pooled <= 0:  # no act of the kind is seen: the uplift holds that, factor 1
            return replace(self, rate=np.ones_like(self.rate), pooled=1.0)
        return replace(self, rate=(self.rate / self.pooled).astype(np.float32), pooled=1.0)

    def rates(self, users: Int) -> F32:
        """(N,) estimates for internal user ids (the pooled rate for users not in the data)."""
        users = np.asarray(users, dtype=np.int64)
        known = (users > 0) & (users < len(self.rate))
        out = np.full(len(users), self.pooled, dtype=np.float32)
        out[known] = self.rate[users[known]]
        return out


def estimate_exposure(
    dataset: Dataset,
    action: str = "share",
    *,
    view: str = "view",
    horizon_s: int | None = HORIZON_S,
) -> Exposure | None:
    """Learn each user's exposure rate for ``action`` from the data set's log.

    Parameters
    ----------
    dataset : Dataset
        Events with ``source`` and a follow graph.
    action : str
        The act whose reach is wanted (an action name of the data set).
    view : str
        The action by which followers see an item (a social view).
    horizon_s : int, optional
        How long after an act a social view can be credited to it, in seconds; None: any
        time after. A data set without real times (``meta["has_time"]`` false) has only the
        order of its rows, so there every social view of a followee's item counts, whatever
        the order, and follow dates are not checked.

    Returns
    -------
    Exposure or None
        None when the log cannot tell: no follow graph, no social views, no act with a
        follower, or no social view credited to any act.

    Raises
    ------
    DataError
        If ``action`` is not an action of the data set, or ``view`` names no action (a
        built-in one the data set lacks gives None: the log cannot tell).
    ValueError
        If ``horizon_s`` is negative.

    Examples
    --------
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.data.synthetic import simulate
    >>> ds = preprocess(simulate(300, seed=0))
    >>> exposure = estimate_exposure(ds, "share")
    >>> 0 < exposure.pooled < 1, exposure.rate.shape[0] == ds.n_users + 1
    (True, True)
    """
    code = dataset.action_code(action)
    if horizon_s is not None and horizon_s < 0:
        raise ValueError(f"horizon_s must be at least 0 seconds (or None: any), got {horizon_s}")
    vocab = dataset.vocab
    view = dataset.action_name(view)  # View is view
    if view not in vocab.get("action", []) and view not in ACTIONS:
        dataset.action_code(view)  # a name of no action at all: the data set's error
    if (
        view not in vocab.get("action", [])
        or "social" not in vocab.get("source", [])
        or dataset.follows.height == 0
    ):
        return None
    view_code = dataset.action_code(view)
    social = vocab["source"].index("social") + 1
    timed = bool(dataset.meta.get("has_time", True))
    competing = {code} | {dataset.action_code(a) for a in SOCIAL_ACTIONS if a in vocab["action"]}
    events = dataset.events.filter(pl.col("item").is_not_null() & (pl.col("item") > 0))
    trials = events.filter(pl.col("action").is_in(sorted(competing))).select(
        sharer="user", item="item", t="timestamp", act="action"
    )
    trials = trials.join(dataset.follows, left_on="sharer", right_on="followee")
    if timed:
        trials = trials.filter(pl.col("since").is_null() | (pl.col("since") <= pl.col("t")))
    trials = trials.select("sharer", "item", "t", "act", "follower").with_row_index("trial")
    seen = (
        events.filter((pl.col("source") == social) & (pl.col("action") == view_code))
        .select(follower="user", item="item", seen="timestamp")
        .with_row_index("view")
    )
    if seen.height == 0 or trials.filter(pl.col("act") == code).height == 0:
        return None
    pairs = trials.join(seen, on=["follower", "item"])
    if timed:
        after = pl.col("seen") > pl.col("t")
        if horizon_s is not None:
            after &= pl.col("seen") <= pl.col("t") + horizon_s
        pairs = pairs.filter(after)
    # each view is credited to one act: the latest before it (ties: the last trial)
    credited = pairs.sort(["view", "t", "trial"]).group_by("view").agg(pl.col("trial").last())
    ours = trials.filter(pl.col("act") == code)
    is_hit = ours["trial"].is_in(credited["trial"].implode()).to_numpy().astype(np.int64)
    sharer = ours["sharer"].to_numpy()
    size = dataset.n_users + 1
    n = np.bincount(sharer, minlength=size).astype(np.int64)
    h = np.bincount(sharer, weights=is_hit, minlength=size).astype(np.int64)
    if credited.height == 0:  # no social view comes after any act: the log cannot tell
        return None
    # views credited to other acts and none to this one: it is not seen (pooled rate 0)
    pooled = float(h.sum() / n.sum())
    strength = _prior_strength(n, h, pooled)
    rate = ((h + strength * pooled) / (n + strength)).astype(np.float32)
    rate[0] = 0.0
    return Exposure(action=code, rate=rate, trials=n, hits=h, pooled=pooled, strength=strength)


def _prior_strength(n: Int, h: Int, pooled: float, low: float = 1.0, high: float = 1e4) -> float:
    """Pseudo-trials ``a + b`` of the Beta prior, by the method of moments.

    Under the beta-binomial, a raw rate over ``n`` trials varies around the pooled rate ``p``
    by ``p (1 - p) / n + tau2 (n - 1) / n``: binomial noise plus the true spread ``tau2``
    between users, which gives ``a + b = p (1 - p) / tau2 - 1``.
    No measurable true spread (or one user) gives ``high``: everyone gets the pooled rate.
    """
    has = n > 0
    if has.sum() < 2 or not 0 < pooled < 1:
        return high
    raw = h[has] / n[has]
    weights = n[has] / n[has].sum()
    spread = float((weights * (raw - pooled) ** 2).sum())
    noise = pooled * (1 - pooled) * float((weights / n[has]).sum())
    tau2 = (spread - noise) / float((weights * (1 - 1 / n[has])).sum() or 1.0)
    if tau2 <= 0:
        return high
    return float(np.clip(pooled * (1 - pooled) / tau2 - 1, low, high))
