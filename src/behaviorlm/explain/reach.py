"""Social reach: how much a share or like by one user moves the people who follow them.

A share by U reaches U's followers as a social view of the item (action "view", source "social"), as
in the simulator and in logs that record social exposure. For every follower the item is appended to
their timeline as such an event and both timelines are scored: the follower's *uplift* is the rise
in the probability that the item is their next item (softmax over the catalogue), given that they
see it. Not every follower sees every share: U's *exposure* (:mod:`behaviorlm.explain.exposure`,
learned from the log) is the chance that one does, and U's predicted *reach* is the sum over the
followers of exposure times uplift, each held to [-1, 1] (a follower engages once or not: a change
of probability), the expected number of extra engagements; it never exceeds the number of followers.
A model that reads followees' acts (``behaviorlm.data.feed``) gets the act itself instead, as a
followee event (``action`` and ``source`` of the functions below); its uplift then already averages
over whether the follower sees it, and the exposure enters relative to the pooled rate
(``behaviorlm.explain.artifacts.Reaching``).

Followers are scored in batches; :func:`rank_by_reach` scores each distinct follower once
and adds the uplifts per followee, so ranking every user of a data set costs one pass over
the followers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from behaviorlm.explain.exposure import Exposure
from behaviorlm.explain.influence import Event, append_event, log_softmax
from behaviorlm.explain.target import neural
from behaviorlm.models.base import Recommender
from behaviorlm.recommend import in_catalogue
from behaviorlm.schema import ACTIONS, F32, SOCIAL_SOURCE, Int, Sequences

#: Action code of a view in the built-in coding (how a shared item reaches a follower).
VIEW_ACTION = ACTIONS.index("view") + 1


@dataclass(frozen=True)
class Reach:
    """Per-follower uplift of one item, the sharer's exposure and the predicted reach.

    Attributes
    ----------
    item : int
        The shared item.
    users : (F,) int64
        Internal ids of the followers.
    uplift : (F,) float32
        Each follower's probability of the item as next item, after minus before, given
        that they see the share.
    reach : float
        The sum over the followers of ``exposure`` times the uplift, each held to [-1, 1]
        (:func:`expected_engagements`; the expected number of extra engagements); the sum of
        the uplifts when the exposure is unknown.
    exposure : float or None
        Weight of each uplift (:func:`expected_engagements`): the chance that a follower sees the
        share, or that chance relative to the pooled rate (:func:`social_reach`); None: unknown
        (every follower is counted).
    followee_event : bool
        The act entered each follower's timeline as the followee's act itself (a model that
        reads followees' acts), so each uplift already averages over whether the follower
        sees it; otherwise as the follower's view of the item, an uplift given that they
        see it.
    exposure_relative : bool
        ``exposure`` is relative to the pooled rate (1: as often seen as the average act),
        not a probability: a followee event with an exposure.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> reach = blm.influence_user(art, "u1", "i3", "share").reach
    >>> len(reach.users) == len(reach.uplift), reach.followee_event
    (True, False)
    """

    item: int
    users: Int
    uplift: F32
    reach: float
    exposure: float | None = None
    followee_event: bool = False

    @property
    def exposure_relative(self) -> bool:
        """``exposure`` is relative to the pooled rate (a followee event with an exposure)."""
        return self.followee_event and self.exposure is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "exposure": self.exposure,
            "exposure_relative": self.exposure_relative,
            "followee_event": self.followee_event,
            "reach": self.reach,
            "followers": [
                {"user": int(u), "uplift": float(x)}
                for u, x in zip(self.users, self.uplift, strict=True)
            ],
        }


def follower_uplift(
    model: Recommender,
    histories: Sequences,
    item: int,
    *,
    action: int | None = None,
    source: int | None = None,
    followee_event: bool = False,
    batch_size: int = 256,
) -> F32:
    """(R,) rise in each row's probability of ``item`` next after a social event of ``item``
    (with ``followee_event`` the sharer's act as a followee event, :class:`Event` ``followee``
    -1: the model does not read who it was, so one pass serves every sharer).

    ``action`` and ``source`` are the codes of the event; not given: a view from the
    social source, which a followee's act is not, so with ``followee_event`` both must be
    given (the act's action code and :func:`behaviorlm.data.feed.followee_source`, as
    :func:`behaviorlm.explain.artifacts.reaching_event` finds them).

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> follower_uplift(model, Sequences.from_lists([[1], [2, 1]], n_items=3), item=3).shape
    (2,)
    """
    net = neural(model)
    if not 1 <= item <= net.n_items:
        raise ValueError(f"item {item} is outside 1..{net.n_items}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    in_catalogue(histories, net)
    if followee_event and (action is None or source is None):
        raise ValueError(
            "a followee's act needs its action code and the followee source code "
            "(dataset.action_code('share'), behaviorlm.data.feed.followee_source(dataset))"
        )
    out = np.zeros(len(histories), dtype=np.float32)
    event = Event(
        item=item,
        action=VIEW_ACTION if action is None else action,
        source=SOCIAL_SOURCE if source is None else source,
        followee=-1 if followee_event else 0,
    )
    for lo in range(0, len(histories), batch_size):
        rows = histories.select(np.arange(lo, min(lo + batch_size, len(histories))))
        before = log_softmax(net.score(rows))[:, item - 1]
        after = log_softmax(net.score(append_event(rows, event)))[:, item - 1]
        out[lo : lo + len(rows)] = np.exp(after) - np.exp(before)
    return out


def expected_engagements(uplift: F32, exposure: float | F32 | None) -> F32:
    """Each follower's expected extra engagement: ``exposure`` (a scalar, or one weight per
    follower) times the uplift, held to [-1, 1], since a follower engages once or not.

    A relative exposure (:meth:`Exposure.relative`) above 1 times a model's large uplift could
    otherwise credit a follower with more than one engagement, and a reach above the number
    of followers.

    Examples
    --------
    >>> expected_engagements(np.array([0.2, 0.6, -0.5], dtype=np.float32), 2.0).tolist()
    [0.4000000059604645, 1.0, -1.0]
    """
    weighted = uplift if exposure is None else np.asarray(exposure, dtype=np.float32) * uplift
    out: F32 = np.clip(weighted, -1.0, 1.0).astype(np.float32)
    return out


def social_reach(
    model: Recommender,
    followers: Sequences,
    item: int,
    *,
    action: int | None = None,
    source: int | None = None,
    followee_event: bool = False,
    exposure: float | None = None,
    batch_size: int = 256,
) -> Reach:
    """Uplift of every follower (one row each) and the predicted reach of sharing ``item``.

    ``exposure`` weighs each uplift (held to [-1, 1] after, :func:`expected_engagements`): the
    chance that a follower sees the share (the sharer's :meth:`Exposure.of`), or that chance
    relative to the pooled rate for a model whose uplift already averages over it
    (``followee_event``: the sharer's act as a followee event; :meth:`Exposure.relative`); None
    (unknown) counts every follower.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> seqs = Sequences.from_lists([[1], [2, 1]], n_items=3)
    >>> r = social_reach(model, seqs, item=3, exposure=0.25)
    >>> bool(np.isclose(r.reach, 0.25 * r.uplift.sum()))
    True
    """
    if exposure is not None and not exposure >= 0.0:
        raise ValueError(f"exposure must be a weight >= 0, got {exposure}")
    uplift = follower_uplift(
        model,
        followers,
        item,
        action=action,
        source=source,
        followee_event=followee_event,
        batch_size=batch_size,
    )
    return Reach(
        item=int(item),
        users=followers.users.copy(),
        uplift=uplift,
        reach=float(expected_engagements(uplift, exposure).sum(dtype=np.float64)),
        exposure=exposure,
        followee_event=followee_event,
    )


@dataclass(frozen=True)
class ReachRanking:
    """Users ordered by predicted reach for one item (largest first, ties by user id).

    ``exposure`` is each user's weight of the uplifts: the chance that a follower sees
    their share, or that chance relative to the pooled rate (see :func:`social_reach`;
    ``exposure_relative``); None when unknown (reach then counts every follower).
    ``followee_event`` as for :class:`Reach`.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> ranking = blm.rank_influencers(art, "i3", k=3)
    >>> len(ranking.users), bool(ranking.reach[0] >= ranking.reach[-1])
    (3, True)
    """

    item: int
    users: Int
    reach: F32
    followers: Int
    exposure: F32 | None = None
    followee_event: bool = False

    @property
    def exposure_relative(self) -> bool:
        """The exposures are relative to the pooled rate (see :class:`Reach`)."""
        return self.followee_event and self.exposure is not None

    def to_dict(self) -> dict[str, Any]:
        seen = [None] * len(self.users) if self.exposure is None else self.exposure.tolist()
        return {
            "item": self.item,
            "exposure_relative": self.exposure_relative,
            "followee_event": self.followee_event,
            "users": [
                {"user": int(u), "reach": float(r), "followers": int(f), "exposure": e}
                for u, r, f, e in zip(self.users, self.reach, self.followers, seen, strict=True)
            ],
        }


def rank_by_reach(
    model: Recommender,
    histories: Sequences,
    follower: Int,
    followee: Int,
    item: int,
    *,
    users: Int | None = None,
    k: int | None = None,
    action: int | None = None,
    source: int | None = None,
    followee_event: bool = False,
    exposure: Exposure | None = None,
    batch_size: int = 256,
) -> ReachRanking:
    """Rank users by the predicted reach of their sharing ``item``.

    Parameters
    ----------
    model : Recommender
        A fitted neural sequence model.
    histories : Sequences
        Timelines of (at least) every follower; ``histories.users`` names each row's user.
    follower, followee : (M,) int64
        Follow edges: ``follower[m]`` follows ``followee[m]`` (internal user ids).
    item : int
        The item to share.
    users : (U,) int64, optional
        Candidate sharers, internal user ids from 1 (default: every followee).
    k : int, optional
        Keep the best ``k``.
    action, source, followee_event : int, int, bool
        The event the share puts in each follower's timeline (default: a view from the
        social source); with ``followee_event`` a followee's act, whose codes must be given
        (see :func:`follower_uplift`).
    exposure : Exposure, optional
        Per user, the weight of each uplift (see :func:`social_reach`); None:
        unknown, every follower is counted.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> seqs = Sequences.from_lists([[1], [2], [1, 2]], n_items=3, users=[1, 2, 3])
    >>> ranking = rank_by_reach(model, seqs, np.array([2, 3, 3]), np.array([1, 1, 2]), item=3)
    >>> ranking.users.tolist() in ([1, 2], [2, 1]), ranking.followers.tolist()[0] in (1, 2)
    (True, True)
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    follower = np.asarray(follower, dtype=np.int64)
    followee = np.asarray(followee, dtype=np.int64)
    if follower.shape != followee.shape:
        raise ValueError("follower and followee must have the same length")
    size = int(max(histories.users.max(initial=0), follower.max(initial=0))) + 1
    row_of = np.full(size, -1, dtype=np.int64)
    row_of[histories.users] = np.arange(len(histories), dtype=np.int64)
    distinct = np.unique(follower)
    rows = row_of[distinct]
    if (rows < 0).any():
        raise ValueError(f"{int((rows < 0).sum())} follower(s) have no row in histories")
    uplift = follower_uplift(
        model,
        histories.select(rows),
        item,
        action=action,
        source=source,
        followee_event=followee_event,
        batch_size=batch_size,
    )
    per_edge = uplift[np.searchsorted(distinct, follower)]  # (M,) the follower's uplift
    # each candidate once, however often given
    candidates = np.unique(followee if users is None else np.asarray(users, dtype=np.int64))
    if candidates.size and candidates[0] < 1:  # a negative id would wrap to another user
        raise ValueError(f"user ids start at 1, got {int(candidates[0])}")
    top = int(max(followee.max(initial=0), candidates.max(initial=0))) + 1
    seen = None if exposure is None else exposure.rates(candidates)
    if seen is not None:  # each edge weighed by its followee's exposure, held to [-1, 1]
        weight = np.zeros(top, dtype=np.float32)
        weight[candidates] = seen
        per_edge = expected_engagements(per_edge, weight[followee])
    reach: F32 = np.bincount(followee, weights=per_edge, minlength=top)[candidates].astype(
        np.float32
    )
    counts = np.bincount(followee, minlength=top)[candidates]
    order = np.lexsort((candidates, -reach))[: k if k is not None else None]
    return ReachRanking(
        item=int(item),
        users=candidates[order],
        reach=reach[order],
        followers=counts[order],
        exposure=None if seen is None else seen[order],
        followee_event=followee_event,
    )
