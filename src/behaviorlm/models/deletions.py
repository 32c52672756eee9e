"""Shared work between the deletions of one timeline, for leave-one-out occlusion.

:meth:`behaviorlm.models.neural.SequenceModule.encode_last_without` encodes one row without
each of ``K`` columns. In a causal model whose states before a deleted column stay as they
are (SASRec counts positions from the end, HSTU's biases are relative and its optional
absolute positions count from the end), the rows differ only
from their deleted column on. The deletions are then taken in groups by column: a group
computes the columns from its smallest deleted one on, and its queries attend to keys and
values of one shared row before that.
"""

from __future__ import annotations

import torch

from behaviorlm.models.batch import SequenceBatch, kept_columns
from behaviorlm.models.neural import TokenEmbedding

#: Most groups (each one more pass through the layers, fewer columns per pass).
MAX_GROUPS = 12
#: Fewest deletions per group.
MIN_GROUP = 16


def shareable(module: torch.nn.Module, batch: SequenceBatch, drop: torch.Tensor) -> bool:
    """Whether the deletions can share work: evaluation mode (no dropout), one row without
    padding, at least one event left after a deletion, and at least one deletion."""
    b, t = batch.shape
    return not module.training and b == 1 and t >= 2 and len(drop) > 0 and bool(batch.mask.all())


def deletion_groups(
    tokens: torch.Tensor, closing: torch.Tensor, drop: torch.Tensor
) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
    """The deletions ``drop`` in groups ``(rows, start, x)``, by deleted column.

    ``rows`` index ``drop``; ``start`` is the first column the group computes (its smallest
    deleted column, at most the last); ``x`` (R, n - start, D) are its rows' inputs from
    there on: the full row's ``tokens`` (n + 1, D) at the columns each row keeps, with the
    ``closing`` token (K, D) where a column follows the deleted one.

    Examples
    --------
    >>> tokens = torch.arange(4.0).unsqueeze(1)  # columns 0..3, one feature each
    >>> closing = torch.tensor([[9.0], [0.0]])  # column 2 takes 9 once column 1 is gone
    >>> [(r.tolist(), s, x[:, :, 0].tolist())
    ...  for r, s, x in deletion_groups(tokens, closing, torch.tensor([1, 3]))]
    [([0, 1], 1, [[9.0, 3.0], [1.0, 2.0]])]
    """
    n = tokens.shape[0] - 1
    kept = kept_columns(drop, n)
    groups = max(1, min(MAX_GROUPS, len(drop) // MIN_GROUP))
    out = []
    for rows in torch.argsort(drop).tensor_split(groups):
        d = drop[rows]
        start = min(int(d.min()), n - 1)
        x = tokens[kept[rows, start:]]
        at = (d < n).nonzero()[:, 0]
        x[at, d[at] - start] = closing[rows[at]].to(x.dtype)
        out.append((rows, start, x))
    return out


def deletion_inputs(
    tokens: TokenEmbedding,
    batch: SequenceBatch,
    drop: torch.Tensor,
    gaps: torch.Tensor,
    position: torch.Tensor | None,
    scale: float = 1.0,
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, int, torch.Tensor]]]:
    """The shared row's inputs (n, D) and the groups of a model whose inputs are ``(token +
    position) * scale``, positions counted from the end (``position`` (n, D), the last
    column's 0; None: no absolute positions).

    The shared row is the full row's ``n`` oldest columns; a row without a column holds, at
    column ``c``, position ``n - 1 - c`` whichever event stands there. A group is ``(rows,
    start, x)`` as in :func:`deletion_groups`. ``drop``, ``gaps`` and ``position`` must be on
    the batch's device.

    Examples
    --------
    >>> from behaviorlm.models.batch import FeatureSizes, build_batch
    >>> from behaviorlm.models.neural import FeatureConfig
    >>> from behaviorlm.schema import Sequences
    >>> s = Sequences.from_lists([[1, 2, 3]], n_items=3)
    >>> sizes = FeatureSizes.of(s)
    >>> emb = TokenEmbedding(sizes, dim=4, features=FeatureConfig())
    >>> shared, groups = deletion_inputs(
    ...     emb, build_batch(s, 3, sizes), torch.tensor([0, 2]), torch.tensor([1, 1]), None
    ... )
    >>> tuple(shared.shape), [(r.tolist(), start, tuple(x.shape)) for r, start, x in groups]
    ((2, 4), [([0, 1], 0, (2, 2, 4))])
    """
    full = tokens(batch)[0]  # (n + 1, D)
    closing = closing_tokens(tokens, batch, drop, gaps)
    shared = full[:-1] if position is None else full[:-1] + position
    groups = [
        (rows, start, x if position is None else x + position[start:])
        for rows, start, x in deletion_groups(full, closing, drop)
    ]
    if scale != 1.0:
        shared = shared * scale
        groups = [(rows, start, x * scale) for rows, start, x in groups]
    return shared, groups


def lower_right(queries: int, keys: int, device: torch.device) -> torch.Tensor:
    """(Q, K) causal mask of the last ``queries`` positions over all ``keys``: True = allowed.

    Examples
    --------
    >>> lower_right(2, 3, torch.device("cpu")).tolist()
    [[True, True, False], [True, True, True]]
    """
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)


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
