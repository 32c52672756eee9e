"""Training objectives over hidden states: next item (full or sampled softmax) and next action.

Every model computes hidden states ``(B, T, D)``; these functions turn them into one scalar
loss, so the objectives are written once for all models. Positions are selected first
(:func:`item_loss_mask`) and only the selected ``M`` hidden states are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional

from behaviorlm.models.neural import SequenceModule
from behaviorlm.models.neural import chunk_elements as device_chunk


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
        allowed = torch.as_tensor(
            list(codes), dtype=target_actions.dtype, device=target_actions.device
        )
        mask &= torch.isin(target_actions, allowed)
    return mask


class _ChunkedSoftmax(torch.autograd.Function):
    """Mean cross-entropy over the whole catalogue without the ``(M, N)`` logits held whole.

    The forward pass scores ``chunk_elements`` logits at a time and computes the gradients of
    the chunk there (``softmax - onehot``, then two matrix products), while the chunk is still
    in cache; the backward pass only scales the stored gradients. The logits and their
    gradient never reach main memory as a whole, which makes training steps faster on CPU
    (``benchmarks/RESULTS.md``, "The chunked full softmax").
    Under autocast (of the device that ``hidden`` is on) the products run in its dtype
    (bfloat16), the softmax in float32.
    """

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        table: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        chunk_elements: int,
    ) -> torch.Tensor:
        device = hidden.device
        on = torch.is_autocast_enabled(device.type)
        dtype = torch.get_autocast_dtype(device.type) if on else None
        with torch.autocast(device.type, enabled=False):
            h = hidden if dtype is None else hidden.to(dtype)
            w = table if dtype is None else table.to(dtype)
            m, n = len(targets), len(table)
            grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
            f32 = torch.float32
            grad_h = torch.empty(hidden.shape, dtype=f32, device=device) if grads else None
            grad_w = torch.zeros(table.shape, dtype=f32, device=device) if grads else None
            grad_b = (
                torch.zeros(n, dtype=f32, device=device) if grads and bias is not None else None
            )
            total = torch.zeros((), dtype=torch.float64, device=device)
            rows = max(1, chunk_elements // max(n, 1))
            for lo in range(0, m, rows):
                hc, tc = h[lo : lo + rows], targets[lo : lo + rows]
                z = (hc @ w.T).float()
                if bias is not None:
                    z += bias.float()
                picked = z.gather(1, tc[:, None])[:, 0]
                if grad_h is None or grad_w is None:
                    total += (torch.logsumexp(z, 1) - picked).sum().double()
                    continue
                # one exponential per logit serves the loss and the gradient: exp(z - max),
                # in place; its row sums give the log-sum-exp, and divided by them the softmax
                top = z.amax(1, keepdim=True)
                sums = z.sub_(top).exp_().sum(1)
                total += (top[:, 0] + sums.log() - picked).sum().double()
                rows_at = torch.arange(len(tc), device=device)
                g = z.mul_((1.0 / (sums * m))[:, None])  # softmax / m
                g[rows_at, tc] -= 1.0 / m
                if grad_b is not None:
                    grad_b += g.sum(0)
                g = g.to(w.dtype)
                grad_h[lo : lo + rows] = g @ w
                grad_w += g.T @ hc
        ctx.dtypes = (hidden.dtype, table.dtype, None if bias is None else bias.dtype)
        ctx.save_for_backward(
            *(x if x is not None else torch.empty(0) for x in (grad_h, grad_w, grad_b))
        )
        return (total / max(m, 1)).float()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_h, grad_w, grad_b = ctx.saved_tensors
        h_dtype, w_dtype, b_dtype = ctx.dtypes
        return (
            (grad_h * grad_out).to(h_dtype) if ctx.needs_input_grad[0] else None,
            (grad_w * grad_out).to(w_dtype) if ctx.needs_input_grad[1] else None,
            (grad_b * grad_out).to(b_dtype) if ctx.needs_input_grad[2] else None,
            None,
            None,
        )


def full_softmax_loss(
    module: SequenceModule,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    chunk_elements: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of ``targets`` (M,) against every item of the catalogue.

    ``hidden`` is ``(M, D)``; the logits ``(M, N)`` cover items ``1..N`` (never padding). They
    are scored ``chunk_elements`` at a time with the gradients computed chunk by chunk, so
    the value and the gradients equal ``cross_entropy(module.logits(hidden)[:, 1:], targets -
    1)`` in float32 (close to it under bfloat16 autocast, whose products run in bfloat16)
    while memory holds one chunk of logits, not all of them. No targets (``M = 0``) give 0.
    ``chunk_elements`` defaults to :func:`behaviorlm.models.neural.chunk_elements` of the
    device (larger chunks on a GPU).

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
    bias = module.item_bias()
    default_chunk = device_chunk(hidden.device)
    out: torch.Tensor = _ChunkedSoftmax.apply(  # type: ignore[no-untyped-call]
        hidden,
        module.item_rows(slice(1, None)),
        None if bias is None else bias[1:],
        targets - 1,
        chunk_elements if chunk_elements is not None else default_chunk,
    )
    return out


@dataclass(frozen=True)
class NegativeSampler:
    """Shared negatives for the sampled softmax, with the log-probability of every item.

    Attributes
    ----------
    probs : (N + 1,) float tensor
        Proposal probability of each item id (0 for padding), on the CPU: negatives are drawn
        there with the run's generator, so a run draws the same ones on every device.
    log_q : (N + 1,) float tensor
        ``log(probs)`` (floored), subtracted from the logits: the log-Q correction. It is on
        the training device, as are the drawn negatives.

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
        cls,
        items: np.ndarray,
        n_items: int,
        kind: Literal["uniform", "popularity"],
        device: torch.device | str = "cpu",
    ) -> NegativeSampler:
        """Proposal from the training item ids ``items`` (popularity) or uniform over items,
        for training on ``device``."""
        if kind == "popularity":
            counts = np.bincount(items[items > 0], minlength=n_items + 1).astype(np.float64)
            counts[1:] += 1.0  # every item can be drawn: unseen items keep a small chance
        else:
            counts = np.ones(n_items + 1, dtype=np.float64)
        counts[0] = 0.0
        probs = torch.from_numpy(counts / counts.sum()).float()
        return cls(probs=probs, log_q=torch.log(probs.clamp_min(1e-30)).to(device))

    def sample(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` item ids drawn with replacement from the proposal (a CPU ``generator``),
        on the training device."""
        drawn = torch.multinomial(self.probs, k, replacement=True, generator=generator)
        return drawn.to(self.log_q.device)


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
    bias = module.item_bias()
    pos = (hidden * module.item_rows(targets)).sum(-1) - log_q[targets]  # (M,)
    neg = hidden @ module.item_rows(negatives).T - log_q[negatives]  # (M, K)
    if bias is not None:
        pos = pos + bias[targets]
        neg = neg + bias[negatives]
    neg = neg.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([pos[:, None], neg], dim=1).float()
    first = torch.zeros(len(targets), dtype=torch.long, device=logits.device)
    return functional.cross_entropy(logits, first)


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
