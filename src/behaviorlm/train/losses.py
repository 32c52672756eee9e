"""Training objectives over hidden states: next item (full or sampled softmax) and next action.

Every model computes hidden states ``(B, T, D)``; these functions turn them into one scalar
loss, so the objectives are written once for all models. Positions are selected first
(:func:`item_loss_mask`) and only the selected ``M`` hidden states are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.nn import functional

from behaviorlm.models.neural import SequenceModule


def item_loss_mask(
    target_items: torch.Tensor, target_actions: torch.Tensor, codes: Sequence[int] = ()
) -> torch.Tensor:
    """(B, T) True where a position gets a next-item loss.

    A position counts when its next event has an item and, if ``codes`` is given, the next
    event's action code is one of ``codes`` (e.g. predict the next purchase from all events).

    Examples
    --------
    >>> items = torch.tensor([[2, 3, 0, 5]])
    >>> actions = torch.tensor([[1, 4, 1, 1]])
    >>> item_loss_mask(items, actions).tolist()
    [[True, True, False, True]]
    >>> item_loss_mask(items, actions, codes=[4]).tolist()
    [[False, True, False, False]]
    """
    mask = target_items > 0
    if len(codes):
        allowed = torch.as_tensor(list(codes), dtype=target_actions.dtype)
        mask &= torch.isin(target_actions, allowed)
    return mask


def full_softmax_loss(
    module: SequenceModule, hidden: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of ``targets`` (M,) against every item of the catalogue.

    ``hidden`` is ``(M, D)``; the logits ``(M, N)`` cover items ``1..N`` (never padding).

    Examples
    --------
    >>> from behaviorlm.models.batch import FeatureSizes
    >>> from behaviorlm.models.neural import FeatureConfig
    >>> class Body(SequenceModule):
    ...     def encode(self, batch):
    ...         return self.tokens(batch)
    >>> body = Body(FeatureSizes(items=5, actions=2), 4, FeatureConfig())
    >>> round(full_softmax_loss(body, torch.zeros(3, 4), torch.tensor([1, 2, 4])).item(), 4)
    1.3863
    """
    logits = module.logits(hidden, slice(1, None))
    return functional.cross_entropy(logits.float(), targets - 1)


@dataclass(frozen=True)
class NegativeSampler:
    """Shared negatives for the sampled softmax, with the log-probability of every item.

    Attributes
    ----------
    probs : (N + 1,) float tensor
        Proposal probability of each item id (0 for padding).
    log_q : (N + 1,) float tensor
        ``log(probs)`` (floored), subtracted from the logits: the log-Q correction.

    Examples
    --------
    >>> s = NegativeSampler.of(np.array([0, 1, 1, 1, 2, 2]), n_items=3, kind="popularity")
    >>> s.probs.tolist()  # training counts plus one: 4, 3, 1
    [0.0, 0.5, 0.375, 0.125]
    >>> s.sample(5).shape
    torch.Size([5])
    """

    probs: torch.Tensor
    log_q: torch.Tensor

    @classmethod
    def of(
        cls, items: np.ndarray, n_items: int, kind: Literal["uniform", "popularity"]
    ) -> NegativeSampler:
        """Proposal from the training item ids ``items`` (popularity) or uniform over items."""
        if kind == "popularity":
            counts = np.bincount(items[items > 0], minlength=n_items + 1).astype(np.float64)
            counts[1:] += 1.0  # every item can be drawn: unseen items keep a small chance
        else:
            counts = np.ones(n_items + 1, dtype=np.float64)
        counts[0] = 0.0
        probs = torch.from_numpy(counts / counts.sum()).float()
        return cls(probs=probs, log_q=torch.log(probs.clamp_min(1e-30)))

    def sample(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` item ids drawn with replacement from the proposal."""
        return torch.multinomial(self.probs, k, replacement=True, generator=generator)


def sampled_softmax_loss(
    module: SequenceModule,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:
    """Mean cross-entropy of each target against ``negatives`` shared by all positions.

    Every logit is corrected by ``-log q(item)`` (Yi et al., RecSys 2019; Bengio & Senecal
    2008), which makes the sampled softmax an unbiased-in-the-limit estimate of the full one;
    a negative equal to the position's target (an accidental hit) is masked out.

    Parameters
    ----------
    hidden : (M, D) tensor
    targets : (M,) item ids
    negatives : (K,) item ids
    log_q : (N + 1,) log proposal probability by item id

    Examples
    --------
    >>> from behaviorlm.models.batch import FeatureSizes
    >>> from behaviorlm.models.neural import FeatureConfig
    >>> class Body(SequenceModule):
    ...     def encode(self, batch):
    ...         return self.tokens(batch)
    >>> body = Body(FeatureSizes(items=5, actions=2), 4, FeatureConfig())
    >>> loss = sampled_softmax_loss(
    ...     body, torch.zeros(2, 4), torch.tensor([1, 2]), torch.tensor([1, 3, 4]), torch.zeros(5)
    ... )
    >>> round(loss.item(), 4)  # target 1 has 2 real negatives, target 2 has 3: ln 3, ln 4
    1.2425
    """
    table = module.item_embeddings()
    bias = module.item_bias()
    pos = (hidden * table[targets]).sum(-1) - log_q[targets]  # (M,)
    neg = hidden @ table[negatives].T - log_q[negatives]  # (M, K)
    if bias is not None:
        pos = pos + bias[targets]
        neg = neg + bias[negatives]
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([pos[:, None], neg], dim=1).float()
    return functional.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long))


def action_loss(
    module: SequenceModule, hidden: torch.Tensor, target_actions: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of the next-action head at positions with a next event.

    ``hidden`` is ``(M, D)`` and ``target_actions`` ``(M,)`` action codes (all > 0).

    Examples
    --------
    >>> from behaviorlm.models.batch import FeatureSizes
    >>> from behaviorlm.models.neural import FeatureConfig
    >>> class Body(SequenceModule):
    ...     def encode(self, batch):
    ...         return self.tokens(batch)
    >>> body = Body(FeatureSizes(items=5, actions=3), 4, FeatureConfig())
    >>> action_loss(body, torch.zeros(2, 4), torch.tensor([1, 2])).item() > 0
    True
    """
    return functional.cross_entropy(module.action_head(hidden).float(), target_actions)
