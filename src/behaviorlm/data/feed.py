"""Followees' activity in a user's timeline: the social feed as context events.

With ``SplitConfig.followee_actions`` (for example ``("share",)``), every event of those
actions by a user U joins the timeline of each follower of U, from the time the follower
follows U where ``follows.since`` is known, as a *followee event*:

* the item, action, time and query words of U's event;
* ``source`` = :func:`followee_source`, one past the data set's own source codes, so the
  model's source embedding tells a followee's event from the user's own;
* no device, location or value (they are U's, not the follower's);
* ``event_id`` = U's event (an explanation points at the very share);
* ``extra["followee"]`` = U (0 for the user's own events).

Followee events are context (:meth:`behaviorlm.schema.Sequences.is_followee_event`): inputs
of the model, never prediction targets (:func:`behaviorlm.models.batch.build_training_batch`)
and never items the user has "seen" (:func:`behaviorlm.recommend.recommend`). An evaluation
history takes the followee events strictly before its target (:func:`merge_feed`) and, in a
temporal split, before its cut-off; an event held out as an evaluation target is no input of
the parts before it (:func:`split_with_feed`); in every
timeline a followee event comes after the user's own events of the same time, so a training
target never sees a followee event that an evaluation cut would leave out.

Examples
--------
>>> from behaviorlm.data.preprocess import preprocess
>>> from behaviorlm.data.synthetic import simulate
>>> ds = preprocess(simulate(50, seed=1))
>>> feed = followee_feed(ds, ["share"])
>>> len(feed) == ds.n_users, bool((feed.sources == followee_source(ds)).all())
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import polars as pl

from behaviorlm.data.dataset import Dataset
from behaviorlm.schema import FOLLOWEE, EvalSet, Int, Sequences, Split, ragged_index

#: Column of an event's row in the event table while the feed is built.
_ROW = "__row"


def followee_source(ds: Dataset) -> int:
    """Source code of followee events: one past the data set's source vocabulary.

    Examples
    --------
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.data.synthetic import simulate
    >>> followee_source(preprocess(simulate(20, seed=0)))  # after "self", "social", "search"
    4
    """
    return len(ds.vocab["source"]) + 1


def has_feed(ds: Dataset) -> bool:
    """Whether followees' events can join the data set's timelines: it has a follow graph and
    real times (the order of a followee's events says nothing about the follower's without).

    Examples
    --------
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.data.synthetic import simulate
    >>> has_feed(preprocess(simulate(30, seed=0)))
    True
    """
    return ds.follows.height > 0 and bool(ds.meta.get("has_time", True))


def followee_feed(ds: Dataset, actions: Sequence[str]) -> Sequences:
    """Per user (row ``u - 1`` is user ``u``, as :meth:`Dataset.sequences`), in time order:
    the events of ``actions`` by the users they follow.

    Like every feature group, the feed is used where the data has it: rows stay empty for an
    action the data set does not have, without a follow graph, and without real times (the
    order of a followee's events says nothing about the follower's).
    """
    vocab = list(ds.vocab["action"])
    codes = [vocab.index(a) + 1 for a in actions if a in vocab] if has_feed(ds) else []
    ev = ds.events.with_row_index(_ROW).filter(pl.col("action").is_in(codes))
    edges = ds.follows.unique(subset=["follower", "followee"], keep="first", maintain_order=True)
    joined = (
        edges.join(ev, left_on="followee", right_on="user")
        .filter(pl.col("since").is_null() | (pl.col("timestamp") >= pl.col("since")))
        .sort("follower", "timestamp", _ROW)
    )
    ids = joined[_ROW].to_numpy().astype(np.int64)
    rows = ds.timelines_of(joined, "follower", ids, ds.query_words()[ids])
    who = joined["followee"].to_numpy().astype(np.int64)
    arrays = as_followee_events(rows.per_event(), who, followee_source(ds))
    extra = {k: arrays.pop(k) for k in (*rows.extra, FOLLOWEE)}
    return replace(rows, extra=extra, **arrays)  # type: ignore[arg-type]


def as_followee_events(
    per_event: dict[str, np.ndarray], followee: Int, source: int
) -> dict[str, np.ndarray]:
    """``per_event`` (the per-event arrays of :class:`Sequences`, ``extra`` included) with the
    events where ``followee`` is not 0 made followee events of that user: ``source``, and no
    device, location or value (the followee's context is not the follower's).

    Examples
    --------
    >>> arrays = {"sources": np.array([1, 1]), "devices": np.array([2, 2]),
    ...           "locations": np.array([3, 3]), "values": np.array([4.0, 4.0])}
    >>> out = as_followee_events(arrays, np.array([0, 7]), source=5)
    >>> out["sources"].tolist(), out["devices"].tolist(), out[FOLLOWEE].tolist()
    ([1, 5], [2, 0], [0, 7])
    """
    theirs = np.asarray(followee) != 0
    out = dict(per_event)
    out["sources"] = np.where(theirs, source, per_event["sources"]).astype(np.int64)
    for name in ("devices", "locations"):
        out[name] = np.where(theirs, 0, per_event[name]).astype(np.int64)
    out["values"] = np.where(theirs, np.nan, per_event["values"]).astype(np.float32)
    out[FOLLOWEE] = np.asarray(followee, dtype=np.int64)
    return out


def merge_feed(
    seqs: Sequences, feed: Sequences, until: Int | None = None, inclusive: bool = False
) -> Sequences:
    """Rows of ``seqs`` with their users' followee events from ``feed`` merged in by time.

    Parameters
    ----------
    seqs : Sequences
        Timelines of the users' own events (any rows, repeats allowed).
    feed : Sequences
        :func:`followee_feed`: row ``u - 1`` holds user ``u``'s followee events.
    until : (R,) int64, optional
        Per row of ``seqs``, the time the timeline is cut at: followee events before it join
        (at or before it with ``inclusive``); None: all of them.
    inclusive : bool
        Whether a followee event at exactly ``until`` joins.

    Returns
    -------
    Sequences
        The same rows; a followee event comes after the user's own events of the same time
        (it cannot be known to have come first, and an evaluation cut leaves it out).
        ``extra`` holds :data:`FOLLOWEE` (0 for own events) and every key of both inputs.

    Examples
    --------
    >>> one = np.array([1])  # user 1, row 0 of the feed
    >>> own = replace(Sequences.from_lists([[1, 2]], n_items=9), users=one)  # times 0 and 1
    >>> feed = replace(Sequences.from_lists([[7, 8, 9]], n_items=9), users=one,
    ...                timestamps=np.array([0, 1, 5]), extra={FOLLOWEE: np.array([4, 4, 4])})
    >>> merged = merge_feed(own, feed, until=np.array([1]), inclusive=True)
    >>> merged.items.tolist(), merged.extra[FOLLOWEE].tolist()
    ([1, 7, 2, 8], [0, 4, 0, 4])
    """
    rows = seqs.users - 1
    if len(rows) and (rows.min() < 0 or rows.max() >= len(feed)):
        raise ValueError(f"user ids must lie in 1..{len(feed)}, the rows of the feed")
    index_rows, index = ragged_index(feed.offsets[rows], feed.lengths[rows])
    row = np.repeat(np.arange(len(seqs), dtype=np.int64), np.diff(index_rows))
    if until is not None:
        cut = np.asarray(until, dtype=np.int64)[row]
        ts = feed.timestamps[index]
        keep = ts <= cut if inclusive else ts < cut
        index, row = index[keep], row[keep]
    own_row = seqs.row_of_event
    n_own, n_feed = len(seqs.items), len(index)
    all_rows = np.concatenate([own_row, row])
    times = np.concatenate([seqs.timestamps, feed.timestamps[index]])
    # on equal times the user's own events first
    later = np.concatenate([np.zeros(n_own, dtype=np.int64), np.ones(n_feed, dtype=np.int64)])
    order = np.lexsort((np.arange(n_own + n_feed), later, times, all_rows))
    mine, theirs = seqs.per_event(), feed.per_event()
    mine.setdefault(FOLLOWEE, np.zeros(n_own, dtype=np.int64))
    merged: dict[str, np.ndarray] = {}
    for name in mine.keys() | theirs.keys():
        a = mine.get(name)
        b = theirs.get(name)
        if a is None:
            assert b is not None
            a = np.zeros((n_own, *b.shape[1:]), dtype=b.dtype)
        b = np.zeros((0, *a.shape[1:]), dtype=a.dtype) if b is None else b[index]
        merged[name] = np.concatenate([a, b.astype(a.dtype, copy=False)])[order]
    counts = np.bincount(all_rows, minlength=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    extra_keys = seqs.extra.keys() | feed.extra.keys() | {FOLLOWEE}
    extra = {k: merged.pop(k) for k in extra_keys}
    return replace(seqs, offsets=offsets, extra=extra, **merged)  # type: ignore[arg-type]


def split_with_feed(ds: Dataset, split: Split, actions: Sequence[str]) -> Split:
    """``split`` with followee events of ``actions`` in every timeline, none after its cut.

    Training rows take those up to their last own event (later ones precede no target);
    evaluation histories those strictly before the row's first target and, in a temporal
    split, before its cut-off (``valid_start``, ``test_start``), as the user's own events.
    A followee event that is itself an evaluation target (a share held out as its sharer's
    test target) is no training input, nor a validation input where it is a test target.
    ``info`` counts them. An action the data set does not have adds none (training refuses
    one it does not know, :func:`behaviorlm.train.run.fit_to_data`).

    Examples
    --------
    >>> from behaviorlm.data.preprocess import preprocess
    >>> from behaviorlm.data.split import leave_one_out
    >>> from behaviorlm.data.synthetic import simulate
    >>> ds = preprocess(simulate(50, seed=1))
    >>> split = split_with_feed(ds, leave_one_out(ds), ["share"])
    >>> split.info["followee_events"]["train"] > 0
    True
    """
    feed = followee_feed(ds, actions)
    times = ds.events["timestamp"].to_numpy().astype(np.int64)
    train = split.train
    last = np.full(len(train), np.iinfo(np.int64).min, dtype=np.int64)
    has = train.lengths > 0
    last[has] = train.timestamps[train.offsets[1:][has] - 1]

    def without(targets: Sequence[EvalSet]) -> Sequences:
        """The feed without the events that are targets of ``targets``."""
        held = np.concatenate([t.target_event_ids for t in targets])
        return feed.take_events(~np.isin(feed.event_ids, held))

    def cut(evalset: EvalSet, shown: Sequences, start: object) -> EvalSet:
        rows = np.repeat(np.arange(len(evalset), dtype=np.int64), np.diff(evalset.target_offsets))
        first = np.full(len(evalset), np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, rows, times[evalset.target_event_ids])
        if isinstance(start, (int, np.integer)):  # a temporal split: none from its cut-off on
            first = np.minimum(first, start)
        return replace(evalset, histories=merge_feed(evalset.histories, shown, first))

    out = replace(
        split,
        train=merge_feed(train, without([split.valid, split.test]), last, inclusive=True),
        valid=cut(split.valid, without([split.test]), split.info.get("valid_start")),
        test=cut(split.test, feed, split.info.get("test_start")),
    )
    counts = {
        name: int(s.is_followee_event().sum())
        for name, s in (
            ("train", out.train),
            ("valid", out.valid.histories),
            ("test", out.test.histories),
        )
    }
    return replace(
        out, info={**split.info, "followee_actions": list(actions), "followee_events": counts}
    )
