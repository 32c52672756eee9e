"""One interface to every attribution method: ``explain(model, history, target, method)``.

An :class:`Explanation` holds, for one timeline and one target, the influence of each event
the model reads (on the target's logit and probability) and of each feature group, the
latter by two methods side by side: ablating the group's component from every token, and
summing the token attributions by group.

Methods
-------
``occlusion``
    Exact leave-one-out (:mod:`behaviorlm.explain.occlusion`). Group sums add the events of
    each kind (history, search, social); context groups have no events of their own.
``integrated_gradients`` (alias ``ig``)
    Over the token embeddings (:mod:`behaviorlm.explain.gradients`); group sums are exact
    per-component attributions, and events carry their per-component split.
``shapley``
    Shapley values of the events, by permutation sampling (:mod:`behaviorlm.explain.shapley`):
    what each event adds, averaged over the orders in which the events could be added, so
    evidence that several events share is split among them. Location and device, the
    context of every token, are players too, so every feature group gets a value in the same
    game: the group sums add the events of each kind, and location's and device's are their
    own Shapley values. The events' and those two values add up to the score minus the score
    with every event deleted and location and device removed (the baseline).
``attention``
    Attention read-out of the last layer (:mod:`behaviorlm.explain.attention`), a diagnostic:
    events carry the weight, not an influence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from behaviorlm.explain.attention import NOTE, attention
from behaviorlm.explain.gradients import integrated_gradients
from behaviorlm.explain.groups import ablate_groups, event_kinds, search_clicks
from behaviorlm.explain.occlusion import occlusion
from behaviorlm.explain.shapley import SAMPLES, context_players, shapley
from behaviorlm.explain.target import Target, neural, resolve_target, single_row, window
from behaviorlm.models.base import Recommender
from behaviorlm.models.neural import NeuralRecommender, seen_codes
from behaviorlm.schema import SOCIAL_SOURCE, Sequences

METHODS = ("occlusion", "integrated_gradients", "shapley", "attention")
ALIASES = {"ig": "integrated_gradients"}
#: Event kinds (:func:`behaviorlm.explain.groups.event_kinds`), each also a feature group.
EVENT_KINDS = ("history", "search", "social")


@dataclass(frozen=True)
class EventInfluence:
    """One event of the timeline and its influence on the target (none for the events of
    :attr:`Explanation.set_aside`, which the explanation leaves out).

    Attributes
    ----------
    index : int
        Position in the user's timeline (0 = oldest event).
    event_id, item, action, timestamp : int
        The event (internal ids and codes; ``event_id`` = row in the data set's event table).
    kind : str
        "history", "search" or "social".
    logit, probability : float or None
        Influence on the target's logit and probability (None for attention and for
        set-aside events).
    attention : float or None
        Attention weight (attention method only).
    components : dict
        Integrated gradients only: the logit attribution split by feature group.
    followee : int
        Internal id of the followed user whose event this is (``behaviorlm.data.feed``);
        0 for the user's own event.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> first = explain(model, Sequences.from_lists([[1, 2]], n_items=3), target=3).events[0]
    >>> first.index, first.item, first.kind, first.logit is not None
    (0, 1, 'history', True)
    """

    index: int
    event_id: int
    item: int
    action: int
    timestamp: int
    kind: str
    logit: float | None = None
    probability: float | None = None
    attention: float | None = None
    components: dict[str, float] = field(default_factory=dict)
    followee: int = 0


def by_origin(components: dict[str, np.ndarray], search: np.ndarray) -> dict[str, np.ndarray]:
    """Per-component attributions with the source component of search events (a click on a
    search result) moved from "social" to "search": the source says where an event came
    from, and a search result is search activity.

    Examples
    --------
    >>> parts = {"history": np.array([1.0, 2.0]), "social": np.array([0.5, 0.25]),
    ...          "search": np.array([0.0, 0.0])}
    >>> moved = by_origin(parts, np.array([False, True]))
    >>> moved["social"].tolist(), moved["search"].tolist()
    ([0.5, 0.0], [0.0, 0.25])
    """
    if "social" not in components or "search" not in components or not search.any():
        return components
    out = dict(components)
    source = components["social"]
    out["social"] = np.where(search, 0.0, source)
    out["search"] = components["search"] + np.where(search, source, 0.0)
    return out


def group_sums(components: dict[str, np.ndarray], followee: np.ndarray) -> dict[str, float]:
    """Per group, the attributions of its component summed over the user's own events; a
    followee's event counts whole (every component) as social.

    Examples
    --------
    >>> parts = {"history": np.array([1.0, 2.0]), "time": np.array([0.5, 0.25])}
    >>> group_sums(parts, np.array([False, True]))
    {'history': 1.0, 'time': 0.5, 'social': 2.25}
    """
    own = ~followee
    sums = {g: float(a[own].sum()) for g, a in components.items()}
    if followee.any():
        theirs = sum(float(a[followee].sum()) for a in components.values())
        sums["social"] = sums.get("social", 0.0) + theirs
    return sums


@dataclass(frozen=True)
class GroupInfluence:
    """A feature group's influence, by ablation and by summed token attributions.

    ``ablation_*`` = full score minus the score with the group's component removed from
    every token; ``attributed_*`` = the method's token attributions summed by group (None
    where the method attributes nothing to this group; for Shapley values, location's and
    device's own values as players of the game). Followees' events
    (``behaviorlm.data.feed``) are social activity as a whole: their ablation deletes them,
    and their attributions, every component, count as social. Events of a kind the model has
    no group for (a view from the social source, for a model without the social group; every
    event, for ``mlp``) count under history, as the model reads them.

    ``single_value``: the model's training data had one value of this group only (every
    source ``self`` on data without a follow graph, every action a view), so the component
    is the same on every token: its ablation removes a learned constant, not information.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> history = explain(model, Sequences.from_lists([[1, 2]], n_items=3), target=3).groups[0]
    >>> history.group, history.ablation_logit is not None
    ('history', True)
    """

    group: str
    ablation_logit: float
    ablation_probability: float
    attributed_logit: float | None = None
    attributed_probability: float | None = None
    single_value: bool = False


def _as_grouped(
    kinds: npt.NDArray[np.object_], groups: Mapping[str, object]
) -> npt.NDArray[np.object_]:
    """``kinds`` of events with those of a kind the model has no group for (a view from the
    social source, for a model without the social group) as ``"history"``: it reads them so."""
    if "history" not in groups:
        return kinds
    return np.where(np.isin(kinds, list(groups)), kinds, "history")


def _folded(sums: dict[str, float], groups: Mapping[str, object]) -> dict[str, float]:
    """Summed attributions by group, those of event kinds the model has no group for added
    to ``"history"`` (as :func:`_as_grouped`): followees' events, given to a model without
    the social group.

    Examples
    --------
    >>> _folded({"history": 1.0, "social": 0.5, "time": 0.25}, {"history": 0, "time": 0})
    {'history': 1.5, 'time': 0.25}
    """
    if "history" not in groups:
        return sums
    out = {g: v for g, v in sums.items() if g in groups or g not in EVENT_KINDS}
    lost = sum(v for g, v in sums.items() if g in EVENT_KINDS and g not in groups)
    if lost:
        out["history"] = out.get("history", 0.0) + lost
    return out


#: Token groups of one value per event (their token tables; ``TokenEmbedding`` attributes).
VALUED_GROUPS = {
    "actions": "action",
    "social": "source",
    "location": "location",
    "device": "device",
}


def single_valued(model: NeuralRecommender) -> frozenset[str]:
    """Groups of which the model's training data had one value (one code with a trained row,
    :func:`behaviorlm.models.neural.seen_codes`), whose component is therefore the same on
    every token.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> sorted(single_valued(model))  # one action (view), one source (self)
    ['actions', 'social']
    """
    tokens = model.module.tokens

    def values(group: str) -> int:
        codes = seen_codes(getattr(tokens, VALUED_GROUPS[group]))
        if group == "social":  # a click on a search result is search activity
            codes = codes[codes != tokens.search_code]
        return len(codes)

    return frozenset(g for g in VALUED_GROUPS if values(g) == 1)


@dataclass(frozen=True)
class Explanation:
    """Why a model scores a target as it does for one timeline.

    Attributes
    ----------
    model, method : str
        The model's name and the attribution method.
    target : Target
        The explained output.
    logit, probability : float
        The target's score and probability given the whole timeline (the timeline without
        the events in ``set_aside``, where there are any).
    events : tuple of EventInfluence
        The events the model reads, oldest first.
    groups : tuple of GroupInfluence
        Feature groups the model uses.
    baseline_logit, baseline_probability : float or None
        Integrated gradients: the score at zero tokens, and the event values sum to ``logit -
        baseline_logit`` (completeness); Shapley: the score with every explained event
        deleted and location and device removed, and the event values and those two groups'
        ``attributed_logit`` sum to it (efficiency).
    steps : int or None
        Integrated gradients: the quadrature points used along the path (more than asked
        for where the first pass missed completeness by over 1 %).
    unread : int
        Older events beyond the model's ``max_len`` window (they have no influence).
    set_aside : tuple of EventInfluence
        The user's own events on the target item, set aside before explaining
        (``explain(..., without_target_events=True)``; no influence values); empty
        otherwise. Older events then take their places in the window, as if they had never
        happened.
    note : str
        What the numbers mean, where it is not an influence.

    Examples
    --------
    >>> e = Explanation(model="sasrec", method="occlusion", target=Target.item(3), logit=1.5,
    ...                 probability=0.25, events=(), groups=())
    >>> e.to_dict()["target"], e.steps is None  # made by explain(), serialised as JSON
    ({'kind': 'item', 'id': 3}, True)
    """

    model: str
    method: str
    target: Target
    logit: float
    probability: float
    events: tuple[EventInfluence, ...]
    groups: tuple[GroupInfluence, ...]
    baseline_logit: float | None = None
    baseline_probability: float | None = None
    steps: int | None = None
    unread: int = 0
    set_aside: tuple[EventInfluence, ...] = ()
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (numbers as Python floats and ints)."""
        out: dict[str, Any] = _clean(asdict(self))
        return out


