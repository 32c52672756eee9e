"""Integrated gradients over the token embeddings (Sundararajan, Taly & Yan 2017).

The input is the ``(T, D)`` matrix of event tokens, the baseline all-zero tokens (the
position embeddings and every other part of the model stay as they are). Each token is
scaled by ``alpha`` along the straight path from the baseline; the quadrature points of the
path, the baseline and the real input run as one batch with one backward pass per output, so

    IG(token t) = token_t . sum_s w_s grad_t(alpha_s)

with the points ``alpha_s`` and weights ``w_s`` of :func:`path_rule`: Gauss-Legendre points
on the panels [0, 0.001], [0.001, 0.01], [0.01, 0.1] and [0.1, 1], a quarter of them on each
(Captum's default is Gauss-Legendre on the whole path). The panels grow tenfold from the
baseline because models that normalise their input change fastest there: HSTU's first
LayerNorm sees the tokens alone, and the LayerNorm of ``alpha * x`` goes from 0 to its full
value within ``alpha ~ sqrt(eps / var(x))``, about 0.003 for its scaled tokens. Completeness:
the attributions sum to ``score(tokens) - score(zero tokens)`` up to the quadrature error.
:func:`integrated_gradients` checks the sums of the logit and the probability and doubles
the points until both are within ``tolerance`` (1 %) of that difference, or ``max_steps``
is reached; the points used and what is left of the gap are reported
(``Gradients.steps``, ``Gradients.gap``). On models trained 30 s on the simulator, 100 users
each (``benchmarks/ig_completeness.py``): the first pass of 32 points is within 1 % in the
logit for all of them, in the probability for 95 (`hstu`), 96 (`sasrec`) and 100 (`mlp`), and
after the doubling for all (1.05 passes on average); the trapezoid rule on a cubic grid, used
before, left `hstu` within 1 % in both for 10 of 100 and `sasrec` for 88.

A token is a sum of components, one per feature group, and the gradient is the same for
every component of a token, so ``IG(token t) = sum_g component_{t,g} . grad_t`` splits
exactly into per-group attributions.

The scaling is applied by hooks on the component tables
(:mod:`behaviorlm.explain.components`); the model's code is not changed.
"""

from __future__ import annotations

