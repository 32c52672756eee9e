"""HSTU's first layer for every leave-one-out row at once, by running sums over the keys.

As for SASRec (:mod:`behaviorlm.models.sasrec_deletions`): in the row without column ``d``
(:class:`~behaviorlm.models.deletions.DeletionInputs`) the first layer's inputs are the
shared row's before ``d``, the closing event at ``d`` and the full row's own after ``d``, so
their projections are computed once. HSTU's attention is pointwise: the weight of query
``c`` on key ``j`` is ``SiLU(q k / sqrt(d) + rab)`` over the ``c + 1`` keys it sees, and the
relative biases depend on the two columns (``c - j``) and their events' times, never on
``d``. The weighted values summed over the shared keys before ``d`` and over the later keys
from ``d + 1`` on are then running sums over the keys, one per query for every ``d``
(:func:`~behaviorlm.models.deletions.pair_sums`), with nothing to stabilise:
``O(n^2 D)`` instead of ``O(n^3 D)`` for the attention of all the rows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.nn import functional

from behaviorlm.models.deletions import (
    DeletionInputs,
    pair_sums,
    query_slices,
    records_gradients,
)

if TYPE_CHECKING:
    from behaviorlm.models.hstu import HSTULayer


def first_layer_without(
    layer: HSTULayer,
    parts: DeletionInputs,
    shared_states: torch.Tensor,
    pos: torch.Tensor,
    times: torch.Tensor | None,
) -> torch.Tensor | None:
    """(K, n, D) the states after ``layer`` (the first layer, evaluation mode) of every row
    without column ``parts.drop[k]``; None for weights in less than single precision or a
    call that autograd records (the caller then takes the usual path).

    ``shared_states`` (n, D) are the layer's states of the shared row; ``pos`` (n, n) the
    position buckets of the columns of a row (query ``c``, key ``j``); ``times`` (n + 1,
    n + 1) the time buckets between the full row's events (query event, key event), None
    without the time bias.

    Examples
    --------
    >>> from behaviorlm.models.hstu import HSTUConfig, HSTULayer, position_buckets
    >>> layer = HSTULayer(HSTUConfig(dim=4, heads=2, max_len=8)).eval()
    >>> full = torch.randn(4, 4)  # a row of n + 1 = 4 inputs, positions left out
    >>> shared, after = full[:-1], full[1:]
    >>> parts = DeletionInputs(shared, after, torch.randn(1, 4), torch.tensor([1]))
    >>> pos = position_buckets(3, 32, 8)
    >>> allowed = torch.ones(3, 3).tril()
    >>> allowed = (allowed / allowed.sum(-1, keepdim=True))[None, None]
    >>> with torch.no_grad():
    ...     states = first_layer_without(layer, parts, layer(shared[None], allowed, pos, None)[0],
    ...                                  pos, None)
    ...     row = torch.stack([shared[0], parts.closing[0], after[2]])  # without column 1
    ...     alone = layer(row[None], allowed, pos, None)[0]
    >>> torch.allclose(states[0], alone, atol=1e-5)
    True
    """
    shared, after, closing, drop = parts.shared, parts.after, parts.closing, parts.drop
    if shared.dtype not in (torch.float32, torch.float64) or records_gradients(layer, parts):
        return None
    n, width = shared.shape
    heads, d_head = layer.heads, layer.head_dim
    u, v, q, k = layer._project(torch.cat([shared, after, closing]).unsqueeze(0))
    u, v, q, k = u[0], v[0], q[0] / math.sqrt(d_head), k[0]  # q: (H, 2n + K, d)
    states = shared_states.unsqueeze(0).repeat(len(drop), 1, 1)  # (K, n, D)
    column = torch.arange(n, device=drop.device)
    # the deletion row's column c holds the full row's event c + 1 from d on, c before d
    later_event = torch.clamp(drop + 1, max=n)  # the closing event's place in the full row

    def bias(buckets: torch.Tensor, time_buckets: torch.Tensor | None) -> torch.Tensor:
        """(H, ...) relative attention bias of position and time buckets (...)."""
        out = layer.position_bias[buckets].movedim(-1, 0)
        if time_buckets is not None:
            out = out + layer.time_bias[time_buckets].movedim(-1, 0)
        return out

    for queries in query_slices(n, heads * d_head):
        query = q[:, n + queries.start : n + queries.stop]  # the later columns' queries
        events = slice(queries.start + 1, queries.stop + 1)  # their events in the full row
        shared_times = None if times is None else times[events, :n]
        later_times = None if times is None else times[events, 1:]
        before = functional.silu(
            query @ k[:, :n].transpose(1, 2) + bias(pos[queries], shared_times)
        )
        since = functional.silu(
            query @ k[:, n : 2 * n].transpose(1, 2) + bias(pos[queries], later_times)
        )
        since = since * (column[None, :] <= column[queries, None])  # keys up to the query
        row, c, sums = pair_sums(before, since, v[:, :n], v[:, n : 2 * n], drop, queries)
        c = c + queries.start
        # the closing event's key at the deleted column d
        d = drop[row]
        own_times = None if times is None else times[c + 1, later_event[row]]
        closing_scores = query @ k[:, 2 * n :].transpose(1, 2)  # (H, Q, K): every pair
        own = closing_scores[:, c - queries.start, row]  # (H, P)
        own = functional.silu(own + bias(pos[c, d], own_times))
        sums += own.T.unsqueeze(-1) * v[:, 2 * n + row].transpose(0, 1)
        attended = (sums / (c + 1).to(sums.dtype)[:, None, None]).reshape(-1, width)
        states[row, c] = layer.finish(after[c], u[n + c], attended)

    # the closing event's own query at d: the shared keys before d, and itself
    moved = (drop < n).nonzero()[:, 0]
    if len(moved):
        d = drop[moved]
        event = later_event[moved]
        query = q[:, 2 * n + moved]  # (H, M, d)
        shared_times = None if times is None else times[event, :n]
        w = functional.silu(query @ k[:, :n].transpose(1, 2) + bias(pos[d], shared_times))
        w = w * (column[None, :] < d[:, None])
        own_times = None if times is None else times[event, event]
        itself = (query * k[:, 2 * n + moved]).sum(-1) + bias(pos[d, d], own_times)
        att = w @ v[:, :n] + functional.silu(itself).unsqueeze(-1) * v[:, 2 * n + moved]
        attended = (att / (d + 1).to(att.dtype)[None, :, None]).transpose(0, 1).reshape(-1, width)
        states[moved, d] = layer.finish(closing[moved], u[2 * n + moved], attended)
    return states
