"""Shared work between the deletions of one timeline, for leave-one-out occlusion.

:meth:`behaviorlm.models.neural.SequenceModule.encode_last_without` encodes one row without
each of ``K`` columns. In a causal model whose states before a deleted column stay as they
are (SASRec counts positions from the end, HSTU's biases are relative and its optional
absolute positions count from the end), the rows differ only
from their deleted column on. The deletions are then taken in groups by column: a group
computes the columns from its smallest deleted one on, and its queries attend to keys and
values of one shared row before that.

The first layer's inputs of every row are known before any layer runs
(:class:`DeletionInputs`), so its attention over all the rows reduces to running sums over
the keys, one per query, which serve every deleted column at once (:func:`pair_sums`; the
models' first layers in :mod:`behaviorlm.models.sasrec_deletions` and
:mod:`behaviorlm.models.hstu_deletions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from behaviorlm.models.batch import SequenceBatch
from behaviorlm.models.neural import TokenEmbedding

#: Most groups (each one more pass through the layers, fewer columns per pass).
MAX_GROUPS = 12
#: Fewest deletions per group.
MIN_GROUP = 16
#: Numbers of one running sum over the keys (:func:`pair_sums`): the queries are taken a
#: slice at a time (16 MiB in single precision).
SUM_ELEMENTS = 1 << 22


def shareable(module: torch.nn.Module, batch: SequenceBatch, drop: torch.Tensor) -> bool:
    """Whether the deletions can share work: evaluation mode (no dropout), one row without
    padding, at least one event left after a deletion, and at least one deletion."""
    b, t = batch.shape
    return not module.training and b == 1 and t >= 2 and len(drop) > 0 and bool(batch.mask.all())


@dataclass(frozen=True)
class DeletionInputs:
    """The inputs of the rows without one column each, of a row of ``n + 1`` columns.

    Row ``k`` (without column ``drop[k]``, ``d``) holds at column ``c`` (of ``n``): the shared
    row's input ``shared[c]`` before ``d``; ``closing[k]`` at ``d``, the next event with the
    time gap it takes from the event before the deleted one; ``after[c]``, the full row's
    column ``c + 1``, after ``d``.

    Attributes
    ----------
    shared : torch.Tensor
        (n, D) the shared row: the full row's ``n`` oldest columns, positions counted from
        the end of the ``n``-column row.
    after : torch.Tensor
        (n, D) the full row's newest ``n`` columns (their positions are the full row's).
    closing : torch.Tensor
        (K, D) the input at the deleted column of each row; zero (and unused) where the
        last column is deleted.
    drop : torch.Tensor
        (K,) the deleted column of each row.
    """

    shared: torch.Tensor
    after: torch.Tensor
    closing: torch.Tensor
    drop: torch.Tensor

    def spans(self) -> list[tuple[torch.Tensor, int]]:
        """The deletions in groups ``(rows, start)`` by deleted column: ``rows`` index
        ``drop``; ``start`` is the first column the group computes (its smallest deleted
        column, at most the last). At most :data:`MAX_GROUPS` groups of at least
        :data:`MIN_GROUP` deletions (one group where there are fewer).

        Examples
        --------
        >>> n, d = 3, torch.tensor([2, 0, 3])
        >>> parts = DeletionInputs(torch.zeros(n, 1), torch.ones(n, 1), torch.zeros(3, 1), d)
        >>> [(rows.tolist(), start) for rows, start in parts.spans()]
        [([1, 0, 2], 0)]
        """
        n = self.shared.shape[0]
        groups = max(1, min(MAX_GROUPS, len(self.drop) // MIN_GROUP))
        out = []
        for rows in torch.argsort(self.drop).tensor_split(groups):
            out.append((rows, min(int(self.drop[rows].min()), n - 1)))
        return out

    def rows(self, rows: torch.Tensor, start: int) -> torch.Tensor:
        """(R, n - start, D) the inputs of rows ``rows`` from column ``start`` on.

        Examples
        --------
        >>> shared, after = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([[1.0], [2.0], [3.0]])
        >>> closing = torch.tensor([[9.0], [0.0]])  # column 2 takes 9 once column 1 is gone
        >>> parts = DeletionInputs(shared, after, closing, torch.tensor([1, 3]))
        >>> parts.rows(torch.tensor([0, 1]), 1)[:, :, 0].tolist()
        [[9.0, 3.0], [1.0, 2.0]]
        """
        n = self.shared.shape[0]
        column = torch.arange(start, n, device=self.drop.device)
        d = self.drop[rows].unsqueeze(1)  # (R, 1)
        before = (column < d).unsqueeze(-1)
        at = (column == d).unsqueeze(-1)
        later = self.after[start:].unsqueeze(0)
        x = torch.where(at, self.closing[rows].unsqueeze(1), later)
        return torch.where(before, self.shared[start:].unsqueeze(0), x)

    def groups(
        self, states: torch.Tensor | None = None
    ) -> list[tuple[torch.Tensor, int, torch.Tensor]]:
        """:meth:`spans` with what they compute from: ``(rows, start, x)``, ``x`` the inputs
        from :meth:`rows`, or with ``states`` (K, n, D) (every row after a first layer taken
        at once) those rows' states from ``start`` on."""
        if states is None:
            return [(rows, start, self.rows(rows, start)) for rows, start in self.spans()]
        return [(rows, start, states[rows, start:]) for rows, start in self.spans()]


