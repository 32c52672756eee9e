"""Explanations and influence by external ids, from an artifact's model and data set.

These helpers translate ids at the edge (user and item ids as in the input data, action
names) and use the artifact's data set: the user's timeline (:meth:`Artifact.histories`),
the follow graph for social reach, item titles and action names for display
(:func:`labelled_explanation`, :func:`labelled_influence`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from behaviorlm.artifact import Artifact, as_artifact
from behaviorlm.data.errors import DataError
from behaviorlm.data.feed import followee_source
from behaviorlm.explain.explanation import EventInfluence, Explanation, explain
from behaviorlm.explain.exposure import SOCIAL_ACTIONS, Exposure, estimate_exposure
from behaviorlm.explain.influence import Event, Influence, influence
from behaviorlm.explain.reach import Reach, ReachRanking, rank_by_reach, social_reach
from behaviorlm.explain.shapley import SAMPLES
from behaviorlm.explain.target import Target, neural
from behaviorlm.models.base import Recommender
from behaviorlm.models.neural import NeuralRecommender, seen_codes
from behaviorlm.schema import SOCIAL_SOURCE, Int, Sequences

#: Integrated gradients' steps to start with, where none are given.
STEPS = 32
#: The settings of one method each: a setting given with another method would be ignored.
METHOD_SETTINGS = {"steps": ("ig", "integrated_gradients"), "samples": ("shapley",)}


def unused_setting(method: str, **given: int | None) -> tuple[str, str] | None:
    """The first setting of ``given`` (not None) that ``method`` does not use, with the
    method that does, or None (the command line and the service refuse it).

    Examples
    --------
    >>> unused_setting("occlusion", steps=None, samples=4), unused_setting("ig", steps=64)
    (('samples', 'shapley'), None)
    """
    for name, value in given.items():
        owners = METHOD_SETTINGS[name]
        if value is not None and method not in owners:
            return name, owners[0]
    return None


def method_settings(method: str, steps: int | None, samples: int | None) -> tuple[int, int]:
    """The integrated-gradients steps and Shapley samples of an explanation by ``method``
    (their defaults where None); ValueError for one given with another method.

    Examples
    --------
    >>> method_settings("ig", 64, None)
    (64, 64)
    >>> method_settings("occlusion", 64, None)
    Traceback (most recent call last):
    ...
    ValueError: steps sets method ig, not occlusion: drop it
    """
    unused = unused_setting(method, steps=steps, samples=samples)
    if unused is not None:  # it would be ignored without a word
        raise ValueError(f"{unused[0]} sets method {unused[1]}, not {method}: drop it")
    return STEPS if steps is None else steps, SAMPLES if samples is None else samples


def explain_user(
    artifact: Artifact | str | Path,
    user_id: str,
    item_id: str | None = None,
    *,
    action: str | None = None,
    method: str = "occlusion",
    steps: int | None = None,
    samples: int | None = None,
    without_target_events: bool = False,
) -> Explanation:
    """Explain the score of an item (default: the top recommendation) or an action for a user.

    Parameters
    ----------
    artifact : Artifact
        A trained neural model with its data set.
    user_id, item_id : str
        External ids; ``item_id`` None (and no ``action``) explains the top recommendation.
    action : str, optional
        An action name to explain the next-action score of instead of an item.
    method : {"occlusion", "ig", "integrated_gradients", "shapley", "attention"}
    steps : int, optional
        Integrated gradients steps (default 32); refused with another method, as the command
        line refuses ``--steps``.
    samples : int, optional
        Shapley: orders of the events sampled (default 64); refused with another method.
    without_target_events : bool
        Set aside the user's own events on the target item first (see :func:`explain`).

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> explain_user(art, "u1", method="ig").method
    'integrated_gradients'
    """
    artifact = as_artifact(artifact)  # or the path of a saved one
    neural(artifact.model)
    steps, samples = method_settings(method, steps, samples)
    history = artifact.histories([user_id])
    if len(history.items) == 0:
        raise DataError(f"user {user_id} has no events to explain")
    if action is not None and item_id is not None:
        raise ValueError("name an item or an action to explain, not both")
    target: Target | None = None
    if action is not None:
        target = Target.action(trained_action(artifact, action, head=True))
    elif item_id is not None:
        target = Target.item(int(artifact.item_ids([item_id])[0]))
    return explain(
        artifact.model,
        history,
        target,
        method,
        steps=steps,
        samples=samples,
        without_target_events=without_target_events,
    )


def influence_user(
    artifact: Artifact | str | Path,
    user_id: str,
    item_id: str,
    action: str = "share",
    *,
    k: int = 10,
    items: list[str] | None = None,
    reach: bool | None = None,
) -> Influence:
    """What user ``user_id`` doing ``action`` on ``item_id`` now would change.

    The user's own next-item distribution (:func:`behaviorlm.explain.influence.influence`)
    and, for a share or like (``reach`` None) or when ``reach`` is True, the social reach
    over the user's followers in the data set's follow graph, weighted by the user's
    exposure rate for ``action`` learned from the log (unknown, every follower counted, where
    the log cannot tell).

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> out = influence_user(art, "u1", "i3", "share")
    >>> out.kl >= 0, out.reach is not None
    (True, True)
    """
    artifact = as_artifact(artifact)  # or the path of a saved one
    net = neural(artifact.model)
    action = artifact.dataset.action_name(action)  # Purchase is purchase, as in events
    check_item_action(action)
    history = artifact.histories([user_id])
    item = int(artifact.item_ids([item_id])[0])
    named = [int(i) for i in artifact.item_ids(items)] if items else []
    event = Event(item=item, action=trained_action(artifact, action))
    if reach is None:
        reach = action in SOCIAL_ACTIONS
    if not reach:
        return influence(net, history, event, k=k, items=named)
    reaching = reaching_event(artifact, action)
    user = int(history.users[0])
    follows = artifact.dataset.follows
    followers = follows.filter(follows["followee"] == user)["follower"].to_numpy()
    timelines = artifact.timelines().select(np.asarray(followers, dtype=np.int64) - 1)
    if len(timelines):
        reaching.check("--no-reach")  # before any work
    result = influence(net, history, event, k=k, items=named)
    exposure = reaching.weights(estimate_exposure(artifact.dataset, action))
    seen = None if exposure is None else exposure.of(user)
    return replace(result, reach=reaching.reach(net, timelines, item, exposure=seen))


@dataclass(frozen=True)
class Reaching:
    """The event an act puts in a follower's timeline, and how exposure weighs its uplift.

    Attributes
    ----------
    action, source : int
        Codes of the event.
    followee : bool
        The act itself as a followee event (a model that reads them): its uplift is learned
        from every follower the act reached, so the sharer's exposure counts relative to the
        pooled rate (:meth:`Exposure.relative`). Otherwise a view from the social source, the
        follower's own event once they see it, weighed by the exposure rate itself.
    unlearned : str
        Why the model never learned this event (its action or source was not in its training
        data), so its uplifts would be those of an unknown token; empty where it did.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "sasrec", overrides=["train.epochs=1", "model.dim=8"], progress=False)
    >>> reaching = reaching_event(art, "share")  # sasrec reads followees' shares
    >>> reaching.followee, reaching.unlearned
    (True, '')
    """

    action: int
    source: int
    followee: bool
    unlearned: str = ""

    def check(self, without: str = "") -> None:
        """ValueError with :attr:`unlearned` where the model never learned the event;
        ``without`` names how the caller leaves the reach out, added to the message.

        Examples
        --------
        >>> Reaching(1, 2, False).check()  # learned: nothing to say
        >>> try:
        ...     Reaching(1, 2, False, "never saw it").check("--no-reach")
        ... except ValueError as exc:
        ...     print(exc)
        never saw it; or leave the reach out (--no-reach)
        """
        if self.unlearned:
            skip = f"; or leave the reach out ({without})" if without else ""
            raise ValueError(f"{self.unlearned}{skip}")

    def reach(
        self, model: Recommender, followers: Sequences, item: int, exposure: float | None
    ) -> Reach:
        """:func:`social_reach` of ``item`` over ``followers`` with this event; ``exposure``
        is the sharer's factor from :meth:`weights`. Raises ValueError where there are
        followers and the model never learned the event (:attr:`unlearned`)."""
        if len(followers):
            self.check()
        return social_reach(
            model,
            followers,
            item,
            action=self.action,
            source=self.source,
            followee_event=self.followee,
            exposure=exposure,
        )

    def weights(self, exposure: Exposure | None) -> Exposure | None:
        """The per-user factors of the summed uplifts (None: every follower counts once)."""
        if exposure is None or not self.followee:
            return exposure
        return exposure.relative()


def read_actions(artifact: Artifact) -> frozenset[str] | None:
    """The actions the model was trained on, or None for a model that reads no actions (a
    baseline, ``mlp``, a model trained with ``features.actions`` off): it takes any alike.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> read_actions(art) is None
    True
    """
    model = artifact.model
    if not isinstance(model, NeuralRecommender) or model.sizes is None:
        return None
    tokens = model.module.tokens
    if not (tokens.features.actions and tokens.action.num_embeddings > 1):
        return None
    names = artifact.dataset.vocab["action"]
    return frozenset(names[int(c) - 1] for c in seen_codes(tokens.action) if c <= len(names))


def trained_action(artifact: Artifact, action: str, *, head: bool = False) -> int:
    """The code of ``action``, checked to mean something to the model.

    An action the model's training data never had reads as one unknown token, every such
    action alike, so an influence of it (or an explanation of its score) would say nothing
    about the action named (a model that reads no actions, such as ``mlp``, takes any).
    With ``head``, the model's next-action head must have been trained: a run with
    ``train.action_loss_weight = 0`` (the shipped ``mlp``) left it at its random start.

    Raises
    ------
    DataError
        If the data set has no such action.
    ValueError
        If the model never saw it, or (``head``) never learned to predict actions.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> trained_action(art, "share") == ds.action_code("share")
    True
    >>> try:
    ...     trained_action(art, "share", head=True)
    ... except ValueError as exc:
    ...     print(str(exc)[:44])
    the model's next-action head was not trained
    """
    neural(artifact.model)
    code = artifact.dataset.action_code(action)
    action = artifact.dataset.action_name(action)
    trained = read_actions(artifact)
    if trained is not None and action not in trained:
        names = artifact.dataset.vocab["action"]
        read = ", ".join(name for name in names if name in trained)
        raise ValueError(
            f"the model was not trained on action {action!r}: its training data has no "
            f"{action} events, so it reads every such action alike; it read: {read}"
        )
    weight = artifact.run.get("config", {}).get("train", {}).get("action_loss_weight", 1.0)
    if head and not float(weight) > 0:
        raise ValueError(
            "the model's next-action head was not trained (train.action_loss_weight = 0): "
            "it has no next-action score to explain"
        )
    return code


def reaching_event(artifact: Artifact, action: str) -> Reaching:
    """How ``action`` by a user reaches their followers' timelines, for this artifact's model.

    A model that reads followees' ``action`` events (``split.followee_actions``) gets that
    very event, as a followee event; otherwise a view from the social source, as the
    follower's own event after seeing the share.

    Where the model never learned that event (its action, :func:`trained_action`, or its
    source, followees' ``action`` events or views from the social source, was not in its
    training data), :attr:`Reaching.unlearned` says so, and a reach over any follower raises
    ValueError: the uplifts would be those of an unknown token. An act followers never see
    (a view, or a purchase outside ``split.followee_actions``) has no reach: ValueError.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> reaching_event(art, "share") == Reaching(ds.action_code("view"), SOCIAL_SOURCE, False)
    True
    """
    followee = action in artifact.followee_actions  # the model puts it in followers' feeds
    if action not in SOCIAL_ACTIONS and not followee:
        acts = ", ".join(dict.fromkeys([*SOCIAL_ACTIONS, *artifact.followee_actions]))
        raise ValueError(f"social reach is that of an act followers see ({acts}), not {action!r}")
    ds = artifact.dataset
    act = action if followee else "view"
    source = followee_source(ds) if followee else SOCIAL_SOURCE
    if followee:
        never = f"followees' {action} events (its timelines had none)"
        how = f"train it without {action!r} in split.followee_actions"
    else:
        never = "views from the social source (its training data has none)"
        how = f"train it with {action!r} in split.followee_actions (a data set with follows)"
    code = ds.action_code(act) if act in ds.vocab["action"] else 0
    tokens = neural(artifact.model).module.tokens
    reads = tokens.features.social and tokens.source.num_embeddings > 1  # mlp reads none
    unlearned = ""
    try:
        trained_action(artifact, act)
    except (ValueError, DataError) as exc:  # never trained, or not in the data set at all
        how_it_reaches = "" if followee else f"a {action} reaches a follower as a view, and "
        unlearned = f"{how_it_reaches}{exc}"
    if not unlearned and reads and source not in seen_codes(tokens.source):
        unlearned = (
            f"the model was not trained on {never}, so it cannot tell how a {action} reaches "
            f"a follower: {how}"
        )
    return Reaching(code, source, followee, unlearned)


def check_item_action(action: str) -> None:
    """ValueError where ``action`` cannot be done on an item: a search has a query, no item.

    Examples
    --------
    >>> check_item_action("share")
    >>> check_item_action("search")
    Traceback (most recent call last):
    ...
    ValueError: a search has a query, not an item: name an action done on an item (view, share, ...)
    """
    if action == "search":
        raise ValueError(
            "a search has a query, not an item: name an action done on an item (view, share, ...)"
        )


def rank_influencers(
    artifact: Artifact | str | Path,
    item_id: str,
    k: int | None = 10,
    users: list[str] | None = None,
    action: str = "share",
) -> ReachRanking:
    """Users ranked by the predicted reach of their sharing ``item_id`` (internal user ids).

    Reach is each user's exposure rate for ``action`` (learned from the log) times each of
    their followers' uplifts, summed (each part held to [-1, 1]); see
    :mod:`behaviorlm.explain.exposure`.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> len(rank_influencers(art, "i3", k=5).users)
    5
    """
    artifact = as_artifact(artifact)  # or the path of a saved one
    net = neural(artifact.model)
    action = artifact.dataset.action_name(action)  # Purchase is purchase, as in events
    reaching = reaching_event(artifact, action)  # an act followers see
    item = int(artifact.item_ids([item_id])[0])
    follows = artifact.dataset.follows
    if follows.height == 0:
        raise DataError("this data set has no follow graph", how="use data with follows")
    candidates: Int | None = None
    if users is not None:
        candidates = artifact.user_index(users)
    reaching.check()
    return rank_by_reach(
        net,
        artifact.timelines(),
        follows["follower"].to_numpy(),
        follows["followee"].to_numpy(),
        item,
        users=candidates,
        k=k,
        action=reaching.action,
        source=reaching.source,
        followee_event=reaching.followee,
        exposure=reaching.weights(estimate_exposure(artifact.dataset, action)),
    )


def _items(artifact: Artifact, items: list[int]) -> list[dict[str, Any]]:
    """External id and title (where present) of internal item ids; 0 = no item."""
    known = [i for i in items if i > 0]
    rows = dict(zip(known, artifact.item_table(np.asarray(known, dtype=np.int64)), strict=True))
    return [rows.get(i, {"item_id": None}) for i in items]


def labelled_explanation(artifact: Artifact, explanation: Explanation) -> dict[str, Any]:
    """``explanation.to_dict()`` with external ids, titles, action names and search queries.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> row = labelled_explanation(art, explain_user(art, "u1"))["events"][-1]
    >>> named = row["item_id"] in set(ds.items["item_id"]) or row["query"] is not None
    >>> named, row["action_name"] != ""
    (True, True)
    """
    out = explanation.to_dict()
    ds = artifact.dataset
    actions = ds.vocab.get("action", [])
    queries = ds.events["query"] if "query" in ds.events.columns else None
    users = ds.users["user_id"].cast(str)
    for key in ("events", "set_aside"):
        events: tuple[EventInfluence, ...] = getattr(explanation, key)
        labels = _items(artifact, [e.item for e in events])
        for row, event, label in zip(out[key], events, labels, strict=True):
            row["item_id"] = label.get("item_id")
            row["title"] = label.get("title")
            code = event.action
            row["action_name"] = actions[code - 1] if 0 < code <= len(actions) else ""
            valid = queries is not None and 0 <= event.event_id < len(queries)
            row["query"] = queries[event.event_id] if valid and queries is not None else None
            row["followee_id"] = users[event.followee - 1] if event.followee > 0 else None
    target = explanation.target
    if target.kind == "item":
        label = _items(artifact, [target.id])[0]
        out["target"].update(item_id=label.get("item_id"), title=label.get("title"))
    elif 0 < target.id <= len(actions):
        out["target"]["action_name"] = actions[target.id - 1]
    return out


def labelled_influence(artifact: Artifact, result: Influence) -> dict[str, Any]:
    """``result.to_dict()`` with external item and user ids and titles.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=0))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1", "model.hidden=8"], progress=False)
    >>> out = labelled_influence(art, influence_user(art, "u1", "i3", "share", reach=False))
    >>> out["event"]["item_id"], out["event"]["action_name"], len(out["after"])
    ('i3', 'share', 10)
    """
    out = result.to_dict()

    def ids(items: tuple[int, ...]) -> list[dict[str, Any]]:
        return [
            {"item": i, **row} for i, row in zip(items, _items(artifact, list(items)), strict=True)
        ]

    for key in ("before", "after", "entering", "leaving"):
        out[key] = ids(getattr(result, key))
    for row, label in zip(
        out["items"], _items(artifact, [c.item for c in result.items]), strict=True
    ):
        row.update(label)
    actions = artifact.dataset.vocab.get("action", [])
    code = result.event.action
    out["event"]["action_name"] = actions[code - 1] if 0 < code <= len(actions) else ""
    out["event"].update(_items(artifact, [result.event.item])[0])
    if out["reach"] is not None:
        users = artifact.dataset.users["user_id"]
        for row in out["reach"]["followers"]:
            row["user_id"] = users[row["user"] - 1]
    return out


def labelled_ranking(artifact: Artifact, ranking: ReachRanking) -> dict[str, Any]:
    """``ranking.to_dict()`` (:func:`rank_influencers`) with each user's external id.

    Examples
    --------
    >>> import behaviorlm as blm
    >>> ds = blm.preprocess(blm.simulate(60, seed=1))
    >>> art = blm.train(ds, "mlp", overrides=["train.epochs=1"], progress=False)
    >>> ranked = labelled_ranking(art, rank_influencers(art, ds.items["item_id"][0], k=2))
    >>> [sorted(row) for row in ranked["users"]][0][-1]
    'user_id'
    """
    out = ranking.to_dict()
    users = artifact.dataset.users["user_id"]
    out["users"] = [{**row, "user_id": users[row["user"] - 1]} for row in out["users"]]
    return out
