"""HSTU: Hierarchical Sequential Transduction Units with pointwise attention.

Zhai et al. 2024, "Actions Speak Louder than Words: Trillion-Parameter Sequential
Transducers for Generative Recommendations" (ICML 2024, arXiv:2402.17152); reference code
``facebookresearch/generative-recommenders``. One layer, with ``x`` the ``(B, T, D)`` stream:

    U, V, Q, K = split(SiLU(W_uvqk LayerNorm(x)))                  each (B, T, H * d)
    A[h, i, j] = SiLU(Q_i . K_j / sqrt(d) + rab_h(i, j)) / n_i      for valid j <= i, else 0
    x          = x + W_o Dropout(LayerNorm(A V) * U)

``rab_h(i, j)`` is a learned relative attention bias per head: one term for the bucketed
distance ``i - j`` in events and one for the log2-bucketed time difference ``t_i - t_j`` in
seconds. There is no softmax: the weights are SiLU gates, so the attention can express how
*much* history matters (the paper's argument for non-stationary vocabularies), and ``n_i``
(the number of events position ``i`` sees) keeps the sum on the scale of a mean.

Deviations from the paper and its reference code:

* The absolute position embedding (``absolute_position``, as in the reference code, which
  adds learned positions to the input) counts from the most recent event, as in SASRec: a
  position counted from the start of the kept window would change with truncation of our
  right-aligned batches. Without it the relative position bias alone carries order.
* The time bias uses ``t_i - t_j``; the reference code's sequential model uses
  ``t_{i+1} - t_j``, which gives position ``i`` the time of the very event it predicts. Here
  a position sees only the times of events it has seen, so scoring needs no query time.
* ``n_i`` is the number of valid keys of query ``i`` rather than the padded length ``N``
  (padding invariance; ``LayerNorm(A V)`` makes the output nearly independent of it anyway).
* ``Q K^T`` is scaled by ``1 / sqrt(d)`` and the LayerNorms are affine (both as in the later
  ``STU`` module of the reference code; the paper's sequential model does not scale), the
  relative biases are per head rather than shared, and the relative position uses T5-style
  buckets (exact for near distances, logarithmic for far ones) rather than one per distance.
* The output is a final LayerNorm over the stream and items are scored by a dot product with
  the (tied) item embeddings plus the shared loss; ``similarity = "cosine"`` scores them as
  the reference code does instead, by the cosine of L2-normalised states and item embeddings
  divided by ``temperature``. With ``features.time`` off both the gap embedding and the time
  bias are off.
* Pure PyTorch on padded ``(B, T)`` batches, not the jagged Triton kernels; one layer costs
  ``O(B H T^2)`` memory for the bias and attention matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal, cast

import torch
from torch import nn
from torch.nn import functional

from behaviorlm.config import check_finite
from behaviorlm.models.batch import FeatureSizes, SequenceBatch, kept_columns
from behaviorlm.models.deletions import (
    after_prefix,
    deletion_inputs,
    lower_right,
    shareable,
)
from behaviorlm.models.dropout import Dropout
from behaviorlm.models.hstu_deletions import first_layer_without
from behaviorlm.models.neural import FeatureConfig, NeuralRecommender, SequenceModule


@dataclass(frozen=True, kw_only=True)
class HSTUConfig:
    """Settings of :class:`HSTU`.

    Attributes
    ----------
    max_len : int
        Events of history the model reads (the most recent ones).
    dim : int
        Width ``D`` of the token embeddings and the residual stream.
    layers, heads : int
        Number of HSTU layers and attention heads; ``dim`` must be divisible by ``heads``.
    dropout : float
        Dropout on the input embeddings and before each layer's output projection.
    attention_dropout : float
        Dropout on the pointwise attention weights.
    position_buckets : int
        Buckets of the relative position ``i - j``: exact below half, logarithmic up to
        ``max_len`` above.
    time_buckets : int
        Buckets of ``floor(log2(1 + seconds))`` of the relative time (the last one collects
        everything longer).
    absolute_position : bool
        Add a learned embedding of the position counted from the most recent event (0 = the
        last event) to each token, besides the relative biases; the model then reads at most
        ``max_len`` events.
    similarity : {"dot", "cosine"}
        Item scores: the dot product of the state and the item embedding, or their cosine
        divided by ``temperature`` (both L2-normalised, as in the reference code).
    temperature : float
        Divisor of the cosine scores; unused with ``"dot"``.
    scale_inputs : bool
        Multiply the input tokens by ``sqrt(dim)``, as the reference code does (its item
        embeddings start at a standard deviation of 0.02; ours, as SASRec's, at
        ``dim ** -0.5``, so scaled tokens start at unit scale per component).
    features : FeatureConfig
        Token components in use; ``features.time`` also switches the relative time bias.

    Examples
    --------
    >>> HSTUConfig(dim=32, heads=2).dim
    32
    """

    max_len: int = 50
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    attention_dropout: float = 0.0
    position_buckets: int = 32
    time_buckets: int = 32
    absolute_position: bool = False
    similarity: Literal["dot", "cosine"] = "dot"
    temperature: float = 0.05
    scale_inputs: bool = True
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self) -> None:
        check_finite(self)
        for name in ("max_len", "dim", "layers", "heads", "position_buckets", "time_buckets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.similarity not in ("dot", "cosine"):
            raise ValueError(f"similarity must be 'dot' or 'cosine', got {self.similarity!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def _tracing() -> bool:
    """Whether a TorchScript trace is recording this call."""
    return bool(torch.jit.is_tracing())  # type: ignore[attr-defined,no-untyped-call]


def position_buckets(t: int, n_buckets: int, max_len: int) -> torch.Tensor:
    """(T, T) bucket of the distance ``i - j`` (clamped at 0 above the diagonal).

    Distances below ``n_buckets // 2`` get their own bucket; longer ones share logarithmic
    buckets up to ``max_len``; anything longer falls into the last bucket.

    Examples
    --------
    >>> position_buckets(4, n_buckets=4, max_len=8)[3].tolist()  # distances 3, 2, 1, 0
    [2, 2, 1, 0]
    """
    distance = torch.arange(t)[:, None] - torch.arange(t)[None, :]
    distance = distance.clamp(min=0)
    exact = max(1, n_buckets // 2)
    if exact >= n_buckets:  # a single bucket
        return torch.zeros_like(distance)
    far = (
        exact
        + (
            torch.log(distance.float().clamp(min=1) / exact)
            / math.log(max(max_len, exact + 1) / exact)
            * (n_buckets - exact)
        ).long()
    )
    return torch.where(distance < exact, distance, far.clamp(max=n_buckets - 1))


def time_buckets(timestamps: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """(B, T, T) bucket ``floor(log2(1 + t_i - t_j))`` of the time from event ``j`` to ``i``.

    Examples
    --------
    >>> time_buckets(torch.tensor([[0, 1, 9]]), n_buckets=8)[0, 2].tolist()  # 9, 8, 0 s
    [3, 3, 0]
    """
    return time_buckets_between(timestamps, timestamps, n_buckets)


def time_buckets_between(queries: torch.Tensor, keys: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """(B, Q, T) buckets as in :func:`time_buckets`, of query times (B, Q) and key times (B, T).

    Examples
    --------
    >>> time_buckets_between(torch.tensor([[9]]), torch.tensor([[0, 1, 9]]), 8).tolist()
    [[[3, 3, 0]]]
    """
    dt = (queries[:, :, None] - keys[:, None, :]).clamp(min=0)  # (B, Q, T) seconds
    # floor(log2(x)) of an integer x >= 1 is the exponent e of x = m * 2**e (0.5 <= m < 1),
    # minus one: exact in float64 for x < 2**53 (dt of 285 million years), without a logarithm
    _, exponent = torch.frexp((1 + dt).double())
    return (exponent - 1).long().clamp(max=n_buckets - 1)


def bias_lookup(table: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
    """(B, H, Q, T) entries of a ``(K, H)`` bias table at ``(B, Q, T)`` bucket indices.

    A ``gather`` over the expanded table: its backward is a scatter-add, which on CPU is an
    order of magnitude faster than the backward of an embedding lookup with ``B T^2`` indices
    into a few dozen rows (the sort-based ``embedding_dense_backward``).

    Examples
    --------
    >>> table = torch.tensor([[0.0, 10.0], [1.0, 11.0]])  # 2 buckets, 2 heads
    >>> bias_lookup(table, torch.tensor([[[0, 1], [1, 1]]]))[0, 1].tolist()
    [[10.0, 11.0], [11.0, 11.0]]
    """
    b, q, t = buckets.shape
    k, h = table.shape
    index = buckets.reshape(b, 1, q * t).expand(b, h, q * t)
    return torch.gather(table.T.unsqueeze(0).expand(b, h, k), 2, index).view(b, h, q, t)


class HSTULayer(nn.Module):
    """One HSTU layer: pointwise-gated attention with relative biases, residual."""

    def __init__(self, config: HSTUConfig) -> None:
        super().__init__()
        d = config.dim
        self.heads = config.heads
        self.head_dim = d // config.heads
        self.norm_in = nn.LayerNorm(d)
        self.uvqk = nn.Linear(d, 4 * d, bias=False)
        self.norm_attn = nn.LayerNorm(d)
        self.out = nn.Linear(d, d)
        self.dropout = Dropout(config.dropout)
        self.attention_dropout = Dropout(config.attention_dropout)
        # (buckets, H) tables of the relative attention bias
        self.position_bias = nn.Parameter(torch.empty(config.position_buckets, config.heads))
        self.time_bias = nn.Parameter(torch.empty(config.time_buckets, config.heads))
        nn.init.normal_(self.uvqk.weight, std=0.02)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        nn.init.normal_(self.position_bias, std=0.02)
        nn.init.normal_(self.time_bias, std=0.02)

    def forward(
        self,
        x: torch.Tensor,
        allowed: torch.Tensor,
        pos: torch.Tensor,
        times: torch.Tensor | None,
        last: bool = False,
    ) -> torch.Tensor:
        """Update the stream ``x`` (B, T, D).

        ``allowed`` (B, 1, T, T) marks the keys each query may see, scaled by ``1 / n_i``;
        ``pos`` (T, T) and ``times`` (B, T, T) are the relative bucket indices. With ``last``
        only the last position is updated and returned, ``(B, 1, D)``; keys and values
        still come from every position.
        """
        u, v, q, k = self._project(x)
        return self.attend(x, u, q, k, v, allowed, pos, times, last=last)

    def attend(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        allowed: torch.Tensor,
        pos: torch.Tensor,
        times: torch.Tensor | None,
        last: bool = False,
    ) -> torch.Tensor:
        """The layer's output at the query positions, ``(B, Q, D)``.

        ``x`` and ``u`` (B, Q, D) and ``q`` (B, H, Q, d) belong to the queries, ``k`` and
        ``v`` (B, H, T, d) to the keys; ``allowed`` (B or 1, 1, Q, T), ``pos`` (Q, T) and
        ``times`` (B, Q, T) as in :meth:`forward`, for these queries.

        With ``last`` the arguments cover every query position and only the last one is
        computed, ``(B, 1, D)``; the keys and values are used whole.
        """
        if last:
            x, u, q, allowed, pos = x[:, -1:], u[:, -1:], q[:, :, -1:], allowed[:, :, -1:], pos[-1:]
            times = None if times is None else times[:, -1:]
        b, n, d = x.shape
        attn = self.attention_dropout(self._weights(q, k, allowed, pos, times))
        av = (attn @ v).transpose(1, 2).reshape(b, n, d)  # (B, Q, D): heads side by side
        return self.finish(x, u, av)

    def finish(self, x: torch.Tensor, u: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The layer's output from its inputs ``x``, their gates ``u`` and their attention
        ``attended`` (each (..., D), the heads side by side): normalised, gated, projected
        and added to the stream."""
        out: torch.Tensor = x + self.out(self.dropout(self.norm_attn(attended) * u))
        return out

    def attention_weights(
        self,
        x: torch.Tensor,
        allowed: torch.Tensor,
        pos: torch.Tensor,
        times: torch.Tensor | None,
    ) -> torch.Tensor:
        """(B, H, T, T) pointwise weights ``SiLU(Q K^T / sqrt(d) + rab) / n_i`` of :meth:`forward`.

        The same inputs as :meth:`forward`; no dropout. For read-outs such as
        ``behaviorlm.explain``'s attention method.
        """
        _, _, q, k = self._project(x)
        return self._weights(q, k, allowed, pos, times)

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``U`` (B, T, D) and ``V, Q, K`` (B, H, T, d) of the stream ``x``."""
        d = x.shape[-1]
        u, v, q, k = torch.split(functional.silu(self.uvqk(self.norm_in(x))), d, dim=-1)
        return u, self._heads(v), self._heads(q), self._heads(k)

    def values_keys(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``V, K`` (B, H, T, d) of the stream ``x``, as in :meth:`_project`, without the
        gates and queries (for positions whose queries are not needed)."""
        d = x.shape[-1]
        normed, weight = self.norm_in(x), self.uvqk.weight
        v = functional.silu(functional.linear(normed, weight[d : 2 * d]))
        k = functional.silu(functional.linear(normed, weight[3 * d :]))
        return self._heads(v), self._heads(k)

    def _heads(self, z: torch.Tensor) -> torch.Tensor:
        """(B, H, T, d) of a (B, T, D) projection."""
        b, t, _ = z.shape
        return z.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def _weights(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        allowed: torch.Tensor,
        pos: torch.Tensor,
        times: torch.Tensor | None,
    ) -> torch.Tensor:
        """(B, H, Q, T) ``SiLU(Q K^T / sqrt(d) + rab)`` on the allowed keys, times ``1 / n_i``."""
        rab = bias_lookup(self.position_bias, pos.unsqueeze(0))  # (1, H, T, T)
        if times is not None:
            rab = rab + bias_lookup(self.time_bias, times)  # (B, H, T, T)
        scores = (q / math.sqrt(self.head_dim)) @ k.transpose(-1, -2) + rab  # scale the small side
        weights: torch.Tensor = functional.silu(scores) * allowed
        return weights


