"""SASRec's first block for every leave-one-out row at once, by prefix sums over the keys.

In the row without column ``d`` (:class:`~behaviorlm.models.deletions.DeletionInputs`) the
first block's inputs are known before any layer runs: the shared row's before ``d``, the
closing event at ``d``, and the full row's own inputs after ``d`` (positions count from the
end, so the later events keep theirs). Their queries, keys and values are projected once,
for ``2n + K`` inputs instead of about ``n^2 / 2``. A query at column ``c > d`` attends to
the shared keys before ``d``, the closing key at ``d`` and the full row's keys from ``d + 1``
to ``c``; with one stabilising maximum per query, the exponentiated scores times the values
summed over keys before ``d`` (and over keys from ``d + 1`` on) are prefix sums over the
keys, one running sum per query for every ``d`` at once. Attention over all the deletion
rows then costs ``O(n^2 D)`` instead of ``O(n^3 D)``; the block's output projection and
feed-forward part still run for every changed state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from behaviorlm.models.deletions import (
    DeletionInputs,
    pair_sums,
    query_slices,
    records_gradients,
)

if TYPE_CHECKING:
    from behaviorlm.models.sasrec import Block

#: Smallest softmax denominator (relative to each query's largest score) that the prefix
#: sums trust; below it the caller encodes the rows the usual way.
TINY = 1e-30


def first_block_without(
    block: Block, parts: DeletionInputs, shared_states: torch.Tensor
) -> torch.Tensor | None:
    """(K, n, D) the states after ``block`` (the first block, evaluation mode) of every row
    without column ``parts.drop[k]``; None where the prefix sums cannot be trusted (weights
    in less than single precision, or a row whose attention falls far below the largest
    score its query reads) or autograd records the call, for the caller to take the usual
    path.

    ``shared_states`` (n, D) are ``block``'s states of the shared row (causal attention):
    every row holds them before its deleted column.

    Examples
    --------
    >>> from behaviorlm.models.sasrec import Block
    >>> block = Block(dim=4, heads=2, ffn_dim=8, dropout=0.0).eval()
    >>> full = torch.randn(4, 4)  # a row of n + 1 = 4 inputs, positions left out
    >>> shared, after = full[:-1], full[1:]
    >>> parts = DeletionInputs(shared, after, torch.randn(1, 4), torch.tensor([1]))
    >>> with torch.no_grad():
    ...     states = first_block_without(block, parts, block(shared.unsqueeze(0), None)[0])
    ...     row = torch.stack([shared[0], parts.closing[0], after[2]])  # without column 1
    ...     alone = block(row.unsqueeze(0), None)[0]
    >>> torch.allclose(states[0], alone, atol=1e-5)
    True
    """
    shared, after, closing, drop = parts.shared, parts.after, parts.closing, parts.drop
    dtype, device = shared.dtype, shared.device
    if dtype not in (torch.float32, torch.float64) or records_gradients(block, parts):
        return None
    n, width = shared.shape
    heads = block.heads
    d_head = width // heads
    scale = d_head**-0.5
    # queries, keys and values of the shared row, the later columns and the closing events
    q, k, v = (t[0] for t in block._project(torch.cat([shared, after, closing]).unsqueeze(0)))
    ones = torch.ones(heads, v.shape[1], 1, dtype=dtype, device=device)
    v = torch.cat([v, ones], -1)  # (H, 2n + K, d + 1): the last channel sums the weights
    states = shared_states.unsqueeze(0).repeat(len(drop), 1, 1)  # (K, n, D)

    column = torch.arange(n, device=device)
    # the keys no row reads at query c: shared keys from c on (a row changes at c only after
    # its deleted column d < c, and reads shared keys before d), later keys after c, and the
    # closing keys of rows deleting c or later
    unread = torch.cat(
        [
            column[None, :] >= column[:, None],
            column[None, :] > column[:, None],
            drop[None, :] >= column[:, None],
        ],
        1,
    )  # (n, 2n + K)
    for queries in query_slices(n, heads * (d_head + 1)):
        # the queries of the later columns against every key: (H, Q, 2n + K)
        scores = torch.matmul(q[:, n + queries.start : n + queries.stop], k.transpose(1, 2))
        scores *= scale
        scores.masked_fill_(unread[queries], float("-inf"))
        # one stabiliser a query: its largest score over the keys some row reads (finite:
        # every query reads its own later key)
        weights = torch.exp(scores - scores.amax(-1, keepdim=True))
        row, c, sums = pair_sums(
            weights[:, :, :n], weights[:, :, n : 2 * n], v[:, :n], v[:, n : 2 * n], drop, queries
        )
        own = weights[:, c, 2 * n + row].transpose(0, 1).unsqueeze(-1)  # the closing key
        sums += own * v[:, 2 * n + row].transpose(0, 1)
        total = sums[..., d_head:]
        if not bool((total > TINY).all()):
            return None
        attended = (sums[..., :d_head] / total).reshape(-1, width)
        c = c + queries.start
        states[row, c] = block.finish(after[c], attended)

    # the closing event's own query at d: the shared keys before d, and itself
    moved = (drop < n).nonzero()[:, 0]
    if len(moved):
        d = drop[moved]
        query = q[:, 2 * n + moved]  # (H, M, d)
        s = torch.matmul(query, k[:, :n].transpose(1, 2)) * scale
        s = s.masked_fill(column >= d.unsqueeze(1), float("-inf"))
        itself = (query * k[:, 2 * n + moved]).sum(-1, keepdim=True) * scale
        w = torch.softmax(torch.cat([s, itself], -1), -1)
        att = (
            torch.matmul(w[..., :n], v[:, :n, :d_head]) + w[..., n:] * v[:, 2 * n + moved, :d_head]
        )
        states[moved, d] = block.finish(closing[moved], att.transpose(0, 1).reshape(-1, width))
    return states
