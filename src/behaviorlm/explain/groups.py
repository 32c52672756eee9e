"""Feature-group influence by ablation: re-score with one group's component removed.

Removing a group sets its embedding component to zero in every token (for example no
device, no social source, no query words); ``full - without_group`` is that group's
influence. All groups are ablated at once, one batch row each, in a single forward pass. A
timeline with followees' events (``behaviorlm.data.feed``) holds more social activity than
the source component: removing "social" there also deletes those events (one more pass; as
in occlusion, older events then take their places in the model's window), and removing any
other group leaves the followees' events as they are (for example "history" zeroes the items
of the user's own events only).
Which component each group is: :data:`behaviorlm.explain.components.TABLES` ("history" is
the item embedding, "time" the time-gap embedding; HSTU's relative time bias stays).

The source component says where an event came from, and it belongs to the group of that
origin: on an event with the search source (a click on a search result) it is search
activity, removed with "search"; on every other event it is "social".

Events also have a kind, used to sum per-event attributions by group: search activity (a
search: query words or no item; or a click on a search result: the search source), a social
event (the social source, or a followee's event from ``behaviorlm.data.feed``, whatever its
action), else the user's own history.
"""

from __future__ import annotations

import numpy as np
import torch

from behaviorlm.explain.components import edited_components, groups_of
from behaviorlm.explain.gradients import repeat_rows
from behaviorlm.explain.target import Target, target_scores
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import SEARCH_SOURCE, SELF_SOURCE, SOCIAL_SOURCE, Bool, Int, Sequences


def ablate_groups(
    model: NeuralRecommender, history: Sequences, target: Target
) -> dict[str, tuple[float, float]]:
    """Per feature group, ``(logit, probability)`` of the full timeline minus without the group.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> sorted(ablate_groups(model, Sequences.from_lists([[1, 2]], n_items=3), Target.item(3)))
    ['actions', 'history', 'social', 'time']
    """
    module = model.module.eval()
    one = model.batch(history)
    groups = groups_of(module, one)
    rows = len(groups) + 1  # row 0: nothing removed; row k: group k - 1 removed
    keep = torch.ones(rows, len(groups))
    keep[torch.arange(1, rows), torch.arange(len(groups))] = 0.0
    theirs = history.is_followee_event()
    # the batch's columns (the last events) that hold followees' events
    followee_cols = torch.from_numpy(theirs[len(theirs) - one.shape[1] :]).view(1, -1, 1)
    # clicks on search results (a followee's event is social, whatever its source code)
    code = module.tokens.search_code
    searched = (one.sources.view(1, -1, 1) == code) & ~followee_cols

    def drop(group: str, output: torch.Tensor) -> torch.Tensor:
        factor = keep[:, groups.index(group)].view(-1, 1, 1)
        # followees' events are social activity as a whole: other groups leave them as they
        # are (a model that reads its tokens in another layout, mlp, has them all removed)
        if group != "social" and theirs.any() and output.shape[1] == followee_cols.shape[1]:
            factor = torch.where(followee_cols, torch.ones(()), factor)
        if group == "social" and output.shape[1] == searched.shape[1]:
            # the source of a click on a search result is search activity: without search
            # the click reads as the user's own view does in this model (its self row; with
            # social off, the zero row: TokenEmbedding.read_sources)
            out = output * torch.where(searched, torch.ones(()), factor)
            if "search" in groups:
                gone = searched & (keep[:, groups.index("search")] == 0).view(-1, 1, 1)
                own_code = module.tokens.read_sources(torch.tensor([SELF_SOURCE]))
                own = module.tokens.source.weight[own_code].view(1, 1, -1)
                out = torch.where(gone, own, out)
            return out
        return output * factor

    with torch.no_grad(), edited_components(module, groups, rows, drop):
        logit, prob = target_scores(module, repeat_rows(one, rows), target)
    out = {
        g: (float(logit[0] - logit[k + 1]), float(prob[0] - prob[k + 1]))
        for k, g in enumerate(groups)
    }
    if theirs.any():  # social activity also means the followees' events: delete them too
        social = [g for g in groups if g == "social"]

        alone = model.batch(history.take_events(~theirs))
        # the source of a click on a search result is search activity: it stays
        clicks = (alone.sources == code).unsqueeze(-1)

        def zero(_: str, output: torch.Tensor) -> torch.Tensor:
            if output.shape[:2] == clicks.shape[:2]:
                return torch.where(clicks, output, 0.0)
            return output * 0.0

        with torch.no_grad(), edited_components(module, social, 1, zero):
            without_logit, without_prob = target_scores(module, alone, target)
        out["social"] = (
            float(logit[0] - without_logit[0]),
            float(prob[0] - without_prob[0]),
        )
    if not module.tokens.features.social and not theirs.any():
        out.pop("social", None)  # the source table served the search clicks alone
    return out


def search_clicks(history: Sequences, events: Int, search_source: int) -> Bool:
    """Which of ``events`` (flat indices) are the user's clicks on search results (the source
    ``search_source``, -1 for none); a followee's event is social, whatever its source.

    Examples
    --------
    >>> from dataclasses import replace
    >>> s = replace(Sequences.from_lists([[1, 2]], n_items=2), sources=np.array([1, 3]))
    >>> search_clicks(s, np.array([0, 1]), 3).tolist()
    [False, True]
    """
    searched: Bool = history.sources[events] == search_source
    return searched & ~history.is_followee_event()[events]


def event_kinds(
    history: Sequences,
    events: Int,
    social_source: int = SOCIAL_SOURCE,
    search_source: int = SEARCH_SOURCE,
) -> list[str]:
    """Kind of each of ``events`` (flat indices): "search" (query words, no item, or the
    search source: ``search_source``, -1 for none), "social" or "history".

    Examples
    --------
    >>> event_kinds(Sequences.from_lists([[1, 0, 2]], n_items=2), np.array([0, 1, 2]))
    ['history', 'search', 'history']
    >>> event_kinds(Sequences.from_lists([[1]], n_items=1), np.zeros(0, dtype=np.int64))
    []
    """
    if len(events) == 0:
        return []
    words = history.extra.get("query_words")
    has_words = (
        np.asarray(words)[events].reshape(len(events), -1).any(axis=1)
        if words is not None
        else np.zeros(len(events), dtype=bool)
    )
    followee = history.is_followee_event()[events]
    search = (has_words | (history.items[events] == 0)) & ~followee
    search |= search_clicks(history, events, search_source)
    social = (history.sources[events] == social_source) | followee
    return [
        "search" if s else "social" if o else "history" for s, o in zip(search, social, strict=True)
    ]