def deletion_inputs(
    tokens: TokenEmbedding,
    batch: SequenceBatch,
    drop: torch.Tensor,
    gaps: torch.Tensor,
    position: torch.Tensor | None,
    scale: float = 1.0,
) -> DeletionInputs:
    """The inputs of the rows without column ``drop[k]`` (each k) of a model whose inputs
    are ``(token + position) * scale``, positions counted from the end (``position`` (n, D),
    the last column's 0; None: no absolute positions).

    A row without a column holds, at column ``c``, position ``n - 1 - c`` whichever event
    stands there. ``drop``, ``gaps`` and ``position`` must be on the batch's device.

    Examples
    --------
    >>> from behaviorlm.models.batch import FeatureSizes, build_batch
    >>> from behaviorlm.models.neural import FeatureConfig
    >>> from behaviorlm.schema import Sequences
    >>> s = Sequences.from_lists([[1, 2, 3]], n_items=3)
    >>> sizes = FeatureSizes.of(s)
    >>> emb = TokenEmbedding(sizes, dim=4, features=FeatureConfig())
    >>> parts = deletion_inputs(
    ...     emb, build_batch(s, 3, sizes), torch.tensor([0, 2]), torch.tensor([1, 1]), None
    ... )
    >>> tuple(parts.shared.shape), [(r.tolist(), start, tuple(x.shape))
    ...                             for r, start, x in parts.groups()]
    ((2, 4), [([0, 1], 0, (2, 2, 4))])
    >>> bool(parts.closing[1].eq(0).all())  # nothing follows the deleted last column
    True
    """
    full = tokens(batch)[0]  # (n + 1, D)
    closing = _closing_tokens(tokens, batch, drop, gaps)
    shared, after = full[:-1], full[1:]
    if position is not None:
        shared, after = shared + position, after + position
        n = len(position)
        closing = torch.where(  # nothing is at the place of a deleted last column
            (drop < n).unsqueeze(1), closing + position[drop.clamp(max=n - 1)], closing
        )
    if scale != 1.0:
        shared, after, closing = shared * scale, after * scale, closing * scale
    return DeletionInputs(shared, after, closing.to(shared.dtype), drop)


