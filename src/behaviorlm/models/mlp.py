"""``mlp``: the original feed-forward recommender, kept as a baseline.

The design the product grew from: a user's history is one fixed-size vector, a weighted
multi-hot over the catalogue (an item the user rated weighs ``value / rating_scale``, any
other item 1), normalised; one hidden ReLU layer maps it to ``hidden`` units and a softmax
over all items predicts the next one:

    x    = multi_hot(history) / norm                              (N + 1,)
    h    = ReLU(W_1^T x + b_1)                                     (hidden,)
    p    = softmax(W_2 h + b_2)                                    (N + 1,)

trained with cross-entropy (default) or, as in the original design, the squared error
between ``p`` and the next item's one-hot (``loss = "squared"``; see
:meth:`MLPModule.item_loss`).
This is the classic feed-forward collaborative-filtering network (a one-hidden-layer
autoencoder-style recommender in the spirit of Sedhain et al. 2015, "AutoRec", and the
YouTube candidate network of Covington et al. 2016, here over an item bag instead of
averaged embeddings), not a sequence model: the order of the history does not matter.

How it is computed: ``W_1^T x`` is a weighted sum of rows of the ``(N + 1, hidden)`` matrix
``W_1`` (the same linear map as the matrix product, at the cost of the history length,
like ``nn.EmbeddingBag``). To train on every position at once, :meth:`MLPModule.encode`
takes cumulative sums over time, so position ``t`` holds the hidden layer of the prefix
``<= t`` and ``encode`` is causal like the sequence models. ``W_1`` is the item table of the
token embedding (``module.tokens.item``); the output layer ``W_2, b_2`` is separate, and
:meth:`MLPModule.item_embeddings` / :meth:`MLPModule.item_bias` return it.

Choices within the design: an item repeated in the window counts once (a multi-hot), with
the weight of its latest rating so far (a view followed by a rating of the same item weighs
as the rating from then on; 1 while the item has no rating); events without an item
(searches) are ignored; the
normaliser is the L2 norm of ``x`` (or its sum, or none); dropout acts on the hidden layer.
Only the item history is used (every other feature group is ignored), so the token
embedding is built with vocabulary size 1 (padding only) for all other components.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torch.utils.checkpoint import checkpoint

from behaviorlm.config import check_finite
from behaviorlm.models.batch import FeatureSizes, SequenceBatch
from behaviorlm.models.dropout import Dropout
from behaviorlm.models.neural import (
    FeatureConfig,
    NeuralRecommender,
    SequenceModule,
    TokenEmbedding,
    zero_rows_but,
)
from behaviorlm.models.neural import chunk_elements as device_chunk
from behaviorlm.schema import Sequences

#: The baseline reads items only: every optional token component is off.
ITEMS_ONLY = FeatureConfig(
    actions=False, time=False, search=False, social=False, location=False, device=False
)


@dataclass(frozen=True, kw_only=True)
class MLPConfig:
    """Settings of :class:`MLP`.

    Attributes
    ----------
    max_len : int
        Most recent events of the history that form the multi-hot vector.
    hidden : int
        Units of the hidden ReLU layer.
    dropout : float
        Dropout on the hidden layer.
    rating_scale : float
        An item the user rated weighs ``value / rating_scale`` (its latest rating); an item
        without a rating weighs 1. Training values outside ``[0, rating_scale]`` are refused.
    ratings : bool
        Read event values as ratings (default); False: every item weighs 1, for values that
        are no ratings (watch times, say).
    normalize : {"l2", "sum", "none"}
        Divide the multi-hot vector by its L2 norm, by its sum, or not at all.
    loss : {"ce", "squared"}
        Cross-entropy of the softmax (default) or squared error between the softmax and the
        one-hot next item (the original design).

    Examples
    --------
    >>> MLPConfig(hidden=32, loss="squared").loss
    'squared'
    """

    max_len: int = 200
    hidden: int = 256
    dropout: float = 0.5
    rating_scale: float = 5.0
    ratings: bool = True
    normalize: Literal["l2", "sum", "none"] = "l2"
    loss: Literal["ce", "squared"] = "ce"

    def __post_init__(self) -> None:
        check_finite(self)
        for name in ("max_len", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.rating_scale <= 0:
            raise ValueError(f"rating_scale must be positive, got {self.rating_scale}")
        if self.normalize not in ("l2", "sum", "none"):
            raise ValueError(f"normalize must be 'l2', 'sum' or 'none', got {self.normalize!r}")
        if self.loss not in ("ce", "squared"):
            raise ValueError(f"loss must be 'ce' or 'squared', got {self.loss!r}")


def item_weights(
    items: torch.Tensor, mask: torch.Tensor, rated: torch.Tensor, value: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight of each event's item in the multi-hot of its prefix, and just before it.

    An item weighs its latest rating up to and including the event (``value`` where
    ``rated``), or 1 if it has none yet. Returns ``(now, before)``, each (B, T): the item's
    weight in the prefix that ends at the event, and in the prefix before it (0 where the
    item does not occur there); both 0 where ``mask`` is false. The multi-hot of a prefix
    is then the running sum of ``(now - before)`` times the item's row.

    Examples
    --------
    >>> items, mask = torch.tensor([[0, 3, 4, 3]]), torch.tensor([[False, True, True, True]])
    >>> rated = torch.tensor([[False, False, False, True]])
    >>> now, before = item_weights(items, mask, rated, torch.tensor([[0.0, 0.0, 0.0, 0.4]]))
    >>> now.tolist(), before.tolist()
    ([[0.0, 1.0, 1.0, 0.4000000059604645]], [[0.0, 0.0, 0.0, 1.0]])
    """
    t = items.shape[1]
    order = torch.arange(t, device=items.device, dtype=torch.int32)  # (B, T, T) picks below
    upto = torch.ones(t, t, dtype=torch.bool, device=items.device).tril()  # j <= i
    same = (items[:, :, None] == items[:, None, :]) & mask[:, None, :] & mask[:, :, None]
    first = mask & ~(same & upto.tril(-1)).any(-1)
    sets = mask & (rated | first)  # events that set their item's weight
    weight = torch.where(rated, value, torch.ones_like(value))
    setters = same & sets[:, None, :]  # (B, T, T): earlier-or-same events that set the weight

    def latest(allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight set by the latest allowed setter of each event, and whether there is one."""
        index = torch.where(allowed, order, -1).amax(-1)  # (B, T)
        found = index >= 0
        return weight.gather(1, index.clamp(min=0).long()) * found, found

    now, _ = latest(setters & upto)
    before, _ = latest(setters & upto.tril(-1))
    zero = torch.zeros_like(now)
    return torch.where(mask, now, zero), torch.where(mask, before, zero)


class MLPModule(SequenceModule):
    """Weighted multi-hot history -> ReLU hidden layer -> output layer with bias.

    Examples
    --------
    >>> from behaviorlm.models.batch import build_batch
    >>> from behaviorlm.schema import Sequences
    >>> s = Sequences.from_lists([[1, 2, 3], [2]], n_items=3)
    >>> sizes = FeatureSizes.of(s)
    >>> module = MLPModule(MLPConfig(hidden=8), sizes)
    >>> module.encode(build_batch(s, 200, sizes)).shape, module.item_embeddings().shape
    (torch.Size([2, 3, 8]), torch.Size([4, 8]))
    """

    def __init__(self, config: MLPConfig, sizes: FeatureSizes) -> None:
        super().__init__(sizes, config.hidden, ITEMS_ONLY)
        self.config = config
        # The first layer is the item table alone: the other components get the padding
        # code only, so the baseline holds no parameters it never uses.
        items_only = replace(
            sizes, actions=1, gaps=1, devices=1, locations=1, sources=1, query_words=1
        )
        self.tokens = TokenEmbedding(items_only, config.hidden, ITEMS_ONLY)
        self.hidden_bias = nn.Parameter(torch.zeros(config.hidden))
        self.dropout = Dropout(config.dropout)
        self.output = nn.Linear(config.hidden, sizes.items)  # weight (N + 1, hidden) = W_2
        nn.init.normal_(self.output.weight, std=config.hidden**-0.5)
        nn.init.zeros_(self.output.bias)

    def encode(self, batch: SequenceBatch) -> torch.Tensor:
        rated = ~torch.isnan(batch.values)
        if not self.config.ratings:  # values that are no ratings: every item weighs 1
            rated = torch.zeros_like(rated)
        value = torch.where(rated, batch.values, 0.0) / self.config.rating_scale
        now, before = item_weights(batch.items, batch.mask & (batch.items > 0), rated, value)
        rows = self.tokens.item(batch.items)  # (B, T, H): row of W_1 for each event
        # (B, T, H): W_1^T x of each prefix, the item's weight changed by each event
        total = torch.cumsum((now - before).unsqueeze(-1) * rows, dim=1)
        norm = self.config.normalize
        if norm == "l2":
            scale = torch.cumsum(now * now - before * before, dim=1).clamp(min=0).sqrt()
        elif norm == "sum":
            scale = torch.cumsum(now - before, dim=1).abs()
        else:
            scale = torch.ones_like(now)
        total = total / scale.clamp(min=1e-6).unsqueeze(-1)
        out: torch.Tensor = self.dropout(functional.relu(total + self.hidden_bias))
        return out

    def item_embeddings(self) -> torch.Tensor:
        """(N + 1, hidden) output layer ``W_2`` (not the input item table)."""
        return self.output.weight

    def item_bias(self) -> torch.Tensor:
        """(N + 1,) output bias ``b_2``."""
        return self.output.bias

    def item_loss(
        self, hidden: torch.Tensor, targets: torch.Tensor, chunk_elements: int | None = None
    ) -> torch.Tensor | None:
        """The model's own next-item loss, or None to use the shared loss of the training loop.

        Parameters
        ----------
        hidden : (M, hidden) tensor
            Hidden states of the positions that get a next-item loss.
        targets : (M,) long tensor
            Their next item ids (all > 0).
        chunk_elements : int, optional
            Softmax elements held at once (default: as the full softmax on the device,
            :func:`~behaviorlm.models.neural.chunk_elements`): the positions are scored in
            chunks of ``chunk_elements // N`` rows, each recomputed in the backward pass
            (``torch.utils.checkpoint``), so no ``(M, N)`` matrix is built or kept.

        Returns
        -------
        None for ``loss = "ce"``; for ``loss = "squared"`` the mean over positions of
        ``sum_j (p_j - onehot(target)_j) ** 2`` with ``p`` the softmax over items ``1..N``.

        Examples
        --------
        >>> from behaviorlm.schema import Sequences
        >>> sizes = FeatureSizes.of(Sequences.from_lists([[1, 2]], n_items=2))
        >>> module = MLPModule(MLPConfig(hidden=4, loss="squared"), sizes)
        >>> # a zero hidden state scores every item by its bias, 0 at init: p = (1/2, 1/2)
        >>> module.item_loss(torch.zeros(1, 4), torch.tensor([1])).item()
        0.5
        >>> MLPModule(MLPConfig(hidden=4), sizes).item_loss(torch.zeros(1, 4), torch.tensor([1]))
        """
        if self.config.loss == "ce":
            return None
        elements = chunk_elements if chunk_elements is not None else device_chunk(hidden.device)
        rows = max(1, elements // max(1, len(self.output.weight) - 1))
        total = hidden.new_zeros((), dtype=torch.float32)
        for lo in range(0, len(targets), rows):
            chunk = hidden[lo : lo + rows], targets[lo : lo + rows]
            total = total + checkpoint(self.squared_errors, *chunk, use_reentrant=False)
        return total / max(1, len(targets))

    def squared_errors(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The sum over positions of ``sum_j (p_j - onehot(target)_j) ** 2`` (one chunk)."""
        p = torch.softmax(self.logits(hidden, slice(1, None)).float(), dim=-1)  # (m, N)
        p_target = p.gather(1, targets.unsqueeze(1) - 1).squeeze(1)  # (m,)
        # sum_j (p_j - y_j)^2 = sum_j p_j^2 - 2 p_target + 1, without building the one-hot
        return ((p * p).sum(-1) - 2.0 * p_target + 1.0).sum()


class MLP(NeuralRecommender):
    """The feed-forward baseline (train with ``behaviorlm.train.fit_model``).

    Examples
    --------
    >>> from behaviorlm.schema import Sequences
    >>> model = MLP(MLPConfig(hidden=8))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> model.score(Sequences.from_lists([[1, 2]], n_items=3)).shape
    (1, 3)
    """

    name: ClassVar[str] = "mlp"
    config_class: ClassVar[type[MLPConfig]] = MLPConfig
    config: MLPConfig

    def build(self, sizes: FeatureSizes) -> MLPModule:
        return MLPModule(self.config, sizes)

    def zero_unfed(self, inputs: SequenceBatch) -> None:
        """As for every neural model, and the first layer's rows of the items that no
        training input holds: unlike the sequence models', mlp's item table is no output
        layer (that is ``output``), so such a row gets no gradient and would keep its random
        start, which a history of that item would read as learned."""
        super().zero_unfed(inputs)
        zero_rows_but(self.module.tokens, {"item": inputs.items})

    def setup(self, train: Sequences, seed: int = 0) -> SequenceModule:
        """As for every neural model; ValueError where the training values, read as ratings,
        fall outside ``[0, rating_scale]`` (a watch time of 600 s would weigh an item 120
        times a plain view)."""
        values = train.values[np.isfinite(train.values)]
        scale = self.config.rating_scale
        if self.config.ratings and len(values) and not (0 <= values.min() <= values.max() <= scale):
            raise ValueError(
                f"mlp reads event values as ratings from 0 to model.rating_scale ({scale:g}), "
                f"but the training values range from {values.min():g} to {values.max():g}: set "
                "model.rating_scale to the top of the rating scale, or model.ratings=false "
                "where the values are no ratings (watch times, say)"
            )
        return super().setup(train, seed)
