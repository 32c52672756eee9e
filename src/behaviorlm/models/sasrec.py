"""SASRec: self-attentive sequential recommendation.

Kang & McAuley 2018, "Self-Attentive Sequential Recommendation" (ICDM 2018, arXiv:1808.09781).
A stack of causal self-attention blocks reads the event tokens; the hidden state at the most
recent event scores every item by a dot product with the (tied) item embeddings. With ``x``
the ``(B, T, D)`` stream of one block:

    x = x + Dropout(SelfAttention(LayerNorm(x)))     causal, padded keys masked
    x = x + Dropout(W_2 Dropout(GELU(W_1 LayerNorm(x))))

Trained on every position with the full softmax cross-entropy over the catalogue, as in
"SASRec+" (Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better than
SASRec?", RecSys 2023), or with a sampled softmax with log-Q correction; the losses live in
``behaviorlm.train.losses``.

Deviations from the paper:

* Tokens are whole events (item + action + time gap + device + location + source + query
  words, :class:`behaviorlm.models.neural.TokenEmbedding`), not items only; with every
  feature group off this is the paper's item embedding.
* Positions are counted from the most recent event (position 0 = the last event), so the
  right-aligned padding of our batches never shifts them. (The paper's left-padded inputs of
  fixed length give the same numbering; item embeddings are not scaled by ``sqrt(D)``.)
* Pre-LayerNorm blocks with a final LayerNorm (as in the authors' code, which normalises
  the queries only), GELU instead of ReLU in the feed-forward layer, whose width is
  ``ffn_mult * D`` (the paper: ``D``), and ``torch.nn.functional.scaled_dot_product_attention``.
* Padded positions attend to themselves only, so fully padded rows stay finite; no real
  position ever attends to padding.
* The loss is the full (or sampled) softmax instead of the paper's one-negative binary
  cross-entropy, which SASRec+ showed to be much stronger.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import ClassVar, cast

import torch
from torch import nn
from torch.nn import functional
from torch.nn.attention import SDPBackend, sdpa_kernel

from behaviorlm.config import check_finite
from behaviorlm.models.batch import FeatureSizes, SequenceBatch
from behaviorlm.models.deletions import (
    after_prefix,
    deletion_inputs,
    lower_right,
    shareable,
)
from behaviorlm.models.dropout import Dropout, dropout
from behaviorlm.models.neural import FeatureConfig, NeuralRecommender, SequenceModule
from behaviorlm.models.sasrec_deletions import first_block_without

#: Attention kernels that SASRec may use on a GPU, each with the switch that turns it on or
#: off: torch's CUDA kernels but cuDNN's. cuDNN builds a graph for every new shape, and
#: training batches are cut to their longest row, so their lengths vary: with cuDNN
#: ``sasrec`` trained at 11,043 events/s on an H200, without it at 53,717
#: (``benchmarks/RESULTS.md``, "Training on a GPU").
GPU_ATTENTION: tuple[tuple[SDPBackend, Callable[[], bool]], ...] = (
    (SDPBackend.FLASH_ATTENTION, torch.backends.cuda.flash_sdp_enabled),
    (SDPBackend.EFFICIENT_ATTENTION, torch.backends.cuda.mem_efficient_sdp_enabled),
    (SDPBackend.MATH, torch.backends.cuda.math_sdp_enabled),
)


def gpu_attention() -> AbstractContextManager[None]:
    """A context in which ``scaled_dot_product_attention`` on a GPU keeps off cuDNN.

    Of the kernels in :data:`GPU_ATTENTION`, those the caller has not switched off (with
    ``torch.nn.attention.sdpa_kernel`` or ``torch.backends.cuda.enable_*_sdp``) stay on;
    where the caller has switched all of them off, leaving cuDNN's alone, nothing changes.
    The switches are torch's, global to the process: threads that run SASRec on a GPU side
    by side share them.

    Examples
    --------
    >>> with gpu_attention():
    ...     torch.backends.cuda.cudnn_sdp_enabled()
    False
    >>> with sdpa_kernel([SDPBackend.MATH]), gpu_attention():  # the caller's choice stands
    ...     torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled()
    (False, True)
    """
    allowed = [backend for backend, enabled in GPU_ATTENTION if enabled()]
    return sdpa_kernel(allowed) if allowed else nullcontext()


@dataclass(frozen=True, kw_only=True)
class SASRecConfig:
    """Settings of :class:`SASRec`.

    Attributes
    ----------
    max_len : int
        Events of history the model reads (the most recent ones).
    dim : int
        Width ``D`` of the tokens and hidden states; divisible by ``heads``.
    layers, heads : int
        Transformer blocks and attention heads per block.
    dropout : float
        Dropout on the input tokens, attention weights, block outputs and inside the FFN.
    ffn_mult : int
        Width of the feed-forward layer in multiples of ``dim``.
    features : FeatureConfig
        Token components in use.

    Examples
    --------
    >>> SASRecConfig(dim=32, heads=4).max_len
    50
    >>> SASRecConfig(dim=30, heads=4)
    Traceback (most recent call last):
    ...
    ValueError: model.dim (30) must be divisible by model.heads (4)
    """

    max_len: int = 50
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    ffn_mult: int = 1
    features: FeatureConfig = field(default_factory=FeatureConfig)

    def __post_init__(self) -> None:
        check_finite(self)
        for name in ("max_len", "dim", "heads", "ffn_mult"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be at least 1, got {getattr(self, name)}")
        if self.layers < 0:
            raise ValueError(f"model.layers must be >= 0, got {self.layers}")
        if self.dim % self.heads:
            raise ValueError(
                f"model.dim ({self.dim}) must be divisible by model.heads ({self.heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


def attention_with_dropout(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    causal: bool,
    p: float,
) -> torch.Tensor:
    """``scaled_dot_product_attention(q, k, v, mask, p, causal)`` with the attention weights
    dropped by :func:`behaviorlm.models.dropout.dropout` (fast masks on the CPU).

    As torch's own attention does on the CPU when it drops weights, the weights are computed
    whole and in single precision (also under bfloat16 autocast); the result has ``q``'s
    dtype. ``mask`` is boolean (True = allowed) or additive. Every query must be allowed at
    least one key (a row with none gives NaN, where torch gives zeros; SASRec's masks always
    let a position see itself).

    Examples
    --------
    >>> q, k, v = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    >>> plain = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    >>> torch.allclose(attention_with_dropout(q, k, v, None, True, 0.0), plain, atol=1e-6)
    True
    """
    with torch.autocast(q.device.type, enabled=False):
        scores = (q.float() @ k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, Q, K)
        if causal:
            allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~allowed, float("-inf"))
        elif mask is not None and mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        elif mask is not None:
            scores = scores + mask.float()
        weights = dropout(torch.softmax(scores, dim=-1), p, training=True)
        return (weights @ v.float()).to(q.dtype)


class Block(nn.Module):
    """One pre-LayerNorm transformer block with causal multi-head self-attention.

    Examples
    --------
    >>> block = Block(dim=8, heads=2, ffn_dim=8, dropout=0.0)
    >>> bias = attention_bias(torch.ones(1, 3, dtype=torch.bool))  # (1, 1, 3, 3)
    >>> block(torch.randn(1, 3, 8), bias).shape
    torch.Size([1, 3, 8])
    >>> block(torch.randn(1, 3, 8), bias, last=True).shape  # the last query only
    torch.Size([1, 1, 8])
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(ffn_dim, dim),
        )
        self.drop = Dropout(dropout)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None, last: bool = False
    ) -> torch.Tensor:
        """``x`` (B, T, D); ``bias`` (B, 1, T, T) additive mask, 0 where query i may see key j;
        None for a batch without padding (plain causal attention, which skips the masked half).

        With ``last`` only the last position is updated and returned, ``(B, 1, D)``: the
        keys and values still come from every position.
        """
        q, k, v = self._project(x)
        if last:
            x, q = x[:, -1:], q[:, :, -1:]
            bias = None if bias is None else bias[:, :, -1:]
        # without a mask the last query sees every key; otherwise query i sees keys <= i
        mask = None if bias is None else bias.to(q.dtype)
        return self.attend(x, q, k, v, mask, causal=bias is None and not last)

    def attend(
        self,
        x: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        causal: bool,
    ) -> torch.Tensor:
        """The block's output at the query positions: attention, then the feed-forward part.

        ``x`` (B, Q, D) holds the query positions' inputs, ``q`` their queries (B, H, Q, d),
        ``k`` and ``v`` the keys and values (B, H, K, d) they may attend to, subject to
        ``mask`` (boolean, True = allowed, or additive) or to plain ``causal`` attention.
        """
        b, t, d = x.shape
        p = self.dropout if self.training else 0.0
        if p > 0.0 and q.device.type == "cpu":  # torch's attention dropout is slow to draw here
            att = attention_with_dropout(q, k, v, mask, causal, p)
        else:
            with gpu_attention() if q.is_cuda else nullcontext():
                att = functional.scaled_dot_product_attention(
                    q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal
                )
        return self.finish(x, att.transpose(1, 2).reshape(b, t, d))

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The block's output from its inputs ``x`` (..., D) and their attention ``attended``
        (..., D), the heads side by side: the output projection and the feed-forward part,
        each with its residual."""
        x = x + self.drop(self.out(attended))
        out: torch.Tensor = x + self.drop(self.ffn(self.norm2(x)))
        return out

    def attention_weights(
        self, x: torch.Tensor, bias: torch.Tensor | None, last: bool = False
    ) -> torch.Tensor:
        """(B, H, T, T) softmax attention weights of :meth:`forward` for the same inputs.

        ``scaled_dot_product_attention`` does not return its weights; this recomputes them
        (without dropout) for read-outs such as ``behaviorlm.explain``'s attention method.
        With ``last``, the last query's row only, ``(B, H, 1, T)``.
        """
        if bias is None:
            bias = attention_bias(torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))
        q, k, _ = self._project(x)
        if last:
            q, bias = q[:, :, -1:], bias[:, :, -1:]
        scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, T, T)
        return torch.softmax(scores + bias.to(scores.dtype), dim=-1)

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of ``x``, each (B, H, T, D / H)."""
        q, k, v = self._heads(self.qkv(self.norm1(x)), 3)
        return q, k, v

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """Queries of ``x`` (B, H, T, D / H), as in :meth:`_project`."""
        d = x.shape[-1]
        (q,) = self._heads(
            functional.linear(self.norm1(x), self.qkv.weight[:d], self.qkv.bias[:d]), 1
        )
        out: torch.Tensor = q
        return out

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``x``, each (B, H, T, D / H), as in :meth:`_project`."""
        d = x.shape[-1]
        kv = functional.linear(self.norm1(x), self.qkv.weight[d:], self.qkv.bias[d:])
        k, v = self._heads(kv, 2)
        return k, v

    def _heads(self, projected: torch.Tensor, parts: int) -> torch.Tensor:
        """(parts, B, H, T, d) of a (B, T, parts * D) projection."""
        b, t, width = projected.shape
        d = width // parts
        return projected.view(b, t, parts, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)


def attention_bias(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) additive attention mask of a (B, T) batch mask: 0 allowed, -inf not.

    A query sees the earlier-or-same real events, and always itself, so padded positions
    (which attend to themselves only) stay finite and no real position sees padding.

    Examples
    --------
    >>> attention_bias(torch.tensor([[False, True, True]]))[0, 0]
    tensor([[0., -inf, -inf],
            [-inf, 0., -inf],
            [-inf, 0., 0.]])
    """
    t = mask.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
    own = torch.eye(t, dtype=torch.bool, device=mask.device)
    allowed = ((causal & mask[:, None, :]) | own).unsqueeze(1)
    zero = torch.zeros((), device=mask.device)
    return torch.where(allowed, zero, float("-inf"))


class SASRecModule(SequenceModule):
    """Token + position embeddings, causal transformer blocks, final LayerNorm.

    Examples
    --------
    >>> from behaviorlm.models.batch import build_batch
    >>> from behaviorlm.schema import Sequences
    >>> s = Sequences.from_lists([[1, 2, 3], []], n_items=3)
    >>> sizes = FeatureSizes.of(s)
    >>> module = SASRecModule(sizes, SASRecConfig(dim=8, heads=2)).eval()
    >>> h = module.encode(build_batch(s, 50, sizes))
    >>> tuple(h.shape), bool(torch.isfinite(h).all())
    ((2, 3, 8), True)
    """

    traceable: ClassVar[bool] = True  # sizes read from tensors; padding is the one branch

    def __init__(self, sizes: FeatureSizes, config: SASRecConfig) -> None:
        super().__init__(sizes, config.dim, config.features)
        self.max_len = config.max_len
        self.position = nn.Embedding(config.max_len, config.dim)
        nn.init.normal_(self.position.weight, std=config.dim**-0.5)
        self.drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.dim, config.heads, config.ffn_mult * config.dim, config.dropout)
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.dim)

    def encode(self, batch: SequenceBatch) -> torch.Tensor:
        return self._encode(batch, last=False)

    def encode_last(self, batch: SequenceBatch) -> torch.Tensor:
        """(B, D) state at the last position; the last block runs for that query only."""
        return self._encode(batch, last=True)[:, -1]

    def encode_last_without(
        self, batch: SequenceBatch, drop: torch.Tensor, gaps: torch.Tensor
    ) -> torch.Tensor:
        """(K, D) states at the last position of the row without column ``drop[k]``, each k.

        Exact, and about half the work of encoding the ``K`` rows. Positions count from the
        end, so in the row without column ``d`` the columns before ``d`` hold what they hold
        in one shared row (the ``n`` oldest columns, each one place nearer the end than in the
        full row), and causal attention keeps every state there equal to that row's. The
        first block runs for every row at once by running sums over the keys
        (:mod:`behaviorlm.models.sasrec_deletions`). Then the deletions are taken in groups
        by ``d``; a group computes only its columns from its smallest ``d`` on, its queries
        attending to the shared row's keys and values before that. The last block runs for
        the last query only, as in :meth:`encode_last`.
        """
        n = batch.shape[1] - 1  # events in a row with one column gone
        if not (self.blocks and n <= self.max_len and shareable(self, batch, drop)):
            return super().encode_last_without(batch, drop, gaps)
        device = batch.mask.device
        position = self.position(torch.arange(n - 1, -1, -1, device=device))  # (n, D)
        parts = deletion_inputs(self.tokens, batch, drop.to(device), gaps.to(device), position)
        shared = parts.shared
        *body, top = cast(list[Block], list(self.blocks))
        states = None
        if body:  # the first block for all the rows at once, where its sums can be trusted
            first = body[0]
            shared_states = first(shared.unsqueeze(0), None)[0]
            states = first_block_without(first, parts, shared_states)
            if states is not None:
                shared, body = shared_states, body[1:]
        groups = parts.groups(states)
        for block in body:
            row = shared.unsqueeze(0)
            q_shared, k_shared, v_shared = block._project(row)  # (1, H, n, d) each
            for g, (rows, start, x) in enumerate(groups):
                q, k, v = block._project(x)
                k, v = after_prefix((k, v), (k_shared, v_shared), start)
                causal = start == 0  # else query i (from start on) sees keys <= i
                mask = None if causal else lower_right(n - start, n, device)
                groups[g] = (rows, start, block.attend(x, q, k, v, mask, causal))
            shared = block.attend(row, q_shared, k_shared, v_shared, None, True)[0]
        k_shared, v_shared = top.keys_values(shared.unsqueeze(0))
        out = torch.empty(len(drop), shared.shape[1], dtype=shared.dtype, device=shared.device)
        for rows, start, x in groups:  # the last query sees every key; only its query is needed
            k, v = after_prefix(top.keys_values(x), (k_shared, v_shared), start)
            last = x[:, -1:]
            out[rows] = self.norm(top.attend(last, top.queries(last), k, v, None, False)[:, 0])
        return out

    def _encode(self, batch: SequenceBatch, last: bool) -> torch.Tensor:
        # keep the most recent events, as model.batch does (a slice, not a branch on the
        # length, so a trace trims longer batches too)
        batch = batch.columns(slice(-self.max_len, None))
        mask = batch.mask  # (B, T)
        t = mask.shape[1]  # a size, not an int: a trace of this method takes any length
        # position 0 = the most recent column, so left padding never shifts a position
        from_end = torch.arange(t - 1, -1, -1, device=mask.device)
        x = (self.tokens(batch) + self.position(from_end)) * mask.unsqueeze(-1)
        x = self.drop(x)
        bias = None if bool(mask.all()) else attention_bias(mask)
        for i, block in enumerate(self.blocks):
            x = block(x, bias, last=last and i == len(self.blocks) - 1)
        hidden: torch.Tensor = self.norm(x)
        return hidden


class SASRec(NeuralRecommender):
    """SASRec as a Recommender (trained by ``behaviorlm.train.fit_model``).

    Examples
    --------
    >>> from behaviorlm.schema import Sequences
    >>> model = SASRec(SASRecConfig(dim=8, heads=2, layers=1))
    >>> _ = model.setup(Sequences.from_lists([[1, 2, 3]], n_items=3))
    >>> model.score(Sequences.from_lists([[1, 2]], n_items=3)).shape
    (1, 3)
    """

    name: ClassVar[str] = "sasrec"
    config_class: ClassVar[type[SASRecConfig]] = SASRecConfig
    config: SASRecConfig

    def build(self, sizes: FeatureSizes) -> SequenceModule:
        return SASRecModule(sizes, self.config)