def _set_aside_target_events(
    history: Sequences, target: Target
) -> tuple[Sequences, np.ndarray, np.ndarray]:
    """The timeline without the user's own events on the target item, the positions of the
    events it keeps and of those it sets aside."""
    if target.kind != "item":
        raise ValueError(
            "without_target_events sets aside the user's events on the target item: "
            "it needs an item target, not an action"
        )
    on_target = (history.items == target.id) & ~history.is_followee_event()
    if on_target.all():
        raise ValueError(
            "every event of this timeline is the user's own event on the target item: "
            "nothing is left to explain it"
        )
    return history.take_events(~on_target), np.flatnonzero(~on_target), np.flatnonzero(on_target)


def _described(
    history: Sequences,
    flat: np.ndarray,
    index: np.ndarray,
    social_source: int,
    search_source: int,
) -> tuple[EventInfluence, ...]:
    """The events at flat indices ``flat`` of ``history``, named by timeline positions
    ``index``, without influence values yet."""
    kinds = event_kinds(history, flat, social_source, search_source)
    who = history.followees()
    return tuple(
        EventInfluence(
            index=int(position),
            event_id=int(history.event_ids[i]),
            item=int(history.items[i]),
            action=int(history.actions[i]),
            timestamp=int(history.timestamps[i]),
            kind=kind,
            followee=int(who[i]),
        )
        for i, position, kind in zip(flat, index, kinds, strict=True)
    )