import itertools
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
    steps : int
        Quadrature points used along the path.
    gap : (logit, probability)
        Completeness: the summed attributions minus ``score - baseline`` (0 for exact
        quadrature).
    """

    score: tuple[float, float]
    baseline: tuple[float, float]
    logit: dict[str, F32]
    probability: dict[str, F32]
    steps: int
    gap: tuple[float, float]


#: Panel edges of :func:`path_rule`: each panel ten times as long as the one before.
PANELS = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
#: Most quadrature points :func:`integrated_gradients` doubles to by default (a start of
#: more than a quarter of it may double twice).
MAX_STEPS = 256
#: Most quadrature points of one pass: its points are scored as one batch, whose memory grows
#: with them, a copy of the timeline's activations per point.
STEPS_LIMIT = 4096
#: Smallest differences ``score - baseline`` held to the relative tolerance of
#: :func:`integrated_gradients` (logit, probability); below them the gap is held to these.
ATOL = (1e-5, 1e-7)


def repeat_rows(batch: SequenceBatch, n: int) -> SequenceBatch:
    """``n`` copies of a one-row batch."""
    return SequenceBatch(
        **{
            f.name: getattr(batch, f.name).repeat(n, *([1] * (getattr(batch, f.name).dim() - 1)))
            for f in fields(batch)
        }
    )


def path_rule(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(steps + 2,)`` points along the path and their weights (sum 1): 0 (the baseline),
    ``steps`` Gauss-Legendre points on the panels of :data:`PANELS` (as many on each; with
    fewer than 4 steps, the last ``steps`` panels, the first reaching down to 0), then 1
    (the input). The two ends weigh 0: they give the scores, not the integral.

    Examples
    --------
    >>> alpha, w = path_rule(1)  # the midpoint rule
    >>> alpha.tolist(), w.tolist()
    ([0.0, 0.5, 1.0], [0.0, 1.0, 0.0])
    >>> alpha, w = path_rule(32)
    >>> len(alpha), round(float(w.sum()), 6), float(alpha[1]) < 1e-4
    (34, 1.0, True)
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    edges = PANELS if steps >= len(PANELS) - 1 else (0.0, *PANELS[len(PANELS) - steps :])
    panels = len(edges) - 1
    alpha, weights = [np.zeros(1)], [np.zeros(1)]
    for k, (lo, hi) in enumerate(itertools.pairwise(edges)):
        n = steps // panels + (k < steps % panels)  # the first panels take the remainder
        x, w = np.polynomial.legendre.leggauss(n)
        alpha.append(lo + (hi - lo) * (x + 1) / 2)
        weights.append(w * (hi - lo) / 2)
    alpha.append(np.ones(1))
    weights.append(np.zeros(1))
    return (
        torch.from_numpy(np.concatenate(alpha)).float(),
        torch.from_numpy(np.concatenate(weights)).float(),
    )


def integrated_gradients(
    model: NeuralRecommender,
    history: Sequences,
    target: Target,
    steps: int = 32,
    tolerance: float = 0.01,
    max_steps: int | None = None,
) -> Gradients:
    """Integrated gradients of ``target`` over the token components of one timeline.

    ``steps`` quadrature points first; while the summed attributions of the logit or the
    probability miss ``score - baseline`` by more than ``tolerance`` of it (or of
    :data:`ATOL`, if larger), the points are doubled, up to ``max_steps`` (default:
    :data:`MAX_STEPS`, or two doublings of ``steps`` if more, within :data:`STEPS_LIMIT`;
    the last pass stands, with its gap in ``Gradients.gap``).

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> ig = integrated_gradients(model, Sequences.from_lists([[1, 2]], n_items=3),
    ...                           Target.item(3))
    >>> total = sum(float(a.sum()) for a in ig.logit.values())
    >>> abs(total - (ig.score[0] - ig.baseline[0])) < 0.01 * abs(ig.score[0] - ig.baseline[0])
    True
    >>> ig.steps, abs(ig.gap[0]) < 1e-4
    (32, True)
    """
    if max_steps is None:  # room to double a larger start too
        max_steps = max(steps, min(STEPS_LIMIT, max(MAX_STEPS, 4 * steps)))
    if max_steps < steps:
        raise ValueError(f"max_steps ({max_steps}) must be at least steps ({steps})")
    if max_steps > STEPS_LIMIT:
        raise ValueError(
            f"integrated gradients take at most {STEPS_LIMIT} steps (one pass scores its "
            f"points as one batch), got {max_steps}"
        )
    while True:
        ig = _integrated_gradients(model, history, target, steps)
        close = (
            abs(gap) <= max(tolerance * abs(score - base), atol)
            for gap, score, base, atol in zip(ig.gap, ig.score, ig.baseline, ATOL, strict=True)
        )
        if all(close) or steps * 2 > max_steps:
            return ig
        steps *= 2


def _integrated_gradients(
    model: NeuralRecommender, history: Sequences, target: Target, steps: int
) -> Gradients:
    """One pass of :func:`integrated_gradients` with ``steps`` quadrature points."""
    alpha, weights = path_rule(steps)
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
    score, baseline = (float(lg[-1]), float(pr[-1])), (float(lg[0]), float(pr[0]))
    by_logit, by_prob = attribute(grad_logit), attribute(grad_prob)
    sums = (
        sum(float(a.astype(np.float64).sum()) for a in by_logit.values()),
        sum(float(a.astype(np.float64).sum()) for a in by_prob.values()),
    )
    return Gradients(
        score=score,
        baseline=baseline,
        logit=by_logit,
        probability=by_prob,
        steps=steps,
        gap=(sums[0] - (score[0] - baseline[0]), sums[1] - (score[1] - baseline[1])),
    )
