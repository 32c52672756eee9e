"""Attention read-out: a diagnostic, not an explanation.

How much the most recent position of the *last* layer attends to each event, averaged over
heads. Attention weights say where a layer reads from, not what changes the prediction
(values, residual streams, earlier layers and the output layer all intervene: Jain & Wallace
2019, "Attention is not Explanation"); use occlusion or integrated gradients for influence.

SASRec: the softmax weights of its last block; HSTU: the SiLU weights of its last layer
(divided by the number of visible events, as in the layer; they need not sum to one and may
be slightly negative). ``mlp`` has no attention. The weights are recomputed from the input
that a forward pre-hook captures at the last block, by the block's ``attention_weights``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from behaviorlm.models.hstu import HSTULayer, HSTUModule
from behaviorlm.models.neural import NeuralRecommender
from behaviorlm.models.sasrec import Block, SASRecModule
from behaviorlm.schema import F32, Sequences

NOTE = (
    "attention weights of the last layer (mean over heads) are a diagnostic of where the "
    "model reads from, not an explanation of what drives the prediction"
)


def last_layer(model: NeuralRecommender) -> Block | HSTULayer:
    """The block whose attention is read out; ValueError for a model without attention."""
    module = model.module
    if isinstance(module, SASRecModule):
        layers = list(module.blocks)
    elif isinstance(module, HSTUModule):
        layers = list(module.layers)
    else:
        raise ValueError(
            f"{model.name} has no attention to read out; use method 'occlusion', 'ig' or 'shapley'"
        )
    if not layers:
        raise ValueError(f"this {model.name} model has no layers, so no attention to read out")
    last = layers[-1]
    assert isinstance(last, Block | HSTULayer)
    return last


def attention(model: NeuralRecommender, history: Sequences) -> F32:
    """(T,) attention of the last position of the last layer to each of the ``T`` input columns.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import SASRec, SASRecConfig
    >>> model = SASRec(SASRecConfig(dim=8, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> w = attention(model, Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> w.shape, round(float(w.sum()), 4)
    ((3,), 1.0)
    """
    block = last_layer(model)
    module = model.module.eval()
    captured: list[tuple[Any, ...]] = []

    def keep_inputs(_: nn.Module, args: tuple[Any, ...]) -> None:
        captured.append(args)

    handle = block.register_forward_pre_hook(keep_inputs)
    try:
        with torch.no_grad():
            module.encode(model.batch(history))
            weights: torch.Tensor = block.attention_weights(*captured[-1])  # (1, H, T, T)
    finally:
        handle.remove()
    return weights[0, :, -1, :].mean(0).float().numpy().astype(np.float32)
