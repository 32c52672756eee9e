"""Training timelines as padded arrays built once, and the batches of an epoch.

The training set is built once from the ragged :class:`behaviorlm.schema.Sequences` with the
shared :func:`behaviorlm.models.batch.build_training_batch` (in row chunks, so the peak
memory of the build stays small), stored with compact integer types, and every batch is a
row gather plus a cut to the batch's longest timeline. Nothing walks rows in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.nn import functional

from behaviorlm.models.batch import FeatureSizes, SequenceBatch, build_training_batch
from behaviorlm.schema import Int, Sequences

#: Rows per call of build_training_batch while building the training set.
BUILD_CHUNK_ROWS = 8192


def sliding_windows(train: Sequences, max_len: int) -> Sequences:
    """Every row, plus earlier windows of rows longer than ``max_len + 1`` events.

    A model trains on the last ``max_len + 1`` events of a row (``max_len`` targets). Window
    ``k`` ends ``k * max_len`` events before the row's end, so together the windows make every
    event after a row's first one a target exactly once. Extra windows follow the original rows.

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2, 3, 4, 5, 6], [7, 8]], n_items=8)
    >>> w = sliding_windows(s, max_len=2)
    >>> [w.row(r).items[-3:].tolist() for r in range(len(w))]
    [[4, 5, 6], [7, 8], [2, 3, 4], [1, 2]]
    """
    lengths = train.lengths
    windows = np.maximum(1, -(-(lengths - 1) // max_len))  # ceil((L - 1) / max_len), at least 1
    extra = windows - 1
    rows = np.repeat(np.arange(len(train), dtype=np.int64), extra)
    first = np.repeat(np.cumsum(extra) - extra, extra)
    k = np.arange(len(rows), dtype=np.int64) - first + 1  # 1..extra within each row
    stops = train.offsets[rows + 1] - k * max_len
    all_rows = np.concatenate([np.arange(len(train), dtype=np.int64), rows])
    all_stops = np.concatenate([train.offsets[1:], stops])
    return train.prefixes(all_rows, all_stops)


def _pad_left(x: torch.Tensor, t: int) -> torch.Tensor:
    """Pad dimension 1 of ``x`` on the left to ``t`` columns (zeros / False)."""
    missing = t - x.shape[1]
    if missing == 0:
        return x
    pad = (0, 0, missing, 0) if x.ndim == 3 else (missing, 0)
    return functional.pad(x, pad)


def _compact(x: torch.Tensor, name: str) -> torch.Tensor:
    """Codes are stored as int32 (timestamps keep int64 seconds)."""
    return x.int() if x.dtype == torch.int64 and name != "timestamps" else x


@dataclass(frozen=True)
class TrainingSet:
    """Right-aligned training inputs and next-event targets of every training window.

    Attributes
    ----------
    inputs : SequenceBatch
        ``(N, T)`` inputs (codes stored as int32; :meth:`batch` returns int64).
    target_items, target_actions : (N, T) int32 tensors
        Item and action of the event after each input position (0 where none).
    lengths : (N,) int64
        Input positions of each row (the row's last ``lengths[r]`` columns hold events).

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2, 3], [4], [2, 4]], n_items=4)
    >>> data = TrainingSet.build(s, max_len=5, sizes=FeatureSizes.of(s))
    >>> len(data), data.lengths.tolist(), data.n_targets
    (2, [2, 1], 3)
    >>> x, y, a = data.batch(np.array([1]))
    >>> x.items.tolist(), y.tolist()
    ([[2]], [[4]])
    """

    inputs: SequenceBatch
    target_items: torch.Tensor
    target_actions: torch.Tensor
    lengths: Int

    @classmethod
    def build(
        cls, train: Sequences, max_len: int, sizes: FeatureSizes, *, windows: bool = False
    ) -> TrainingSet:
        """Build from training timelines; rows with nothing to predict are left out.

        ``windows`` adds the earlier windows of long rows (:func:`sliding_windows`).
        """
        seqs = sliding_windows(train, max_len) if windows else train
        seqs = seqs.select(np.flatnonzero(seqs.lengths >= 2))
        parts = []
        for lo in range(0, len(seqs), BUILD_CHUNK_ROWS):
            rows = np.arange(lo, min(lo + BUILD_CHUNK_ROWS, len(seqs)), dtype=np.int64)
            parts.append(build_training_batch(seqs.select(rows), max_len, sizes))
        if not parts:
            raise ValueError("no training timeline has two events: nothing to learn from")
        t = max(x.shape[1] for x, _, _ in parts)
        inputs = SequenceBatch(
            **{
                f.name: torch.cat(
                    [_compact(_pad_left(getattr(x, f.name), t), f.name) for x, _, _ in parts]
                )
                for f in fields(SequenceBatch)
            }
        )
        target_items = torch.cat([_pad_left(y, t).int() for _, y, _ in parts])
        target_actions = torch.cat([_pad_left(a, t).int() for _, _, a in parts])
        useful = ((target_items > 0) | (target_actions > 0)).any(1)
        if not bool(useful.all()):  # e.g. a row whose later events are all followees' (context)
            keep = torch.nonzero(useful).squeeze(1)
            if len(keep) == 0:
                raise ValueError("no training timeline has an event to predict")
            inputs = SequenceBatch(
                **{f.name: getattr(inputs, f.name)[keep] for f in fields(SequenceBatch)}
            )
            target_items, target_actions = target_items[keep], target_actions[keep]
        # rows whose only next events are beyond the vocabularies (clamped to 0) keep a length
        lengths = inputs.mask.sum(1).numpy().astype(np.int64)
        return cls(inputs, target_items, target_actions, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def n_targets(self) -> int:
        """Positions with a next event (one training event each) per epoch."""
        return int((self.target_actions > 0).sum())

    def batch(self, rows: Int) -> tuple[SequenceBatch, torch.Tensor, torch.Tensor]:
        """Rows ``rows`` as (inputs, next items, next actions), cut to their longest row."""
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        t_all = self.inputs.shape[1]
        t = int(self.lengths[rows].max()) if len(rows) else 0
        cols = slice(t_all - t, t_all)

        def take(x: torch.Tensor) -> torch.Tensor:
            out = x[index][:, cols]
            return out.long() if out.dtype == torch.int32 else out

        inputs = SequenceBatch(
            **{f.name: take(getattr(self.inputs, f.name)) for f in fields(SequenceBatch)}
        )
        return inputs, take(self.target_items), take(self.target_actions)

    def epoch_batches(
        self, batch_size: int, rng: np.random.Generator, buckets: int = 1
    ) -> list[Int]:
        """Row indices of every batch of one epoch, in a random order.

        With ``buckets > 1`` the shuffled rows are cut into runs of ``buckets`` batches and
        sorted by length within each run, so batches hold timelines of similar length and
        the cut in :meth:`batch` removes most padding; the batch order is shuffled again.

        Examples
        --------
        >>> s = Sequences.from_lists([[1, 2], [1, 2, 3, 4], [2, 3], [3, 4, 1, 2]], n_items=4)
        >>> data = TrainingSet.build(s, max_len=5, sizes=FeatureSizes.of(s))
        >>> batches = data.epoch_batches(2, np.random.default_rng(0), buckets=2)
        >>> sorted(sorted(data.lengths[b].tolist()) for b in batches)
        [[1, 1], [3, 3]]
        """
        n = len(self)
        perm = rng.permutation(n)
        if buckets > 1:
            run = np.arange(n) // (batch_size * buckets)
            perm = perm[np.lexsort((self.lengths[perm], run))]
        batches = [perm[lo : lo + batch_size] for lo in range(0, n, batch_size)]
        if buckets > 1:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches
