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

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional

from behaviorlm.models.batch import FeatureSizes, SequenceBatch
from behaviorlm.models.neural import FeatureConfig, NeuralRecommender, SequenceModule


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


class Block(nn.Module):
    """One pre-LayerNorm transformer block with causal multi-head self-attention.

    Examples
    --------
    >>> block = Block(dim=8, heads=2, ffn_dim=8, dropout=0.0)
    >>> allowed = torch.ones(3, 3, dtype=torch.bool).tril().expand(1, 1, 3, 3)
    >>> block(torch.randn(1, 3, 8), allowed).shape
    torch.Size([1, 3, 8])
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
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, dim),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, D); ``allowed`` (B, 1, T, T) True where query i may attend to key j."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)  # each (B, T, D)

        def heads(z: torch.Tensor) -> torch.Tensor:
            return z.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, H, T, d)

        p = self.dropout if self.training else 0.0
        att = functional.scaled_dot_product_attention(
            heads(q), heads(k), heads(v), allowed, dropout_p=p
        )
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, t, d)))
        out: torch.Tensor = x + self.drop(self.ffn(self.norm2(x)))
        return out

    def attention_weights(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """(B, H, T, T) softmax attention weights of :meth:`forward` for the same inputs.

        ``scaled_dot_product_attention`` does not return its weights; this recomputes them
        (without dropout) for read-outs such as ``behaviorlm.explain``'s attention method.
        """
        b, t, d = x.shape
        q, k, _ = self.qkv(self.norm1(x)).chunk(3, dim=-1)  # each (B, T, D)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # (B, H, T, d)
        k = k.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5  # (B, H, T, T)
        return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


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

    def __init__(self, sizes: FeatureSizes, config: SASRecConfig) -> None:
        super().__init__(sizes, config.dim, config.features)
        self.max_len = config.max_len
        self.position = nn.Embedding(config.max_len, config.dim)
        nn.init.normal_(self.position.weight, std=config.dim**-0.5)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.dim, config.heads, config.ffn_mult * config.dim, config.dropout)
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.dim)

    def encode(self, batch: SequenceBatch) -> torch.Tensor:
        t = batch.shape[1]
        if t > self.max_len:  # keep the most recent events, like NeuralRecommender.batch
            batch = batch.columns(slice(t - self.max_len, t))
            t = self.max_len
        mask = batch.mask  # (B, T)
        # position 0 = the most recent column, so left padding never shifts a position
        from_end = torch.arange(t - 1, -1, -1, device=mask.device)
        x = (self.tokens(batch) + self.position(from_end)) * mask.unsqueeze(-1)
        x = self.drop(x)
        causal = torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
        own = torch.eye(t, dtype=torch.bool, device=mask.device)
        # (B, 1, T, T): earlier-or-same real events, and always the position itself
        allowed = ((causal & mask[:, None, :]) | own).unsqueeze(1)
        for block in self.blocks:
            x = block(x, allowed)
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
