"""Shapley values of the events the model reads, by permutation sampling.

Leave-one-out (:mod:`behaviorlm.explain.occlusion`) asks what one event adds to all the
others. When several events carry the same evidence (a search and the views it steered into
its category), each adds little to the rest, and the one that started it need not stand out.
The Shapley value (Shapley 1953) averages what an event adds over every order in which the
events could be added, so evidence held by several events is shared among them and an event
that also carries evidence of its own comes out ahead. Here the players are the events the
model reads, "absent" means deleted from the timeline (as in occlusion: older events take
their places in the model's window), and the value is the target's logit (and, separately,
its probability). Feature groups that are context of every token rather than events
(``components``: location and device, :data:`CONTEXT_PLAYERS`) can join as players of their
own, "absent" meaning their component zeroed in the user's own tokens (as in the group
ablation of :mod:`behaviorlm.explain.groups`; followees' events keep theirs): every group
then has a value in one game, on one scale.

Estimated by permutation sampling (Castro, Gomez and Tejada 2009; Strumbelj and Kononenko
2010): for each sampled order, the events are added one at a time and each event's value is
the change of the score when it joins. Orders come in antithetic pairs (an order and its
reverse), which lowers the variance. Where the ``p`` players have at most ``samples`` orders
in all (``p! <= samples``) every order is taken once and the values are exact. Either way the
values add up exactly to the full timeline's score minus the score with every player absent
(efficiency): each order's changes telescope.

Cost: ``samples x (p - 1) + 2`` rows of the timeline scored in batches (:func:`shapley_rows`;
for 50 events, 2 components and 64 orders, 3,266 rows): about ``samples`` times as many rows
as leave-one-out occlusion scores. Each distinct coalition is scored once (with every order
taken, most recur: 4 players have 24 orders but 16 coalitions). With components the rows run
through the untraced model, whose embedding tables can be hooked.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from behaviorlm.explain.components import edited_components, groups_of
from behaviorlm.explain.target import Target, hidden_scores, target_scores
from behaviorlm.models.batch import batch_layout
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import F32, Int, Sequences

#: Orders sampled by default.
SAMPLES = 64
#: Feature groups that ``explain(..., method="shapley")`` makes players beside the events:
#: the context of every token, with no events of their own.
CONTEXT_PLAYERS = ("location", "device")


def context_players(model: NeuralRecommender) -> list[str]:
    """The :data:`CONTEXT_PLAYERS` whose components ``model`` builds (its features on, the
    data has them, its tokens read them).

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> context_players(model)  # lists of item ids only: no location, no device
    []
    """
    one = model.batch(Sequences.from_lists([[1]], n_items=model.n_items))
    built = groups_of(model.module, one)
    return [g for g in CONTEXT_PLAYERS if g in built]


def shapley_rows(players: int, samples: int) -> int:
    """Most rows :func:`shapley` scores for ``players`` players and ``samples`` orders.

    Examples
    --------
    >>> shapley_rows(52, 64)
    3266
    """
    return samples * max(players - 1, 0) + 2


#: Events (rows x the model's window) of the coalitions built and scored at a time.
CHUNK_EVENTS = 512 * 50


def orders(k: int, samples: int, rng: np.random.Generator) -> Int:
    """``(M, k)`` orders of ``k`` players: all ``k!`` where ``k! <= samples``, else ``samples``
    random ones in antithetic pairs (each second order the reverse of the one before).

    Examples
    --------
    >>> orders(3, 64, np.random.default_rng(0)).shape  # 3! = 6 <= 64: every order once
    (6, 3)
    >>> o = orders(5, 4, np.random.default_rng(0))
    >>> o.shape, bool((o[1] == o[0][::-1]).all())
    ((4, 5), True)
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    if k <= 1 or math.factorial(k) <= samples:
        return np.array(list(itertools.permutations(range(k))), dtype=np.int64).reshape(-1, k)
    out = np.empty((samples, k), dtype=np.int64)
    for m in range(samples):
        out[m] = out[m - 1][::-1] if m % 2 else rng.permutation(k)
    return out


