"""Exact leave-one-out occlusion: the counterfactual "had this event not happened".

For each of the ``W`` events the model reads, the timeline without event ``i`` is scored,
and the influence of event ``i`` is ``full - without_i``, on the target's logit and on its
probability. A deleted event's place in the model's window is taken by the next older
event, as it would be had the event never happened, and the event after it counts its time
gap from the event before it. All ``W`` deletions are scored in one call of the model's
:meth:`~behaviorlm.models.neural.SequenceModule.encode_last_without` on one batch row: the
events the model reads and, where the timeline is longer, the one before them (SASRec shares
the work the deletions have in common); the full timeline is scored on its own.
"""

from __future__ import annotations

import numpy as np
import torch

from behaviorlm.explain.target import Target, hidden_scores
from behaviorlm.models.batch import gap_bucket
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import F32, Int, Sequences


def closing_gaps(history: Sequences, events: Int, size: int) -> Int:
    """Gap code of the event after each of ``events`` once that event is deleted.

    The time since the event before the deleted one; the first-event code 1 where the
    deleted event was the first; 0 (unknown) for codes the model has no row for. The value
    for the timeline's last event is unused (no event follows it).

    Examples
    --------
    >>> s = Sequences.from_lists([[4, 5, 6]], n_items=6)  # events 1 second apart
    >>> closing_gaps(s, np.array([0, 1]), size=32).tolist()  # 1 (first), then 2 s -> code 3
    [1, 3]
    """
    ts = history.timestamps
    before = ts[np.maximum(events - 1, 0)]
    after = ts[np.minimum(events + 1, len(ts) - 1)]
    codes = np.where(events == 0, 1, gap_bucket(after - before))
    return np.where(codes < size, codes, 0)


def occlusion(
    model: NeuralRecommender, history: Sequences, target: Target, events: Int
) -> tuple[tuple[float, float], F32, F32]:
    """Full score and per-event influence of deleting each of ``events`` (flat indices).

    ``history`` is one timeline and ``events`` lie among the events the model reads. Returns
    ``((logit, probability), logit_influence, probability_influence)``, the last two
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
    if len(history) != 1:
        raise ValueError(f"occlusion explains one timeline, got {len(history)}")
    events = np.asarray(events, dtype=np.int64)
    n, max_len = len(history.items), int(model.config.max_len)
    read, reach = min(n, max_len), min(n, max_len + 1)  # reach: the event that would enter too
    if events.size and not (n - read <= events.min() and events.max() < n):
        raise ValueError(
            f"occlusion deletes only events the model reads ({n - read}..{n - 1}), "
            f"got {events.min()}..{events.max()}"
        )
    batch = model.batch(history, reach)
    assert model.sizes is not None  # model.batch raises for a model that is not fitted
    module = model.module.eval()
    with torch.no_grad():
        full_logit, full_prob = hidden_scores(
            module, module.encode_last(batch.columns(slice(reach - read, None))), target
        )
        logit = prob = torch.zeros(0)
        if events.size:
            drop = torch.from_numpy(events - (n - reach))  # columns of the batch
            gaps = torch.from_numpy(closing_gaps(history, events, model.sizes.gaps))
            hidden = module.encode_last_without(batch, drop, gaps)  # (W, D)
            logit, prob = hidden_scores(module, hidden, target)
    full = (float(full_logit[0]), float(full_prob[0]))
    return full, (full_logit - logit).numpy(), (full_prob - prob).numpy()
