"""An exponential moving average of a model's weights (Polyak averaging).

Training goes on with the live weights; validation, the kept best state and so the saved
artifact use the average (as ``timm``'s ``ModelEmaV2`` and Keras' ``use_ema`` do). After
update ``n`` the average moves towards the live weights by ``1 - min(decay, (1 + n) / (10 +
n))``: the early, still random weights fade out quickly instead of weighing on the average
for thousands of steps (the warm-up of TensorFlow's ``ExponentialMovingAverage`` with
``num_updates``).

A run that stops on a validation plateau while its learning rate is still high ends between
the noisy weights of its last steps; their average lies nearer the middle of the valley
they move in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightAverage:
    """The moving average of the trainable weights of ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        The model being trained; the average starts at its current weights.
    decay : float
        Share of the average kept at each update, in ``(0, 1)``; ``1 / (1 - decay)`` updates
        is the average's horizon (0.999: about a thousand optimiser steps).

    Examples
    --------
    >>> layer = torch.nn.Linear(1, 1, bias=False)
    >>> _ = layer.weight.data.fill_(0.0)
    >>> average = WeightAverage(layer, decay=0.9)
    >>> _ = layer.weight.data.fill_(1.0)
    >>> average.update()  # the first update keeps min(0.9, 2 / 11) of the old average
    >>> round(average.state()["weight"].item(), 3)
    0.818
    >>> with average.applied():
    ...     round(layer.weight.item(), 3)
    0.818
    >>> layer.weight.item()  # the live weights are back
    1.0
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.average = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the live weights (after each optimiser step)."""
        self.updates += 1
        keep = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, param in zip(self.average, self.params, strict=True):
            average.lerp_(param.detach(), 1.0 - keep)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Run the block with the average in the module's weights, then put the live ones back."""
        live = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for param, average in zip(self.params, self.average, strict=True):
                param.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, saved in zip(self.params, live, strict=True):
                    param.copy_(saved)

    def state(self) -> dict[str, torch.Tensor]:
        """The average by parameter name (for a checkpoint)."""
        return dict(zip(self.names, self.average, strict=True))

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Continue from a :meth:`state` of the same module after ``updates`` updates."""
        if sorted(state) != sorted(self.names):
            raise ValueError("the weight average does not match the model's parameters")
        for name, average in zip(self.names, self.average, strict=True):
            average.copy_(state[name])
        self.updates = updates
