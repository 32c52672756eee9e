"""The one place where scores become ranked lists: mask, filter, top-k.

Users are walked in batches and the catalogue in contiguous item chunks
(``model.score(batch, slice(lo, hi))``); each chunk is merged into a running top-k of the
batch, so the memory is O(batch_size * item_chunk) whatever the catalogue size. The top-k
selection partitions one int64 key per (score, item) (see :func:`encode`), which makes it
exact and tie-free: ``np.partition`` on float scores with many ties is both slow and leaves
the order of equal scores undefined.

The order is total and deterministic: higher score first, equal scores by lower item id.
Masked items get ``-inf``; rows with fewer than ``k`` candidates are padded with item 0 and
score ``-inf`` (item 0 is padding and never recommended).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl
import torch

from behaviorlm.models.base import Recommender, as_model
from behaviorlm.schema import F32, Bool, Int, Sequences


@dataclass(frozen=True)
class Ranked:
    """Top-k lists, one row per history row.

    Attributes
    ----------
    items : (R, k) int64
        Recommended item ids, best first; 0 pads rows with fewer than ``k`` candidates.
    scores : (R, k) float32
        Their scores; ``-inf`` where ``items`` is padding.

    Examples
    --------
    >>> r = Ranked(items=np.array([[2, 0]]), scores=np.array([[1.0, -np.inf]], dtype=np.float32))
    >>> len(r), r.k
    (1, 2)
    """

    items: Int
    scores: F32

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def k(self) -> int:
        """Length of every list (including padding)."""
        return int(self.items.shape[1])

    def table(
        self, user_ids: Sequence[str] | pl.Series, item_ids: Sequence[str] | pl.Series
    ) -> pl.DataFrame:
        """The lists as one row per recommendation: ``user_id``, ``rank`` (1 = best),
        ``item_id`` and ``score``, best first within a user; padding is left out.

        ``user_ids[r]`` names list ``r`` and ``item_ids[i - 1]`` names item ``i`` (for an
        artifact: ``dataset.users["user_id"]`` and ``dataset.items["item_id"]``, taken as
        they are; a caller that tables many batches passes the item column once).

        Examples
        --------
        >>> r = Ranked(items=np.array([[2, 1], [1, 0]]),
        ...            scores=np.array([[0.75, 0.5], [0.25, -np.inf]], dtype=np.float32))
        >>> r.table(["u1", "u2"], ["i1", "i2"]).rows()
        [('u1', 1, 'i2', 0.75), ('u1', 2, 'i1', 0.5), ('u2', 1, 'i1', 0.25)]
        """
        if len(user_ids) != len(self):
            raise ValueError(f"{len(user_ids)} user ids for {len(self)} lists")
        row, col = np.nonzero(self.items > 0)
        users, items = _id_column("user_id", user_ids), _id_column("item_id", item_ids)
        largest = int(self.items.max(initial=0))
        if largest > len(items):
            raise ValueError(
                f"{len(items)} item ids for lists that hold item {largest}: item_ids[i - 1] "
                "names item i (for an artifact: dataset.items['item_id'])"
            )
        return pl.DataFrame(
            {
                "user_id": users.gather(row),
                "rank": pl.Series(col + 1, dtype=pl.Int32),
                "item_id": items.gather(self.items[row, col] - 1),
                "score": pl.Series(self.scores[row, col], dtype=pl.Float32),
            }
        )


def _id_column(name: str, ids: Sequence[str] | pl.Series) -> pl.Series:
    """``ids`` as a text column named ``name`` (a column is renamed, not rebuilt); ids
    given as numbers are written as they print, as ``Dataset`` looks them up.

    Examples
    --------
    >>> _id_column("user_id", [7, "u1"]).to_list()
    ['7', 'u1']
    """
    if isinstance(ids, pl.Series):
        return ids.rename(name).cast(pl.String)
    return pl.Series(name, [None if i is None else str(i) for i in ids], dtype=pl.String)


def item_mask(
    n_items: int,
    *,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
) -> Bool:
    """(n_items + 1,) True where an item may be recommended (never item 0).

    ``allowed_items`` is a bool mask over ``0..n_items`` or an array of item ids; ids outside
    ``1..n_items`` raise ValueError.

    Examples
    --------
    >>> item_mask(4, exclude_items=[2], allowed_items=[1, 2, 3]).tolist()
    [False, True, False, True, False]
    """
    ok = np.ones(n_items + 1, dtype=bool)
    if allowed_items is not None:
        allowed = np.asarray(allowed_items)
        if allowed.dtype == np.bool_:
            if allowed.shape != (n_items + 1,):
                raise ValueError(
                    f"allowed_items as a mask must have shape ({n_items + 1},), got {allowed.shape}"
                )
            ok &= allowed
        else:
            ok[:] = False
            ok[_check_ids(allowed, n_items, "allowed_items")] = True
    if exclude_items is not None:
        ok[_check_ids(np.asarray(exclude_items), n_items, "exclude_items")] = False
    ok[0] = False
    return ok


def _check_ids(ids: npt.NDArray[np.generic], n_items: int, what: str) -> Int:
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{what} must hold integer item ids, got dtype {ids.dtype}")
    out = ids.astype(np.int64).ravel()
    if out.size and (out.min() < 0 or out.max() > n_items):
        raise ValueError(f"{what} holds ids outside 0..{n_items}")
    return out


_LOW = np.int64(0xFFFFFFFF)
_MAGNITUDE = np.int32(0x7FFFFFFF)


def encode(scores: F32, start: int) -> Int:
    """(B, n) one int64 sort key per (score, item): larger key = ranked higher.

    The high 32 bits hold the float32 score's bits mapped to an order-preserving signed
    integer, the low 32 bits ``2**32 - 1 - item`` (item ``start + column``), so that equal
    scores order by lower item id. All keys of a row differ, so ``np.partition`` on them is
    exact, deterministic and fast even when most scores tie. Scores must not be NaN.

    Examples
    --------
    >>> keys = encode(np.array([[0.5, 2.0, 0.5]], np.float32), start=1)
    >>> np.argsort(keys[0])[::-1].tolist()
    [1, 0, 2]
    """
    return item_keys(scores, np.arange(start, start + scores.shape[1], dtype=np.int64)[None, :])


def item_keys(scores: F32, items: Int) -> Int:
    """The keys of :func:`encode` for scores and item ids of any (broadcastable) shapes.

    Examples
    --------
    >>> item_keys(np.array([0.5], np.float32), np.array([3])) > item_keys(
    ...     np.array([0.5], np.float32), np.array([4]))
    array([ True])
    """
    # -0.0 + 0.0 == +0.0: one bit pattern for zero, so zeros tie by item id
    bits = (np.asarray(scores, dtype=np.float32) + np.float32(0.0)).view(np.int32)
    # negative floats order backwards as integers: flip their magnitude bits (an involution)
    bits ^= (bits >> 31) & _MAGNITUDE
    keys = bits.astype(np.int64)
    keys <<= 32
    keys |= _LOW - items
    return keys


def decode(keys: Int) -> tuple[F32, Int]:
    """Inverse of :func:`encode`: (scores float32, items int64) of the same shape.

    Examples
    --------
    >>> s, i = decode(encode(np.array([[-1.5, 0.0, np.inf]], np.float32), start=7))
    >>> s.tolist(), i.tolist()
    ([[-1.5, 0.0, inf]], [[7, 8, 9]])
    """
    bits = (keys >> 32).astype(np.int32)
    bits ^= (bits >> 31) & _MAGNITUDE
    return bits.view(np.float32), _LOW - (keys & _LOW)


def top_keys(keys: Int, k: int) -> Int:
    """The ``k`` largest keys of every row (unordered); all of them when a row has fewer.

    Examples
    --------
    >>> np.sort(top_keys(np.array([[5, 1, 9, 7]]), 2)).tolist()
    [[7, 9]]
    """
    width = keys.shape[1]
    if width <= k:
        return keys
    return np.partition(keys, width - k, axis=1)[:, width - k :]


def chunk_top_keys(scores: F32, start: int, k: int) -> Int:
    """``top_keys(encode(scores, start), k)`` up to key order, found without encoding every score.

    ``torch.topk`` finds each row's ``k``-th largest score; only the scores at or above it
    (``k`` of them, more on ties) are encoded and ranked exactly. Rows with fewer than ``k``
    finite scores give their finite ones and pad with the smallest key, which decodes to a
    NaN score, "not found" like ``-inf``. On a million items the service's closed-loop
    throughput went from 62 to 118 requests/s with it (``benchmarks/RESULTS.md``).

    Examples
    --------
    >>> s = np.array([[0.1, 3.0, 3.0, -1.0], [-np.inf, 2.0, -np.inf, -np.inf]], np.float32)
    >>> scores, items = decode(np.sort(chunk_top_keys(s, 1, 2), axis=1)[:, ::-1])
    >>> items[0].tolist(), scores[1].tolist()  # row 1 has one finite score
    ([2, 3], [2.0, nan])
    """
    b, width = scores.shape
    if width <= k:
        return encode(scores, start)
    kth = torch.topk(torch.from_numpy(scores), k, dim=1, sorted=False).values.amin(dim=1)
    keep = (scores >= kth.numpy()[:, None]) & (scores > -np.inf)  # (B, C): k or more per row
    rows, cols = np.nonzero(keep)
    counts = np.bincount(rows, minlength=b)
    out = np.full((b, max(int(counts.max(initial=0)), k)), np.iinfo(np.int64).min)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out[rows, np.arange(len(rows)) - first[rows]] = item_keys(scores[rows, cols], start + cols)
    return top_keys(out, k)


def seen_events(histories: Sequences, actions: npt.ArrayLike | None = None) -> Bool:
    """The events whose items count as seen: the user's own events (a followee's share is not
    seen by the user), of ``actions`` (action codes) where given.

    Examples
    --------
    >>> s = Sequences.from_lists([[1, 2, 3]], n_items=3, actions=[[1, 3, 1]])
    >>> seen_events(s).tolist(), seen_events(s, [3]).tolist()
    ([True, True, True], [False, True, False])
    """
    own = ~histories.is_followee_event()
    codes = action_codes(actions)
    if codes is not None:
        own &= np.isin(histories.actions, codes)
    return own


def action_codes(actions: npt.ArrayLike | None) -> Int | None:
    """``actions`` as int64 action codes; TypeError for names (or codes given as floats).

    Examples
    --------
    >>> action_codes([4]).tolist(), action_codes(None)
    ([4], None)
    """
    if actions is None:
        return None
    codes = np.asarray(actions)
    if codes.size and codes.dtype.kind not in "iu":
        raise TypeError(
            f"seen actions are action codes (Dataset.action_code(name)), got {actions!r}"
        )
    return codes.astype(np.int64)


def per_row_items(by_row: Sequence[npt.ArrayLike] | None, rows: int) -> tuple[Int, Int]:
    """``(row, item)`` pairs as two flat arrays from one array of item ids per row.

    Examples
    --------
    >>> r, i = per_row_items([[3, 4], [], [1]], 3)
    >>> r.tolist(), i.tolist()
    ([0, 0, 2], [3, 4, 1])
    """
    if by_row is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(by_row) != rows:
        raise ValueError(f"exclude_by_row has {len(by_row)} entries for {rows} rows")
    arrays = [np.asarray(x, dtype=np.int64).reshape(-1) for x in by_row]
    counts = np.array([len(a) for a in arrays], dtype=np.int64)
    items = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return np.repeat(np.arange(rows, dtype=np.int64), counts), items


@torch.inference_mode()  # no autograd bookkeeping on any tensor of the ranking
def in_catalogue(history: Sequences, model: Recommender) -> Sequences:
    """``history`` checked to hold no item id above the model's catalogue (ids of another data
    set, which a neural model would read as unknown items and any model would rank from
    without a word); ValueError otherwise.

    Examples
    --------
    >>> from behaviorlm.models.pop import Pop, PopConfig
    >>> model = Pop(PopConfig()).fit(Sequences.from_lists([[1, 2]], n_items=2))
    >>> in_catalogue(Sequences.from_lists([[1, 4]], n_items=4), model)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the timeline holds item id(s) 4 outside the model's catalogue 1..2: ...
    """
    if len(history.items) and int(history.items.max()) > model.n_items:
        above = np.unique(history.items[history.items > model.n_items])
        shown = ", ".join(str(int(i)) for i in above[:5]) + (" ..." if len(above) > 5 else "")
        raise ValueError(
            f"the timeline holds item id(s) {shown} outside the model's catalogue "
            f"1..{model.n_items}: map them with the model's data set"
        )
    return history


def recommend(
    model: Recommender,
    histories: Sequences,
    k: int = 10,
    *,
    exclude_seen: bool = True,
    exclude_items: npt.ArrayLike | None = None,
    allowed_items: npt.ArrayLike | None = None,
    exclude_by_row: Sequence[npt.ArrayLike] | None = None,
    seen_actions: npt.ArrayLike | None = None,
    batch_size: int = 256,
    item_chunk: int = 262_144,
) -> Ranked:
    """Top-``k`` items for every history row, over the full catalogue.

    Parameters
    ----------
    model : Recommender
        A fitted model.
    histories : Sequences
        One row per user to recommend for (rows may be empty).
    k : int
        Length of every list; at most the catalogue's size (a larger ``k`` gives lists of
        ``n_items``).
    exclude_seen : bool
        Never recommend an item that occurs in the row's history (its own events: an item a
        followee shared is still recommended).
    exclude_items : array of int, optional
        Item ids never to recommend (out of stock, blocked).
    allowed_items : bool mask over ``0..n_items`` or array of item ids, optional
        Recommend only these items.
    exclude_by_row : sequence of arrays of int, optional
        One array per row: item ids never to recommend to that row (a per-user block list,
        or the items a user bought when only purchases count as seen).
    seen_actions : array of int, optional
        With ``exclude_seen``: only events of these action codes count as seen (a model that
        predicts the next purchase should still recommend what the user only viewed).
    batch_size : int
        Rows scored at once.
    item_chunk : int
        Items scored at once; with ``batch_size`` it bounds the memory of one step.

    Returns
    -------
    Ranked
        ``items`` (R, k) int64 and ``scores`` (R, k) float32 (``k`` capped at ``n_items``),
        best first, padded with item 0 / ``-inf`` when a row has fewer than ``k`` candidates.

    Examples
    --------
    >>> from behaviorlm.models.pop import Pop, PopConfig
    >>> model = Pop(PopConfig()).fit(Sequences.from_lists([[1, 2], [2, 3], [2]], n_items=3))
    >>> recommend(model, Sequences.from_lists([[2], []], n_items=3), k=2).items.tolist()
    [[1, 3], [2, 1]]
    """
    as_model(model)  # an artifact, say: a TypeError that says to pass its .model
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if batch_size < 1 or item_chunk < 1:
        raise ValueError(
            f"batch_size and item_chunk must be positive, got {batch_size}, {item_chunk}"
        )
    n_items = model.n_items
    if n_items < 1:
        raise RuntimeError(f"{model.name} is not fitted")
    if n_items >= 2**32 - 1:
        raise ValueError(f"catalogues of 2**32 - 1 items or more are not supported, got {n_items}")
    in_catalogue(histories, model)
    ok = item_mask(n_items, exclude_items=exclude_items, allowed_items=allowed_items)
    seen_codes = action_codes(seen_actions)  # checked once, whether or not a row needs them
    R = len(histories)
    own_rows, own_items = per_row_items(exclude_by_row, R)
    own_items = _check_ids(own_items, n_items, "exclude_by_row")
    chunks = [(lo, min(lo + item_chunk, n_items + 1)) for lo in range(1, n_items + 1, item_chunk)]
    # per chunk, the columns (relative to the chunk start) that are never allowed
    blocked = {lo: np.flatnonzero(~ok[lo:hi]) for lo, hi in chunks}
    k = min(k, n_items)  # a list never holds more than the catalogue
    out_items = np.zeros((R, k), dtype=np.int64)
    out_scores = np.full((R, k), -np.inf, dtype=np.float32)
    for first in range(0, R, batch_size):
        batch = (
            histories  # one batch: the rows as they are
            if batch_size >= R
            else histories.select(np.arange(first, min(first + batch_size, R), dtype=np.int64))
        )
        B = len(batch)
        # (row in the batch, item) pairs never to recommend: the row's own exclusions, and
        # its history with exclude_seen
        own = (own_rows >= first) & (own_rows < first + B)
        seen_rows, seen_items = own_rows[own] - first, own_items[own]
        if exclude_seen:
            own_event = seen_events(batch, seen_codes)
            seen_rows = np.concatenate([batch.row_of_event[own_event], seen_rows])
            seen_items = np.concatenate([batch.items[own_event], seen_items])
        # (B, <= k) running top-k keys of the batch over the chunks scored so far
        best = np.zeros((B, 0), dtype=np.int64)
        for lo, hi in chunks:
            scores = np.array(model.score(batch, slice(lo, hi)), dtype=np.float32)  # (B, hi - lo)
            if scores.shape != (B, hi - lo):
                raise ValueError(
                    f"{model.name}.score returned shape {scores.shape}, expected {(B, hi - lo)}"
                )
            nan = np.isnan(scores)
            if nan.any():
                raise ValueError(
                    f"{model.name} returned {int(nan.sum()):,} NaN scores: the model is broken "
                    "(e.g. training diverged); retrain it with a lower learning rate"
                )
            scores[:, blocked[lo]] = -np.inf
            inside = (seen_items >= lo) & (seen_items < hi)
            scores[seen_rows[inside], seen_items[inside] - lo] = -np.inf
            chunk_best = chunk_top_keys(scores, lo, k)  # (B, <= k)
            best = top_keys(np.concatenate([best, chunk_best], axis=1), k)
        best_scores, best_items = decode(np.sort(best, axis=1)[:, ::-1])
        found = best_scores > -np.inf
        width = best.shape[1]
        out_scores[first : first + B, :width] = np.where(found, best_scores, -np.inf)
        out_items[first : first + B, :width] = np.where(found, best_items, 0)
    return Ranked(items=out_items, scores=out_scores)
