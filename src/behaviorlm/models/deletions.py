"""Shared work between the deletions of one timeline, for leave-one-out occlusion.

:meth:`behaviorlm.models.neural.SequenceModule.encode_last_without` encodes one row without
each of ``K`` columns. In a causal model whose states before a deleted column stay as they
are (SASRec counts positions from the end, HSTU's biases are relative), the rows differ only
from their deleted column on. The deletions are then taken in groups by column: a group
computes the columns from its smallest deleted one on, and its queries attend to keys and
values of one shared row before that.
"""

from __future__ import annotations

import torch

from behaviorlm.models.batch import SequenceBatch
from behaviorlm.models.neural import TokenEmbedding

#: Most groups (each one more pass through the layers, fewer columns per pass).
MAX_GROUPS = 12
#: Fewest deletions per group.
MIN_GROUP = 16


def deletion_groups(drop: torch.Tensor, n: int) -> list[tuple[torch.Tensor, int]]:
    """Groups ``(rows, start)`` of the deletions ``drop``: indices into ``drop`` and the first
    column the group computes (its smallest deleted column; at most ``n - 1``, the last).

    Examples
    --------
    >>> [(rows.tolist(), start) for rows, start in deletion_groups(torch.tensor([3, 0, 2]), 3)]
    [([1, 2, 0], 0)]
    """
    groups = max(1, min(MAX_GROUPS, len(drop) // MIN_GROUP))
    out = []
    for rows in torch.argsort(drop).tensor_split(groups):
        out.append((rows, min(int(drop[rows].min()), n - 1)))
    return out


def closing_tokens(
    tokens: TokenEmbedding, batch: SequenceBatch, drop: torch.Tensor, gaps: torch.Tensor
) -> torch.Tensor:
    """(K, D) token of the column after each deleted one, with the gap ``gaps[k]`` it takes
    from the column before the deleted one; zero where the last column is deleted.

    The bare token embedding (no position, no scaling), in the embedding's dtype, on the
    batch's device; ``drop`` and ``gaps`` must be on that device too.

    Examples
    --------
    >>> from behaviorlm.models.batch import FeatureSizes, build_batch
    >>> from behaviorlm.models.neural import FeatureConfig
    >>> from behaviorlm.schema import Sequences
    >>> s = Sequences.from_lists([[1, 2, 3]], n_items=3)
    >>> sizes = FeatureSizes.of(s)
    >>> emb = TokenEmbedding(sizes, dim=4, features=FeatureConfig())
    >>> batch = build_batch(s, 3, sizes)
    >>> out = closing_tokens(emb, batch, torch.tensor([0, 2]), torch.tensor([1, 1]))
    >>> out.shape, bool(out[1].eq(0).all())  # nothing follows the last column
    (torch.Size([2, 4]), True)
    """
    n = batch.shape[1] - 1
    moved = drop < n
    weight = tokens.item.weight
    out = torch.zeros(len(drop), weight.shape[1], dtype=weight.dtype, device=batch.mask.device)
    if moved.any():
        cells = batch.cells((drop[moved] + 1).unsqueeze(1))
        cells.gaps[:] = gaps[moved].unsqueeze(1).to(cells.gaps.dtype)
        out[moved] = tokens(cells)[:, 0].to(out.dtype)
    return out


def place_closing(
    x: torch.Tensor, rows: torch.Tensor, start: int, drop: torch.Tensor, closing: torch.Tensor
) -> None:
    """Put each group row's closing token (``closing`` of all ``K`` deletions) in its deleted
    column of ``x`` (R, n - start, D), where a column follows the deleted one."""
    n = start + x.shape[1]
    d = drop[rows]
    at = (d < n).nonzero()[:, 0]
    x[at, d[at] - start] = closing[rows[at]].to(x.dtype)


def after_prefix(
    own: tuple[torch.Tensor, torch.Tensor], shared: tuple[torch.Tensor, torch.Tensor], start: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values (R, H, n, d) of a group: the shared row's (1, H, n, d) before ``start``,
    then the group's own (R, H, n - start, d).

    Examples
    --------
    >>> k, v = after_prefix((torch.ones(2, 1, 1, 1), torch.ones(2, 1, 1, 1)),
    ...                     (torch.zeros(1, 1, 3, 1), torch.zeros(1, 1, 3, 1)), start=2)
    >>> k[:, 0, :, 0].tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    """
    (k, v), (k_shared, v_shared) = own, shared
    rows = k.shape[0]
    k = torch.cat([k_shared[:, :, :start].expand(rows, -1, -1, -1), k], 2)
    v = torch.cat([v_shared[:, :, :start].expand(rows, -1, -1, -1), v], 2)
    return k, v
