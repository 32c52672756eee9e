"""What an explanation explains: one item's or one action's next-event score.

A :class:`Target` names the output: the next-item logit of an item (probability = softmax
over the whole catalogue, as ranked by :func:`behaviorlm.recommend.recommend`) or the
next-action logit of an action code (probability = softmax of the action head, as trained).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from behaviorlm.models.base import Recommender, as_model
from behaviorlm.models.batch import SequenceBatch
from behaviorlm.models.neural import NeuralRecommender, SequenceModule
from behaviorlm.recommend import in_catalogue, recommend
from behaviorlm.schema import Sequences


@dataclass(frozen=True)
class Target:
    """The output to explain: ``kind`` "item" (an item id) or "action" (an action code).

    Examples
    --------
    >>> Target.item(3), Target.action(4).to_dict()
    (Target(kind='item', id=3), {'kind': 'action', 'id': 4})
    """

    kind: Literal["item", "action"]
    id: int

    @classmethod
    def item(cls, item: int) -> Target:
        """The next-item score of internal item id ``item``."""
        return cls("item", int(item))

    @classmethod
    def action(cls, code: int) -> Target:
        """The next-action score of action code ``code``."""
        return cls("action", int(code))

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id}


def neural(model: Recommender) -> NeuralRecommender:
    """``model`` as a fitted sequence model, or a ValueError that says which models qualify
    (a TypeError for what is no model at all, an artifact say)."""
    as_model(model)
    if not isinstance(model, NeuralRecommender):
        raise ValueError(
            "explanations and influence need a neural sequence model (sasrec, hstu, mlp), "
            f"got {model.name!r}"
        )
    if model.sizes is None:
        raise ValueError(f"{model.name} is not fitted")
    return model


def single_row(history: Sequences, model: NeuralRecommender) -> Sequences:
    """``history`` checked to be one non-empty timeline of the model's catalogue."""
    if len(history) != 1:
        raise ValueError(f"explain one timeline at a time, got {len(history)} rows")
    if len(history.items) == 0:
        raise ValueError("the timeline is empty: there is nothing to explain")
    return in_catalogue(history, model)


def resolve_target(
    model: NeuralRecommender, history: Sequences, target: int | Target | None
) -> Target:
    """An explicit target checked against the model, or the top recommendation.

    The default is the first item of :func:`behaviorlm.recommend.recommend` (seen items
    excluded), i.e. exactly what the user is shown first.
    """
    if target is None:
        top = int(recommend(model, history, k=1).items[0, 0])
        if top == 0:
            raise ValueError("no item can be recommended to this user (all are excluded)")
        return Target.item(top)
    if not isinstance(target, Target):
        target = Target.item(int(target))
    assert model.sizes is not None
    limit = model.n_items if target.kind == "item" else model.sizes.actions - 1
    if not 1 <= target.id <= limit:
        raise ValueError(f"target {target.kind} {target.id} is outside 1..{limit}")
    return target


def target_scores(
    module: SequenceModule, batch: SequenceBatch, target: Target
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) logit and (B,) probability of ``target`` after each row of ``batch``.

    Differentiable (no ``no_grad`` here): integrated gradients backpropagate through it.
    """
    return hidden_scores(module, module.encode_last(batch), target)


def hidden_scores(
    module: SequenceModule, hidden: torch.Tensor, target: Target
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) logit and (B,) probability of ``target`` given (B, D) states that predict next.

    Rows are scored :data:`SCORE_ROWS` at a time: a (B, N) matrix of logits over a large
    catalogue would leave the cache (and cost page faults) between the matrix product and
    the normalisation; the result is the same.
    """
    parts = [_scores(module, rows, target) for rows in torch.split(hidden.float(), SCORE_ROWS)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


#: Rows per chunk in :func:`hidden_scores`.
SCORE_ROWS = 32


def _scores(
    module: SequenceModule, hidden: torch.Tensor, target: Target
) -> tuple[torch.Tensor, torch.Tensor]:
    if target.kind == "item":
        logits = module.logits(hidden, slice(1, None)).float()  # (B, N): items 1..N
        column = target.id - 1
    else:
        logits = module.action_head(hidden).float()  # (B, A) every action code, as trained
        column = target.id
    # the target's column of the log-softmax, without writing the whole (B, N) log-softmax
    return logits[:, column], (logits[:, column] - torch.logsumexp(logits, dim=-1)).exp()


def window(model: NeuralRecommender, history: Sequences) -> np.ndarray:
    """Flat indices of the events the model reads (the last ``max_len`` of ``history``)."""
    n = len(history.items)
    return np.arange(max(0, n - int(model.config.max_len)), n, dtype=np.int64)
