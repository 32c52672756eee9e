"""SASRec's first block for every leave-one-out row at once, by prefix sums over the keys.

In the row without column ``d`` (:class:`~behaviorlm.models.deletions.DeletionInputs`) the
first block's inputs are known before any layer runs: the shared row's before ``d``, the
closing event at ``d``, and the full row's own inputs after ``d`` (positions count from the
end, so the later events keep theirs). Their queries, keys and values are projected once,
for ``3n + K`` inputs instead of about ``n^2 / 2``. A query at column ``c > d`` attends to
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

from behaviorlm.models.deletions import DeletionInputs

if TYPE_CHECKING:
    from behaviorlm.models.sasrec import Block

#: Numbers of one running sum over the keys: the queries are taken a slice at a time
#: (16 MiB in single precision).
SUM_ELEMENTS = 1 << 22
#: Smallest softmax denominator (relative to each query's largest score) that the prefix
#: sums trust; below it the caller encodes the rows the usual way.
TINY = 1e-30


def first_block_without(
    block: Block, parts: DeletionInputs, shared_states: torch.Tensor
) -> torch.Tensor | None:
    """(K, n, D) the states after ``block`` (the first block, evaluation mode) of every row
    without column ``parts.drop[k]``; None where the prefix sums cannot be trusted (weights
    in less than single precision, or a row whose attention falls far below the largest
    score of its query), for the caller to take the usual path.

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
    if dtype not in (torch.float32, torch.float64):
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
    later = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)  # key j > query c
    values_before, values_since = _padded(v[:, :n]), _padded(v[:, n : 2 * n].flip(1))
    # the queries of the later columns, a slice at a time (each running sum holds about
    # SUM_ELEMENTS numbers)
    step = max(1, SUM_ELEMENTS // ((n + 1) * heads * (d_head + 1)))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        # the queries of columns lo..hi - 1 against every key: (H, hi - lo, 2n + K)
        scores = torch.matmul(q[:, n + lo : n + hi], k.transpose(1, 2)) * scale
        scores[:, :, n : 2 * n].masked_fill_(later[lo:hi], float("-inf"))
        top = scores.amax(-1, keepdim=True)  # one stabiliser per query
        weights = torch.exp(scores - top)
        zero = torch.zeros(heads, hi - lo, 1, dtype=dtype, device=device)
        # running sums over the shared keys (key j at j + 1) and over the later keys from
        # the newest back (key j at n - j); the leading zero is the empty sum
        before = _running_sums(torch.cat([zero, weights[:, :, :n]], -1), values_before)
        since = _running_sums(
            torch.cat([zero, weights[:, :, n : 2 * n].flip(-1)], -1), values_since
        )
        # the states that change here: column c of row k, lo <= c < hi, c > d
        seen = column[lo:hi]
        row, c = (seen.unsqueeze(0) > drop.unsqueeze(1)).nonzero(as_tuple=True)
        d, width_c, flat = drop[row], hi - lo, heads * (d_head + 1)
        sums = before.view(-1, flat).index_select(0, d * width_c + c)  # keys j < d
        sums += since.view(-1, flat).index_select(0, (n - 1 - d) * width_c + c)  # d < j <= c
        sums = sums.view(-1, heads, d_head + 1)
        own = weights[:, c, 2 * n + row].transpose(0, 1).unsqueeze(-1)  # the closing key
        sums += own * v[:, 2 * n + row].transpose(0, 1)
        total = sums[..., d_head:]
        if not bool((total > TINY).all()):
            return None
        attended = (sums[..., :d_head] / total).reshape(-1, width)
        states[row, lo + c] = block.finish(after[lo + c], attended)

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


def _padded(values: torch.Tensor) -> torch.Tensor:
    """(H, n + 1, d) ``values`` (H, n, d) after a zero row."""
    zero = torch.zeros_like(values[:, :1])
    return torch.cat([zero, values], 1)


def _running_sums(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(J, Q, H, d) for each query ``c`` and each ``j``: the sum over keys ``i <= j`` of
    ``weights[h, c, i] * values[h, i]``, from ``weights`` (H, Q, J) and ``values`` (H, J, d);
    laid out keys first, so that one contiguous block of rows is one prefix."""
    h, queries, keys = weights.shape
    out = torch.empty(keys, queries, h, values.shape[-1], dtype=values.dtype, device=values.device)
    torch.mul(weights.permute(2, 1, 0).unsqueeze(-1), values.permute(1, 0, 2).unsqueeze(1), out=out)
    return out.cumsum_(0)