class HSTUModule(SequenceModule):
    """Token embedding -> HSTU layers -> LayerNorm; see the module docstring.

    Examples
    --------
    >>> from behaviorlm.models.batch import build_batch
    >>> from behaviorlm.schema import Sequences
    >>> s = Sequences.from_lists([[1, 2, 3], [2]], n_items=3)
    >>> sizes = FeatureSizes.of(s)
    >>> module = HSTUModule(HSTUConfig(dim=16, heads=2), sizes)
    >>> module.encode(build_batch(s, 50, sizes)).shape
    torch.Size([2, 3, 16])
    """

    traceable: ClassVar[bool] = True  # sizes read from tensors; padding is the one branch

    def __init__(self, config: HSTUConfig, sizes: FeatureSizes) -> None:
        super().__init__(sizes, config.dim, config.features)
        self.config = config
        self.input_dropout = Dropout(config.dropout)
        self.position: nn.Embedding | None = None
        if config.absolute_position:
            self.position = nn.Embedding(config.max_len, config.dim)
            nn.init.normal_(self.position.weight, std=config.dim**-0.5)
        self.layers = nn.ModuleList(HSTULayer(config) for _ in range(config.layers))
        self.norm_out = nn.LayerNorm(config.dim)

    def encode(self, batch: SequenceBatch) -> torch.Tensor:
        return self._encode(batch, last=False)

    def encode_last(self, batch: SequenceBatch) -> torch.Tensor:
        """(B, D) state at the last position; the last layer runs for that query only."""
        return self._encode(batch, last=True)[:, -1]

    def encode_last_without(
        self, batch: SequenceBatch, drop: torch.Tensor, gaps: torch.Tensor
    ) -> torch.Tensor:
        """(K, D) states at the last position of the row without column ``drop[k]``, each k.

        Exact (tests compare it with encoding every row). The biases are relative and absolute
        positions count from the end, so in the row without column ``d`` every state before
        ``d`` equals the state at that column of one shared row: the ``n`` oldest columns
        (each one place nearer the end than in the full row). The first layer runs for every
        row at once by running sums over the keys (:mod:`behaviorlm.models.hstu_deletions`).
        Then the deletions are taken in groups by ``d``; a group computes its columns from
        its smallest ``d`` on, attending to the shared row's keys and values before that,
        with the position and time buckets of its own rows. The last layer runs for the last
        query only, as in :meth:`encode_last`. Training mode, padding, several rows, no
        deletions and rows longer than an absolute position reaches take the default path.
        """
        n = batch.shape[1] - 1  # events in a row with one column gone
        too_long = self.position is not None and n > self.config.max_len
        if too_long or not shareable(self, batch, drop):
            return super().encode_last_without(batch, drop, gaps)
        c, device = self.config, batch.mask.device
        drop, gaps = drop.to(device), gaps.to(device)
        scale = self._input_scale()  # as in _encode
        position = self._positions(n, device)  # (n, D) or None
        parts = deletion_inputs(self.tokens, batch, drop, gaps, position, scale)
        kept = kept_columns(drop, n)  # (K, n): the full row's columns each row keeps
        pos = position_buckets(n, c.position_buckets, c.max_len).to(device)  # (n, n)
        every = batch.timestamps[:1]  # (1, n + 1): the times of the full row's events
        times = time_buckets_between(every, every, c.time_buckets)[0] if c.features.time else None

        def context(
            rows: torch.Tensor, start: int
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            """``allowed``, ``pos`` and ``times`` of the queries of ``rows`` from column
            ``start`` on: each sees the keys up to itself, divided by their number."""
            allowed = lower_right(n - start, n, device).float()
            allowed = (allowed / allowed.sum(-1, keepdim=True))[None, None]
            between = None if times is None else times[kept[rows, start:, None], kept[rows, None]]
            return allowed, pos[start:], between

        shared = parts.shared.unsqueeze(0)  # the shared row's states, layer by layer
        shared_context = self._context(batch.columns(slice(None, n)))
        *body, top = cast(list[HSTULayer], list(self.layers))
        states = None
        if body:  # the first layer for all the rows at once, by running sums
            first = body[0]
            shared_states = first(shared, *shared_context)
            states = first_layer_without(first, parts, shared_states[0], pos, times)
            if states is not None:
                shared, body = shared_states, body[1:]
        groups = parts.groups(states)
        contexts = [context(rows, start) for rows, start, _ in groups] if body else []
        for layer in body:
            u, v, q, k = layer._project(shared)
            for g, (rows, start, x) in enumerate(groups):
                own_u, own_v, own_q, own_k = layer._project(x)
                keys, values = after_prefix((own_k, own_v), (k, v), start)
                states = layer.attend(x, own_u, own_q, keys, values, *contexts[g])
                groups[g] = (rows, start, states)
            shared = layer.attend(shared, u, q, k, v, *shared_context)
        v, k = top.values_keys(shared)
        out = torch.empty(len(drop), shared.shape[2], dtype=shared.dtype, device=device)
        for rows, start, x in groups:  # the last query only: its gate, query and context
            own_v, own_k = top.values_keys(x)
            keys, values = after_prefix((own_k, own_v), (k, v), start)
            last_x = x[:, -1:]
            last_u, _, last_q, _ = top._project(last_x)
            last = top.attend(last_x, last_u, last_q, keys, values, *context(rows, n - 1))
            out[rows] = self._output(last[:, 0])
        return out

    def item_embeddings(self) -> torch.Tensor:
        """(N + 1, D) output embeddings: the item embeddings, L2-normalised for ``cosine``."""
        return self.item_rows(slice(None))

    def item_rows(self, index: slice | torch.Tensor) -> torch.Tensor:
        """Output embeddings of the items ``index``, L2-normalised for ``cosine`` (these rows
        only)."""
        rows = self.tokens.item.weight[index]
        if self.config.similarity == "cosine":
            return functional.normalize(rows, dim=-1)
        return rows

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        """The final LayerNorm of the stream; for ``cosine`` L2-normalised and divided by
        the temperature, so that its dot products with :meth:`item_embeddings` are the
        scores (the action head then reads states of norm ``1 / temperature``)."""
        out: torch.Tensor = self.norm_out(x)
        if self.config.similarity == "cosine":
            out = functional.normalize(out, dim=-1) / self.config.temperature
        return out

    def _input_scale(self) -> float:
        """The factor of the input tokens: ``sqrt(dim)`` with ``scale_inputs``, else 1."""
        return math.sqrt(self.config.dim) if self.config.scale_inputs else 1.0

    def _positions(self, t: int, device: torch.device) -> torch.Tensor | None:
        """(T, D) absolute position embeddings of ``t`` columns, the last one 0; None without
        them."""
        if self.position is None:
            return None
        out: torch.Tensor = self.position(torch.arange(t - 1, -1, -1, device=device))
        return out

    def _context(
        self, batch: SequenceBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``allowed`` (B, 1, T, T), ``pos`` (T, T) and ``times`` (B, T, T) of a batch; where
        every row has the same events' times and padding (rows of one timeline: an
        explanation's ablations or integration steps), in evaluation mode, ``allowed`` and
        ``times`` of the first row only, (1, 1, T, T) and (1, T, T), which broadcast over the
        batch."""
        c = self.config
        mask, stamps = batch.mask, batch.timestamps  # (B, T)
        if (
            not self.training  # training batches hold different rows (and skip the check)
            and not _tracing()  # a trace keeps a branch: it takes the general path
            and mask.shape[0] > 1
            and bool((stamps == stamps[:1]).all())
            and bool((mask == mask[:1]).all())
        ):
            mask, stamps = mask[:1], stamps[:1]
        t = mask.shape[1]  # a size, not an int: a trace of this method takes any length
        causal = torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
        allowed = (causal & mask[:, None, :]).float()  # (B, T, T): valid keys j <= i
        allowed = allowed / allowed.sum(-1, keepdim=True).clamp(min=1.0)  # divide by n_i
        allowed = allowed.unsqueeze(1)  # (B, 1, T, T), broadcast over heads
        pos = position_buckets(t, c.position_buckets, c.max_len).to(mask.device)
        times = time_buckets(stamps, c.time_buckets) if c.features.time else None
        return allowed, pos, times

    def _encode(self, batch: SequenceBatch, last: bool) -> torch.Tensor:
        if self.position is not None:  # the most recent events, as model.batch keeps them
            batch = batch.columns(slice(-self.config.max_len, None))
        mask = batch.mask  # (B, T)
        scale = self._input_scale()
        tokens = self.tokens(batch)
        position = self._positions(mask.shape[1], mask.device)
        if position is not None:
            tokens = tokens + position
        x = self.input_dropout(tokens * scale) * mask.unsqueeze(-1)
        allowed, pos, times = self._context(batch)
        for i, layer in enumerate(self.layers):
            x = layer(x, allowed, pos, times, last=last and i == len(self.layers) - 1)
        return self._output(x)


class HSTU(NeuralRecommender):
    """HSTU next-event model (train with ``behaviorlm.train.fit_model``).

    Examples
    --------
    >>> from behaviorlm.schema import Sequences
    >>> model = HSTU(HSTUConfig(dim=16, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> model.score(Sequences.from_lists([[1, 2]], n_items=3)).shape
    (1, 3)
    """

    name: ClassVar[str] = "hstu"
    config_class: ClassVar[type[HSTUConfig]] = HSTUConfig
    config: HSTUConfig

    def build(self, sizes: FeatureSizes) -> HSTUModule:
        return HSTUModule(self.config, sizes)