def _clean(value: Any) -> Any:
    """Recursively turn numpy scalars into Python numbers and non-finite floats into None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def explain(
    model: Recommender,
    history: Sequences,
    target: int | Target | None = None,
    method: str = "occlusion",
    *,
    steps: int = 32,
    max_steps: int | None = None,
    samples: int = SAMPLES,
    seed: int = 0,
    social_source: int = SOCIAL_SOURCE,
    without_target_events: bool = False,
) -> Explanation:
    """Explain a sequence model's score of ``target`` after one timeline.

    Parameters
    ----------
    model : Recommender
        A fitted neural sequence model (sasrec, hstu or mlp).
    history : Sequences
        Exactly one non-empty timeline (internal ids), e.g. ``artifact.histories([user])``.
    target : int or Target, optional
        An internal item id, ``Target.action(code)``, or None for the top recommendation
        (:func:`behaviorlm.recommend.recommend`, seen items excluded).
    method : {"occlusion", "integrated_gradients", "ig", "shapley", "attention"}
        The attribution method; see the module docstring.
    steps : int
        Integrated gradients: quadrature points along the path to start with; doubled (up
        to ``max_steps``) while the attributions of the logit or the probability miss completeness
        by more than 1 % (:func:`behaviorlm.explain.gradients.integrated_gradients`).
    max_steps : int, optional
        Integrated gradients: the most points the doubling reaches (default 256, or four
        times ``steps`` if more, 4,096 at most).
    samples, seed : int
        Shapley: orders of the events sampled (all of them where there are fewer), and the
        seed that draws them.
    social_source : int
        Source code of social events (the built-in coding's "social").
    without_target_events : bool
        Explain why the user comes to the target item at all: set aside the user's own
        events on it (a view before the cart being explained, say; followees' events on it
        stay) and explain the rest of the timeline. Such an event answers "why this item"
        trivially, and it carries the same evidence as the events that led to it (the
        followee's share of the item, the search), which hides them from leave-one-out.
        Item targets only (the default target, the top recommendation, is never an item
        the user has events on, so nothing is set aside for it); the scores are then those
        of the remaining timeline, and :attr:`Explanation.set_aside` lists the events set
        aside.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> e = explain(model, Sequences.from_lists([[1, 2]], n_items=3), target=3)
    >>> e.method, len(e.events), [g.group for g in e.groups]
    ('occlusion', 2, ['history', 'actions', 'time', 'social'])
    >>> e = explain(model, Sequences.from_lists([[1, 2, 3]], n_items=3), target=3,
    ...             without_target_events=True)
    >>> [ev.index for ev in e.events], [ev.index for ev in e.set_aside]
    ([0, 1], [2])
    """
    net = neural(model)
    method = ALIASES.get(method, method)
    if method not in METHODS:
        raise ValueError(
            f"unknown method {method!r}; use one of: occlusion, ig, shapley, attention"
        )
    history = single_row(history, net)
    chosen = resolve_target(net, history, target)
    search = net.module.tokens.search_code  # a click on a search result is search activity
    positions = np.arange(len(history.items))  # timeline position of each explained event
    aside: tuple[EventInfluence, ...] = ()
    if without_target_events:
        whole = history
        history, positions, set_aside = _set_aside_target_events(history, chosen)
        # in the whole (single-row) timeline a flat index is the timeline position
        aside = _described(whole, set_aside, set_aside, social_source, search)
    events = window(net, history)
    described = _described(history, events, positions[events], social_source, search)
    constant = single_valued(net)
    ablation = {
        g: (a_logit, a_prob, g in constant)
        for g, (a_logit, a_prob) in ablate_groups(net, history, chosen).items()
    }

    def event(k: int, **values: Any) -> EventInfluence:
        return replace(described[k], **values)

    common: dict[str, Any] = {
        "model": net.name,
        "target": chosen,
        "unread": len(history.items) - len(events),
        "set_aside": aside,
    }
    if method in ("occlusion", "shapley"):
        empty: tuple[float | None, float | None] = (None, None)  # occlusion has no baseline
        played: dict[str, tuple[float, float]] = {}
        if method == "occlusion":
            (logit, prob), d_logit, d_prob = occlusion(net, history, chosen, events)
        else:
            context = context_players(net)
            (logit, prob), empty, d_logit, d_prob = shapley(
                net, history, chosen, events, samples=samples, seed=seed, components=context
            )
            k = len(events)
            played = {g: (d_logit[k + j], d_prob[k + j]) for j, g in enumerate(context)}
            d_logit, d_prob = d_logit[:k], d_prob[:k]
        rows = tuple(
            event(k, logit=float(d_logit[k]), probability=float(d_prob[k]))
            for k in range(len(events))
        )
        kind = _as_grouped(np.asarray([e.kind for e in described], dtype=object), ablation)

        def summed(g: str) -> tuple[float | None, float | None]:
            if g in played:  # a Shapley player of its own
                return float(played[g][0]), float(played[g][1])
            if g not in EVENT_KINDS:  # context groups have no events of their own
                return None, None
            return float(d_logit[kind == g].sum()), float(d_prob[kind == g].sum())

        groups = tuple(
            GroupInfluence(g, a_logit, a_prob, *summed(g), single_value=one)
            for g, (a_logit, a_prob, one) in ablation.items()
        )
        return Explanation(
            method=method,
            logit=logit,
            probability=prob,
            events=rows,
            groups=groups,
            baseline_logit=empty[0],
            baseline_probability=empty[1],
            **common,
        )
    if method == "integrated_gradients":
        ig = integrated_gradients(net, history, chosen, steps=steps, max_steps=max_steps)
        theirs = history.is_followee_event()[events]
        searched = search_clicks(history, events, search)
        ig = replace(
            ig, logit=by_origin(ig.logit, searched), probability=by_origin(ig.probability, searched)
        )
        rows = tuple(
            event(
                k,
                logit=float(sum(a[k] for a in ig.logit.values())),
                probability=float(sum(a[k] for a in ig.probability.values())),
                components={g: float(a[k]) for g, a in ig.logit.items()},
            )
            for k in range(len(events))
        )
        by_logit = _folded(group_sums(ig.logit, theirs), ablation)
        by_prob = _folded(group_sums(ig.probability, theirs), ablation)
        groups = tuple(
            GroupInfluence(g, a_logit, a_prob, by_logit.get(g), by_prob.get(g), one)
            for g, (a_logit, a_prob, one) in ablation.items()
        )
        return Explanation(
            method=method,
            logit=ig.score[0],
            probability=ig.score[1],
            events=rows,
            groups=groups,
            baseline_logit=ig.baseline[0],
            baseline_probability=ig.baseline[1],
            steps=ig.steps,
            **common,
        )
    weights = attention(net, history)
    (logit, prob), _, _ = occlusion(net, history, chosen, events[:0])
    rows = tuple(event(k, attention=float(weights[k])) for k in range(len(events)))
    groups = tuple(GroupInfluence(g, a, p, single_value=one) for g, (a, p, one) in ablation.items())
    return Explanation(
        method=method,
        logit=logit,
        probability=prob,
        events=rows,
        groups=groups,
        note=NOTE,
        **common,
    )
