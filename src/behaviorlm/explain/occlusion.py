"""Exact leave-one-out occlusion: the counterfactual "had this event not happened".

For the ``W`` events the model reads, the timeline without event ``i`` is built for every
``i`` as one :class:`behaviorlm.schema.Sequences` of ``W + 1`` rows (the full timeline
first). All ``W`` deletions are scored in a single batched forward pass, the full timeline
in its own: every deletion is one event shorter, so their batch needs no padding and a model
may run its faster unpadded path (SASRec: plain causal attention). The influence of event
``i`` is ``full - without_i``, on the target's logit and on its probability. A deleted
event's place in the model's window is taken by the next older event, as it would be had
the event never happened.
"""

from __future__ import annotations

import numpy as np
import torch

from behaviorlm.explain.target import Target, target_scores
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import F32, Int, Sequences


def deletions(history: Sequences, events: Int) -> Sequences:
    """``len(events) + 1`` rows: ``history`` itself, then ``history`` without each of ``events``.

    Examples
    --------
    >>> s = Sequences.from_lists([[4, 5, 6]], n_items=6)
    >>> rows = deletions(s, np.array([0, 2]))
    >>> [rows.row(r).items.tolist() for r in range(len(rows))]
    [[4, 5, 6], [5, 6], [4, 5]]
    """
    n = len(history.items)
    copies = history.select(np.zeros(len(events) + 1, dtype=np.int64))
    keep = np.ones((len(events) + 1, n), dtype=bool)  # row r keeps every event but events[r - 1]
    keep[np.arange(1, len(events) + 1), events] = False
    return copies.take_events(keep.ravel())


def occlusion(
    model: NeuralRecommender, history: Sequences, target: Target, events: Int
) -> tuple[tuple[float, float], F32, F32]:
    """Full score and per-event influence of deleting each of ``events`` (flat indices).

    Returns ``((logit, probability), logit_influence, probability_influence)``, the last two
    ``(len(events),)`` arrays of ``full - without_event``.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> full, logit, prob = occlusion(model, Sequences.from_lists([[1, 2]], n_items=3),
    ...                               Target.item(3), np.array([0, 1]))
    >>> logit.shape, prob.shape
    ((2,), (2,))
    """
    rows = deletions(history, np.asarray(events, dtype=np.int64))
    module = model.module.eval()
    with torch.no_grad():
        # the full row apart: the deletions are one event shorter, so together they need no
        # padding, and a model may take its faster path for a batch without padding
        full_logit, full_prob = target_scores(module, model.batch(rows.select(_FIRST)), target)
        logit = prob = torch.zeros(0)
        if len(rows) > 1:
            logit, prob = target_scores(
                module, model.batch(rows.select(np.arange(1, len(rows)))), target
            )  # (W,) each
    full = (float(full_logit[0]), float(full_prob[0]))
    return full, (full_logit - logit).numpy(), (full_prob - prob).numpy()


_FIRST = np.zeros(1, dtype=np.int64)