def shapley(
    model: NeuralRecommender,
    history: Sequences,
    target: Target,
    events: Int,
    samples: int = SAMPLES,
    seed: int = 0,
    components: Sequence[str] = (),
) -> tuple[tuple[float, float], tuple[float, float], F32, F32]:
    """Shapley values of ``events`` (flat indices of one timeline) on the target's score.

    Events outside ``events`` stay in every coalition; each feature group of ``components``
    (of the model's token components, e.g. :data:`CONTEXT_PLAYERS`) is a player too. Returns
    ``((logit, probability), (empty_logit, empty_probability), logit_values,
    probability_values)``: the full timeline's score, the score with every player absent
    (all of ``events`` deleted, the ``components`` zeroed), and the ``(len(events) +
    len(components),)`` values (the events', then the components'), which add up to the
    difference of the two.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> full, empty, logit, prob = shapley(model, Sequences.from_lists([[1, 2]], n_items=3),
    ...                                    Target.item(3), np.array([0, 1]))
    >>> bool(np.isclose(logit.sum(), full[0] - empty[0], atol=1e-5))
    True
    """
    if len(history) != 1:
        raise ValueError(f"shapley explains one timeline, got {len(history)}")
    events = np.asarray(events, dtype=np.int64)
    c = len(components)
    k, max_len = len(events), int(model.config.max_len)
    total = len(history.items)
    if events.size and not (total - min(total, max_len) <= events.min() and events.max() < total):
        raise ValueError(
            f"shapley explains events the model reads ({total - min(total, max_len)}.."
            f"{total - 1}), got {events.min()}..{events.max()}"
        )
    if len(np.unique(events)) != k:
        raise ValueError("shapley explains each event once: events has repeats")
    # with all k deleted the window reaches k events further back, and the event before
    # those gives the oldest its time gap; older ones never matter
    start = max(0, total - max_len - k - 1)
    history = history.take_events(np.arange(len(history.items)) >= start)
    events, n = events - start, len(history.items)
    p = k + c  # players: the events, then the components
    order = orders(p, samples, np.random.default_rng(seed))  # (M, p)
    m = len(order)
    rank = np.empty_like(order)  # rank[o, e]: the place of player e in order o
    rank[np.arange(m)[:, None], order] = np.arange(p)
    # coalition rows: every player absent, all present, then each order's p - 1 coalitions
    # between (the players of places 0 .. j - 1 present, j = 1 .. p - 1); a row is the
    # timeline's events present, then the components present
    present = np.ones((shapley_rows(p, m), n + c), dtype=bool)
    players = np.concatenate([events, n + np.arange(c)])
    present[0, players] = False
    if p > 1:
        joined = rank[:, None, :] < np.arange(1, p)[None, :, None]  # (M, p - 1, p)
        present[2:, players] = joined.reshape(-1, p)
    # each distinct coalition once (with every order taken, most coalitions recur)
    distinct, where = np.unique(present, axis=0, return_inverse=True)
    parts = []
    chunk = max(1, CHUNK_EVENTS // max_len)  # coalitions at a time: bounded memory
    for lo in range(0, len(distinct), chunk):
        rows = distinct[lo : lo + chunk]
        part = history.select(np.zeros(len(rows), dtype=np.int64)).take_events(rows[:, :n].ravel())
        if c:
            parts.append(_scores_without(model, part, target, components, rows[:, n:]))
            continue
        with torch.inference_mode():
            parts.append(hidden_scores(model.module, model.hidden(part), target))
    index = torch.from_numpy(where.reshape(-1))
    logit = torch.cat([p[0] for p in parts])[index]
    prob = torch.cat([p[1] for p in parts])[index]
    values = []
    for score in (logit.numpy().astype(np.float64), prob.numpy().astype(np.float64)):
        # each order's scores from no event to all; a step's change belongs to the event
        # joining there
        path = np.concatenate(
            [np.full((m, 1), score[0]), score[2:].reshape(m, -1), np.full((m, 1), score[1])],
            axis=1,
        )
        change = np.diff(path, axis=1)  # (M, p)
        phi = np.take_along_axis(change, rank, axis=1).mean(axis=0) if p else np.zeros(0)
        values.append(phi.astype(np.float32))
    full = (float(logit[1]), float(prob[1]))
    empty = (float(logit[0]), float(prob[0]))
    return full, empty, values[0], values[1]


def _scores_without(
    model: NeuralRecommender,
    part: Sequences,
    target: Target,
    components: Sequence[str],
    kept: npt.NDArray[np.bool_],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the rows of ``part`` with component ``components[j]`` removed (zeroed, as
    in the group ablation) where ``kept[row, j]`` is False; followees' events keep theirs."""
    module = model.module.eval()
    device = next(module.parameters()).device
    batch = model.batch(part).to(device)
    visible, row, column, b, t = batch_layout(part, int(model.config.max_len))
    theirs = np.zeros((b, t), dtype=bool)
    theirs[row, column] = part.is_followee_event()[visible]
    followee = torch.from_numpy(theirs).unsqueeze(-1).to(device)
    keep = torch.from_numpy(kept.astype(np.float32)).to(device)

    def drop(group: str, output: torch.Tensor) -> torch.Tensor:
        factor = keep[:, list(components).index(group)].view(-1, 1, 1)
        return torch.where(followee, output, output * factor)

    with torch.no_grad(), edited_components(module, list(components), len(part), drop):
        return target_scores(module, batch, target)
