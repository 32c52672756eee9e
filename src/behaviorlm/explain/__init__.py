"""Why a prediction, and what a new behaviour would change.

Backward-looking attribution (:func:`explain`): the influence of each event the model reads
and of each feature group on one target (an item or an action) of one timeline, by exact
leave-one-out occlusion, integrated gradients, or an attention read-out (a diagnostic).
Forward-looking influence (:func:`influence`, :func:`social_reach`, :func:`rank_by_reach`):
append a hypothetical event and measure how the next-item distribution changes, for the
user and for their followers, each follower weighted by the chance to see it
(:func:`estimate_exposure`, learned from the log). The ``*_user`` helpers take external ids
and an artifact.
"""

from __future__ import annotations

from behaviorlm.explain.artifacts import (
    Reaching,
    explain_user,
    influence_user,
    labelled_explanation,
    labelled_influence,
    labelled_ranking,
    rank_influencers,
    reaching_event,
)
from behaviorlm.explain.explanation import (
    METHODS,
    EventInfluence,
    Explanation,
    GroupInfluence,
    explain,
)
from behaviorlm.explain.exposure import Exposure, estimate_exposure
from behaviorlm.explain.influence import Event, Influence, ItemChange, append_event, influence
from behaviorlm.explain.reach import (
    Reach,
    ReachRanking,
    follower_uplift,
    rank_by_reach,
    social_reach,
)
from behaviorlm.explain.target import Target

__all__ = [
    "METHODS",
    "Event",
    "EventInfluence",
    "Explanation",
    "Exposure",
    "GroupInfluence",
    "Influence",
    "ItemChange",
    "Reach",
    "ReachRanking",
    "Reaching",
    "Target",
    "append_event",
    "estimate_exposure",
    "explain",
    "explain_user",
    "follower_uplift",
    "influence",
    "influence_user",
    "labelled_explanation",
    "labelled_influence",
    "labelled_ranking",
    "rank_by_reach",
    "rank_influencers",
    "reaching_event",
    "social_reach",
]
