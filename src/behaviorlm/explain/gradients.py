"""Integrated gradients over the token embeddings (Sundararajan, Taly & Yan 2017).

The input is the ``(T, D)`` matrix of event tokens, the baseline all-zero tokens (the
position embeddings and every other part of the model stay as they are). Each token is
scaled by ``alpha`` along the straight path from the baseline; all ``steps + 1`` points of
the trapezoid rule run as one batch with one backward pass per output, so

    IG(token t) = token_t . sum_s w_s grad_t(alpha_s),     alpha_s = (s / steps) ** 3,

with the trapezoid weights ``w`` of that grid. The points are denser near the baseline
because models that normalise their input (HSTU's first LayerNorm sees the tokens alone)
change fastest there: the LayerNorm of ``alpha * x`` goes from 0 to its full value within
``alpha ~ sqrt(eps / var(x))``. On the tiny HSTU of the tests, 64 such steps err by about 2 %
and 128 by under 1 %; an even grid needs thousands. Completeness: the attributions sum to
``score(tokens) - score(zero tokens)`` up to the quadrature error, which more steps shrink.
A token is a sum of components, one per feature group, and the gradient is the same for
every component of a token, so ``IG(token t) = sum_g component_{t,g} . grad_t`` splits
exactly into per-group attributions.

The scaling is applied by hooks on the component tables
(:mod:`behaviorlm.explain.components`); the model's code is not changed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from behaviorlm.explain.components import check_read_once, edited_components, groups_of
from behaviorlm.explain.target import Target, target_scores
from behaviorlm.models.batch import SequenceBatch
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.schema import F32, Sequences


@dataclass(frozen=True)
class Gradients:
    """Integrated gradients of one timeline, for the logit and the probability.

    Attributes
    ----------
    score, baseline : (logit, probability)
        The target at the real tokens and at the zero baseline.
    logit, probability : dict[str, (T,) float32]
        Per feature group, the attribution of that component at each of the ``T`` columns
        of the model's input (right-aligned: the last column is the most recent event).
    """

    score: tuple[float, float]
    baseline: tuple[float, float]
    logit: dict[str, F32]
    probability: dict[str, F32]


def repeat_rows(batch: SequenceBatch, n: int) -> SequenceBatch:
    """``n`` copies of a one-row batch."""
    return SequenceBatch(
        **{
            f.name: getattr(batch, f.name).repeat(n, *([1] * (getattr(batch, f.name).dim() - 1)))
            for f in fields(batch)
        }
    )


def trapezoid(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(steps + 1,)`` points ``alpha = (s / steps) ** 3`` and their trapezoid weights (sum 1).

    Examples
    --------
    >>> alpha, w = trapezoid(2)
    >>> alpha.tolist(), w.tolist()
    ([0.0, 0.125, 1.0], [0.0625, 0.5, 0.4375])
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    alpha = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64) ** 3
    width = alpha[1:] - alpha[:-1]  # (steps,) length of each interval
    weights = torch.zeros(steps + 1, dtype=torch.float64)
    weights[1:] += width / 2
    weights[:-1] += width / 2
    return alpha.float(), weights.float()


def integrated_gradients(
    model: NeuralRecommender, history: Sequences, target: Target, steps: int = 32
) -> Gradients:
    """Integrated gradients of ``target`` over the token components of one timeline.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> ig = integrated_gradients(model, Sequences.from_lists([[1, 2]], n_items=3),
    ...                           Target.item(3), steps=64)
    >>> total = sum(float(a.sum()) for a in ig.logit.values())
    >>> abs(total - (ig.score[0] - ig.baseline[0])) < 0.01 * abs(ig.score[0] - ig.baseline[0])
    True
    """
    alpha, weights = trapezoid(steps)
    module = model.module.eval()
    one = model.batch(history)  # (1, T)
    groups = groups_of(module, one)
    rows = len(alpha)
    components: dict[str, torch.Tensor] = {}  # group -> (T, D) at the real input
    scaled: dict[str, torch.Tensor] = {}  # group -> (S, T, D) path points, leaves of the graph

    def scale(group: str, output: torch.Tensor) -> torch.Tensor:
        components[group] = output[0].detach()
        point = (output.detach() * alpha.view(-1, 1, 1)).requires_grad_(True)
        scaled[group] = point
        return point

    with torch.enable_grad(), edited_components(module, groups, rows, scale) as calls:
        logit, prob = target_scores(module, repeat_rows(one, rows), target)  # (S,) each
        check_read_once(calls, "integrated gradients")
        leaves = [scaled[g] for g in groups]
        grad_logit = torch.autograd.grad(logit.sum(), leaves, retain_graph=True)
        grad_prob = torch.autograd.grad(prob.sum(), leaves)

    def attribute(grads: tuple[torch.Tensor, ...]) -> dict[str, F32]:
        out = {}
        for group, grad in zip(groups, grads, strict=True):
            path = (grad * weights.view(-1, 1, 1)).sum(0)  # (T, D) path integral of the gradient
            out[group] = (path * components[group]).sum(-1).numpy().astype(np.float32)
        return out

    lg, pr = logit.detach(), prob.detach()
    return Gradients(
        score=(float(lg[-1]), float(pr[-1])),
        baseline=(float(lg[0]), float(pr[0])),
        logit=attribute(grad_logit),
        probability=attribute(grad_prob),
    )