def query_slices(n: int, width: int) -> list[slice]:
    """The query columns ``0..n - 1`` in slices whose running sums over the ``n + 1`` key
    positions hold about :data:`SUM_ELEMENTS` numbers, ``width`` per key and query.

    Examples
    --------
    >>> query_slices(3, 1 << 30)
    [slice(0, 1, None), slice(1, 2, None), slice(2, 3, None)]
    """
    step = max(1, SUM_ELEMENTS // ((n + 1) * width))
    return [slice(lo, min(n, lo + step)) for lo in range(0, n, step)]


def pair_sums(
    before: torch.Tensor,
    since: torch.Tensor,
    values_before: torch.Tensor,
    values_since: torch.Tensor,
    drop: torch.Tensor,
    queries: slice,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attention sums of the first layer of the rows without column ``drop[k]``, for the
    query columns ``queries`` of those rows (:class:`DeletionInputs`), by running sums over
    the keys: one per query serves every deleted column at once.

    ``before`` (H, Q, n) are the weights of each query on the shared row's keys and
    ``values_before`` (H, n, e) their values; ``since`` (H, Q, n) and ``values_since`` the
    same for the later columns' keys (``after``), zero on keys after the query. Returns
    ``(row, c, sums)``: every pair of a row ``row[p]`` and a query column ``c[p]`` (counted
    from ``queries.start``) after the row's deleted column ``d``, and ``sums`` (P, H, e),
    the weighted values of the shared keys before ``d`` plus those of the later keys from
    ``d + 1`` on. The deleted column's own key (the closing event) is the caller's.

    Examples
    --------
    >>> ones = torch.ones(1, 3, 3)  # one head, three queries, three keys
    >>> values = torch.tensor([[[1.0], [10.0], [100.0]]])
    >>> since = ones.tril()  # a query sees the later keys up to itself
    >>> row, c, sums = pair_sums(ones, since, values, values, torch.tensor([1]), slice(0, 3))
    >>> c.tolist(), sums[:, 0, 0].tolist()  # columns 2: shared key 0, then later key 2
    ([2], [101.0])
    """
    n = values_before.shape[1]
    column = torch.arange(queries.start, queries.stop, device=drop.device)
    row, c = (column.unsqueeze(0) > drop.unsqueeze(1)).nonzero(as_tuple=True)
    d, q, (h, e) = drop[row], len(column), (values_before.shape[0], values_before.shape[2])
    zero = torch.zeros(h, q, 1, dtype=before.dtype, device=before.device)
    # key j of the shared row at j + 1, key j of the later ones at n - j (from the newest
    # back); the leading zero is the empty sum
    prefix = _running_sums(torch.cat([zero, before], -1), _padded(values_before))
    suffix = _running_sums(torch.cat([zero, since.flip(-1)], -1), _padded(values_since.flip(1)))
    sums = prefix.view(-1, h * e).index_select(0, d * q + c)  # keys j < d
    sums += suffix.view(-1, h * e).index_select(0, (n - 1 - d) * q + c)  # keys j > d
    return row, c, sums.view(-1, h, e)


def records_gradients(module: torch.nn.Module, parts: DeletionInputs) -> bool:
    """Whether autograd records a call of ``module`` on ``parts``: :func:`pair_sums` writes
    its running sums in place, which autograd refuses, so such calls take the usual path.

    Examples
    --------
    >>> layer = torch.nn.Linear(2, 2)
    >>> parts = DeletionInputs(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(0, 2),
    ...                        torch.zeros(0, dtype=torch.long))
    >>> records_gradients(layer, parts)
    True
    >>> with torch.no_grad():
    ...     records_gradients(layer, parts)
    False
    """
    if not torch.is_grad_enabled():
        return False
    return parts.shared.requires_grad or any(p.requires_grad for p in module.parameters())


def _padded(values: torch.Tensor) -> torch.Tensor:
    """(H, n + 1, e) ``values`` (H, n, e) after a zero row."""
    return torch.cat([torch.zeros_like(values[:, :1]), values], 1)


def _running_sums(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """(J, Q, H, e) for each query ``c`` and each ``j``: the sum over keys ``i <= j`` of
    ``weights[h, c, i] * values[h, i]``, from ``weights`` (H, Q, J) and ``values`` (H, J, e);
    laid out keys first, so that one contiguous block of rows is one prefix."""
    h, queries, keys = weights.shape
    out = torch.empty(keys, queries, h, values.shape[-1], dtype=values.dtype, device=values.device)
    torch.mul(weights.permute(2, 1, 0).unsqueeze(-1), values.permute(1, 0, 2).unsqueeze(1), out=out)
    return out.cumsum_(0)


def lower_right(queries: int, keys: int, device: torch.device) -> torch.Tensor:
    """(Q, K) causal mask of the last ``queries`` positions over all ``keys``: True = allowed.

    Examples
    --------
    >>> lower_right(2, 3, torch.device("cpu")).tolist()
    [[True, True, False], [True, True, True]]
    """
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)


def _closing_tokens(
    tokens: TokenEmbedding, batch: SequenceBatch, drop: torch.Tensor, gaps: torch.Tensor
) -> torch.Tensor:
    """(K, D) token of the column after each deleted one, with the gap ``gaps[k]`` it takes
    from the column before the deleted one; zero where the last column is deleted.

    The bare token embedding (no position, no scaling), in the embedding's dtype, on the
    batch's device; ``drop`` and ``gaps`` must be on that device too.
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
