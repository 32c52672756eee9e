"""Padded tensor batches of timelines for the sequence models.

A :class:`SequenceBatch` holds ``(B, T)`` tensors built from ragged
:class:`behaviorlm.schema.Sequences` with pure numpy scatter (no per-row Python).
Rows are right-aligned: the most recent event of every row sits at column ``T - 1`` and
padding fills the left, so the last column is always the position to predict from and the
output at an event never depends on how much padding stands before it.

Codes are clamped to the model's vocabulary sizes (a code above them becomes 0, "unknown"),
so a model scores timelines with new devices or cities without failing; a context code
below them that training never had has a zero row, read as unknown too
(:func:`behaviorlm.models.neural.unseen_to_zero`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from behaviorlm.schema import Bool, Int, Sequences

#: Time-gap buckets: 0 = padding, 1 = first event (no gap), 2.. = floor(log2(1 + seconds)) + 2.
N_GAP_BUCKETS = 32


@dataclass(frozen=True, kw_only=True)
class FeatureSizes:
    """Embedding table sizes (including code 0) of every token component.

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2]], n_items=5)
    >>> FeatureSizes.of(s).items
    6
    """

    items: int
    actions: int
    gaps: int = N_GAP_BUCKETS
    devices: int = 1
    locations: int = 1
    sources: int = 1
    query_words: int = 1

    @classmethod
    def of(cls, seqs: Sequences) -> FeatureSizes:
        """Sizes that cover every code in ``seqs`` (and the whole item catalogue)."""

        def size(values: np.ndarray) -> int:
            return int(values.max()) + 1 if values.size else 1

        return cls(
            items=seqs.n_items + 1,
            actions=size(seqs.actions),
            devices=size(seqs.devices),
            locations=size(seqs.locations),
            sources=size(seqs.sources),
            query_words=size(seqs.extra.get("query_words", np.zeros(0, dtype=np.int64))),
        )

    def to_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass
class SequenceBatch:
    """Right-aligned padded timelines; every tensor is ``(B, T)`` unless noted.

    Attributes
    ----------
    items, actions, gaps, devices, locations, sources : LongTensor
        Codes per event, 0 at padding (items is also 0 for an event without an item).
    query_words : LongTensor (B, T, Q)
        Word codes of search queries, 0 = none.
    timestamps : LongTensor
        Event times (seconds), 0 at padding; for relative time biases.
    values : FloatTensor
        Event values (ratings), NaN where the event has none, 0 at padding.
    mask : BoolTensor
        True where an event is.
    """

    items: torch.Tensor
    actions: torch.Tensor
    gaps: torch.Tensor
    devices: torch.Tensor
    locations: torch.Tensor
    sources: torch.Tensor
    query_words: torch.Tensor
    timestamps: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        b, t = self.items.shape
        return int(b), int(t)

    def to(self, device: torch.device | str) -> SequenceBatch:
        """The batch on ``device``."""
        return SequenceBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def columns(self, cols: slice) -> SequenceBatch:
        """Columns ``cols`` of every tensor (time steps)."""
        return SequenceBatch(**{f.name: getattr(self, f.name)[:, cols] for f in fields(self)})

    def without(self, drop: torch.Tensor, gaps: torch.Tensor) -> SequenceBatch:
        """``K`` rows, ``T - 1`` columns: this single row without column ``drop[k]``, for each k.

        ``gaps[k]`` is the gap code the column after ``drop[k]`` takes once that column is gone
        (the time since the event before it); unused where ``drop[k]`` is the last column.

        Examples
        --------
        >>> s = Sequences.from_lists([[4, 5, 6]], n_items=6)
        >>> b = build_batch(s, 3, FeatureSizes.of(s))
        >>> rows = b.without(torch.tensor([0, 2]), torch.tensor([1, 9]))
        >>> rows.items.tolist(), rows.gaps.tolist()
        ([[5, 6], [4, 5]], [[1, 3], [1, 3]])
        """
        k, t = len(drop), self.shape[1]
        if t == 1:  # nothing left: one padding column, as build_batch gives an empty row
            out = self.cells(torch.zeros(k, 1, dtype=torch.long, device=drop.device))
            return SequenceBatch(
                **{f.name: torch.zeros_like(getattr(out, f.name)) for f in fields(out)}
            )
        out = self.cells(kept_columns(drop, t - 1))
        moved = drop < t - 1  # rows where a later column takes the dropped one's place
        out.gaps[moved, drop[moved]] = gaps[moved].to(out.gaps.dtype)
        return out

    def cells(self, cols: torch.Tensor) -> SequenceBatch:
        """A batch shaped like ``cols`` (K, C) of this single row's columns ``cols``.

        Examples
        --------
        >>> s = Sequences.from_lists([[4, 5, 6]], n_items=6)
        >>> build_batch(s, 3, FeatureSizes.of(s)).cells(torch.tensor([[2], [0]])).items.tolist()
        [[6], [4]]
        """
        if self.shape[0] != 1:
            raise ValueError(f"cells picks columns of a single row; this batch has {self.shape[0]}")
        return SequenceBatch(**{f.name: getattr(self, f.name)[0, cols] for f in fields(self)})


def kept_columns(drop: torch.Tensor, n: int) -> torch.Tensor:
    """(K, n) the columns a row of ``n + 1`` keeps without column ``drop[k]``, for each k.

    Examples
    --------
    >>> kept_columns(torch.tensor([0, 2]), 2).tolist()
    [[1, 2], [0, 1]]
    """
    column = torch.arange(n, device=drop.device)
    return column + (column >= drop.unsqueeze(1)).long()


def time_gap_buckets(seqs: Sequences) -> Int:
    """(E,) gap bucket of each event: seconds since the previous event of the same row.

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2, 3]], n_items=3)
    >>> time_gap_buckets(s).tolist()  # positions 0, 1, 2 -> gaps of 1 second
    [1, 3, 3]
    """
    ts = seqs.timestamps
    gaps = np.zeros(len(ts), dtype=np.int64)
    gaps[1:] = ts[1:] - ts[:-1]
    first = np.zeros(len(ts), dtype=bool)
    first[seqs.offsets[:-1][seqs.lengths > 0]] = True
    return np.where(first, 1, gap_bucket(gaps))


def gap_bucket(seconds: Int) -> Int:
    """Gap code (2 and up) of each time gap in seconds; negative gaps count as 0.

    Examples
    --------
    >>> gap_bucket(np.array([0, 1, 3600])).tolist()
    [2, 3, 13]
    """
    buckets = np.floor(np.log2(1.0 + np.maximum(seconds, 0))).astype(np.int64) + 2
    return np.minimum(buckets, N_GAP_BUCKETS - 1)


def batch_layout(seqs: Sequences, max_len: int) -> tuple[Bool, Int, Int, int, int]:
    """Where :func:`build_batch` puts each row's last ``max_len`` events: ``(keep, row, col,
    B, T)``, ``keep`` (E,) marks the kept events, ``row`` and ``col`` their cells in order.

    Examples
    --------
    >>> keep, row, col, b, t = batch_layout(Sequences.from_lists([[1, 2, 3], [4]], n_items=4), 2)
    >>> keep.tolist(), row.tolist(), col.tolist(), (b, t)
    ([False, True, True, True], [0, 0, 1], [0, 1, 1], (2, 2))
    """
    keep_from_end = np.repeat(seqs.offsets[1:], seqs.lengths) - np.arange(len(seqs.items))
    keep = keep_from_end <= max_len
    lengths = np.minimum(seqs.lengths, max_len)
    b = len(seqs)
    t = max(1, int(lengths.max()) if b else 1)
    row = seqs.row_of_event[keep]
    starts = np.cumsum(lengths) - lengths
    col = np.arange(int(keep.sum()), dtype=np.int64) - np.repeat(starts, lengths)
    col += t - lengths[row]
    return keep, row, col, b, t


def build_batch(seqs: Sequences, max_len: int, sizes: FeatureSizes) -> SequenceBatch:
    """The last ``max_len`` events of every row as a right-aligned batch.

    ``T`` is the longest kept row (at least 1), so short batches stay small.

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2, 3], [4]], n_items=4)
    >>> b = build_batch(s, max_len=2, sizes=FeatureSizes.of(s))
    >>> b.items.tolist(), b.mask.tolist()
    ([[2, 3], [0, 4]], [[True, True], [False, True]])
    """
    gaps_all = time_gap_buckets(seqs)  # gaps before truncation: the first kept event keeps its gap
    keep, row, col, b, t = batch_layout(seqs, max_len)
    last = seqs.take_events(keep)

    def grid(values: Int, size: int) -> torch.Tensor:
        out = np.zeros((b, t), dtype=np.int64)
        out[row, col] = np.where(values < size, values, 0)
        return torch.from_numpy(out)

    words: Int = np.asarray(
        last.extra.get("query_words", np.zeros((len(last.items), 1), dtype=np.int64)),
        dtype=np.int64,
    )
    qgrid = np.zeros((b, t, words.shape[1]), dtype=np.int64)
    qgrid[row, col] = np.where(words < sizes.query_words, words, 0)
    mask = np.zeros((b, t), dtype=bool)
    mask[row, col] = True
    ts = np.zeros((b, t), dtype=np.int64)
    ts[row, col] = last.timestamps
    values = np.zeros((b, t), dtype=np.float32)
    values[row, col] = last.values
    return SequenceBatch(
        items=grid(last.items, sizes.items),
        actions=grid(last.actions, sizes.actions),
        gaps=grid(gaps_all[keep], sizes.gaps),
        devices=grid(last.devices, sizes.devices),
        locations=grid(last.locations, sizes.locations),
        sources=grid(last.sources, sizes.sources),
        query_words=torch.from_numpy(qgrid),
        timestamps=torch.from_numpy(ts),
        values=torch.from_numpy(values),
        mask=torch.from_numpy(mask),
    )


def build_training_batch(
    seqs: Sequences, max_len: int, sizes: FeatureSizes
) -> tuple[SequenceBatch, torch.Tensor, torch.Tensor]:
    """Inputs and next-event targets for training on every position.

    Returns ``(inputs, target_items, target_actions)``: ``inputs`` covers each row's last
    ``max_len + 1`` events but the last; the targets at column ``j`` are the item and action
    of the event after input ``j`` (0 where there is none, e.g. a search without an item, and
    where that event is a followee's: context, never a target).

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2, 3]], n_items=3)
    >>> x, y, a = build_training_batch(s, max_len=2, sizes=FeatureSizes.of(s))
    >>> x.items.tolist(), y.tolist()
    ([[1, 2]], [[2, 3]])
    >>> from dataclasses import replace
    >>> from behaviorlm.schema import FOLLOWEE
    >>> theirs = replace(s, extra={FOLLOWEE: np.array([0, 5, 0])})  # event 2 is a followee's
    >>> build_training_batch(theirs, max_len=2, sizes=FeatureSizes.of(s))[1].tolist()
    [[0, 3]]
    """
    full = build_batch(seqs, max_len + 1, sizes)
    t = full.shape[1]
    if t < 2:  # every row has at most one event: nothing to predict
        empty = full.columns(slice(0, 0))
        return empty, full.items[:, :0], full.actions[:, :0]
    inputs = full.columns(slice(0, t - 1))
    valid = inputs.mask & full.mask[:, 1:]
    context = seqs.is_followee_event()
    if context.any():
        keep, row, col, b, t = batch_layout(seqs, max_len + 1)
        own = np.zeros((b, t), dtype=bool)
        own[row, col] = ~context[keep]
        valid &= torch.from_numpy(own[:, 1:])
    return inputs, full.items[:, 1:] * valid, full.actions[:, 1:] * valid
